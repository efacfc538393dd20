"""The four ledger operations: issue, transfer, retire, cancel.

Each appends exactly one journal entry and changes blocks in the caller's transaction; none
commits. Every rule is checked before anything is written, so a refused operation raises a
``LedgerError`` having written nothing; the database's own guards stand behind the checks.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from . import journal
from .errors import (
    AccountKindError,
    DoubleSpendError,
    DuplicateOriginError,
    FinalStateError,
    InsufficientCreditsError,
    NotHolderError,
    OverAllocationError,
    OverlapError,
    PoolError,
    RetirementDetailsError,
    SerialRangeError,
    UnknownAccountError,
    UnknownBatchError,
    UnknownEntryError,
    UnknownProjectError,
)
from .records import (
    GRAMS_PER_TONNE,
    MAX_ALLOCATIONS,
    Allocate,
    Allocation,
    Cancel,
    Issue,
    IssuedProject,
    PoolRetire,
    Retire,
    Transfer,
    validate_grams,
)
from .replay import issue_blocks
from .rules import (
    MAX_SERIAL,
    BlockRange,
    beneficiary_commitment,
    check_id,
    check_movable,
    parse_date,
    plan_spend,
    validate_country,
    validate_period,
    validate_purpose,
    validate_quantity,
    validate_range,
    validate_text,
)
from .schema import Allocation as AllocationRow
from .schema import (
    ACCOUNT_KINDS,
    Account,
    AllocationDraw,
    Batch,
    Beneficiary,
    Block,
    PoolRetirement,
    Project,
    spendable,
    table_of,
    utcnow,
)


@dataclass(frozen=True)
class VerraFields:
    """The fixed fields of a Verra serial string that a mirrored batch carries."""

    issuance: int
    code: int
    scope: int
    flag: int = 0


@dataclass(frozen=True)
class Receipt:
    """What an operation did: its entry, the blocks it spent and the blocks it created."""

    seq: int
    hash: str
    kind: str
    spent: tuple[int, ...]
    created: tuple[BlockRange, ...]
    batch_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def quantity_to(self, account: int, state: str) -> int:
        return sum(b.quantity for b in self.created if b.account == account and b.state == state)


# -- accounts and projects (registry facts, not journal entries) -------------------------


def open_account(session: Session, name: str, kind: str) -> Account:
    """Create a holder of credits. Names are unique; kinds come from a fixed list."""
    name = name.strip()
    if not name or len(name) > 200:
        raise UnknownAccountError("an account name is 1 to 200 characters")
    if kind not in ACCOUNT_KINDS:
        raise AccountKindError(f"account kind must be one of {', '.join(ACCOUNT_KINDS)}")
    account = Account(name=name, kind=kind)
    session.add(account)
    session.flush()
    return account


def get_account(session: Session, account: int | str) -> Account:
    """Find an account by id or by name."""
    if isinstance(account, str):
        found = session.scalars(select(Account).where(Account.name == account)).one_or_none()
    else:
        found = session.get(Account, check_id(account, UnknownAccountError, "account"))
    if found is None:
        raise UnknownAccountError(f"no account {account!r}")
    return found


def register_project(
    session: Session,
    *,
    registry: str,
    registry_id: str,
    name: str,
    country: str,
    standards: str = "",
    methodology: str = "",
    sector: str = "",
) -> Project:
    """Record a project's registry facts (e.g. VCS 944, in PE)."""
    registry = registry.strip().upper()
    registry_id = registry_id.strip()
    if not (registry.isalpha() and 2 <= len(registry) <= 10):
        raise UnknownProjectError(f"registry must be 2 to 10 letters, not {registry!r}")
    if not (registry_id.isalnum() and registry_id.isascii() and 1 <= len(registry_id) <= 20):
        raise UnknownProjectError("registry project id must be 1 to 20 letters or digits")
    validate_country(country)
    project = Project(
        registry_name=registry,
        registry_id=registry_id,
        name=validate_text(name, "project name", required=True),
        country=country,
        standards=standards,
        methodology=methodology,
        sector=sector,
    )
    session.add(project)
    session.flush()
    return project


# -- issue ----------------------------------------------------------------------------------


