"""Kilogram certificates: the proof of one allocation from a kilogram pool.

An allocation is position ``index`` of the ``allocate`` entry at ``seq`` (its public id is
``seq.index``). Its certificate is a ``selva-certificate/1`` document of ``"kind":
"allocation"``: the facts shown on the page, the allocate entry's record exactly as hashed
with its Merkle inclusion proof in a signed checkpoint, the beneficiary's name and salt (both
``null`` once erased), and every pool retirement the allocation draws from, each with its
record and inclusion proof in the same checkpoint and the serials of the retired blocks it
created. ``python -m ledger.verify --certificate FILE --key KEY`` checks all of it with
nothing but the operator's public key.

Buyers know an allocation by its reference (``kg_`` and 16 hex digits, the id the API
returns); the page, JSON and PDF are found by it. Until the allocation is written into the
ledger (sealed) there is nothing to prove, and the registry says so: the page answers 200 with
a notice that refreshes itself, the JSON address ``202 {"status": "pending", "reference",
"grams", "mass", "message", "links"}`` with ``Retry-After: 5``, and the PDF address 202 with
the same notice as the page. An unpaid (reserved) or released allocation, or an unknown or
malformed reference, is a 404.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger import bundle, canonical, queries, tree
from ledger.rules import PURPOSES
from ledger.schema import Allocation, Entry, PoolRetirement, Project

from . import signing
from .certificates import b64, retired_blocks
from .kilograms import format_mass
from .models.pools import KgAllocation
from .urls import external_url, registry_blueprint

REFERENCE = re.compile(r"kg_[0-9a-f]{16}")
"""A kilogram allocation's public reference (``KgAllocation.reference``)."""

PENDING = "pending"
SEALED = "sealed"


def find(session: Session, reference: str) -> KgAllocation | None:
    """The allocation with this reference, if it is well formed and the allocation is paid for
    (allocated, waiting to be sealed) or sealed. Reserved (unpaid) and released allocations
    are nobody's business: None."""
    if not REFERENCE.fullmatch(reference):
        return None
    found = session.scalars(select(KgAllocation)
                            .where(KgAllocation.reference == reference)
                            .execution_options(populate_existing=True)).one_or_none()
    if found is None or found.state not in ("allocated", "sealed"):
        return None
    if found.state == "sealed" and (found.seq is None or found.idx is None):
        return None
    return found


def status(allocation: KgAllocation) -> str:
    return SEALED if allocation.state == "sealed" else PENDING


