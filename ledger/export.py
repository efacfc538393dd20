"""Export the journal as JSON Lines, with a manifest, for auditors and the offline verifier.

``journal.jsonl`` holds one entry a line: ``{"hash", "kind", "record", "seq"}`` where
``record`` is the canonical record text exactly as hashed (its UTF-8 bytes are what the hash
covers). ``manifest.json`` names the format, the entry count, the head hash and each file's
SHA-256. Files are written under temporary names and renamed into place, so an export is
never half-written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import canonical
from .schema import Entry

FORMAT = "selva-journal/1"
JOURNAL = "journal.jsonl"
MANIFEST = "manifest.json"


def export_line(seq: int, kind: str, record: bytes, digest: str) -> bytes:
    """One line of journal.jsonl (canonical JSON, newline-terminated)."""
    return canonical.dumps(
        {"seq": seq, "kind": kind, "record": record.decode("utf-8"), "hash": digest}
    ) + b"\n"


def export(session: Session, directory: Path, *, extra_files: dict[str, bytes] | None = None) -> dict[str, object]:
    """Write the journal (and any ``extra_files``) into ``directory``; return the manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    count = 0
    head = "0" * 64
    tmp = directory / f".{JOURNAL}.tmp"
    digest = hashlib.sha256()
    with tmp.open("wb") as out:
        rows = session.execute(
            select(Entry.seq, Entry.kind, Entry.record, Entry.hash).order_by(Entry.seq)
        ).yield_per(5000)
        for seq, kind, record, entry_hash in rows:
            line = export_line(seq, kind, bytes(record), entry_hash)
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
