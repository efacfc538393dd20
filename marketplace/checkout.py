"""Orders from cart to ledger: price on the server, reserve inventory, fulfil on payment.

Reservations make overselling impossible: an order reserves tonnes of specific batches while
holding a lock on the listings it buys from (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` serialises writers), and what is for sale is the inventory account's
ledger balance less the active reservations. Fulfilment happens only when the payment
provider says the money arrived, once per order, whatever the provider repeats or reorders.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session

from ledger import operations, queries
from ledger.rules import (
    parse_date,
    validate_country,
    validate_period,
    validate_purpose,
    validate_quantity,
    validate_text,
)
from ledger.schema import Account, Batch, Block, utcnow

from . import events, kilograms, order_states
from .accounts import account_of
from .order_states import transition
from .models import Listing, Order, OrderLine, Organisation, Reservation, User

INVENTORY = "marketplace-inventory"
RESERVATION_TTL = dt.timedelta(minutes=30)
GRACE = dt.timedelta(minutes=10)
"""How long after a checkout expires its reservation still holds: a payment completed just
before the deadline can be announced a little after it."""
MAX_TONNES_PER_LINE = 1_000_000


class CheckoutError(Exception):
    """A purchase cannot go ahead; the message is for the buyer."""


class OutOfStockError(CheckoutError):
    """Not enough tonnes are left for sale."""


class RefundError(CheckoutError):
    """The order cannot be refunded (e.g. its credits were retired, which is final)."""


@dataclass(frozen=True)
class CartLine:
    listing_id: int
    quantity: int
    batch_id: int | None = None  # None: oldest vintage first
    grams: int | None = None
    """Set for a line in grams, from the listing's kilogram pool (``quantity`` is then 0)."""


@dataclass(frozen=True)
class CheckoutDetails:
    beneficiary: str
    purpose: str
    country: str
    period_start: dt.date
    period_end: dt.date
    action: str = "retire"
    note: str = ""

    def validated(self) -> CheckoutDetails:
        """Check the retirement details with the ledger's own rules, before anything is reserved."""
        note = validate_text(self.note, "note", required=False)
        beneficiary = validate_text(self.beneficiary, "beneficiary", required=True)
        if len(beneficiary) > 200:
            raise CheckoutError("The beneficiary's name is longer than 200 characters.")
        validate_purpose(self.purpose, note)
        validate_country(self.country)
        start = parse_date(self.period_start, "period start")
        end = parse_date(self.period_end, "period end")
        validate_period(start, end)
        if self.action not in ("retire", "hold"):
            raise CheckoutError("Choose to retire the credits now or to hold them.")
        return CheckoutDetails(beneficiary, self.purpose, self.country, start, end, self.action, note)


@dataclass(frozen=True)
class PricedLine:
    listing: Listing
    batch: Batch | None
    quantity: int
    grams: int | None = None

    @property
    def amount_minor(self) -> int:
        if self.grams:
            return kilograms.price_minor(self.listing.price_minor, self.grams)
        return self.listing.price_minor * self.quantity


def inventory_account(session: Session) -> Account:
    account = session.scalars(select(Account).where(Account.name == INVENTORY)).one_or_none()
    if account is None:
        account = operations.open_account(session, INVENTORY, "inventory")
    return account


def reserved_by_batch(session: Session, now: dt.datetime | None = None) -> dict[int, int]:
    """Tonnes held by active reservations of orders that have not lapsed, per batch."""
    now = now or utcnow()
    rows = session.execute(
        select(Reservation.batch_id, func.sum(Reservation.quantity))
        .join(Order, Order.id == Reservation.order_id)
        .where(Reservation.state == "active", Order.expires_at > now - GRACE)
        .group_by(Reservation.batch_id)
    ).all()
    return {batch_id: int(total) for batch_id, total in rows}


def for_sale_by_batch(session: Session, now: dt.datetime | None = None) -> dict[int, int]:
    """Tonnes a buyer can reserve now, per batch: the inventory's ledger balance less
    reservations."""
    held = queries.available_by_batch(session, inventory_account(session).id)
    reserved = reserved_by_batch(session, now)
    return {batch: max(0, total - reserved.get(batch, 0)) for batch, total in held.items()}


