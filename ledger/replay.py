"""Replay the journal from seq 1 into a fresh in-memory state, checking every rule.

Pure: no database, no SQLAlchemy, so the offline verifier and ``verify`` over a database run
the very same checks. Each ``apply`` either accepts one entry or raises the ``LedgerError``
naming what is wrong with it; :class:`Replay` never half-applies an entry.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from . import canonical
from .errors import (
    AccountKindError,
    ChainError,
    CoverageError,
    DoubleSpendError,
    DuplicateOriginError,
    FinalStateError,
    LedgerError,
    NotHolderError,
    OriginRangeError,
    OverAllocationError,
    OverlapError,
    PoolError,
    ReplayMismatchError,
    UnknownBatchError,
)
from .records import (
    GRAMS_PER_TONNE,
    MIRRORED_REGISTRIES,
    Allocate,
    Allocation,
    Cancel,
    Issue,
    LabelChange,
    OriginRetirement,
    PoolRetire,
    Retire,
    Transfer,
)
from .rules import (
    RECORD_VERSION,
    ZERO_HASH,
    BlockRange,
    Coverage,
    check_movable,
    classify,
    intersect,
    plan_freeze,
    plan_spend,
    validate_time,
)

RECORD_KEYS = frozenset(("v", "seq", "kind", "time", "prev", "data"))
KINDS = frozenset(("issue", "transfer", "retire", "cancel", "origin", "label", "pool",
                   "allocate"))


class ReplayedBlock(NamedTuple):
    """A block as the replay rebuilds it, with the entries that created and spent it. A named
    tuple, as the replay keeps one per block ever made (millions), and builds one per spend."""

    range: BlockRange
    created_by: int
    spent_by: int | None = None


Step = tuple[Any, ...]
"""What the rules need of one entry once its record is parsed and checked on its own
(:func:`make_step`): the kind first, then the typed record's facts. Plain tuples, so an entry
checked in another process reaches the replay cheaply (``ledger.verify`` checks records in a
pool of processes and replays their steps in order)."""


def open_record(seq: int, record: bytes, stated_hash: str) -> tuple[str, dict[str, Any]]:
    """The first checks of an entry, which need nothing but the entry: its stated hash is the
    SHA-256 of the record, the record is canonical JSON with the fields of a record, of this
    version, naming this seq. Return the hash and the parsed record."""
    digest = hashlib.sha256(record).hexdigest()
    if digest != stated_hash:
        raise ChainError(f"the entry hash {stated_hash[:16]}... is not the SHA-256 of its record")
    parsed = canonical.loads(record)
    if not isinstance(parsed, dict) or parsed.keys() != RECORD_KEYS:
        raise ChainError("the record does not have the fields v, seq, kind, time, prev, data")
    if parsed["v"] != RECORD_VERSION:
        raise ChainError(f"unknown record version {parsed['v']!r}")
    if parsed["seq"] != seq:
        raise ChainError(f"the record says seq {parsed['seq']!r}, its position is {seq}")
    return digest, parsed


def check_prev(prev: object, head: str) -> None:
    """The record's ``prev`` chains it onto ``head``, the hash of the entry before it."""
    if prev != head:
        raise ChainError("the record's previous hash is not the hash of the entry before it")


def make_step(parsed: dict[str, Any]) -> Step:
    """The rest of the checks that need nothing but the entry: a valid time, data that its
    kind's record type (``ledger.records``) accepts. Return the entry's :data:`Step`."""
    validate_time(parsed["time"])
    data = parsed["data"]
    if not isinstance(data, dict):
        raise ChainError("the record's data is not an object")
    kind = parsed["kind"]
    if kind not in KINDS:
        raise ChainError(f"unknown entry kind {kind!r}")
    try:
        if kind == "retire":
            retire = Retire.from_data(data)
            return (kind, retire.account, retire.quantity, retire.spent,
                    tuple(map(tuple, retire.created)), data["date"], data["beneficiary"])
        if kind == "transfer":
            transfer = Transfer.from_data(data)
            return (kind, transfer.sender, transfer.receiver, transfer.quantity, transfer.spent,
                    tuple(map(tuple, transfer.created)))
        if kind == "cancel":
            cancel = Cancel.from_data(data)
            return (kind, cancel.account, cancel.quantity, cancel.spent,
                    tuple(map(tuple, cancel.created)))
        if kind == "issue":
            issue = Issue.from_data(data)
            batch = data["batch"]
            return (kind, issue, batch["vintage_start"], batch["vintage_end"], batch["issued"])
        if kind == "pool":
            return (kind, PoolRetire.from_data(data), data["date"])
        if kind == "origin":
            return (kind, OriginRetirement.from_data(data))
        if kind == "label":
            return (kind, LabelChange.from_data(data))
        return (kind, Allocate.from_data(data))
    except (KeyError, TypeError) as exc:
        raise ChainError(f"malformed {kind} data: {exc!r}") from None


