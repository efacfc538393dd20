"""Kilogram pools as the public registry shows them, read from the ledger's own tables.

A pool's figures come from the ledger alone: the tonnes retired into it are its ``pool``
entries (``ledger_pool_retirements``), and the grams allocated from it are the draws of its
``allocate`` entries (``ledger_allocation_draws``). Grams a buyer has paid for count once
they are written into the ledger, usually seconds after payment; grams held for an unpaid
order are not the ledger's business and are shown as free here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from ledger import canonical, queries
from ledger.records import GRAMS_PER_TONNE
from ledger.rules import PURPOSES
from ledger.schema import Allocation, AllocationDraw, Block, Entry, PoolRetirement, Project

from .models import Listing
from .models.pools import KgAllocation

PER_PAGE = 50
MAX_QUERY = 200
MAX_PAGE = 10**6

POOL_REF = re.compile(r"[A-Z]{2,10}-[A-Za-z0-9]{1,20}")
"""A pool is named by its project's reference, e.g. ``VCS-944`` (``ledger.records``)."""

ALLOCATION_ID = re.compile(r"([1-9][0-9]{0,17})\.(0|[1-9][0-9]{0,5})")
"""An allocation's public id ``s.i``: position ``i`` of the ``allocate`` entry at seq ``s``."""


# -- every pool -----------------------------------------------------------------------------


@dataclass
class PoolRow:
    """One kilogram pool on the overview: its project, the tonnes retired into it, the grams
    allocated from them and how many allocations took them."""

    project: Project
    listed: bool
    retirements: int = 0
    tonnes: int = 0
    allocated: int = 0
    allocations: int = 0

    @property
    def grams(self) -> int:
        return self.tonnes * GRAMS_PER_TONNE

    @property
    def free(self) -> int:
        return self.grams - self.allocated


def pools(session: Session) -> list[PoolRow]:
    """Every listing's kilogram pool, and every pool that has tonnes without a listing, by
    project name."""
    rows: dict[int, PoolRow] = {}
    for listing in session.scalars(select(Listing)):
        rows[listing.project_id] = PoolRow(listing.project, listing.status == "listed")
    for project_id, count, tonnes in session.execute(
            select(PoolRetirement.project_id, func.count(), func.sum(PoolRetirement.quantity))
            .group_by(PoolRetirement.project_id)):
        row = rows.get(project_id)
        if row is None:
            project = session.get(Project, project_id)
            assert project is not None
            row = rows[project_id] = PoolRow(project, False)
        row.retirements, row.tonnes = int(count), int(tonnes or 0)
    for project_id, grams in session.execute(
            select(PoolRetirement.project_id, func.sum(AllocationDraw.grams))
            .join(PoolRetirement, PoolRetirement.seq == AllocationDraw.pool_seq)
            .group_by(PoolRetirement.project_id)):
        rows[project_id].allocated = int(grams or 0)
    taken = (select(AllocationDraw.seq, AllocationDraw.idx, PoolRetirement.project_id)
             .join(PoolRetirement, PoolRetirement.seq == AllocationDraw.pool_seq)
             .distinct().subquery())
    for project_id, count in session.execute(
            select(taken.c.project_id, func.count()).group_by(taken.c.project_id)):
        rows[project_id].allocations = int(count)
    return sorted(rows.values(), key=lambda r: (r.project.name.lower(), r.project.id))


# -- one pool -------------------------------------------------------------------------------


def find_project(session: Session, ref: str) -> Project | None:
    """The project whose pool ``ref`` names, if the reference is well formed and the project
    has a listing or pool retirements; None otherwise."""
    if not POOL_REF.fullmatch(ref):
        return None
    registry, _, registry_id = ref.partition("-")
    project = session.scalars(select(Project).where(
        Project.registry_name == registry, Project.registry_id == registry_id)).one_or_none()
    if project is None:
        return None
    has_pool = session.scalar(select(
        exists().where(Listing.project_id == project.id)
        | exists().where(PoolRetirement.project_id == project.id)))
    return project if has_pool else None


@dataclass(frozen=True)
class PoolRetirementRow:
    """One pool retirement: its entry, tonnes, the serials of the retired blocks it created,
    and the grams allocated from it so far."""

    seq: int
    quantity: int
    date: str
    serials: list[str]
    allocated: int
    allocations: int

    @property
    def grams(self) -> int:
        return self.quantity * GRAMS_PER_TONNE

    @property
    def free(self) -> int:
        return self.grams - self.allocated


def serials_of(session: Session, seqs: list[int]) -> dict[int, list[str]]:
    """Per entry, the serial strings of the retired blocks it created (batch, serial order)."""
    found: dict[int, list[str]] = {seq: [] for seq in seqs}
    if seqs:
        for block in session.scalars(
                select(Block).where(Block.created_by.in_(seqs), Block.state == "retired")
                .order_by(Block.created_by, Block.batch_id, Block.first_serial)):
            found[block.created_by].append(
                queries.serial_string(block.batch, block.first_serial, block.last_serial))
    return found


