"""Read-only questions the storefront and the registry ask of the ledger."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from .errors import SerialFormatError
from .replay import Totals
from .rules import MAX_SERIAL
from .schema import Account, Batch, Block, Entry, Project, spendable
from .serials import NativeSerial, VerraSerial, parse_serial

BatchTotals = Totals
"""Tonnes of one batch (or project) by state: the replay's own totals type."""


def serial_string(batch: Batch, first: int, last: int) -> str:
    """Format the serial string of [first, last] in ``batch``, in the batch's own scheme."""
    project = batch.project
    if batch.scheme == "verra":
        assert batch.verra_issuance is not None and batch.verra_code is not None
        assert batch.verra_scope is not None and batch.verra_flag is not None
        return str(
            VerraSerial(
                issuance=batch.verra_issuance, first=first, last=last, code=batch.verra_code,
                country=project.country, scope=batch.verra_scope, project=int(project.registry_id),
                start=batch.vintage_start, end=batch.vintage_end, flag=batch.verra_flag,
            )
        )
    return str(
        NativeSerial(
            batch=batch.id, registry=project.registry_name, project=project.registry_id,
            country=project.country, start=batch.vintage_start, end=batch.vintage_end,
            first=first, last=last,
        )
    )


@dataclass(frozen=True)
class HeldBlock:
    block_id: int
    first: int
    last: int
    serial: str

    @property
    def quantity(self) -> int:
        return self.last - self.first + 1


@dataclass
class Holding:
    """An account's tradable credits of one batch (one project vintage)."""

    project_id: int
    project_ref: str
    project_name: str
    batch_id: int
    vintage_start: dt.date
    vintage_end: dt.date
    blocks: list[HeldBlock] = field(default_factory=list)

    @property
    def quantity(self) -> int:
        return sum(b.quantity for b in self.blocks)


def holdings(session: Session, account_id: int, state: str = "tradable") -> list[Holding]:
    """The account's unspent blocks in ``state``, by project and vintage, with serial strings."""
    rows = session.execute(
        select(Block, Batch)
        .join(Batch, Batch.id == Block.batch_id)
        .where(Block.account_id == account_id, Block.state == state, Block.spent_by.is_(None))
        .order_by(Batch.vintage_start, Batch.id, Block.first_serial)
    ).all()
    result: dict[int, Holding] = {}
    for block, batch in rows:
        holding = result.get(batch.id)
        if holding is None:
            holding = result[batch.id] = Holding(
                batch.project_id, batch.project.ref, batch.project.name, batch.id,
                batch.vintage_start, batch.vintage_end,
            )
        holding.blocks.append(HeldBlock(block.id, block.first_serial, block.last_serial,
                                        serial_string(batch, block.first_serial, block.last_serial)))
    return list(result.values())


def available(session: Session, account_id: int, *, batch_id: int | None = None,
              project_id: int | None = None) -> int:
    """Tonnes the account could move now: its unspent tradable blocks, optionally filtered."""
    stmt = (
        select(func.coalesce(func.sum(Block.last_serial - Block.first_serial + 1), 0))
        .join(Batch, Batch.id == Block.batch_id)
        .where(Block.account_id == account_id, spendable(Block))
    )
    if batch_id is not None:
        stmt = stmt.where(Block.batch_id == batch_id)
    if project_id is not None:
        stmt = stmt.where(Batch.project_id == project_id)
    return int(session.execute(stmt).scalar_one())


def available_by_batch(session: Session, account_id: int) -> dict[int, int]:
    """Tradable tonnes the account holds, per batch id."""
    rows = session.execute(
        select(Block.batch_id, func.sum(Block.last_serial - Block.first_serial + 1))
        .where(Block.account_id == account_id, spendable(Block))
        .group_by(Block.batch_id)
    ).all()
    return {batch_id: int(total) for batch_id, total in rows}