def price_lines(session: Session, lines: Sequence[CartLine]) -> list[PricedLine]:
    """Price cart lines from the listings in the database (never from the client)."""
    priced: list[PricedLine] = []
    for line in lines:
        if line.grams is not None:
            try:
                kilograms.grams_of(line.grams, "g")
            except kilograms.MassError as exc:
                raise CheckoutError(str(exc)) from None
            if line.batch_id is not None:
                raise CheckoutError("Kilograms come from the project's pool, not from a chosen "
                                    "vintage.")
        else:
            try:
                validate_quantity(line.quantity)
            except Exception:
                raise CheckoutError("Quantities are whole tonnes, at least 1.") from None
            if line.quantity > MAX_TONNES_PER_LINE:
                raise CheckoutError(f"At most {MAX_TONNES_PER_LINE:,} t per line; contact us "
                                    "for more.")
        listing = session.get(Listing, line.listing_id)
        if listing is None or listing.status != "listed":
            raise CheckoutError("A project in your cart is no longer on sale.")
        if line.grams is not None:
            least = kilograms.smallest_chargeable(listing.price_minor)
            if line.grams < least:
                raise CheckoutError(f"At this price the smallest amount is "
                                    f"{kilograms.format_mass(least)}.")
            priced.append(PricedLine(listing, None, 0, line.grams))
            continue
        batch = None
        if line.batch_id is not None:
            batch = session.get(Batch, line.batch_id)
            if batch is None or batch.project_id != listing.project_id:
                raise CheckoutError("That vintage does not belong to this project.")
        priced.append(PricedLine(listing, batch, line.quantity))
    if not priced:
        raise CheckoutError("Your cart is empty.")
    if sum(p.grams or 0 for p in priced) > kilograms.MAX_GRAMS_PER_LINE:
        raise CheckoutError(f"At most {kilograms.format_mass(kilograms.MAX_GRAMS_PER_LINE)} "
                            "can be bought in kilograms in one order; buy whole tonnes for more.")
    if len({p.listing.currency for p in priced}) > 1:
        raise CheckoutError("Your cart mixes currencies: check out one currency at a time.")
    return priced


def lock_listings(session: Session, listing_ids: set[int]) -> None:
    """Lock listing rows, in id order, as reservation and fulfilment do (PostgreSQL)."""
    stmt = select(Listing.id).where(Listing.id.in_(sorted(listing_ids))).order_by(Listing.id)
    if session.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    session.execute(stmt).all()


def _allocate(session: Session, line: PricedLine, for_sale: dict[int, int]) -> list[tuple[int, int]]:
    """Which batches a line takes its tonnes from: the one chosen, or oldest vintage first."""
    if line.batch is not None:
        batches = [line.batch]
    else:
        batches = list(session.scalars(
            select(Batch).where(Batch.project_id == line.listing.project_id)
            .order_by(Batch.vintage_start, Batch.id)
        ))
    allocation: list[tuple[int, int]] = []
    needed = line.quantity
    for batch in batches:
        take = min(needed, for_sale.get(batch.id, 0))
        if take:
            allocation.append((batch.id, take))
            for_sale[batch.id] -= take
            needed -= take
        if not needed:
            return allocation
    left = line.quantity - needed
    where = f"vintage {line.batch.vintage_start.year}" if line.batch else line.listing.project.name
    raise OutOfStockError(f"Only {left:,} t of {where} are left for sale; you asked for "
                          f"{line.quantity:,} t.")


def _new_reference() -> str:
    return "SLV-" + secrets.token_hex(5).upper()