def issue(
    session: Session,
    *,
    project_id: int,
    account_id: int,
    vintage_start: dt.date,
    vintage_end: dt.date,
    quantity: int | None = None,
    first: int | None = None,
    last: int | None = None,
    origin: str | None = None,
    verra: VerraFields | None = None,
    buffer_account_id: int | None = None,
    buffer_quantity: int = 0,
    issued_on: dt.date | None = None,
    at: dt.datetime | None = None,
) -> Receipt:
    """Issue a batch of one project vintage into ``account_id``.

    A batch mirroring a Verra issuance gives its serial range ``first``..``last`` and its
    Verra fields; a batch issued here gives a ``quantity`` and is allocated the next native
    serials. ``origin`` (e.g. ``VCS:9660``) is unique: nothing is imported twice. For forest
    projects a ``buffer_quantity`` taken from the top of the range goes to the buffer pool.
    """
    project = session.get(Project, check_id(project_id, UnknownProjectError, "project"))
    if project is None:
        raise UnknownProjectError(f"no project {project_id!r}")
    account = get_account(session, account_id)
    check_movable(account.kind)
    start = parse_date(vintage_start, "vintage start")
    end = parse_date(vintage_end, "vintage end")
    validate_period(start, end)
    issued = parse_date(issued_on or utcnow().date(), "issuance date")
    if origin is not None:
        origin = validate_text(origin, "origin", required=True)

    head = journal.locked_head(session)
    scheme = "verra" if verra is not None else "native"
    if verra is not None:
        if first is None or last is None:
            raise SerialRangeError("a Verra batch needs its serial range (first and last)")
        if project.registry_name != "VCS" or not project.registry_id.isdigit():
            raise SerialRangeError("only a VCS project with a numeric id can mirror Verra serials")
        first, last = validate_range(first, last)
        if quantity is not None and validate_quantity(quantity) != last - first + 1:
            raise SerialRangeError(f"[{first}, {last}] holds {last - first + 1} t, not {quantity} t")
    else:
        if first is not None or last is not None:
            raise SerialRangeError("a native batch is allocated its serials: give a quantity")
        quantity = validate_quantity(quantity)
        table = table_of(Batch)
        top = session.execute(
            select(func.max(table.c.last_serial)).where(table.c.scheme == "native")
        ).scalar_one()  # safe under the head lock, which every issue holds
        first = (top or 0) + 1
        last = first + quantity - 1
        if last > MAX_SERIAL:
            raise SerialRangeError("the native serial space is exhausted")
    total = last - first + 1

    if origin is not None and session.scalar(select(Batch.id).where(Batch.origin == origin)):
        raise DuplicateOriginError(f"a batch with origin {origin!r} was already issued")
    clash = session.scalars(
        select(Batch).where(
            Batch.scheme == scheme, Batch.first_serial <= last, Batch.last_serial >= first
        )
    ).first()
    if clash is not None:
        raise OverlapError(
            f"serials [{first}, {last}] overlap batch {clash.id} "
            f"[{clash.first_serial}, {clash.last_serial}]"
        )
    buffer: dict[str, int] | None = None
    if buffer_quantity:
        validate_quantity(buffer_quantity)
        if buffer_quantity >= total:
            raise SerialRangeError("the buffer share must be smaller than the batch")
        if buffer_account_id is None:
            raise UnknownAccountError("a buffer share needs a buffer account")
        buffer_account = get_account(session, buffer_account_id)
        if buffer_account.kind != "buffer":
            raise AccountKindError(f"account {buffer_account.name!r} is not a buffer pool")
        buffer = {"account": buffer_account.id, "quantity": buffer_quantity}

    batch_id = head.next_batch
    created = issue_blocks(
        batch=batch_id, first=first, last=last, account=account.id,
        buffer_account=buffer["account"] if buffer else None,
        buffer_quantity=buffer_quantity, next_id=head.next_block,
    )
    serial: dict[str, Any] = {"scheme": scheme}
    if verra is not None:
        serial.update(issuance=verra.issuance, code=verra.code, scope=verra.scope, flag=verra.flag)
    record = Issue(
        batch=batch_id,
        project=IssuedProject(id=project.id, registry=project.registry_name,
                              registry_id=project.registry_id, name=project.name,
                              country=project.country),
        vintage_start=start, vintage_end=end, issued=issued, first=first, last=last,
        origin=origin, serial=serial, account=account.id,
        buffer_account=buffer["account"] if buffer else None,
        buffer_quantity=buffer_quantity if buffer else 0, created=tuple(created),
    )
    entry = journal.append(session, head, record.KIND, record.to_data(),
                           new_blocks=len(created), new_batches=1, at=at)
    session.execute(
        insert(table_of(Batch)).values(
            id=batch_id, project_id=project.id, vintage_start=start, vintage_end=end,
            issued_on=issued, first_serial=first, last_serial=last, origin=origin, scheme=scheme,
            verra_issuance=verra.issuance if verra else None,
            verra_code=verra.code if verra else None,
            verra_scope=verra.scope if verra else None,
            verra_flag=verra.flag if verra else None,
            buffer_quantity=buffer_quantity, issued_by=entry.seq,
        )
    )
    _insert_blocks(session, created, entry.seq)
    return Receipt(entry.seq, entry.hash, "issue", (), tuple(created), batch_id=batch_id)


