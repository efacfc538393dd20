"""Retirement certificates: everything a buyer (or anyone) needs to prove a retirement.

A certificate is a plain JSON document. Besides the facts shown on the page (beneficiary,
tonnes, project, vintage, serials, purpose, period, date) it carries the entry's record text
exactly as hashed, a signed checkpoint covering it and the Merkle inclusion proof that ties
the two together, so that ``python -m ledger.verify --certificate FILE --key KEY`` can check
it with nothing but the operator's public key. After a beneficiary's name is erased the
certificate says it was withheld and still verifies: the record commits to the name by a
salted hash, never by the name itself.
"""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger import bundle, canonical, queries, tree
from ledger.rules import PURPOSES
from ledger.schema import Batch, Beneficiary, Block, Entry

from ledger import origin as ledger_origin

from . import origin, signing
from .urls import external_url, registry_blueprint


def b64(raw: bytes) -> str:
    return base64.b64encode(bytes(raw)).decode("ascii")


def retirement_entry(session: Session, seq: int) -> Entry:
    """The journal entry ``seq`` if it is a retirement; ``LookupError`` otherwise."""
    entry = session.get(Entry, seq) if isinstance(seq, int) and seq >= 1 else None
    if entry is None or entry.kind != "retire":
        raise LookupError(f"there is no retirement at ledger entry {seq}")
    return entry


def retired_blocks(session: Session, seq: int) -> list[Block]:
    """The retired blocks a retirement entry created, in batch and serial order."""
    return list(session.scalars(
        select(Block).join(Batch, Batch.id == Block.batch_id)
        .where(Block.created_by == seq, Block.state == "retired")
        .order_by(Batch.vintage_start, Batch.id, Block.first_serial)
    ))


def certificate(session: Session, seq: int, *, sign: bool | None = None) -> dict[str, Any]:
    """The certificate of the retirement at journal entry ``seq``, proven against the oldest
    signed checkpoint covering it and the origin records it cites.

    If none covers them yet, ``signing.checkpoint_for`` decides: the worker and the CLI
    (``sign=True``) sign one in the caller's transaction; a registry read raises
    ``signing.NotYetSigned``. Raises ``LookupError`` if ``seq`` is not a retirement.
    """
    entry = retirement_entry(session, seq)
    record = bytes(entry.record)
    parsed = canonical.loads(record)
    data: dict[str, Any] = parsed["data"]
    blocks = retired_blocks(session, seq)
    status = ledger_origin.retirement_origin(session, seq)
    evidence = sorted(record.seq for record in status.records)

    # One checkpoint covers the retirement and every origin record it cites, so one key
    # checks them all.
    checkpoint = signing.checkpoint_for(session, max([seq, *evidence]), sign=sign)
    tree_size = int(checkpoint.size)
    proof = tree.inclusion(session, seq, tree_size)

    person = session.get(Beneficiary, seq)
    beneficiary: dict[str, str] | None = None
    if person is not None and person.name is not None and person.salt is not None:
        beneficiary = {"name": person.name, "salt": person.salt}

    first_batch = blocks[0].batch if blocks else None
    project = first_batch.project if first_batch is not None else None
    batches = {block.batch_id: block.batch for block in blocks}
    purpose = str(data.get("purpose", ""))
    return {
        "format": bundle.CERTIFICATE_FORMAT,
        "seq": seq,
        "hash": entry.hash,
        "record": record.decode("utf-8"),
        "kind": "retirement",
        "beneficiary": beneficiary,
        "withheld": beneficiary is None,
        "quantity": int(data["quantity"]),
        "project": None if project is None else {
            "ref": project.ref, "name": project.name, "country": project.country,
        },
        "vintage": None if not batches else {
            "start": min(b.vintage_start for b in batches.values()).isoformat(),
            "end": max(b.vintage_end for b in batches.values()).isoformat(),
        },
        "batch": first_batch.id if first_batch is not None else None,
        "batches": sorted(batches),
        "serials": [queries.serial_string(block.batch, block.first_serial, block.last_serial)
                    for block in blocks],
        "blocks": [
            {"batch": block.batch_id, "first": block.first_serial, "last": block.last_serial,
             "quantity": block.quantity,
             "serial": queries.serial_string(block.batch, block.first_serial, block.last_serial)}
            for block in blocks
        ],
        "purpose": {"code": purpose, "label": PURPOSES.get(purpose, purpose)},
        "note": data.get("note", ""),
        "country": data.get("country"),
        "period": {"start": data.get("period_start"), "end": data.get("period_end")},
        "date": data.get("date"),
        "recorded_at": parsed.get("time"),
        "checkpoint": checkpoint.note,
        "tree_size": tree_size,
        "leaf_index": seq - 1,
        "inclusion_proof": [b64(node) for node in proof],
        "root": b64(checkpoint.root),
        "origin": {**origin.origin_dict(status),
                   "evidence": [_evidence(session, other, tree_size) for other in evidence]},
        "labels": origin.batch_labels(session, list(batches.values()), before=seq),
        "links": _links(seq),
    }


def _evidence(session: Session, seq: int, tree_size: int) -> dict[str, Any]:
    """An origin entry as proof: its record exactly as hashed, and its inclusion proof in the
    certificate's checkpoint, so the offline verifier can check the coverage it claims."""
    entry = session.get(Entry, seq)
    assert entry is not None and entry.kind == "origin"
    return {"seq": seq, "hash": entry.hash, "record": bytes(entry.record).decode("utf-8"),
            "leaf_index": seq - 1,
            "inclusion_proof": [b64(node) for node in tree.inclusion(session, seq, tree_size)]}


def _links(seq: int) -> dict[str, str]:
    """Absolute addresses of the certificate (on ``CARBON_SITE_URL`` outside a request)."""
    registry = registry_blueprint()
    return {
        "page": external_url(f"{registry}.certificate", seq=seq),
        "json": external_url(f"{registry}.certificate_json", seq=seq),
        "pdf": external_url(f"{registry}.certificate_pdf", seq=seq),
    }
