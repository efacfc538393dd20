"""Kilograms: below a tonne, buyers get an allocation from a pool.

A serial stays one tonne. Each listing has a kilogram pool: whole tonnes of its project are
retired into it (``pool`` entries, made for "Selva kilogram pool"), and each kilogram purchase
takes grams of those pool retirements for its beneficiary. The ledger counts in whole grams.

The life of an allocation (``models.pools.KgAllocation``):

1. **reserved** when the order is placed, under the pool's row lock (``KgPool``): its grams
   are taken from the pool's oldest pool retirements, and if the pool's free grams would fall
   below the refill threshold, the next whole tonnes are retired into the pool first, in the
   same transaction, under the listing's lock too (the lock a tonne checkout takes, always
   taken after the pool's), from the tonnes for sale (reservations respected). So no gram is
   sold that is not backed by a tonne already retired, a refill never takes tonnes someone
   else has reserved, and a sale that needs no refill never waits on a tonne checkout.
2. **allocated** when the order is paid (``checkout.fulfil``): nothing more to check.
3. **sealed** when a batch of allocated grams is written into the ledger as one ``allocate``
   entry (:func:`seal_due`). Whoever finishes an order tries to seal; one at a time does, and
   takes everything waiting (flat combining), so under load one entry holds many allocations.
4. **released** if the order lapses or fails; its grams go back to their pool retirements the
   next time the pool is touched under the listing's lock.

Prices: a listing's price is per tonne; grams cost ``price × grams / 1,000,000`` minor units,
rounded half up to the minor unit (a 2,500 g order at 1,500 per tonne costs 3.75 → 4).
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from ledger import operations
from ledger.operations import AllocationRequest
from ledger.records import GRAMS_PER_TONNE, MAX_ALLOCATIONS
from ledger.schema import Batch, PoolRetirement, table_of, utcnow

from .models import Listing, Order, OrderLine
from .models.pools import (
    KgAllocation,
    KgPool,
    PoolRetirementStock,
    format_draws,
    parse_draws,
)

__all__ = ["GRAMS_PER_TONNE", "MassError", "UNITS", "format_mass", "grams_of", "price_minor"]

UNITS = {"g": 1, "kg": 1_000, "t": GRAMS_PER_TONNE}
"""The units a mass may be given in, and their grams."""

MAX_GRAMS_PER_LINE = 10 * GRAMS_PER_TONNE
"""At most 10 t in grams on one line, and on one order: past that, buy whole tonnes. A pool
refill for an order is a retirement, which stays even if the order is never paid (its grams
go back to the pool and are sold to the next buyers), so an unpaid order may move at most
this much, plus one refill, from the tonnes for sale into the pool."""

DEFAULT_REFILL_BELOW_KG = 1_000
DEFAULT_REFILL_TONNES = 2
DEFAULT_SEAL_SECONDS = 1.0


class MassError(ValueError):
    """A mass that is not whole, not positive, or in an unknown unit; the message is for the
    buyer."""


def grams_of(amount: object, unit: object) -> int:
    """A mass as whole grams: integers only, in g, kg or t."""
    if unit not in UNITS:
        raise MassError(f"The unit must be one of {', '.join(UNITS)}.")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise MassError("The amount must be a whole number.")
    if amount < 1:
        raise MassError("The amount must be at least 1.")
    grams = amount * UNITS[str(unit)]
    if grams > MAX_GRAMS_PER_LINE:
        raise MassError(f"At most {MAX_GRAMS_PER_LINE // GRAMS_PER_TONNE:,} t can be bought in "
                        "kilograms at once; buy whole tonnes for more.")
    return grams


def price_minor(price_per_tonne: int, grams: int) -> int:
    """What ``grams`` cost at ``price_per_tonne`` minor units a tonne, rounded half up to the
    minor unit (integers throughout: no float ever touches money)."""
    return (price_per_tonne * grams + GRAMS_PER_TONNE // 2) // GRAMS_PER_TONNE


def smallest_chargeable(price_per_tonne: int) -> int:
    """The fewest grams that cost at least one minor unit at this price."""
    return -(-GRAMS_PER_TONNE // (2 * price_per_tonne))


def format_mass(grams: int) -> str:
    """Grams for people: '250 g', '2.5 kg', '4,970 kg', exactly (no rounding)."""
    if grams < 1_000:
        return f"{grams:,} g"
    kg, rest = divmod(grams, 1_000)
    if rest == 0:
        return f"{kg:,} kg"
    return f"{kg:,}.{rest:03d}".rstrip("0") + " kg"


def refill_below() -> int:
    """The pool refills when its free grams would fall below this many grams."""
    kg = current_app.config.get("POOL_REFILL_BELOW_KG", DEFAULT_REFILL_BELOW_KG) \
        if has_app_context() else DEFAULT_REFILL_BELOW_KG
    return int(kg) * 1_000


def refill_tonnes() -> int:
    """How many whole tonnes a refill retires into the pool (at least what the sale needs)."""
    tonnes = current_app.config.get("POOL_REFILL_TONNES", DEFAULT_REFILL_TONNES) \
        if has_app_context() else DEFAULT_REFILL_TONNES
    return max(1, int(tonnes))


# -- the pool's stock, under the listing's lock ---------------------------------------------------


def stock(session: Session, listing_id: int) -> list[PoolRetirementStock]:
    """The listing's pool retirements with grams still free, oldest first."""
    return list(session.scalars(
        select(PoolRetirementStock)
        .where(PoolRetirementStock.listing_id == listing_id,
               PoolRetirementStock.taken < PoolRetirementStock.grams)
        .order_by(PoolRetirementStock.seq)))