# -- spending operations ----------------------------------------------------------------


def transfer(
    session: Session,
    *,
    from_account: int,
    to_account: int,
    quantity: int,
    batch_id: int | None = None,
    project_id: int | None = None,
    block_ids: Sequence[int] | None = None,
    at: dt.datetime | None = None,
) -> Receipt:
    """Move ``quantity`` tonnes of the sender's tradable credits to another account.

    Credits are taken oldest vintage first, lowest serials first, optionally from one batch,
    one project, or named blocks; a block holding more than is needed is split.
    """
    validate_quantity(quantity)
    sender = get_account(session, from_account)
    receiver = get_account(session, to_account)
    check_movable(sender.kind)
    if sender.id == receiver.id:
        raise AccountKindError("a transfer must go to another account")
    if receiver.kind == "buffer":
        raise AccountKindError("the buffer pool is filled only by issuance shares, not transfers")
    head, inputs = _lock_with_inputs(session, sender.id, quantity, batch_id, project_id,
                                     block_ids)
    created = plan_spend(inputs, quantity, holder=sender.id, to_account=receiver.id,
                         to_state="tradable", next_id=head.next_block)
    record = Transfer(sender=sender.id, receiver=receiver.id, quantity=quantity,
                      spent=tuple(b.id for b in inputs), created=tuple(created))
    return _write_spend(session, head, record.KIND, record.to_data(), inputs, created, at)


def retire(
    session: Session,
    *,
    account_id: int,
    quantity: int,
    beneficiary: str,
    purpose: str,
    country: str,
    period_start: dt.date,
    period_end: dt.date,
    note: str = "",
    retired_on: dt.date | None = None,
    batch_id: int | None = None,
    project_id: int | None = None,
    block_ids: Sequence[int] | None = None,
    at: dt.datetime | None = None,
) -> Receipt:
    """Retire ``quantity`` tonnes held by ``account_id`` on behalf of a beneficiary.

    The journal records a salted SHA-256 commitment to the beneficiary's name, never the name;
    the name and salt go to the erasable beneficiaries table under the entry's seq.
    """
    validate_quantity(quantity)
    name = validate_text(beneficiary, "beneficiary", required=True)
    if len(name) > 200:
        raise RetirementDetailsError("the beneficiary's name is longer than 200 characters")
    note = validate_text(note, "note", required=False)
    validate_purpose(purpose, note)
    validate_country(country)
    start = parse_date(period_start, "period start")
    end = parse_date(period_end, "period end")
    validate_period(start, end)
    on = parse_date(retired_on or utcnow().date(), "retirement date")
    holder = get_account(session, account_id)
    check_movable(holder.kind)
    salt = secrets.token_hex(16)
    commitment = beneficiary_commitment(salt, name)
    head, inputs = _lock_with_inputs(session, holder.id, quantity, batch_id, project_id,
                                     block_ids)
    created = plan_spend(inputs, quantity, holder=holder.id, to_account=holder.id,
                         to_state="retired", next_id=head.next_block)
    record = Retire(account=holder.id, quantity=quantity, spent=tuple(b.id for b in inputs),
                    created=tuple(created), beneficiary=commitment,
                    purpose=purpose, note=note, country=country, period_start=start,
                    period_end=end, date=on)
    return _write_spend(session, head, record.KIND, record.to_data(), inputs, created, at,
                        rows=[(table_of(Beneficiary),
                               lambda seq: [{"seq": seq, "name": name, "salt": salt}])])


