"""The registry of record: what the origin registry did with the serials a batch mirrors, and
the quality labels of each batch, both written to the journal.

Two operations, each appending one entry in the caller's transaction (neither commits):

- :func:`record_origin` records a retirement or cancellation made at the origin registry (an
  ``origin`` entry). When the origin names someone else, the same entry freezes whatever of
  those serials is still tradable here, so from that moment they can never be sold.
- :func:`set_labels` records a batch's new quality labels (a ``label`` entry), so the journal
  shows when each label appeared.

And the read side: the origin status of retirements (covered / pending at origin / conflict),
a reconciliation per mirrored batch, the operator's "retire at origin" worklist, and the labels
in force at any seq.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from . import journal
from .errors import OriginRangeError, UnknownBatchError
from .operations import Receipt, write_spend
from .records import MIRRORED_REGISTRIES, UNLABELLED, LabelChange, Labels, OriginRetirement
from .rules import BlockRange, Coverage, check_id, classify, intersect, plan_freeze
from .schema import Batch, BatchLabel, Block, Entry, OriginRecord, spendable, table_of

def _mirrored_batch(session: Session, batch_id: int, registry: str) -> Batch:
    batch = session.get(Batch, check_id(batch_id, UnknownBatchError, "batch"))
    if batch is None:
        raise UnknownBatchError(f"no batch {batch_id!r}")
    if MIRRORED_REGISTRIES.get(batch.scheme) != registry:
        if batch.scheme not in MIRRORED_REGISTRIES:
            raise OriginRangeError(f"batch {batch.id} is issued here, not mirrored from an "
                                   "origin registry: this ledger is its registry of record")
        raise OriginRangeError(f"batch {batch.id} mirrors {MIRRORED_REGISTRIES[batch.scheme]}, "
                               f"not {registry}")
    return batch


def record_origin(
    session: Session,
    *,
    batch_id: int,
    registry: str,
    action: str,
    first: int,
    last: int,
    date: dt.date | str,
    beneficiary: str,
    account: str = "",
    reason: str = "",
    reference: str,
    ours: bool,
    at: dt.datetime | None = None,
) -> Receipt:
    """Record that the origin registry retired (or cancelled) serials [first, last] of a
    mirrored batch.

    The range must lie inside the batch's mirrored range and overlap no earlier origin record
    (the origin retires each serial once). If the record is not ``ours``, every serial of it
    still tradable here is frozen by this entry, whoever holds it. ``receipt.extra`` holds the
    parsed record and the tonnes frozen.
    """
    draft = OriginRetirement.build(
        batch=check_id(batch_id, UnknownBatchError, "batch"), registry=registry, action=action,
        first=first, last=last, date=date, beneficiary=beneficiary, account=account,
        reason=reason, reference=reference, ours=ours)
    batch = _mirrored_batch(session, draft.batch, draft.registry)
    if not (batch.first_serial <= draft.first and draft.last <= batch.last_serial):
        raise OriginRangeError(
            f"serials [{draft.first}, {draft.last}] are not inside batch {batch.id}'s mirrored "
            f"range [{batch.first_serial}, {batch.last_serial}]")
    head = journal.locked_head(session)
    records = table_of(OriginRecord)
    clash = session.execute(
        select(records.c.seq, records.c.first_serial, records.c.last_serial)
        .where(records.c.batch_id == batch.id, records.c.first_serial <= draft.last,
               records.c.last_serial >= draft.first)
        .order_by(records.c.first_serial).limit(1)
    ).first()
    if clash is not None:
        raise OriginRangeError(
            f"serials [{draft.first}, {draft.last}] overlap the origin record at seq {clash.seq} "
            f"[{clash.first_serial}, {clash.last_serial}]: the origin retires a serial once")
    inputs: list[BlockRange] = []
    if not draft.ours:
        inputs = _tradable_overlapping(session, batch.id, draft.first, draft.last)
    created = plan_freeze(inputs, draft.first, draft.last, next_id=head.next_block)
    entry = replace(draft, spent=tuple(b.id for b in inputs), created=tuple(created))
    receipt = write_spend(session, head, "origin", entry.to_data(), inputs, created, at)
    session.execute(insert(records).values(
        seq=receipt.seq, batch_id=batch.id, registry_name=entry.registry, action=entry.action,
        first_serial=entry.first, last_serial=entry.last, origin_date=entry.date,
        beneficiary=entry.beneficiary, account=entry.account, reason=entry.reason,
        reference=entry.reference, ours=entry.ours,
    ))
    receipt.extra.update(record=entry, frozen=entry.frozen)
    return receipt


def _tradable_overlapping(session: Session, batch_id: int, first: int, last: int
                          ) -> list[BlockRange]:
    """The batch's unspent tradable blocks holding any serial of [first, last], in serial order."""
    blocks = table_of(Block)
    rows = session.execute(
        select(blocks.c.id, blocks.c.batch_id, blocks.c.account_id, blocks.c.first_serial,
               blocks.c.last_serial, blocks.c.state)
        .where(blocks.c.batch_id == batch_id, spendable(blocks.c),
               blocks.c.first_serial <= last, blocks.c.last_serial >= first)
        .order_by(blocks.c.first_serial)
    ).all()
    return [BlockRange(r.id, r.batch_id, r.account_id, r.first_serial, r.last_serial, r.state)
            for r in rows]


