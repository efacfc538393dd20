"""``verify`` over a database: replay the journal and compare it with every table it explains.

Checks, in order: each entry's hash and chain link and its operation's rules (``replay``),
the chain head, then that the blocks and batches tables are exactly what the replay rebuilt
(invariant 7) and that every unerased beneficiary matches its commitment. The first failure
raises :class:`~ledger.replay.VerificationError` naming the seq to blame.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .errors import LedgerError
from .merkle import Frontier, leaf_hash
from .replay import Replay, ReplayedBlock, Totals, VerificationError
from .rules import BlockRange, beneficiary_commitment
from .schema import Allocation as AllocationRow
from .schema import (
    AllocationDraw,
    Batch,
    BatchLabel,
    Beneficiary,
    Block,
    ChainHead,
    Entry,
    MerkleNode,
    OriginRecord,
    PoolRetirement,
    Project,
    table_of,
)

NODE_CHUNK = 5000


@dataclass(frozen=True)
class Report:
    entries: int
    head: str
    blocks: int
    totals: dict[str, Totals]

    def summary(self) -> str:
        issued = sum(t.issued for t in self.totals.values())
        retired = sum(t.retired for t in self.totals.values())
        return (f"ledger OK: {self.entries} entries, head {self.head[:16]}, {self.blocks} blocks, "
                f"{issued} t issued, {retired} t retired, {len(self.totals)} projects")


def verify(session: Session) -> Report:
    """Verify the whole ledger in this session's database; raise VerificationError if not sound."""
    state = Replay()
    tree = _TreeCheck(session)
    rows = session.execute(
        select(Entry.seq, Entry.kind, Entry.record, Entry.hash).order_by(Entry.seq)
    ).yield_per(2000)
    for seq, kind, record, digest in rows:
        if seq > state.seq + 1:
            raise VerificationError(state.seq + 1, f"entry {state.seq + 1} is missing "
                                                   f"(the next entry is seq {seq})")
        try:
            parsed = state.apply(seq, bytes(record), digest)
        except LedgerError as exc:
            raise VerificationError(seq, str(exc)) from exc
        if parsed["kind"] != kind:
            raise VerificationError(seq, f"the kind column says {kind!r}, the record {parsed['kind']!r}")
        tree.add(bytes(record))

    head = session.get(ChainHead, 1)
    if head is None:
        raise VerificationError(None, "the chain head is missing")
    if head.seq > state.seq:
        raise VerificationError(state.seq + 1, f"entry {state.seq + 1} is missing "
                                               f"(the chain head says {head.seq} entries)")
    if head.seq != state.seq or head.hash != state.head:
        raise VerificationError(state.seq, "the chain head does not match the last entry")
    if head.blocks != state.next_block - 1 or head.batches != state.next_batch - 1:
        raise VerificationError(state.seq, "the chain head's block or batch counter is wrong")
    tree.finish()
    if bytes(head.frontier) != tree.frontier.to_bytes():
        raise VerificationError(state.seq, "the chain head's Merkle frontier does not match the journal")

    _compare_blocks(session, state)
    _compare_batches(session, state)
    _check_beneficiaries(session, state)
    _compare_origin(session, state)
    _compare_labels(session, state)
    _compare_pools(session, state)
    try:
        state.check_coverage()
    except LedgerError as exc:
        raise VerificationError(None, str(exc)) from exc
    return Report(state.seq, state.head, len(state.blocks), state.totals())