def batch_totals(session: Session) -> dict[int, BatchTotals]:
    """Tonnes issued, tradable, retired, cancelled and in the buffer pool, per batch."""
    quantity = Block.last_serial - Block.first_serial + 1
    bucket = case(
        (Block.state != "tradable", Block.state),
        (Account.kind == "buffer", "buffer"),
        else_="tradable",
    )
    rows = session.execute(
        select(Block.batch_id, bucket, func.sum(quantity))
        .join(Account, Account.id == Block.account_id)
        .where(Block.spent_by.is_(None))
        .group_by(Block.batch_id, bucket)
    ).all()
    result: dict[int, BatchTotals] = defaultdict(BatchTotals)
    for batch_id, kind, total in rows:
        setattr(result[batch_id], kind, getattr(result[batch_id], kind) + int(total))
    for batch_id, issued in session.execute(
        select(Batch.id, Batch.last_serial - Batch.first_serial + 1)
    ).all():
        result[batch_id].issued = int(issued)
    return dict(result)


def project_totals(session: Session) -> dict[int, BatchTotals]:
    """The same totals, per project id."""
    per_batch = batch_totals(session)
    result: dict[int, BatchTotals] = defaultdict(BatchTotals)
    for batch_id, project_id in session.execute(select(Batch.id, Batch.project_id)).all():
        result[project_id].add(per_batch.get(batch_id, BatchTotals()))
    return dict(result)


@dataclass(frozen=True)
class Step:
    """One step in the life of a serial number: the block that held it and the entry that made it."""

    seq: int
    kind: str
    hash: str
    at: dt.datetime
    block_id: int
    account_id: int
    account_name: str
    state: str
    first: int
    last: int
    serial: str
    spent_by: int | None


@dataclass(frozen=True)
class Timeline:
    batch: Batch
    number: int
    steps: list[Step]

    @property
    def current(self) -> Step:
        return self.steps[-1]


def timeline(session: Session, serial: str | int) -> list[Timeline]:
    """Every block that ever held a serial number, oldest first, one timeline per batch.

    ``serial`` is a serial string (its first number is looked up, in the batch it names) or a
    bare serial number (looked up in every batch whose range holds it). Raises
    ``SerialFormatError`` for anything else; an unknown serial gives an empty list.
    """
    if isinstance(serial, int) and not isinstance(serial, bool):
        number = _serial_number(serial)
        batches = _batches_holding(session, number, None)
    else:
        text = str(serial).strip()
        if text.isascii() and text.isdigit():
            number = _serial_number(int(text) if len(text) <= 17 else MAX_SERIAL + 1)
            batches = _batches_holding(session, number, None)
        else:
            parsed = parse_serial(text)
            number = parsed.first
            scheme = "verra" if isinstance(parsed, VerraSerial) else "native"
            batches = [b for b in _batches_holding(session, number, scheme)
                       if _same_batch(b, parsed)]
    result = []
    for batch in batches:
        rows = session.execute(
            select(Block, Entry.kind, Entry.hash, Entry.created_at, Account.name)
            .join(Entry, Entry.seq == Block.created_by)
            .join(Account, Account.id == Block.account_id)
            .where(Block.batch_id == batch.id, Block.first_serial <= number,
                   Block.last_serial >= number)
            .order_by(Block.created_by)
        ).all()
        steps = [
            Step(block.created_by, kind, digest, at, block.id, block.account_id, name,
                 block.state, block.first_serial, block.last_serial,
                 serial_string(batch, block.first_serial, block.last_serial), block.spent_by)
            for block, kind, digest, at, name in rows
        ]
        result.append(Timeline(batch, number, steps))
    return result


def _serial_number(number: int) -> int:
    if not 1 <= number <= MAX_SERIAL:
        raise SerialFormatError(f"serial number {number} is out of range (1 to {MAX_SERIAL})")
    return number


def _same_batch(batch: Batch, parsed: VerraSerial | NativeSerial) -> bool:
    """Whether a parsed serial string names this batch (its fixed fields, any range inside it)."""
    if not batch.first_serial <= parsed.first <= parsed.last <= batch.last_serial:
        return False
    return serial_string(batch, parsed.first, parsed.last) == str(parsed)


def _batches_holding(session: Session, number: int, scheme: str | None) -> list[Batch]:
    stmt = select(Batch).where(Batch.first_serial <= number, Batch.last_serial >= number)
    if scheme is not None:
        stmt = stmt.where(Batch.scheme == scheme)
    return list(session.scalars(stmt.order_by(Batch.id)))


def recent_entries(session: Session, limit: int = 20) -> list[Entry]:
    """The newest journal entries, newest first."""
    return list(session.scalars(select(Entry).order_by(Entry.seq.desc()).limit(limit)))


def projects(session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.name)))