def certificate(session: Session, allocation: KgAllocation, *,
                sign: bool | None = None) -> dict[str, Any]:
    """The certificate of a sealed allocation, proven against the oldest signed checkpoint
    covering its entry.

    If none covers it yet, ``signing.checkpoint_for`` decides: the worker and the CLI
    (``sign=True``) sign one in the caller's transaction; a registry read raises
    ``signing.NotYetSigned``. Raises ``LookupError`` if the allocation is not sealed or its
    entry is missing.
    """
    seq, index = allocation.seq, allocation.idx
    if allocation.state != "sealed" or seq is None or index is None:
        raise LookupError(f"allocation {allocation.reference} is not in the ledger yet")
    entry = session.get(Entry, seq)
    row = session.get(Allocation, (seq, index))
    if entry is None or entry.kind != "allocate" or row is None:
        raise LookupError(f"there is no allocation {seq}.{index}")
    record = bytes(entry.record)
    parsed = canonical.loads(record)
    data: dict[str, Any] = parsed["data"]["allocations"][index]
    draws = [(int(pool_seq), int(grams)) for pool_seq, grams in data["from"]]

    # The allocate entry comes after every pool retirement it draws from, so one checkpoint
    # covering it covers them all.
    checkpoint = signing.checkpoint_for(session, seq, sign=sign)
    tree_size = int(checkpoint.size)
    proof = tree.inclusion(session, seq, tree_size)

    retirements = [_pool_retirement(session, pool_seq, tree_size) for pool_seq, _ in draws]
    serials = {r["seq"]: r["serials"] for r in retirements}
    first = session.get(PoolRetirement, draws[0][0])
    found = session.get(Project, first.project_id) if first is not None else None
    if first is None or found is None:
        raise LookupError(f"allocation {seq}.{index} draws from no pool retirement")
    beneficiary = {"name": row.name, "salt": row.salt} if row.name is not None \
        and row.salt is not None else {"name": None, "salt": None}
    purpose = str(data.get("purpose", ""))
    return {
        "format": bundle.CERTIFICATE_FORMAT,
        "kind": "allocation",
        "reference": allocation.reference,
        "id": f"{seq}.{index}",
        "seq": seq,
        "index": index,
        "hash": entry.hash,
        "record": record.decode("utf-8"),
        "beneficiary": beneficiary,
        "withheld": beneficiary["name"] is None,
        "grams": int(data["grams"]),
        "mass": format_mass(int(data["grams"])),
        "pool": first.pool,
        "project": {"ref": found.ref, "name": found.name, "country": found.country},
        "draws": [{"seq": pool_seq, "grams": grams, "mass": format_mass(grams),
                   "serials": serials[pool_seq]} for pool_seq, grams in draws],
        "purpose": {"code": purpose, "label": PURPOSES.get(purpose, purpose)},
        "note": data.get("note", ""),
        "country": data.get("country"),
        "period": {"start": data.get("period_start"), "end": data.get("period_end")},
        "date": parsed["data"].get("date"),
        "recorded_at": parsed.get("time"),
        "checkpoint": checkpoint.note,
        "tree_size": tree_size,
        "leaf_index": seq - 1,
        "inclusion_proof": [b64(node) for node in proof],
        "root": b64(checkpoint.root),
        "pool_retirements": retirements,
        "links": links(allocation.reference),
    }


def _pool_retirement(session: Session, seq: int, tree_size: int) -> dict[str, Any]:
    """A pool retirement as proof: its record exactly as hashed, its inclusion proof in the
    certificate's checkpoint, and the retired blocks it created with their serials."""
    entry = session.get(Entry, seq)
    if entry is None or entry.kind != "pool":
        raise LookupError(f"entry {seq} is not a pool retirement")
    blocks = retired_blocks(session, seq)
    data = canonical.loads(bytes(entry.record))["data"]
    return {
        "seq": seq, "hash": entry.hash, "record": bytes(entry.record).decode("utf-8"),
        "pool": data.get("pool"), "quantity": int(data["quantity"]), "date": data.get("date"),
        "leaf_index": seq - 1,
        "inclusion_proof": [b64(node) for node in tree.inclusion(session, seq, tree_size)],
        "blocks": [{"batch": block.batch_id, "first": block.first_serial,
                    "last": block.last_serial, "quantity": block.quantity,
                    "serial": queries.serial_string(block.batch, block.first_serial,
                                                    block.last_serial)}
                   for block in blocks],
        "serials": [queries.serial_string(block.batch, block.first_serial, block.last_serial)
                    for block in blocks],
    }


def pending(allocation: KgAllocation) -> dict[str, Any]:
    """What the JSON address answers while the allocation waits to be written into the
    ledger."""
    return {
        "status": PENDING,
        "reference": allocation.reference,
        "grams": allocation.grams,
        "mass": format_mass(allocation.grams),
        "message": "This allocation is paid for and is being written into the ledger. Its "
                   "certificate will be here in a few seconds.",
        "links": links(allocation.reference),
    }


def links(reference: str) -> dict[str, str]:
    """Absolute addresses of the certificate (on ``CARBON_SITE_URL`` outside a request)."""
    registry = registry_blueprint()
    return {
        "page": external_url(f"{registry}.kg_certificate", reference=reference),
        "json": external_url(f"{registry}.kg_certificate_json", reference=reference),
        "pdf": external_url(f"{registry}.kg_certificate_pdf", reference=reference),
    }