def place_order(
    session: Session,
    *,
    user: User,
    lines: Sequence[CartLine],
    details: CheckoutDetails,
    gateway: str,
    organisation: Organisation | None = None,
    ttl: dt.timedelta = RESERVATION_TTL,
    quote: bool = False,
) -> Order:
    """Create an order and reserve its tonnes (and the grams of its lines in kilograms, from
    their listings' pools), in the caller's transaction. ``quote``: an API quote, whose action
    is chosen when it is ordered.

    Raises CheckoutError (OutOfStockError when tonnes run short) having reserved nothing.
    """
    details = details.validated()
    expire_lapsed(session)
    if organisation is not None:
        if not any(m.organisation_id == organisation.id for m in user.memberships):
            raise CheckoutError("You are not a member of that organisation.")
        account_id = account_of(session, organisation).id
    else:
        account_id = account_of(session, user).id
    priced = price_lines(session, lines)
    if details.action != "retire" and any(p.grams for p in priced) and not quote:
        raise CheckoutError("Kilograms are retired at once in the beneficiary's name; they "
                            "cannot be held.")
    # Locks, always in this order: kilogram pools, then listings (a refill takes its listing's
    # lock after its pool's), then the chain head.
    gram_listings = {p.listing.id for p in priced if p.grams}
    kilograms.lock_pools(session, gram_listings)
    tonne_listings = {p.listing.id for p in priced if not p.grams}
    allocations: list[list[tuple[int, int]]] = [[] for _ in priced]
    if tonne_listings:
        # All the order's listings, in id order: a refill for a line in grams then takes a
        # lock already held, never one out of order.
        lock_listings(session, tonne_listings | gram_listings)
        for_sale = for_sale_by_batch(session)
        allocations = [[] if p.grams else _allocate(session, p, for_sale) for p in priced]

    now = utcnow()
    order = Order(
        reference=_new_reference(), user_id=user.id,
        organisation_id=organisation.id if organisation else None,
        ledger_account_id=account_id, status="pending", action=details.action,
        currency=priced[0].listing.currency, total_minor=sum(p.amount_minor for p in priced),
        beneficiary=details.beneficiary, purpose=details.purpose, note=details.note,
        country=details.country, period_start=details.period_start,
        period_end=details.period_end, gateway=gateway, expires_at=now + ttl,
        created_at=now,
    )
    session.add(order)
    made = [OrderLine(listing_id=p.listing.id, batch_id=p.batch.id if p.batch else None,
                      quantity=p.quantity, grams=p.grams,
                      unit_price_minor=p.listing.price_minor, amount_minor=p.amount_minor)
            for p in priced]
    order.lines.extend(made)
    session.flush()
    for line, allocation in zip(made, allocations, strict=True):
        for batch_id, quantity in allocation:
            order.reservations.append(Reservation(line_id=line.id, batch_id=batch_id,
                                                  quantity=quantity))
    kilograms.reserve(session, order, [(line, p.listing, p.grams)
                                       for line, p in zip(made, priced, strict=True) if p.grams])
    session.flush()
    return order


def attach_checkout(order: Order, session_id: str, url: str) -> None:
    """Record the payment provider's checkout session; the order now awaits payment."""
    order.checkout_session_id = session_id
    order.checkout_url = url
    if order.status == "pending":
        transition(order, "awaiting_payment", "checkout_started")


def locked_order(session: Session, reference: str) -> Order | None:
    """The order with this reference, its row locked for the rest of the transaction."""
    stmt = select(Order).where(Order.reference == reference)
    if session.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    return session.scalars(stmt.execution_options(populate_existing=True)).one_or_none()


def _lapsed(order: Order, now: dt.datetime) -> bool:
    expires_at = order.expires_at if order.expires_at.tzinfo else order.expires_at.replace(tzinfo=dt.UTC)
    return order.status in order_states.OPEN and expires_at <= now - GRACE