@dataclass(frozen=True)
class ReplayedBatch:
    id: int
    project: str
    project_name: str
    country: str
    scheme: str
    serial: dict[str, Any]
    first: int
    last: int
    vintage_start: str
    vintage_end: str
    issued: str
    origin: str | None
    buffer_account: int | None
    buffer_quantity: int
    issued_by: int


@dataclass
class Totals:
    """Tonnes per project (or batch) by what became of them."""

    issued: int = 0
    tradable: int = 0
    retired: int = 0
    cancelled: int = 0
    buffer: int = 0
    frozen: int = 0
    """Serials retired or cancelled at the origin registry under another name while still
    tradable here: never sold (see ``ledger.origin``)."""

    def add(self, other: Totals) -> None:
        self.issued += other.issued
        self.tradable += other.tradable
        self.retired += other.retired
        self.cancelled += other.cancelled
        self.buffer += other.buffer
        self.frozen += other.frozen


@dataclass
class OriginTotals:
    """Of one project's tonnes retired here (mirrored batches only): covered, pending and in
    conflict at the origin registry, and the tonnes frozen here by the origin's records."""

    coverage: Coverage = field(default_factory=Coverage)
    frozen: int = 0

    @property
    def conflicts(self) -> int:
        return self.coverage.conflict + self.frozen


@dataclass
class PoolDraw:
    """One pool retirement as replay tracks it: its pool, its tonnes, the grams allocated."""

    pool: str
    quantity: int
    allocated: int = 0
    account: int = 0

    @property
    def grams(self) -> int:
        return self.quantity * GRAMS_PER_TONNE

    @property
    def free(self) -> int:
        return self.grams - self.allocated


@dataclass
class PoolTotals:
    """One kilogram pool: tonnes retired into it, grams allocated from them, grams free."""

    retirements: int = 0
    tonnes: int = 0
    allocated: int = 0
    allocations: int = 0

    @property
    def free(self) -> int:
        return self.tonnes * GRAMS_PER_TONNE - self.allocated