class _TreeCheck:
    """Recompute the Merkle tree while the journal streams past, and compare every stored node
    with it, a chunk of keys per query."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.frontier = Frontier()
        self.pending: dict[tuple[int, int], bytes] = {}
        self.count = 0

    def add(self, record: bytes) -> None:
        for level, idx, value in self.frontier.append(leaf_hash(record)):
            self.pending[(level, idx)] = value
        if len(self.pending) >= NODE_CHUNK:
            self._flush()

    def finish(self) -> None:
        self._flush()
        table = table_of(MerkleNode)
        stored = self.session.execute(select(func.count()).select_from(table)).scalar_one()
        if stored != self.count:
            raise VerificationError(None, f"the Merkle tree holds {stored} nodes, the journal "
                                          f"makes {self.count}")

    def _flush(self) -> None:
        """Compare the pending nodes with the stored ones, one range query per level (within a
        chunk each level's indexes are consecutive)."""
        if not self.pending:
            return
        table = table_of(MerkleNode)
        spans: dict[int, tuple[int, int]] = {}
        for level, idx in self.pending:
            lo, hi = spans.get(level, (idx, idx))
            spans[level] = (min(lo, idx), max(hi, idx))
        found: dict[tuple[int, int], bytes] = {}
        for level, (lo, hi) in spans.items():
            for idx, value in self.session.execute(
                select(table.c.idx, table.c.hash).where(
                    table.c.level == level, table.c.idx >= lo, table.c.idx <= hi)
            ):
                found[(level, idx)] = bytes(value)
        for key in sorted(self.pending, key=lambda k: ((k[1] + 1) << k[0], k[0])):
            if found.get(key) != self.pending[key]:
                level, idx = key
                seq = (idx + 1) << level  # the entry whose append completed this subtree
                raise VerificationError(seq, f"Merkle node ({level}, {idx}) is missing or wrong")
        self.count += len(self.pending)
        self.pending.clear()


def _compare_blocks(session: Session, state: Replay) -> None:
    table = table_of(Block)
    seen: set[int] = set()
    for row in session.execute(select(table).order_by(table.c.id)).yield_per(5000):
        expected = state.blocks.get(row.id)
        actual = ReplayedBlock(
            BlockRange(row.id, row.batch_id, row.account_id, row.first_serial, row.last_serial,
                       row.state),
            created_by=row.created_by,
            spent_by=row.spent_by,
        )
        if expected is None:
            raise VerificationError(row.created_by, f"block {row.id} is in the table but no "
                                                    "entry created it")
        if actual != expected:
            raise VerificationError(
                expected.created_by,
                f"block {row.id} differs from the journal: table has {_describe(actual)}, "
                f"the journal gives {_describe(expected)}",
            )
        seen.add(row.id)
    for block_id, block in state.blocks.items():
        if block_id not in seen:
            raise VerificationError(block.created_by, f"block {block_id} is missing from the table")


def _compare_batches(session: Session, state: Replay) -> None:
    seen: set[int] = set()
    for batch in session.scalars(select(Batch).order_by(Batch.id)):
        seen.add(batch.id)
        expected = state.batches.get(batch.id)
        if expected is None:
            raise VerificationError(batch.issued_by, f"batch {batch.id} has no issue entry")
        serial: dict[str, object] = {"scheme": batch.scheme}
        if batch.scheme == "verra":
            serial.update(issuance=batch.verra_issuance, code=batch.verra_code,
                          scope=batch.verra_scope, flag=batch.verra_flag)
        actual = (batch.first_serial, batch.last_serial, batch.origin, serial,
                  batch.vintage_start.isoformat(), batch.vintage_end.isoformat(),
                  batch.issued_on.isoformat(), batch.project.ref, batch.project.country,
                  batch.buffer_quantity, batch.issued_by)
        wanted = (expected.first, expected.last, expected.origin, expected.serial,
                  expected.vintage_start, expected.vintage_end, expected.issued,
                  expected.project, expected.country, expected.buffer_quantity,
                  expected.issued_by)
        if actual != wanted:
            raise VerificationError(expected.issued_by, f"batch {batch.id} differs from its issue entry")
    for batch_id, replayed in state.batches.items():
        if batch_id not in seen:
            raise VerificationError(replayed.issued_by, f"batch {batch_id} is missing from the table")


def _check_beneficiaries(session: Session, state: Replay) -> None:
    for row in session.scalars(select(Beneficiary).order_by(Beneficiary.seq)):
        retirement = state.retirements.get(row.seq)
        if retirement is None:
            raise VerificationError(row.seq, "a beneficiary is stored for an entry that is no retirement")
        if row.name is None and row.salt is None:
            continue  # erased on request: the commitment stands, the name is withheld
        if row.name is None or row.salt is None:
            raise VerificationError(row.seq, "the beneficiary is half erased")
        if beneficiary_commitment(row.salt, row.name) != retirement[1]:
            raise VerificationError(row.seq, "the beneficiary's name does not match the "
                                             "commitment in the journal")


def _compare_origin(session: Session, state: Replay) -> None:
    """The origin records table holds exactly the journal's ``origin`` entries."""
    seen: set[int] = set()
    for row in session.scalars(select(OriginRecord).order_by(OriginRecord.seq)):
        record = state.origin_entries.get(row.seq)
        if record is None:
            raise VerificationError(row.seq, "an origin record is stored for an entry that is "
                                             "no origin entry")
        actual = (row.batch_id, row.registry_name, row.action, row.first_serial,
                  row.last_serial, row.origin_date, row.beneficiary, row.account, row.reason,
                  row.reference, bool(row.ours))
        wanted = (record.batch, record.registry, record.action, record.first, record.last,
                  record.date, record.beneficiary, record.account, record.reason,
                  record.reference, record.ours)
        if actual != wanted:
            raise VerificationError(row.seq, "the origin record differs from its entry")
        seen.add(row.seq)
    for seq in state.origin_entries:
        if seq not in seen:
            raise VerificationError(seq, "the origin record of this entry is missing")


def _compare_labels(session: Session, state: Replay) -> None:
    """The labels table holds exactly the journal's ``label`` entries."""
    wanted = {seq: change for changes in state.labels.values() for seq, change in changes}
    seen: set[int] = set()
    for row in session.scalars(select(BatchLabel).order_by(BatchLabel.seq)):
        change = wanted.get(row.seq)
        if change is None:
            raise VerificationError(row.seq, "labels are stored for an entry that is no label "
                                             "entry")
        labels = change.labels
        actual = (row.batch_id, row.effective, bool(row.ccp), row.ccp_since,
                  bool(row.article6_authorized), row.ca_declaration, row.ca_status, row.corsia,
                  row.mitigation, row.note)
        expected = (change.batch, change.effective, labels.ccp, labels.ccp_since,
                    labels.article6_authorized, labels.ca_declaration, labels.ca_status,
                    labels.corsia, labels.mitigation, change.note)
        if actual != expected:
            raise VerificationError(row.seq, "the stored labels differ from their entry")
        seen.add(row.seq)
    for seq in wanted:
        if seq not in seen:
            raise VerificationError(seq, "the labels of this entry are missing")


def _compare_pools(session: Session, state: Replay) -> None:
    """The pool and allocation tables hold exactly the journal's ``pool`` and ``allocate``
    entries: every pool retirement, every allocation with its draws, and each beneficiary's
    name matching its commitment (unless erased)."""
    stored = {row.seq: (row.pool, row.quantity, row.account_id,
                        f"{row.registry_name}-{row.registry_id}")
              for row in session.execute(
                  select(PoolRetirement.seq, PoolRetirement.pool, PoolRetirement.quantity,
                         PoolRetirement.account_id, Project.registry_name, Project.registry_id)
                  .join(Project, Project.id == PoolRetirement.project_id))}
    for seq, draw in state.pools.items():
        if stored.pop(seq, None) != (draw.pool, draw.quantity, draw.account, draw.pool):
            raise VerificationError(seq, "the pool retirement row differs from its entry or is "
                                         "missing")
    if stored:
        seq = min(stored)
        raise VerificationError(seq, "a pool retirement row is stored for an entry that is no "
                                     "pool retirement")
    draws: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for stored_draw in session.scalars(select(AllocationDraw).order_by(
            AllocationDraw.seq, AllocationDraw.idx, AllocationDraw.pool_seq)):
        draws[(stored_draw.seq, stored_draw.idx)].append((stored_draw.pool_seq,
                                                          stored_draw.grams))
    strays = sorted(set(draws) - set(state.allocations))
    if strays:
        raise VerificationError(strays[0][0], f"a draw is stored for allocation "
                                              f"{strays[0][0]}.{strays[0][1]}, which the "
                                              "journal does not hold")
    seen: set[tuple[int, int]] = set()
    for row in session.scalars(select(AllocationRow)):
        key = (row.seq, row.idx)
        allocation = state.allocations.get(key)
        if allocation is None:
            raise VerificationError(row.seq, f"allocation {row.seq}.{row.idx} is stored but not "
                                             "in the journal")
        actual = (row.grams, row.commitment, row.purpose, row.note, row.country,
                  row.period_start, row.period_end, tuple(draws.get(key, ())))
        wanted = (allocation.grams, allocation.beneficiary, allocation.purpose, allocation.note,
                  allocation.country, allocation.period_start, allocation.period_end,
                  allocation.draws)
        if actual != wanted:
            raise VerificationError(row.seq, f"allocation {row.seq}.{row.idx} differs from its "
                                             "entry")
        if (row.name is None) != (row.salt is None):
            raise VerificationError(row.seq, f"allocation {row.seq}.{row.idx}'s beneficiary is "
                                             "half erased")
        if row.name is not None and row.salt is not None and \
                beneficiary_commitment(row.salt, row.name) != allocation.beneficiary:
            raise VerificationError(row.seq, f"allocation {row.seq}.{row.idx}'s beneficiary "
                                             "does not match the commitment in the journal")
        seen.add(key)
    for key in state.allocations:
        if key not in seen:
            raise VerificationError(key[0], f"allocation {key[0]}.{key[1]} is missing from the "
                                            "table")


def _describe(block: ReplayedBlock) -> str:
    r = block.range
    return (f"account {r.account}, batch {r.batch}, [{r.first}, {r.last}] {r.state}, "
            f"created by {block.created_by}, spent by {block.spent_by}")