def cancel(
    session: Session,
    *,
    account_id: int,
    quantity: int,
    reason: str,
    batch_id: int | None = None,
    project_id: int | None = None,
    block_ids: Sequence[int] | None = None,
    at: dt.datetime | None = None,
) -> Receipt:
    """Cancel ``quantity`` tonnes for good (an issuance error, a reversal drawn from the
    buffer pool). Cancelled credits never move again and count for no one."""
    validate_quantity(quantity)
    why = validate_text(reason, "reason", required=True)
    holder = get_account(session, account_id)
    head, inputs = _lock_with_inputs(session, holder.id, quantity, batch_id, project_id,
                                     block_ids)
    created = plan_spend(inputs, quantity, holder=holder.id, to_account=holder.id,
                         to_state="cancelled", next_id=head.next_block)
    record = Cancel(account=holder.id, quantity=quantity, spent=tuple(b.id for b in inputs),
                    created=tuple(created), reason=why)
    return _write_spend(session, head, record.KIND, record.to_data(), inputs, created, at)


# -- kilogram pools --------------------------------------------------------------------------


def pool_retire(
    session: Session,
    *,
    account_id: int,
    project_id: int,
    quantity: int,
    batch_id: int | None = None,
    retired_on: dt.date | None = None,
    at: dt.datetime | None = None,
) -> Receipt:
    """Retire ``quantity`` whole tonnes of one project, held by ``account_id``, into that
    project's kilogram pool (oldest vintage first, or of one batch). The entry names the pool by the project's
    reference; its tonnes then back 1,000,000 g of allocations each."""
    validate_quantity(quantity)
    project = session.get(Project, check_id(project_id, UnknownProjectError, "project"))
    if project is None:
        raise UnknownProjectError(f"no project {project_id!r}")
    holder = get_account(session, account_id)
    check_movable(holder.kind)
    on = parse_date(retired_on or utcnow().date(), "retirement date")
    head, inputs = _lock_with_inputs(session, holder.id, quantity, batch_id, project.id, None)
    created = plan_spend(inputs, quantity, holder=holder.id, to_account=holder.id,
                         to_state="retired", next_id=head.next_block)
    record = PoolRetire(account=holder.id, pool=project.ref, quantity=quantity,
                        spent=tuple(b.id for b in inputs), created=tuple(created), date=on)
    return _write_spend(session, head, record.KIND, record.to_data(), inputs, created, at,
                        rows=[(table_of(PoolRetirement), lambda seq: [{
                            "seq": seq, "project_id": project.id, "pool": project.ref,
                            "account_id": holder.id, "quantity": quantity}])])


@dataclass(frozen=True)
class AllocationRequest:
    """One kilogram allocation to write: ``grams`` drawn from pool retirements (``draws``:
    (pool retirement seq, grams), ascending), for a beneficiary, purpose, country and period."""

    grams: int
    draws: tuple[tuple[int, int], ...]
    beneficiary: str
    purpose: str
    country: str
    period_start: dt.date
    period_end: dt.date
    note: str = ""