def free_grams(session: Session, listing_id: int) -> int:
    return sum(s.free for s in stock(session, listing_id))


def lock_pools(session: Session, listing_ids: set[int]) -> None:
    """Lock the listings' pools, in listing order, creating their lock rows on first use. Every
    change to a pool happens under this lock; a refill then takes the listing's lock too."""
    if not listing_ids:
        return
    wanted = sorted(listing_ids)
    dialect = session.get_bind().dialect.name
    stmt = select(KgPool.listing_id).where(KgPool.listing_id.in_(wanted)).order_by(
        KgPool.listing_id)
    if dialect != "sqlite":
        stmt = stmt.with_for_update()
    if set(session.scalars(stmt)) == set(wanted):
        return
    table = table_of(KgPool)
    rows = [{"listing_id": i, "created_at": utcnow()} for i in wanted]
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.execute(pg_insert(table).values(rows).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        session.execute(sqlite_insert(table).values(rows).on_conflict_do_nothing())
    session.scalars(stmt).all()  # now every lock row exists: lock them, in order


def _give_back_released(session: Session, listing_id: int) -> None:
    """Released allocations' grams go back to their pool retirements (under the lock)."""
    released = list(session.scalars(select(KgAllocation).where(
        KgAllocation.listing_id == listing_id, KgAllocation.state == "released",
        KgAllocation.returned.is_(False)).execution_options(populate_existing=True)))
    if not released:
        return
    back: dict[int, int] = defaultdict(int)
    for allocation in released:
        for seq, grams in allocation.draw_pairs:
            back[seq] += grams
        allocation.returned = True
    for row in session.scalars(select(PoolRetirementStock).where(
            PoolRetirementStock.seq.in_(sorted(back)))):
        row.taken -= back[row.seq]
    session.flush()


def _refill(session: Session, listing: Listing, at_least: int, wanted: int) -> int:
    """Retire whole tonnes of the listing's project into its pool: ``wanted`` if that many are
    for sale, never fewer than ``at_least`` (else OutOfStockError). Returns the tonnes."""
    from .checkout import OutOfStockError, for_sale_by_batch, inventory_account

    for_sale = for_sale_by_batch(session)
    batches = list(session.scalars(select(Batch).where(Batch.project_id == listing.project_id)
                                   .order_by(Batch.vintage_start, Batch.id)))
    available = sum(for_sale.get(b.id, 0) for b in batches)
    if available < at_least:
        raise OutOfStockError(
            f"Only {format_mass(free_grams(session, listing.id) + available * GRAMS_PER_TONNE)} "
            f"of {listing.project.name} are left for sale in kilograms.")
    left = min(wanted, available)
    retired = 0
    inventory = inventory_account(session)
    for batch in batches:
        take = min(left, for_sale.get(batch.id, 0))
        if not take:
            continue
        receipt = operations.pool_retire(session, account_id=inventory.id,
                                         project_id=listing.project_id, quantity=take,
                                         batch_id=batch.id)
        session.add(PoolRetirementStock(seq=receipt.seq, listing_id=listing.id,
                                        grams=take * GRAMS_PER_TONNE, taken=0))
        left -= take
        retired += take
        if not left:
            break
    session.flush()
    return retired


def refill(session: Session, listing: Listing, tonnes: int) -> int:
    """Retire ``tonnes`` whole tonnes into the listing's pool now (an operator's top-up), under
    the pool's and the listing's locks; OutOfStockError if fewer are for sale."""
    from .checkout import lock_listings

    lock_pools(session, {listing.id})
    lock_listings(session, {listing.id})
    return _refill(session, listing, tonnes, tonnes)


def _take(session: Session, listing: Listing, amounts: Sequence[int]
          ) -> list[list[tuple[int, int]]]:
    """Take each of ``amounts`` grams from the pool, oldest pool retirement first, refilling it
    first if it would fall below the threshold; the draws of each amount. The caller holds
    the pool's lock (:func:`lock_pools`)."""
    grams = sum(amounts)
    _give_back_released(session, listing.id)
    rows = stock(session, listing.id)
    free = sum(r.free for r in rows)
    if free - grams < refill_below():
        short = max(0, grams - free)
        at_least = -(-short // GRAMS_PER_TONNE)
        wanted = max(at_least, refill_tonnes(),
                     -(-(grams + refill_below() - free) // GRAMS_PER_TONNE))
        from .checkout import OutOfStockError, lock_listings

        lock_listings(session, {listing.id})  # after the pool's lock, as everywhere
        try:
            _refill(session, listing, at_least, wanted)
        except OutOfStockError:
            if at_least:
                raise
        else:
            rows = stock(session, listing.id)
    taken: list[list[tuple[int, int]]] = []
    queue = iter(rows)
    row = next(queue, None)
    for amount in amounts:
        draws: list[tuple[int, int]] = []
        left = amount
        while left:
            assert row is not None, "the refill left the pool short"
            take = min(left, row.free)
            if take:
                row.taken += take
                draws.append((row.seq, take))
                left -= take
            if not row.free:
                row = next(queue, None)
        taken.append(draws)
    session.flush()
    return taken


def reserve(session: Session, order: Order,
            lines: Sequence[tuple[OrderLine, Listing, int | None]]) -> list[str]:
    """Hold the grams of an order's lines in grams, each from its listing's pool (the caller
    holds the pools' locks, as ``checkout.place_order`` takes them); their references."""
    by_listing: dict[int, list[tuple[OrderLine, Listing, int]]] = defaultdict(list)
    for line, listing, grams in lines:
        if grams:
            by_listing[listing.id].append((line, listing, grams))
    rows = []
    now = utcnow()
    for _, items in sorted(by_listing.items()):  # refills lock listings in id order
        draws = _take(session, items[0][1], [grams for _, _, grams in items])
        for (line, listing, grams), drawn in zip(items, draws, strict=True):
            rows.append({"reference": new_reference(), "order_id": order.id,
                         "line_id": line.id, "listing_id": listing.id, "grams": grams,
                         "draws": format_draws(drawn), "state": "reserved", "returned": False,
                         "created_at": now})
    if rows:  # one statement for the order's lines (an order may hold many parcels)
        session.execute(insert(table_of(KgAllocation)), rows)
    return [str(row["reference"]) for row in rows]


def new_reference() -> str:
    return "kg_" + secrets.token_hex(8)


def allocations_of(session: Session, order_id: int) -> list[KgAllocation]:
    return list(session.scalars(select(KgAllocation).where(KgAllocation.order_id == order_id)
                                .order_by(KgAllocation.id)
                                .execution_options(populate_existing=True)))


def release(session: Session, order: Order) -> None:
    """The order lapsed or failed: its reserved grams are released (given back to the pool
    the next time it is touched under its pool's lock)."""
    table = table_of(KgAllocation)
    session.execute(update(table).where(table.c.order_id == order.id,
                                        table.c.state == "reserved").values(state="released"))


def fulfil(session: Session, order: Order) -> bool:
    """The order is paid: its grams are allocated, waiting to be sealed into the ledger.

    An allocation released meanwhile is taken again if the pool (with a refill) still has the
    grams; False if not (the order is then paid with a refund due), and then nothing changed.
    The caller holds the order's lock and, when the order lapsed, its pools' locks
    (``checkout.fulfil`` takes them before any listing's, as everywhere)."""
    from .checkout import CheckoutError

    released = select(KgAllocation.listing_id).where(KgAllocation.order_id == order.id,
                                                     KgAllocation.state == "released")
    listings = set(session.scalars(released))
    if listings:
        lock_pools(session, listings)
        # Read them again under the pools' locks: a sale holding one may just have given
        # their grams back to the pool (``returned``).
        again = list(session.scalars(
            select(KgAllocation).where(KgAllocation.order_id == order.id,
                                       KgAllocation.state == "released")
            .order_by(KgAllocation.id).execution_options(populate_existing=True)))
        try:
            with session.begin_nested():  # all of them, or none
                for allocation in again:
                    if allocation.returned:
                        listing = session.get(Listing, allocation.listing_id)
                        assert listing is not None
                        [drawn] = _take(session, listing, [allocation.grams])
                        allocation.draws = format_draws(drawn)
                        allocation.returned = False
                    allocation.state = "reserved"
        except CheckoutError:
            return False
    table = table_of(KgAllocation)
    session.execute(update(table).where(table.c.order_id == order.id,
                                        table.c.state == "reserved")
                    .values(state="allocated", allocated_at=utcnow()))
    return True


# -- sealing: allocated grams into the ledger, many at a time ------------------------------------


def seal(session: Session, limit: int = MAX_ALLOCATIONS) -> int:
    """Write up to ``limit`` allocated allocations, oldest first, as one ``allocate`` entry, in
    the caller's transaction. Returns how many."""
    table = table_of(KgAllocation)
    orders = table_of(Order)
    stmt = (select(table.c.id, table.c.grams, table.c.draws, orders.c.beneficiary,
                   orders.c.purpose, orders.c.note, orders.c.country, orders.c.period_start,
                   orders.c.period_end)
            .join(orders, orders.c.id == table.c.order_id)
            .where(table.c.state == "allocated").order_by(table.c.id).limit(limit))
    if session.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update(of=table, skip_locked=True)
    waiting = _sealable(session, session.execute(stmt).all())
    if not waiting:
        return 0
    requests = [AllocationRequest(
        grams=row.grams, draws=tuple(parse_draws(row.draws)), beneficiary=row.beneficiary,
        purpose=row.purpose, note=row.note, country=row.country,
        period_start=row.period_start, period_end=row.period_end) for row in waiting]
    receipt = operations.allocate(session, requests)
    session.execute(
        update(table).where(table.c.id == bindparam("allocation"))
        .values(seq=receipt.seq, idx=bindparam("position"), state="sealed",
                sealed_at=utcnow()),
        [{"allocation": row.id, "position": index} for index, row in enumerate(waiting)])
    from . import events

    events.record(session, events.KilogramsRetired(tuple(row.id for row in waiting)))
    return len(waiting)


def _sealable(session: Session, rows: Sequence[Any]) -> list[Any]:
    """The allocations of ``rows`` the ledger will take, oldest first: one whose draws would
    give more than a pool retirement holds (which the pool's lock makes impossible, unless a
    table was changed by hand) is left waiting and named in the log, so that it never holds
    up everyone else's."""
    import logging

    from sqlalchemy import func

    from ledger.schema import AllocationDraw

    seqs = sorted({seq for row in rows for seq, _ in parse_draws(row.draws)})
    if not seqs:
        return []
    capacity = {seq: int(quantity) * GRAMS_PER_TONNE for seq, quantity in session.execute(
        select(PoolRetirement.seq, PoolRetirement.quantity)
        .where(PoolRetirement.seq.in_(seqs))).all()}
    used = {seq: int(total or 0) for seq, total in session.execute(
        select(AllocationDraw.pool_seq, func.sum(AllocationDraw.grams))
        .where(AllocationDraw.pool_seq.in_(seqs)).group_by(AllocationDraw.pool_seq)).all()}
    taken: list[Any] = []
    for row in rows:
        draws = parse_draws(row.draws)
        if all(seq in capacity and used.get(seq, 0) + grams <= capacity[seq]
               for seq, grams in draws):
            for seq, grams in draws:
                used[seq] = used.get(seq, 0) + grams
            taken.append(row)
        else:
            logging.getLogger(__name__).error(
                "kilogram allocation %s draws %s, more than its pool retirements hold: left "
                "waiting for an operator", row.id, row.draws)
    return taken


_SQLITE_SEALER = threading.Lock()


def _try_lock(session: Session) -> bool:
    """Become the one sealer, or learn that someone else is (PostgreSQL: a transaction-scoped
    advisory lock, one per mode's schema; SQLite: one writer per process)."""
    if session.get_bind().dialect.name == "sqlite":
        return True  # the caller holds _SQLITE_SEALER
    key = session.execute(text("SELECT hashtext('selva-seal:' || current_schema())")).scalar_one()
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"),
                                {"key": key}).scalar_one())


def _waiting(session: Session) -> bool:
    with session.begin():
        return session.scalar(select(KgAllocation.id).where(KgAllocation.state == "allocated")
                              .limit(1)) is not None


def seal_seconds() -> float:
    """How long an allocation may wait to be sealed with others (``POOL_SEAL_SECONDS``)."""
    if not has_app_context():
        return DEFAULT_SEAL_SECONDS
    if current_app.config.get("DATABASE_BIND") is not None:
        return 0.0  # one shared connection (tests): no sealer thread can share it
    return max(0.0, float(current_app.config.get("POOL_SEAL_SECONDS", DEFAULT_SEAL_SECONDS)))


def _due(session: Session) -> bool | None:
    """Whether the allocations waiting make a batch now: a full one, or one whose oldest has
    waited ``seal_seconds()``. None when nothing waits."""
    from sqlalchemy import func

    with session.begin():
        oldest, waiting = session.execute(
            select(func.min(KgAllocation.allocated_at), func.count())
            .where(KgAllocation.state == "allocated")).one()
    if not waiting:
        return None
    wait = seal_seconds()
    if wait == 0 or waiting >= MAX_ALLOCATIONS or oldest is None:
        return True
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.UTC)
    return bool(utcnow() - oldest >= dt.timedelta(seconds=wait))


def seal_due(session: Session, *, force: bool = False) -> int:
    """Seal the allocations waiting if they make a batch (or ``force``), unless someone else
    is sealing; call it outside any transaction, after committing an allocation. Whatever is
    left waiting is sealed by this process's sealer within ``seal_seconds()``.

    One caller at a time seals, taking every allocation waiting. A caller who finds the
    sealer busy returns at once: the sealer looks again after it lets go, and it lets go only
    after such a caller committed its allocation, so nothing is left waiting.
    """
    due = _due(session)
    if due is None:
        return 0
    if not due and not force:
        _sealer_for_this_process()
        return 0
    if force:
        return _seal_all(session)
    try:
        return _seal_all(session)
    except Exception:  # noqa: BLE001  (the sale is committed: its answer must not fail)
        import logging

        if session.in_transaction():
            session.rollback()
        logging.getLogger(__name__).exception("sealing kilogram allocations failed; they "
                                              "wait, and the sealer tries again")
        _sealer_for_this_process()
        return 0


def _seal_all(session: Session) -> int:
    sealed = 0
    sqlite = session.get_bind().dialect.name == "sqlite"
    while True:
        if sqlite and not _SQLITE_SEALER.acquire(blocking=False):
            return sealed
        try:
            with session.begin():
                if not _try_lock(session):
                    return sealed
                now = seal(session)
        finally:
            if sqlite:
                _SQLITE_SEALER.release()
        sealed += now
        if not _waiting(session):
            return sealed
        if not now:
            # Only allocations that came in after this round looked, or ones the ledger
            # would refuse: the sealer thread takes it from here (no endless loop).
            if has_app_context():
                _sealer_for_this_process()
            return sealed


_SEALERS: dict[int, threading.Thread] = {}
_SEALERS_LOCK = threading.Lock()
_STOP = threading.Event()
SEALER_IDLE_EXIT = 30.0
"""A sealer thread stops after this many seconds with nothing to seal (it starts again when
an allocation waits)."""


def _sealer_for_this_process() -> None:
    """Make sure a thread of this process seals what waits, in this mode, within
    ``seal_seconds()``: so the last allocations of a burst never wait for the next sale."""
    from .database import db

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    mode = db.mode()
    key = hash((id(app), mode))
    with _SEALERS_LOCK:
        thread = _SEALERS.get(key)
        if thread is not None and thread.is_alive():
            return
        thread = threading.Thread(target=_sealer, args=(app, mode, key), daemon=True,
                                  name=f"selva-sealer-{mode}")
        _SEALERS[key] = thread
        thread.start()


def stop_sealers(timeout: float = 5.0) -> None:
    """Stop this process's sealer threads (before its engines are disposed, at shutdown and
    between tests); the next allocation that waits starts one again."""
    with _SEALERS_LOCK:
        threads = list(_SEALERS.values())
    if not threads:
        return
    _STOP.set()
    try:
        for thread in threads:
            thread.join(timeout)
    finally:
        _STOP.clear()


def _sealer(app: Any, mode: str, key: int) -> None:
    import logging
    import time

    from .database import db

    me = threading.current_thread()
    try:
        with app.app_context(), db.use(mode):
            pause = max(0.05, seal_seconds() / 2)
            idle_since = time.monotonic()
            while not _STOP.wait(pause):
                due = _due(db.session)
                if due is None:
                    if time.monotonic() - idle_since < SEALER_IDLE_EXIT:
                        continue
                    # Leave only if nothing came in, checked under the lock a seller takes
                    # to see whether a sealer runs (it has committed its allocation first).
                    with _SEALERS_LOCK:
                        if _due(db.session) is None:
                            if _SEALERS.get(key) is me:
                                del _SEALERS[key]
                            return
                    continue
                idle_since = time.monotonic()
                if due:
                    _seal_all(db.session)
    except Exception:  # noqa: BLE001  (a daemon thread: say why it stopped, never raise)
        logging.getLogger(__name__).exception("the kilogram sealer stopped; the next sale or "
                                              "'flask pool seal' seals what waits")
    finally:
        with _SEALERS_LOCK:
            if _SEALERS.get(key) is me:
                del _SEALERS[key]


# -- reading pools --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolSummary:
    listing: Listing
    tonnes: int
    allocated: int
    reserved: int
    retirements: int

    @property
    def free(self) -> int:
        return self.tonnes * GRAMS_PER_TONNE - self.allocated - self.reserved


def pool_summary(session: Session, listing: Listing) -> PoolSummary:
    """Tonnes retired into the listing's pool, grams allocated (sealed in the ledger, or paid
    and about to be), grams reserved for unpaid orders, and grams free."""
    from sqlalchemy import func

    from ledger.schema import AllocationDraw

    tonnes, count = session.execute(
        select(func.coalesce(func.sum(PoolRetirement.quantity), 0), func.count())
        .where(PoolRetirement.project_id == listing.project_id)).one()
    sealed = session.scalar(
        select(func.coalesce(func.sum(AllocationDraw.grams), 0))
        .join(PoolRetirement, PoolRetirement.seq == AllocationDraw.pool_seq)
        .where(PoolRetirement.project_id == listing.project_id))
    by_state = dict(session.execute(
        select(KgAllocation.state, func.sum(KgAllocation.grams))
        .where(KgAllocation.listing_id == listing.id,
               KgAllocation.state.in_(("reserved", "allocated")))
        .group_by(KgAllocation.state)).all())
    return PoolSummary(listing, int(tonnes), int(sealed or 0)
                       + int(by_state.get("allocated") or 0),
                       int(by_state.get("reserved") or 0), int(count))