def set_labels(session: Session, *, batch_id: int, labels: Labels, effective: dt.date,
               note: str = "", at: dt.datetime | None = None) -> Receipt:
    """Record a batch's quality labels from ``effective`` on (the whole set, replacing the one
    before). Labels are checked when ``labels`` is built (``LabelError``)."""
    batch = session.get(Batch, check_id(batch_id, UnknownBatchError, "batch"))
    if batch is None:
        raise UnknownBatchError(f"no batch {batch_id!r}")
    change = LabelChange.from_data(
        {"batch": batch.id, "labels": labels.to_data(), "effective": effective.isoformat(),
         "note": note.strip()})
    head = journal.locked_head(session)
    entry = journal.append(session, head, "label", change.to_data(), at=at)
    session.execute(insert(table_of(BatchLabel)).values(
        seq=entry.seq, batch_id=batch.id, effective=change.effective, ccp=labels.ccp,
        ccp_since=labels.ccp_since, article6_authorized=labels.article6_authorized,
        ca_declaration=labels.ca_declaration, ca_status=labels.ca_status, corsia=labels.corsia,
        mitigation=labels.mitigation, note=change.note,
    ))
    return Receipt(entry.seq, entry.hash, "label", (), (), batch_id=batch.id)


# -- labels ----------------------------------------------------------------------------------


def labels_of(row: BatchLabel) -> Labels:
    return Labels(ccp=row.ccp, ccp_since=row.ccp_since,
                  article6_authorized=row.article6_authorized,
                  ca_declaration=row.ca_declaration, ca_status=row.ca_status,
                  corsia=row.corsia, mitigation=row.mitigation)


def labels_at(session: Session, batch_ids: Iterable[int], before: int | None = None
              ) -> dict[int, Labels]:
    """The labels of each batch as the journal stood before entry ``before`` (default: now).
    A batch with no label entry yet carries :data:`~ledger.records.UNLABELLED`."""
    wanted = sorted(set(batch_ids))
    result = {batch_id: UNLABELLED for batch_id in wanted}
    if not wanted:
        return result
    stmt = select(BatchLabel).where(BatchLabel.batch_id.in_(wanted)).order_by(BatchLabel.seq)
    if before is not None:
        stmt = stmt.where(BatchLabel.seq < before)
    for row in session.scalars(stmt):
        result[row.batch_id] = labels_of(row)
    return result


def label_history(session: Session, batch_id: int) -> list[BatchLabel]:
    """Every label change of a batch, oldest first."""
    return list(session.scalars(
        select(BatchLabel).where(BatchLabel.batch_id == batch_id).order_by(BatchLabel.seq)))