def allocate(
    session: Session,
    requests: Sequence[AllocationRequest],
    *,
    allocated_on: dt.date | None = None,
    at: dt.datetime | None = None,
) -> Receipt:
    """Write a batch of kilogram allocations as one ``allocate`` entry.

    Every allocation draws only from pool retirements, and no pool retirement gives more grams
    than its tonnes hold (checked against every earlier allocation under the head lock).
    Allocation ``i`` is stored as (seq, i), with its beneficiary's name and salt (erasable).
    """
    if not 1 <= len(requests) <= MAX_ALLOCATIONS:
        raise PoolError(f"an allocate entry holds 1 to {MAX_ALLOCATIONS} allocations")
    on = parse_date(allocated_on or utcnow().date(), "allocation date")
    built: list[tuple[Allocation, str, str]] = []
    for request in requests:
        name = validate_text(request.beneficiary, "beneficiary", required=True)
        if len(name) > 200:
            raise RetirementDetailsError("the beneficiary's name is longer than 200 characters")
        note = validate_text(request.note, "note", required=False)
        salt = secrets.token_hex(16)
        allocation = Allocation(
            grams=validate_grams(request.grams), draws=tuple(request.draws),
            beneficiary=beneficiary_commitment(salt, name), purpose=request.purpose, note=note,
            country=request.country, period_start=parse_date(request.period_start, "period start"),
            period_end=parse_date(request.period_end, "period end"))
        built.append((allocation, name, salt))
    wanted: dict[int, int] = {}
    for allocation, _, _ in built:
        for pool_seq, grams in allocation.draws:
            wanted[pool_seq] = wanted.get(pool_seq, 0) + grams
    head = journal.locked_head(session)
    pools = table_of(PoolRetirement)
    draws = table_of(AllocationDraw)
    capacity = dict(session.execute(
        select(pools.c.seq, pools.c.quantity).where(pools.c.seq.in_(sorted(wanted)))).all())
    used = dict(session.execute(
        select(draws.c.pool_seq, func.sum(draws.c.grams)).where(
            draws.c.pool_seq.in_(sorted(wanted))).group_by(draws.c.pool_seq)).all())
    for pool_seq, grams in sorted(wanted.items()):
        if pool_seq not in capacity:
            raise PoolError(f"seq {pool_seq} is not a pool retirement: kilograms are allocated "
                            "only from pool retirements")
        total = int(capacity[pool_seq]) * GRAMS_PER_TONNE
        after = int(used.get(pool_seq) or 0) + grams
        if after > total:
            raise OverAllocationError(
                f"pool retirement seq {pool_seq} holds {total:,} g; these allocations would "
                f"make {after:,} g allocated from it")
    record = Allocate(allocations=tuple(a for a, _, _ in built), date=on)
    entry = journal.append(session, head, record.KIND, record.to_data(), at=at)
    session.execute(insert(table_of(AllocationRow)), [
        {"seq": entry.seq, "idx": index, "grams": a.grams, "commitment": a.beneficiary,
         "name": name, "salt": salt, "purpose": a.purpose, "note": a.note, "country": a.country,
         "period_start": a.period_start, "period_end": a.period_end}
        for index, (a, name, salt) in enumerate(built)])
    session.execute(insert(draws), [
        {"seq": entry.seq, "idx": index, "pool_seq": pool_seq, "grams": grams}
        for index, (a, _, _) in enumerate(built) for pool_seq, grams in a.draws])
    return Receipt(entry.seq, entry.hash, record.KIND, (), (),
                   extra={"allocations": len(built), "grams": record.grams})


def erase_allocation_beneficiary(session: Session, seq: int, idx: int) -> bool:
    """Erase a kilogram allocation's beneficiary name and salt; False if already erased."""
    row = session.get(AllocationRow, (seq, idx))
    if row is None:
        raise UnknownEntryError(f"no allocation {seq}.{idx}")
    return _erase(session, row)


def erase_beneficiary(session: Session, seq: int) -> bool:
    """Erase a retirement beneficiary's name and salt on request. Returns False if already
    erased. The journal's commitment stays, and reveals nothing without them."""
    row = session.get(Beneficiary, seq)
    if row is None:
        raise UnknownEntryError(f"no retirement at seq {seq}")
    return _erase(session, row)


def _erase(session: Session, row: Beneficiary | AllocationRow) -> bool:
    if row.name is None:
        return False
    row.name = None
    row.salt = None
    row.erased_at = utcnow()
    session.flush()
    return True


# -- internals ------------------------------------------------------------------------------