@dataclass
class Replay:
    """The state rebuilt from the journal so far."""

    seq: int = 0
    head: str = ZERO_HASH
    next_block: int = 1
    next_batch: int = 1
    blocks: dict[int, ReplayedBlock] = field(default_factory=dict)
    batches: dict[int, ReplayedBatch] = field(default_factory=dict)
    origins: set[str] = field(default_factory=set)
    buffer_accounts: set[int] = field(default_factory=set)
    retirements: dict[int, tuple[str, str | None]] = field(default_factory=dict)
    """Per retirement (and pool retirement) seq, what is checked after the replay: its date and
    its beneficiary commitment (None for a pool's). Only those: keeping every whole record
    costs memory, and time, at a million entries."""
    origin_records: dict[int, list[tuple[int, int, bool, int]]] = field(default_factory=dict)
    """Per batch, its origin records as (first, last, ours, seq)."""
    origin_entries: dict[int, OriginRetirement] = field(default_factory=dict)
    labels: dict[int, list[tuple[int, LabelChange]]] = field(default_factory=dict)
    """Per batch, its label changes as (seq, change), oldest first."""
    pools: dict[int, PoolDraw] = field(default_factory=dict)
    """Pool retirement seq -> its pool, tonnes and grams allocated so far."""
    allocations: dict[tuple[int, int], Allocation] = field(default_factory=dict)
    """(allocate entry seq, position) -> the allocation."""
    _moves: int = field(default=0, init=False, repr=False, compare=False)
    """Counts the entries that could move blocks or add batches (every one that reaches
    ``_commit_blocks``): what :meth:`unspent` and the origin figures work out is kept for as
    long as it stays the same."""
    _unspent: tuple[int, tuple[ReplayedBlock, ...]] | None = field(
        default=None, init=False, repr=False, compare=False)
    _retired: tuple[int, dict[int, list[tuple[int, int, int]]]] | None = field(
        default=None, init=False, repr=False, compare=False)

    def apply(self, seq: int, record: bytes, stated_hash: str) -> dict[str, Any]:
        """Check and apply one entry; return its parsed record.

        Checks, in order: the seq follows on, the stated hash is the SHA-256 of the record,
        the record is canonical JSON of the expected shape, it names this seq and the
        previous entry's hash, and its operation obeys every rule against the state so far.
        """
        if seq != self.seq + 1:
            raise ChainError(f"expected seq {self.seq + 1}, found {seq} (a gap or a duplicate)")
        digest, parsed = open_record(seq, record, stated_hash)
        check_prev(parsed["prev"], self.head)
        self.apply_step(seq, make_step(parsed))
        self.seq = seq
        self.head = digest
        return parsed

    def apply_step(self, seq: int, step: Step) -> None:
        """Apply entry ``seq``, already checked on its own (:func:`make_step`), against the
        state so far. The caller moves ``seq`` and ``head`` on."""
        kind = step[0]
        try:
            if kind == "retire":
                _, account, quantity, spent, created, date, beneficiary = step
                holder = self._moving(account)
                self._spend(seq, spent, quantity, created, holder, holder, "retired")
                self.retirements[seq] = (date, beneficiary)
            elif kind == "transfer":
                _, sender, receiver, quantity, spent, created = step
                holder = self._moving(sender)
                if receiver in self.buffer_accounts:
                    raise AccountKindError("the buffer pool is filled only by issuance shares, "
                                           "not transfers")
                self._spend(seq, spent, quantity, created, holder, receiver, "tradable")
            elif kind == "cancel":
                _, account, quantity, spent, created = step
                self._spend(seq, spent, quantity, created, account, account, "cancelled")
            elif kind == "issue":
                self._issue(seq, *step[1:])
            elif kind == "pool":
                self._pool(seq, step[1], step[2])
            elif kind == "origin":
                self._origin(seq, step[1])
            elif kind == "label":
                self._label(seq, step[1])
            else:
                self._allocate(seq, step[1])
        except (KeyError, TypeError) as exc:
            raise ChainError(f"malformed {kind} data: {exc!r}") from None

    # -- operations ---------------------------------------------------------------------

    def _check_created(self, created: Iterable[tuple[Any, ...]],
                       expected: list[BlockRange]) -> list[BlockRange]:
        """The blocks the record says it created (parsed by its record type) must be exactly
        the ones its operation yields."""
        actual = list(created)
        if actual != expected:
            raise ReplayMismatchError(
                "the blocks the entry created are not the ones its operation yields: "
                f"recorded {[_short(BlockRange(*b)) for b in actual]}, "
                f"expected {[_short(b) for b in expected]}"
            )
        return expected

    def _commit_blocks(self, seq: int, spent: Iterable[int], created: list[BlockRange]) -> None:
        blocks = self.blocks
        for block_id in spent:
            old = blocks[block_id]
            blocks[block_id] = ReplayedBlock(old.range, old.created_by, seq)
        for block in created:
            blocks[block.id] = ReplayedBlock(block, seq)
        self.next_block += len(created)
        self._moves += 1

    def _issue(self, seq: int, record: Issue, vintage_start: str, vintage_end: str,
               issued: str) -> None:
        if record.batch != self.next_batch:
            raise ChainError(f"batch id {record.batch!r} should be {self.next_batch}")
        first, last, scheme = record.first, record.last, record.scheme
        if record.origin is not None and record.origin in self.origins:
            raise DuplicateOriginError(f"origin {record.origin!r} was already issued")
        for other in self.batches.values():
            if other.scheme == scheme and other.first <= last and first <= other.last:
                raise OverlapError(
                    f"serials [{first}, {last}] overlap batch {other.id} [{other.first}, {other.last}]"
                )
        expected = issue_blocks(
            batch=record.batch, first=first, last=last, account=record.account,
            buffer_account=record.buffer_account, buffer_quantity=record.buffer_quantity,
            next_id=self.next_block,
        )
        created = self._check_created(record.created, expected)
        self.batches[record.batch] = ReplayedBatch(
            id=record.batch,
            project=record.project.ref,
            project_name=record.project.name,
            country=record.project.country,
            scheme=scheme,
            serial=dict(record.serial),
            first=first,
            last=last,
            vintage_start=vintage_start,
            vintage_end=vintage_end,
            issued=issued,
            origin=record.origin,
            buffer_account=record.buffer_account,
            buffer_quantity=record.buffer_quantity,
            issued_by=seq,
        )
        if record.origin is not None:
            self.origins.add(record.origin)
        if record.buffer_account is not None:
            self.buffer_accounts.add(record.buffer_account)
        self.next_batch += 1
        self._commit_blocks(seq, [], created)

    def _spend(self, seq: int, spent: tuple[int, ...], quantity: int,
               created: tuple[BlockRange, ...], holder: int, to_account: int,
               to_state: str) -> None:
        inputs: list[BlockRange] = []
        blocks = self.blocks
        for block_id in spent:
            block = blocks.get(block_id)
            if block is None:
                raise ChainError(f"block {block_id!r} does not exist")
            if block.spent_by is not None:
                raise DoubleSpendError(f"block {block_id} was already spent by seq {block.spent_by}")
            if block.range.state != "tradable":
                raise FinalStateError(f"block {block_id} is {block.range.state} and can never move")
            if block.range.account != holder:
                raise NotHolderError(f"block {block_id} is held by account {block.range.account}, "
                                     f"not {holder}")
            inputs.append(block.range)
        expected = plan_spend(inputs, quantity, holder=holder, to_account=to_account,
                              to_state=to_state, next_id=self.next_block)
        self._commit_blocks(seq, spent, self._check_created(created, expected))

    def _moving(self, account: int) -> int:
        """The same rule as the operations: the buffer pool's credits never move."""
        if account in self.buffer_accounts:
            check_movable("buffer")
        return account

    def _origin(self, seq: int, record: OriginRetirement) -> None:
        """An origin registry's retirement: inside its mirrored batch, overlapping no earlier
        origin record, and, when it is not ours, freezing exactly the serials of it that were
        still tradable here."""
        batch = self.batches.get(record.batch)
        if batch is None:
            raise UnknownBatchError(f"no batch {record.batch!r}")
        if MIRRORED_REGISTRIES.get(batch.scheme) != record.registry:
            raise OriginRangeError(f"batch {batch.id} does not mirror the {record.registry} "
                                   "registry")
        if not (batch.first <= record.first and record.last <= batch.last):
            raise OriginRangeError(
                f"serials [{record.first}, {record.last}] are not inside batch {batch.id}'s "
                f"mirrored range [{batch.first}, {batch.last}]")
        known = self.origin_records.setdefault(batch.id, [])
        for first, last, _ours, other in known:
            if intersect(first, last, record.first, record.last):
                raise OriginRangeError(
                    f"serials [{record.first}, {record.last}] overlap the origin record at "
                    f"seq {other} [{first}, {last}]: the origin retires a serial once")
        inputs: list[BlockRange] = []
        if not record.ours:
            inputs = sorted(
                (b.range for b in self.blocks.values()
                 if b.spent_by is None and b.range.batch == batch.id
                 and b.range.state == "tradable"
                 and intersect(b.range.first, b.range.last, record.first, record.last)),
                key=lambda r: r.first)
        if list(record.spent) != [b.id for b in inputs]:
            raise ReplayMismatchError(
                f"the origin record spends blocks {list(record.spent)}, but the tradable "
                f"blocks holding its serials are {[b.id for b in inputs]}")
        expected = plan_freeze(inputs, record.first, record.last, next_id=self.next_block)
        created = self._check_created(record.created, expected)
        self._commit_blocks(seq, list(record.spent), created)
        known.append((record.first, record.last, record.ours, seq))
        self.origin_entries[seq] = record

    def _pool(self, seq: int, record: PoolRetire, date: str) -> None:
        """A pool retirement: a retirement of the pool project's own tonnes, made for the pool."""
        holder = self._moving(record.account)
        for block_id in record.spent:
            block = self.blocks.get(block_id)
            if block is not None and self.batches[block.range.batch].project != record.pool:
                raise PoolError(f"block {block_id} is not of {record.pool}: a pool holds its own "
                                "project's tonnes only")
        self._spend(seq, record.spent, record.quantity, record.created, holder, holder,
                    "retired")
        self.pools[seq] = PoolDraw(record.pool, record.quantity, account=holder)
        self.retirements[seq] = (date, None)

    def _allocate(self, seq: int, record: Allocate) -> None:
        """Kilogram allocations: each draws only from pool retirements, and no pool retirement
        gives more grams than its tonnes hold. All of the entry's allocations apply, or none."""
        taken: dict[int, int] = defaultdict(int)
        for allocation in record.allocations:
            for pool_seq, grams in allocation.draws:
                draw = self.pools.get(pool_seq)
                if draw is None:
                    raise PoolError(f"seq {pool_seq} is not a pool retirement: kilograms are "
                                    "allocated only from pool retirements")
                taken[pool_seq] += grams
                if draw.allocated + taken[pool_seq] > draw.grams:
                    raise OverAllocationError(
                        f"pool retirement seq {pool_seq} holds {draw.grams:,} g "
                        f"({draw.quantity:,} t); this entry would allocate "
                        f"{draw.allocated + taken[pool_seq]:,} g of it")
        for pool_seq, grams in taken.items():
            self.pools[pool_seq].allocated += grams
        for index, allocation in enumerate(record.allocations):
            self.allocations[(seq, index)] = allocation

    def _label(self, seq: int, change: LabelChange) -> None:
        if change.batch not in self.batches:
            raise UnknownBatchError(f"no batch {change.batch!r}")
        self.labels.setdefault(change.batch, []).append((seq, change))

    # -- results ------------------------------------------------------------------------

    def unspent(self) -> tuple[ReplayedBlock, ...]:
        """The blocks no entry has spent, oldest first. The checks and totals after a replay
        each walk them, and at a million entries they are half of every block ever made: the
        walk over every block is made once for them all (and again only once blocks move)."""
        cached = self._unspent
        if cached is None or cached[0] != self._moves:
            cached = (self._moves, tuple(block for block in self.blocks.values()
                                         if block.spent_by is None))
            self._unspent = cached
        return cached[1]

    def check_coverage(self) -> None:
        """Invariant 1: per batch, the unspent blocks cover [first, last] exactly."""
        ranges: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
        for block, created_by, _ in self.unspent():
            ranges[block.batch].append((block.first, block.last, created_by))
        for batch in self.batches.values():
            expect = batch.first
            for first, last, created_by in sorted(ranges.get(batch.id, [])):
                if first < expect:
                    raise OverlapError(f"seq {created_by}: serial {first} of batch {batch.id} is held twice")
                if first > expect:
                    raise CoverageError(f"batch {batch.id}: serials {expect}..{first - 1} are missing")
                expect = last + 1
            if expect != batch.last + 1:
                raise CoverageError(f"batch {batch.id}: serials {expect}..{batch.last} are missing")

    def totals(self) -> dict[str, Totals]:
        """Tonnes issued, tradable, retired, cancelled and in the buffer pool, per project."""
        result: dict[str, Totals] = {}
        for batch in self.batches.values():
            result.setdefault(batch.project, Totals()).issued += batch.last - batch.first + 1
        for block, _, _ in self.unspent():
            totals = result[self.batches[block.batch].project]
            quantity = block.last - block.first + 1
            if block.state == "retired":
                totals.retired += quantity
            elif block.state == "cancelled":
                totals.cancelled += quantity
            elif block.state == "frozen":
                totals.frozen += quantity
            elif block.account in self.buffer_accounts:
                totals.buffer += quantity
            else:
                totals.tradable += quantity
        return result

    def _retired_by_batch(self) -> dict[int, list[tuple[int, int, int]]]:
        """The unspent retired blocks of mirrored batches as (first, last, created_by), per
        batch (worked out once for the origin totals and the pending retirements, as
        :meth:`unspent`)."""
        cached = self._retired
        if cached is None or cached[0] != self._moves:
            cached = (self._moves, self._find_retired())
            self._retired = cached
        return cached[1]

    def _find_retired(self) -> dict[int, list[tuple[int, int, int]]]:
        mirrored = {batch.id for batch in self.batches.values()
                    if batch.scheme in MIRRORED_REGISTRIES}
        result: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
        for block, created_by, _ in self.unspent():
            if block.state == "retired" and block.batch in mirrored:
                result[block.batch].append((block.first, block.last, created_by))
        return result

    def _origin_of(self, batch: int) -> list[tuple[int, int, bool]]:
        return [(first, last, ours) for first, last, ours, _ in
                self.origin_records.get(batch, [])]

    def origin_totals(self) -> dict[str, OriginTotals]:
        """Per project with mirrored batches: its tonnes retired here, covered / pending /
        in conflict at the origin registry, and its tonnes frozen here."""
        result: dict[str, OriginTotals] = {}
        for batch in self.batches.values():
            if batch.scheme in MIRRORED_REGISTRIES:
                result.setdefault(batch.project, OriginTotals())
        for block, _, _ in self.unspent():
            if block.state == "frozen":
                result[self.batches[block.batch].project].frozen += block.quantity
        for batch_id, retired in self._retired_by_batch().items():
            result[self.batches[batch_id].project].coverage.add(classify(
                [(first, last) for first, last, _ in retired], self._origin_of(batch_id)))
        return result

    def pool_totals(self) -> dict[str, PoolTotals]:
        """Per kilogram pool: tonnes retired into it, grams allocated, grams free."""
        result: dict[str, PoolTotals] = {}
        for draw in self.pools.values():
            totals = result.setdefault(draw.pool, PoolTotals())
            totals.retirements += 1
            totals.tonnes += draw.quantity
            totals.allocated += draw.allocated
        for allocation in self.allocations.values():
            result[self.pools[allocation.draws[0][0]].pool].allocations += 1
        return result

    def pending_retirements(self) -> dict[int, int]:
        """Retirement seq -> tonnes of it still pending at the origin registry."""
        pending: dict[int, int] = defaultdict(int)
        for batch_id, retired in self._retired_by_batch().items():
            origin = self._origin_of(batch_id)
            for first, last, created_by in retired:
                # With no origin record for the batch, every serial of it is pending.
                tonnes = (classify([(first, last)], origin).pending if origin
                          else last - first + 1)
                if tonnes:
                    pending[created_by] += tonnes
        return dict(pending)


