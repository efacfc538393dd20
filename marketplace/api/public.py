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
from ledger.merkle import MerkleProofError
from ledger.schema import Account, Project, SignedCheckpoint

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
    except signing.NotYetSigned:
        raise not_signed_yet(f"The retirement at entry {seq} is recorded; its certificate is "
                             "ready once the next checkpoint is signed, in a few seconds.") \
            from None
    except CheckpointError:
        raise unavailable() from None


def unavailable() -> Problem:
    return Problem(503, "Service Unavailable", "The registry cannot sign a checkpoint right "
                   "now; please try again later.", headers={"Retry-After": "60"})


def not_signed_yet(detail: str) -> Problem:
    """503 with a short Retry-After: the worker signs a checkpoint within seconds."""
    return Problem(503, "Not signed yet", detail, slug="not-signed-yet",
                   headers={"Retry-After": str(signing.RETRY_SECONDS)})


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
    """A signed checkpoint of ``size`` entries, or the newest one signed (the worker signs a new
    one within seconds of the journal growing)."""
    if size is not None:
        stored = session.get(SignedCheckpoint, size)
        if stored is None:
            raise not_found(f"No checkpoint of size {size} was signed.")
        return _checkpoint_dict(stored)
    try:
        return _checkpoint_dict(signing.published_checkpoint(session))
    except ChainError:
        raise not_found("The journal is empty: there is no checkpoint yet.") from None
    except signing.NotYetSigned:
        raise not_signed_yet("No checkpoint is signed yet; the first is signed in a few "
                             "seconds.") from None
    except CheckpointError:
        raise unavailable() from None
    except LedgerError:
        raise unavailable() from None


def _bad_range(detail: str, *parameters: str) -> Problem:
    return Problem(422, "Your request is not valid", detail, slug="validation",
                   errors=[{"parameter": p, "detail": detail} for p in parameters])


def inclusion(session: Session, seq: int, size: int) -> dict[str, Any]:
    try:
        return tree.inclusion_document(session, seq, size)
    except tree.BeyondJournalError as exc:
        raise _bad_range(str(exc), "size") from None
    except MerkleProofError as exc:
        raise _bad_range(str(exc), "seq", "size") from None


def consistency(session: Session, first: int, second: int) -> dict[str, Any]:
    try:
        document = tree.consistency_document(session, first, second)
    except tree.BeyondJournalError as exc:
        raise _bad_range(str(exc), "to") from None
    except MerkleProofError as exc:
        raise _bad_range(str(exc), "from", "to") from None
    return {"first": first, "second": second, **document}
