"""Export the journal for auditors and the offline verifier (layout: ``ledger.bundle``).

Files are written under temporary names and renamed into place, so an export is never
half-written; the caller's transaction gives one consistent snapshot.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from .bundle import FORMAT, JOURNAL, MANIFEST, journal_line
from .schema import Entry


def export(session: Session, directory: Path, *, up_to: int | None = None,
           extra_files: dict[str, bytes] | None = None) -> dict[str, object]:
    """Write the journal's entries 1..``up_to`` (default: all) and any ``extra_files`` into
    ``directory``; return the manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    count = 0
    head = "0" * 64
    tmp = directory / f".{JOURNAL}.tmp"
    digest = hashlib.sha256()
    with tmp.open("wb") as out:
        stmt = select(Entry.seq, Entry.kind, Entry.record, Entry.hash).order_by(Entry.seq)
        if up_to is not None:
            stmt = stmt.where(Entry.seq <= up_to)
        rows = session.execute(stmt).yield_per(5000)
        for seq, kind, record, entry_hash in rows:
            line = journal_line(seq, kind, bytes(record), entry_hash)
            out.write(line)
            digest.update(line)
            count += 1
            head = entry_hash
        out.flush()
        os.fsync(out.fileno())
    files[JOURNAL] = digest.hexdigest()
    staged = [(tmp, directory / JOURNAL)]
    for name, content in (extra_files or {}).items():
        path = directory / f".{name}.tmp"
        path.write_bytes(content)
        files[name] = hashlib.sha256(content).hexdigest()
        staged.append((path, directory / name))
    manifest: dict[str, object] = {
        "format": FORMAT,
        "entries": count,
        "head": head,
        "exported_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": files,
    }
    manifest_tmp = directory / f".{MANIFEST}.tmp"
    manifest_tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    staged.append((manifest_tmp, directory / MANIFEST))
    for source, target in staged:
        os.replace(source, target)
    return manifest