def issue_blocks(*, batch: int, first: int, last: int, account: int, buffer_account: int | None,
                 buffer_quantity: int, next_id: int) -> list[BlockRange]:
    """The blocks an issue creates: the batch to the recipient, and the buffer share, taken
    from the top of the range, to the buffer pool."""
    if buffer_account is None or buffer_quantity == 0:
        return [BlockRange(next_id, batch, account, first, last, "tradable")]
    split = last - buffer_quantity
    return [
        BlockRange(next_id, batch, account, first, split, "tradable"),
        BlockRange(next_id + 1, batch, buffer_account, split + 1, last, "tradable"),
    ]


def replay_all(entries: Iterable[tuple[int, bytes, str]]) -> Replay:
    """Replay a whole journal; raise :class:`VerificationError` at the first bad entry."""
    state = Replay()
    for seq, record, digest in entries:
        try:
            state.apply(seq, record, digest)
        except LedgerError as exc:
            raise VerificationError(seq, str(exc)) from exc
    try:
        state.check_coverage()
    except LedgerError as exc:
        raise VerificationError(None, str(exc)) from exc
    return state


class VerificationError(LedgerError):
    """Verification failed: ``seq`` is the first bad entry (None when no one entry is to blame)."""

    def __init__(self, seq: int | None, reason: str) -> None:
        self.seq = seq
        self.reason = reason
        where = f"seq {seq}" if seq is not None else "journal"
        super().__init__(f"{where}: {reason}")


def _short(block: BlockRange) -> str:
    return f"#{block.id} b{block.batch} a{block.account} {block.first}-{block.last} {block.state}"



