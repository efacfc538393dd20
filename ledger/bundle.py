"""The layout of a journal export, shared by the exporter and the offline verifier (pure).

An export is a directory holding:

- ``journal.jsonl``: one entry a line, ``{"hash","kind","record","seq"}`` in canonical JSON,
  where ``record`` is the record text exactly as hashed;
- ``checkpoint.txt``: the signed checkpoint (a C2SP signed note) covering every entry;
- ``key.pub``: the operator's verifier key (check it against the one the operator publishes);
- ``manifest.json``: format, entry count, head hash, and each file's SHA-256.
"""

from __future__ import annotations

from . import canonical

FORMAT = "selva-journal/1"
JOURNAL = "journal.jsonl"
CHECKPOINT = "checkpoint.txt"
KEY = "key.pub"
MANIFEST = "manifest.json"
CERTIFICATE_FORMAT = "selva-certificate/1"


def journal_line(seq: int, kind: str, record: bytes, digest: str) -> bytes:
    """One line of journal.jsonl (canonical JSON, newline-terminated)."""
    return canonical.dumps(
        {"seq": seq, "kind": kind, "record": record.decode("utf-8"), "hash": digest}
    ) + b"\n"