def _inputs(
    session: Session,
    holder: int,
    quantity: int,
    batch_id: int | None,
    project_id: int | None,
    block_ids: Sequence[int] | None,
) -> list[BlockRange]:
    """The holder's blocks an operation spends: oldest vintage, lowest serials first, only as
    many as it needs. Read before the head lock by ``_lock_with_inputs``, which checks them
    again once it holds the lock."""
    blocks = table_of(Block)
    batches = table_of(Batch)
    stmt = (
        select(blocks.c.id, blocks.c.batch_id, blocks.c.account_id, blocks.c.first_serial,
               blocks.c.last_serial, blocks.c.state, blocks.c.spent_by)
        .join(batches, batches.c.id == blocks.c.batch_id)
        .order_by(batches.c.vintage_start, batches.c.id, blocks.c.first_serial)
    )
    if batch_id is not None:
        if session.get(Batch, check_id(batch_id, UnknownBatchError, "batch")) is None:
            raise UnknownBatchError(f"no batch {batch_id!r}")
        stmt = stmt.where(blocks.c.batch_id == batch_id)
    if project_id is not None:
        if session.get(Project, check_id(project_id, UnknownProjectError, "project")) is None:
            raise UnknownProjectError(f"no project {project_id!r}")
        stmt = stmt.where(batches.c.project_id == project_id)
    if block_ids is not None:
        wanted = list(dict.fromkeys(
            check_id(b, NotHolderError, "block to spend here") for b in block_ids))
        rows = session.execute(stmt.where(blocks.c.id.in_(wanted))).all()
        found = {row.id for row in rows}
        missing = [b for b in wanted if b not in found]
        if missing:
            raise NotHolderError(f"no block {missing[0]!r} to spend here")
        for row in rows:
            if row.account_id != holder:
                raise NotHolderError(f"block {row.id} is not held by this account")
            if row.spent_by is not None:
                raise DoubleSpendError(f"block {row.id} was already spent by seq {row.spent_by}")
            if row.state != "tradable":
                raise FinalStateError(f"block {row.id} is {row.state} and can never move")
    else:
        rows_iter = session.execute(
            stmt.where(blocks.c.account_id == holder, spendable(blocks.c))
        )
        rows = []
        held = 0
        for row in rows_iter:
            rows.append(row)
            held += row.last_serial - row.first_serial + 1
            if held >= quantity:
                break
    chosen: list[BlockRange] = []
    held = 0
    for row in rows:
        if held >= quantity:
            break
        chosen.append(BlockRange(row.id, row.batch_id, row.account_id, row.first_serial,
                                 row.last_serial, row.state))
        held += row.last_serial - row.first_serial + 1
    if held < quantity:
        raise InsufficientCreditsError(
            f"not enough tradable credits: {quantity} t asked, {held} t held"
        )
    return chosen


def _lock_with_inputs(
    session: Session,
    holder: int,
    quantity: int,
    batch_id: int | None,
    project_id: int | None,
    block_ids: Sequence[int] | None,
) -> tuple[journal.Head, list[BlockRange]]:
    """Choose the blocks to spend, then lock the chain head; the lock's round trip also checks
    that they are all still unspent. If another transaction spent one meanwhile, they are
    chosen again under the lock. Either way the spend is planned on blocks that are current
    while the lock is held."""
    def choose() -> list[BlockRange]:
        return _inputs(session, holder, quantity, batch_id, project_id, block_ids)

    try:
        inputs = choose()
    except (InsufficientCreditsError, NotHolderError, DoubleSpendError, FinalStateError):
        # What a transaction committing while we wait for the lock could change: decide
        # under the lock, as before.
        head = journal.locked_head(session)
        return head, choose()
    head, current = journal.locked_head_checking(session, [b.id for b in inputs])
    return head, inputs if current else choose()


def _write_spend(
    session: Session,
    head: journal.Head,
    kind: str,
    data: dict[str, Any],
    inputs: list[BlockRange],
    created: list[BlockRange],
    at: dt.datetime | None,
    rows: Sequence[tuple[Any, Any]] = (),
) -> Receipt:
    """Append an entry that spends ``inputs`` and creates ``created`` (and writes ``rows``, as
    for ``journal.append``): every write in one go."""
    ids = [b.id for b in inputs]
    entry = journal.append(session, head, kind, data, new_blocks=len(created), at=at,
                           spends=ids,
                           rows=[(table_of(Block), lambda seq: _block_rows(created, seq)),
                                 *rows])
    return Receipt(entry.seq, entry.hash, kind, tuple(ids), tuple(created))


write_spend = _write_spend
"""Append an entry that spends ``inputs`` and creates ``created`` (shared with ``origin``)."""


def _block_rows(created: Sequence[BlockRange], seq: int) -> list[dict[str, Any]]:
    return [{"id": b.id, "batch_id": b.batch, "account_id": b.account, "first_serial": b.first,
             "last_serial": b.last, "state": b.state, "created_by": seq} for b in created]


def _insert_blocks(session: Session, created: Sequence[BlockRange], seq: int) -> None:
    if created:
        session.execute(insert(table_of(Block)), _block_rows(created, seq))