def fulfil(session: Session, reference: str, *, amount_minor: int, currency: str,
           payment_reference: str | None = None) -> str:
    """Payment arrived: move the reserved tonnes to the buyer and retire them if asked.

    Idempotent: a fulfilled order stays fulfilled. Amount and currency must match the order.
    A payment for an order whose reservation no longer holds (lapsed, expired, failed,
    cancelled) reserves the tonnes again if they are still for sale, and otherwise leaves the
    order ``paid`` with a refund due: declared transitions, never an accident. Returns what
    happened, for the payment event's log.
    """
    order = locked_order(session, reference)
    if order is None:
        return "no such order: ignored"
    if order.status in ("fulfilled", "refund_pending", "refunded"):
        return f"already {order.status}: nothing to do"
    # The same locks place_order takes: while they are held no one counts stock, so nobody
    # can read the inventory before this transfer and the reservations after it. (Lines in
    # grams were taken from their pools when the order was placed: nothing to lock for them.)
    if order.grams and (order.status in order_states.LAPSED or order.status == "paid"
                        or _lapsed(order, utcnow())):
        # Grams released by the lapse may have to be taken again: the pools' locks come
        # before any listing's.
        kilograms.lock_pools(session, {line.listing_id for line in order.lines if line.grams})
    tonne_listings = {line.listing_id for line in order.lines if not line.grams}
    if tonne_listings:
        lock_listings(session, tonne_listings)
    if amount_minor != order.total_minor or currency.upper() != order.currency:
        order.failure = (f"paid {amount_minor} {currency.upper()}, expected "
                         f"{order.total_minor} {order.currency}")
        if order.status in order_states.OPEN:
            _release(order, "failed", "amount_mismatch")
        return f"amount mismatch: {order.failure}; refund due"
    order.paid_at = order.paid_at or utcnow()
    order.payment_reference = payment_reference or order.payment_reference
    event = "payment_succeeded"
    if _lapsed(order, utcnow()):
        _release(order, "expired", "lapsed")
    if order.status in order_states.LAPSED or order.status == "paid":
        # Its reservation no longer holds: the tonnes may have been sold to someone else.
        if not _reserve_again(session, order):
            if order.status != "paid":
                transition(order, "paid", "paid_unfulfillable")
            order.failure = "paid after the reservation lapsed and the tonnes were sold: refund due"
            return order.failure
        if order.status in order_states.LAPSED:
            event = "paid_after_lapse"
    if not kilograms.fulfil(session, order):
        for reservation in order.reservations:
            if reservation.state == "active":
                reservation.state = "released"
        if order.status != "paid":
            transition(order, "paid", "paid_unfulfillable")
        order.failure = "paid after the reservation lapsed and the kilograms were sold: refund due"
        return order.failure
    inventory = inventory_account(session)
    for reservation in order.reservations:
        if reservation.state != "active":
            continue
        moved = operations.transfer(session, from_account=inventory.id,
                                    to_account=order.ledger_account_id,
                                    quantity=reservation.quantity, batch_id=reservation.batch_id)
        reservation.transfer_seq = moved.seq
        if order.action == "retire":
            bought = [b.id for b in moved.created if b.account == order.ledger_account_id]
            retired = operations.retire(
                session, account_id=order.ledger_account_id, quantity=reservation.quantity,
                beneficiary=order.beneficiary, purpose=order.purpose, note=order.note,
                country=order.country, period_start=order.period_start,
                period_end=order.period_end, block_ids=bought,
            )
            reservation.retire_seq = retired.seq
        reservation.state = "consumed"
    transition(order, "fulfilled", event)
    order.failure = None
    order.fulfilled_at = utcnow()
    session.flush()
    events.record(session, events.OrderFulfilled(order.id))
    for reservation in order.reservations:
        if reservation.retire_seq is not None:
            events.record(session, events.RetirementCreated(reservation.retire_seq))
    from . import mail

    mail.order_receipt(session, order)  # queued with the fulfilment, sent by the worker
    return f"fulfilled: {mass_label(order)} {'retired' if order.action == 'retire' else 'held'}"


def mass_label(order: Order) -> str:
    """What an order buys, for people: '12 t', '4,970 kg', or '3 t and 250 g'."""
    parts = []
    if order.quantity:
        parts.append(f"{order.quantity:,} t")
    if order.grams:
        parts.append(kilograms.format_mass(order.grams))
    return " and ".join(parts) or "nothing"


def _reserve_again(session: Session, order: Order) -> bool:
    if not order.reservations:
        return True
    lock_listings(session, {line.listing_id for line in order.lines if not line.grams})
    for_sale = for_sale_by_batch(session)
    wanted: dict[int, int] = defaultdict(int)
    for reservation in order.reservations:
        wanted[reservation.batch_id] += reservation.quantity
    if any(for_sale.get(batch, 0) < quantity for batch, quantity in wanted.items()):
        return False
    for reservation in order.reservations:
        reservation.state = "active"
    return True


def _release(order: Order, status: str, event: str) -> None:
    for reservation in order.reservations:
        if reservation.state == "active":
            reservation.state = "released"
    transition(order, status, event)
    session = object_session(order)
    if session is not None and order.grams:
        session.flush()  # the order's row first, as fulfil locks it before its allocations
        kilograms.release(session, order)


