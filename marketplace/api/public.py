"""The public registry as JSON, for auditors' machines: totals, certificates, serial look-up,
the latest signed checkpoint, and Merkle inclusion and consistency proofs. The same reads as
the registry's pages (``marketplace.registry``, ``marketplace.certificates``,
``ledger.queries``, ``ledger.tree``); no key needed."""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger import queries, tree
from ledger.checkpoint import CheckpointError
from ledger.errors import ChainError, LedgerError, SerialFormatError
from ledger.merkle import MerkleProofError, leaf_hash
from ledger.schema import Account, Entry, Project, SignedCheckpoint

from .. import certificates, formatting, registry, signing
from . import projects
from .problems import Problem


def _b64(raw: bytes) -> str:
    return base64.b64encode(bytes(raw)).decode("ascii")


def not_found(detail: str) -> Problem:
    return Problem(404, "Not Found", detail)


def totals(session: Session) -> dict[str, Any]:
    per_project = queries.project_totals(session)
    overall = queries.BatchTotals()
    rows = []
    for project in session.scalars(select(Project).order_by(Project.id)):
        t = per_project.get(project.id, queries.BatchTotals())
        overall.add(t)
        rows.append({"project": projects.project_ref(project), "country": project.country,
                     "issued": t.issued, "tradable": t.tradable, "retired": t.retired,
                     "cancelled": t.cancelled, "buffer": t.buffer})
    return {"object": "registry_totals",
            "totals": {"issued": overall.issued, "tradable": overall.tradable,
                       "retired": overall.retired, "cancelled": overall.cancelled,
                       "buffer": overall.buffer},
            "projects": rows, "journal_size": tree.size(session)}


def certificate(session: Session, seq: int) -> dict[str, Any]:
    """The certificate of a retirement, signing a checkpoint if none covers it yet (so the
    caller's transaction may write)."""
    try:
        return certificates.certificate(session, seq)
    except LookupError:
        raise not_found(f"There is no retirement at ledger entry {seq}.") from None
    except CheckpointError:
        raise unavailable() from None


def unavailable() -> Problem:
    return Problem(503, "Service Unavailable", "The registry cannot sign a checkpoint right "
                   "now; please try again later.", headers={"Retry-After": "60"})


def serial_lookup(session: Session, text: str) -> dict[str, Any]:
    try:
        timelines = queries.timeline(session, text)
    except (SerialFormatError, ValueError) as exc:
        raise Problem(422, "Your request is not valid",
                      f"That is not a serial number or serial string: {exc}.",
                      slug="validation",
                      errors=[{"parameter": "serial", "detail": "Not a serial number or serial "
                                                                "string."}]) from None
    if not timelines:
        raise not_found(f"No credit with serial number {text} is recorded on this ledger.")
    ids = {step.account_id for t in timelines for step in t.steps}
    kinds: dict[int, str] = {row[0]: row[1] for row in session.execute(
        select(Account.id, Account.kind).where(Account.id.in_(ids)))}
    return {"object": "serial_lookup", "query": text, "timelines": [{
        "batch": t.batch.id, "project": projects.project_ref(t.batch.project),
        "vintage": formatting.vintage_label(t.batch.vintage_start, t.batch.vintage_end),
        "number": t.number, "state": t.current.state,
        "steps": [{"seq": s.seq, "kind": s.kind, "hash": s.hash, "at": projects.aware(s.at),
                   "holder": registry.holder_label(kinds.get(s.account_id)), "state": s.state,
                   "first": s.first, "last": s.last, "serial": s.serial,
                   "spent_by": s.spent_by} for s in t.steps],
    } for t in timelines]}


def _checkpoint_dict(stored: SignedCheckpoint) -> dict[str, Any]:
    return {"object": "checkpoint", "size": int(stored.size), "root": _b64(stored.root),
            "note": stored.note, "key": stored.key,
            "created_at": projects.aware(stored.created_at)}


def checkpoint(session: Session, size: int | None) -> dict[str, Any]:
    """A signed checkpoint of ``size`` entries, or a current one (signed now if the latest is
    behind the journal)."""
    if size is not None:
        stored = session.get(SignedCheckpoint, size)
        if stored is None:
            raise not_found(f"No checkpoint of size {size} was signed.")
        return _checkpoint_dict(stored)
    try:
        return _checkpoint_dict(signing.current_checkpoint(session))
    except ChainError:
        raise not_found("The journal is empty: there is no checkpoint yet.") from None
    except CheckpointError:
        raise unavailable() from None
    except LedgerError:
        raise unavailable() from None


def _bad_range(detail: str, *parameters: str) -> Problem:
    return Problem(422, "Your request is not valid", detail, slug="validation",
                   errors=[{"parameter": p, "detail": detail} for p in parameters])


def inclusion(session: Session, seq: int, size: int) -> dict[str, Any]:
    current = tree.size(session)
    if seq > size:
        raise _bad_range("Need seq <= size.", "seq", "size")
    if size > current:
        raise _bad_range(f"The journal holds {current} entries, not {size}.", "size")
    try:
        proof = tree.inclusion(session, seq, size)
        root = tree.head_at(session, size)
    except MerkleProofError as exc:
        raise _bad_range(str(exc), "seq", "size") from None
    found = session.get(Entry, seq)
    assert found is not None
    signed = session.get(SignedCheckpoint, size)
    return {"seq": seq, "leaf_index": seq - 1, "tree_size": size, "hash": found.hash,
            "leaf_hash": _b64(leaf_hash(bytes(found.record))),
            "proof": [_b64(node) for node in proof], "root": _b64(root),
            "checkpoint": signed.note if signed is not None else None}


def consistency(session: Session, first: int, second: int) -> dict[str, Any]:
    current = tree.size(session)
    if first > second:
        raise _bad_range("Need from <= to.", "from", "to")
    if second > current:
        raise _bad_range(f"The journal holds {current} entries, not {second}.", "to")
    try:
        proof = tree.consistency(session, first, second)
        from_root, to_root = tree.head_at(session, first), tree.head_at(session, second)
    except MerkleProofError as exc:
        raise _bad_range(str(exc), "from", "to") from None
    return {"first": first, "second": second, "proof": [_b64(node) for node in proof],
            "from_root": _b64(from_root), "to_root": _b64(to_root)}