def pool_retirements(session: Session, project_id: int) -> list[PoolRetirementRow]:
    """The pool's retirements, newest first."""
    rows = session.execute(
        select(PoolRetirement.seq, PoolRetirement.quantity, Entry.record)
        .join(Entry, Entry.seq == PoolRetirement.seq)
        .where(PoolRetirement.project_id == project_id)
        .order_by(PoolRetirement.seq.desc())).all()
    seqs = [row.seq for row in rows]
    used: dict[int, tuple[int, int]] = {}
    if seqs:
        used = {pool_seq: (int(grams or 0), int(count)) for pool_seq, grams, count in
                session.execute(select(AllocationDraw.pool_seq, func.sum(AllocationDraw.grams),
                                       func.count())
                                .where(AllocationDraw.pool_seq.in_(seqs))
                                .group_by(AllocationDraw.pool_seq))}
    serials = serials_of(session, seqs)
    return [PoolRetirementRow(
        seq=row.seq, quantity=int(row.quantity),
        date=str(canonical.loads(bytes(row.record))["data"].get("date", "")),
        serials=serials[row.seq], allocated=used.get(row.seq, (0, 0))[0],
        allocations=used.get(row.seq, (0, 0))[1]) for row in rows]


@dataclass
class AllocationSearch:
    """The pool page's search, read from the query string; ``errors`` say what was wrong."""

    beneficiary: str = ""
    allocation: str = ""
    page: int = 1
    errors: list[str] = field(default_factory=list)
    seq: int | None = None
    idx: int | None = None

    @property
    def active(self) -> bool:
        return bool(self.beneficiary or self.allocation)

    def params(self, **changes: Any) -> dict[str, Any]:
        values: dict[str, Any] = {"beneficiary": self.beneficiary, "allocation": self.allocation,
                                  "page": self.page}
        values.update(changes)
        return {k: v for k, v in values.items()
                if v not in ("", None) and not (k == "page" and v == 1)}


def parse_search(args: Mapping[str, str]) -> AllocationSearch:
    """Read and check the search; every problem becomes a message for the page."""
    def arg(name: str) -> str:
        return str(args.get(name, "") or "").strip()

    search = AllocationSearch(beneficiary=arg("beneficiary"), allocation=arg("allocation"))
    if len(search.beneficiary) > MAX_QUERY:
        search.errors.append("The beneficiary's name is too long to search for.")
        search.beneficiary = search.beneficiary[:MAX_QUERY]
    if len(search.allocation) > MAX_QUERY:
        search.errors.append("The allocation id is too long to search for.")
        search.allocation = search.allocation[:MAX_QUERY]
    elif search.allocation:
        match = ALLOCATION_ID.fullmatch(search.allocation) if search.allocation.isascii() else None
        if match is None:
            search.errors.append("An allocation id is the ledger entry and the position in it, "
                                 "like 57.3.")
        else:
            search.seq, search.idx = int(match.group(1)), int(match.group(2))
    page = arg("page")
    if page:
        if page.isascii() and page.isdigit() and 1 <= len(page) <= 7 and \
                1 <= int(page) <= MAX_PAGE:
            search.page = int(page)
        else:
            search.errors.append("The page must be a whole number, 1 or more.")
    return search


def _in_pool(project_id: int) -> ColumnElement[bool]:
    """The allocation draws from one of the project's pool retirements."""
    return exists(
        select(AllocationDraw.seq)
        .join(PoolRetirement, PoolRetirement.seq == AllocationDraw.pool_seq)
        .where(AllocationDraw.seq == Allocation.seq, AllocationDraw.idx == Allocation.idx,
               PoolRetirement.project_id == project_id))


@dataclass(frozen=True)
class AllocationRow:
    """A sealed allocation as the pool page lists it."""

    seq: int
    idx: int
    grams: int
    recorded: dt.datetime
    purpose: str
    country: str
    beneficiary: str | None
    reference: str | None

    @property
    def id(self) -> str:
        return f"{self.seq}.{self.idx}"


def allocations(session: Session, project_id: int,
                search: AllocationSearch) -> tuple[list[AllocationRow], int]:
    """One page of the pool's sealed allocations matching the search, newest first, and how
    many match in all."""
    conditions: list[ColumnElement[bool]] = [_in_pool(project_id)]
    if search.beneficiary:
        term = search.beneficiary
        conditions += [Allocation.name.is_not(None), or_(
            func.lower(Allocation.name).contains(term.lower(), autoescape=True),
            Allocation.name.contains(term, autoescape=True))]
    if search.seq is not None:
        conditions += [Allocation.seq == search.seq, Allocation.idx == search.idx]
    total = int(session.scalar(select(func.count()).select_from(Allocation)
                               .where(*conditions)) or 0)
    rows = session.execute(
        select(Allocation.seq, Allocation.idx, Allocation.grams, Allocation.purpose,
               Allocation.country, Allocation.name, Entry.created_at, KgAllocation.reference)
        .join(Entry, Entry.seq == Allocation.seq)
        .outerjoin(KgAllocation, and_(KgAllocation.seq == Allocation.seq,
                                      KgAllocation.idx == Allocation.idx))
        .where(*conditions)
        .order_by(Allocation.seq.desc(), Allocation.idx.desc())
        .limit(PER_PAGE).offset((search.page - 1) * PER_PAGE)).all()
    found = [AllocationRow(
        seq=row.seq, idx=row.idx, grams=int(row.grams), recorded=row.created_at,
        purpose=PURPOSES.get(row.purpose, row.purpose), country=row.country,
        beneficiary=row.name, reference=row.reference) for row in rows]
    return found, total