# -- origin status ---------------------------------------------------------------------------


@dataclass
class RetirementOrigin:
    """What the origin registry shows for one retirement here."""

    seq: int
    quantity: int
    mirrored: bool
    coverage: Coverage
    records: list[OriginRecord] = field(default_factory=list)
    """The origin records that overlap the retirement's serials, in serial order."""

    @property
    def status(self) -> str:
        """``covered``, ``pending`` (at origin), ``conflict``, or ``issued_here`` when the
        credits were issued on this ledger, which is then their registry of record."""
        if not self.mirrored:
            return "issued_here"
        return self.coverage.status


def _origin_by_batch(session: Session, batch_ids: Iterable[int]) -> dict[int, list[OriginRecord]]:
    wanted = sorted(set(batch_ids))
    found: dict[int, list[OriginRecord]] = defaultdict(list)
    if wanted:
        for row in session.scalars(select(OriginRecord).where(OriginRecord.batch_id.in_(wanted))
                                   .order_by(OriginRecord.batch_id, OriginRecord.first_serial)):
            found[row.batch_id].append(row)
    return found


def retirement_origins(session: Session, seqs: Sequence[int]) -> dict[int, RetirementOrigin]:
    """The origin status of each retirement entry in ``seqs`` (three queries in all)."""
    result: dict[int, RetirementOrigin] = {}
    if not seqs:
        return result
    blocks = list(session.execute(
        select(Block.created_by, Block.batch_id, Block.first_serial, Block.last_serial,
               Batch.scheme)
        .join(Batch, Batch.id == Block.batch_id)
        .where(Block.created_by.in_(list(seqs)), Block.state == "retired")
        .order_by(Block.created_by, Block.batch_id, Block.first_serial)
    ))
    origin = _origin_by_batch(session, (b.batch_id for b in blocks))
    for seq in seqs:
        result[seq] = RetirementOrigin(seq, 0, False, Coverage())
    for row in blocks:
        item = result[row.created_by]
        item.quantity += row.last_serial - row.first_serial + 1
        if row.scheme not in MIRRORED_REGISTRIES:
            continue
        item.mirrored = True
        records = origin.get(row.batch_id, [])
        item.coverage.add(classify([(row.first_serial, row.last_serial)],
                                   [(r.first_serial, r.last_serial, r.ours) for r in records]))
        for record in records:
            if intersect(record.first_serial, record.last_serial, row.first_serial,
                         row.last_serial) and record not in item.records:
                item.records.append(record)
    return result


def retirement_origin(session: Session, seq: int) -> RetirementOrigin:
    return retirement_origins(session, [seq])[seq]


@dataclass
class BatchReconciliation:
    """One mirrored batch: what was retired here and what the origin shows for it."""

    batch: Batch
    retired_here: int = 0
    coverage: Coverage = field(default_factory=Coverage)
    frozen: int = 0
    frozen_ranges: list[tuple[int, int, int]] = field(default_factory=list)
    """(first, last, seq of the origin entry that froze them)."""
    origin_retired: int = 0
    origin_ours: int = 0
    origin_elsewhere: int = 0
    records: list[OriginRecord] = field(default_factory=list)

    @property
    def conflicts(self) -> int:
        """Tonnes counted twice or stopped from being so: retired here and at origin under
        another name, plus serials frozen here because the origin retired them elsewhere."""
        return self.coverage.conflict + self.frozen