RELEASE_EVENTS = {"expired": "checkout_expired", "failed": "payment_failed"}


def release(session: Session, reference: str, status: str) -> str:
    """The checkout expired or the payment failed: give the tonnes back to the shelf.

    Only an order still waiting for payment moves; a paid or fulfilled order never goes back.
    """
    order = locked_order(session, reference)
    if order is None:
        return "no such order: ignored"
    if order.status not in order_states.OPEN:
        return f"order is {order.status}: not released"
    _release(order, status, RELEASE_EVENTS[status])
    session.flush()
    return f"{status}: reservation released"


def cancel_by_buyer(session: Session, order: Order) -> None:
    if order.status in order_states.OPEN:
        _release(order, "cancelled", "cancelled_by_buyer")


def request_refund(session: Session, reference: str) -> Order:
    """First half of a refund, in the caller's transaction: check the order may be refunded,
    give held credits back to the inventory through the ledger, and mark it
    ``refund_pending``. The caller commits, then asks the payment provider (no lock is held
    during that call), then records the outcome with :func:`complete_refund` or
    :func:`refund_failed`. Refused for retired credits (a retirement is final) and for credits
    the buyer has since moved or retired."""
    order = locked_order(session, reference)
    if order is None:
        raise RefundError("No such order.")
    if order.status == "refund_pending":
        return order  # asked again after a failure: try the provider again
    if order.status not in ("fulfilled", "paid"):
        raise RefundError(f"Only a fulfilled or paid order can be refunded; this one is "
                          f"{order.status}.")
    if order.status == "fulfilled" and order.action == "retire":
        raise RefundError("These credits were retired on the buyer's behalf. A retirement is "
                          "final and cannot be undone, so this order cannot be refunded.")
    inventory = inventory_account(session)
    for reservation in order.reservations:
        if reservation.transfer_seq is None:
            continue  # paid but never delivered: only the money goes back
        blocks = list(session.scalars(
            select(Block).where(Block.created_by == reservation.transfer_seq,
                                Block.account_id == order.ledger_account_id)
        ))
        if any(b.spent_by is not None for b in blocks):
            raise RefundError("Some of these credits have since been retired or moved by the "
                              "buyer, so the order cannot be refunded.")
        back = operations.transfer(session, from_account=order.ledger_account_id,
                                   to_account=inventory.id, quantity=reservation.quantity,
                                   block_ids=[b.id for b in blocks])
        reservation.refund_seq = back.seq
    transition(order, "refund_pending", "refund_requested")
    order.failure = None
    session.flush()
    return order


def complete_refund(session: Session, reference: str) -> str:
    """The payment provider refunded the money: the order is ``refunded``."""
    order = locked_order(session, reference)
    if order is None:
        raise RefundError("No such order.")
    if order.status == "refunded":
        return "already refunded"
    transition(order, "refunded", "refund_completed")
    order.failure = None
    order.refunded_at = utcnow()
    session.flush()
    return f"refunded: {order.quantity} t returned to inventory"


def refund_failed(session: Session, reference: str, error: str) -> None:
    """The provider refused or could not be reached: the order stays ``refund_pending`` with
    the error, for the operator to see and retry."""
    order = locked_order(session, reference)
    if order is not None and order.status == "refund_pending":
        order.failure = f"refund not made: {error}"[:300]
        session.flush()


def expire_lapsed(session: Session, now: dt.datetime | None = None, *,
                  skip_locked: bool = False) -> int:
    """Mark orders whose checkout lapsed without a word from the provider as expired.

    ``skip_locked`` (the worker's way, PostgreSQL): orders another transaction holds (a
    payment being handled, another worker) are left to it."""
    now = now or utcnow()
    stmt = select(Order).where(Order.status.in_(("pending", "awaiting_payment")),
                               Order.expires_at <= now - GRACE).order_by(Order.id)
    if skip_locked and session.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update(skip_locked=True)
    lapsed = list(session.scalars(stmt.execution_options(populate_existing=True)))
    for order in lapsed:
        _release(order, "expired", "lapsed")
    session.flush()
    return len(lapsed)