def reconcile(session: Session, batch_ids: Iterable[int] | None = None) -> list[BatchReconciliation]:
    """Per mirrored batch (default: all of them), retired here vs covered, pending and in
    conflict at origin, and the serials frozen here."""
    stmt = select(Batch).where(Batch.scheme.in_(list(MIRRORED_REGISTRIES))).order_by(Batch.id)
    if batch_ids is not None:
        stmt = stmt.where(Batch.id.in_(list(batch_ids)))
    batches = list(session.scalars(stmt))
    origin = _origin_by_batch(session, (b.id for b in batches))
    result = {b.id: BatchReconciliation(b, records=origin.get(b.id, [])) for b in batches}
    if not result:
        return []
    for row in session.execute(
        select(Block.batch_id, Block.first_serial, Block.last_serial, Block.state,
               Block.created_by)
        .where(Block.batch_id.in_(list(result)), Block.spent_by.is_(None),
               Block.state.in_(("retired", "frozen")))
        .order_by(Block.batch_id, Block.first_serial)
    ):
        item = result[row.batch_id]
        if row.state == "frozen":
            item.frozen += row.last_serial - row.first_serial + 1
            item.frozen_ranges.append((row.first_serial, row.last_serial, row.created_by))
            continue
        item.retired_here += row.last_serial - row.first_serial + 1
        item.coverage.add(classify([(row.first_serial, row.last_serial)],
                                   [(r.first_serial, r.last_serial, r.ours)
                                    for r in item.records]))
    for item in result.values():
        for record in item.records:
            item.origin_retired += record.quantity
            if record.ours:
                item.origin_ours += record.quantity
            else:
                item.origin_elsewhere += record.quantity
    return list(result.values())


@dataclass(frozen=True)
class PendingRange:
    """Serials retired here, not yet retired at origin: part of the next origin retirement."""

    batch: Batch
    first: int
    last: int
    retired_seq: int
    retired_at: dt.datetime

    @property
    def quantity(self) -> int:
        return self.last - self.first + 1


def pending_at_origin(session: Session, limit: int = 500) -> list[PendingRange]:
    """The oldest retirements here still pending at origin, as serial ranges, oldest first:
    the operator's worklist of what to retire at the origin registry next."""
    rows = session.execute(
        select(Block.batch_id, Block.first_serial, Block.last_serial, Block.created_by,
               Entry.created_at)
        .join(Batch, Batch.id == Block.batch_id)
        .join(Entry, Entry.seq == Block.created_by)
        .where(Batch.scheme.in_(list(MIRRORED_REGISTRIES)), Block.state == "retired",
               Block.spent_by.is_(None))
        .order_by(Block.created_by, Block.first_serial)
    ).all()
    origin = _origin_by_batch(session, (r.batch_id for r in rows))
    batches = {b.id: b for b in session.scalars(
        select(Batch).where(Batch.id.in_({r.batch_id for r in rows})))} if rows else {}
    found: list[PendingRange] = []
    for row in rows:
        coverage = classify([(row.first_serial, row.last_serial)],
                            [(r.first_serial, r.last_serial, r.ours)
                             for r in origin.get(row.batch_id, [])])
        for first, last in coverage.pending_ranges:
            found.append(PendingRange(batches[row.batch_id], first, last, row.created_by,
                                      row.created_at))
            if len(found) >= limit:
                return found
    return found


@dataclass
class OriginBatchWork:
    """One origin retirement the operator should make next: serial ranges of one batch."""

    batch: Batch
    ranges: list[tuple[int, int]] = field(default_factory=list)
    retirements: list[int] = field(default_factory=list)
    oldest: dt.datetime | None = None

    @property
    def quantity(self) -> int:
        return sum(last - first + 1 for first, last in self.ranges)


def worklist(session: Session, limit: int = 500) -> list[OriginBatchWork]:
    """The pending tonnes grouped into one origin retirement per batch, adjacent serials
    merged, the batch with the oldest pending retirement first."""
    groups: dict[int, OriginBatchWork] = {}
    for item in pending_at_origin(session, limit):
        work = groups.setdefault(item.batch.id, OriginBatchWork(item.batch, oldest=item.retired_at))
        work.ranges.append((item.first, item.last))
        if item.retired_seq not in work.retirements:
            work.retirements.append(item.retired_seq)
    for work in groups.values():
        merged: list[tuple[int, int]] = []
        for first, last in sorted(work.ranges):
            if merged and merged[-1][1] + 1 == first:
                merged[-1] = (merged[-1][0], last)
            else:
                merged.append((first, last))
        work.ranges = merged
    return list(groups.values())
