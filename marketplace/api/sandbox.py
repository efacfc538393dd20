"""Test mode: what a ``sk_test_`` key does, without touching live inventory or the journal.

There is one ledger, and its journal is public, append-only and hash-chained: a test
retirement written there could never be taken back and would count in the registry's totals.
So test mode writes nothing to the ledger, to the storefront's orders or to its reservations.
It runs the same rules against a simulated world kept in the ``api_sandbox_*`` tables:

- *Prices and projects* are the live listings (read only).
- *Inventory* is simulated: the live tonnes for sale (read only) less the test quotes and
  unpaid test orders of every organisation, allocated oldest vintage first by the
  storefront's own allocator. A test order reserves there, and releases when it is paid (or
  lapses), so test mode never runs dry and never dents what is really for sale.
- *Payment* is the demo gateway's: a saved payment method always succeeds at once, and an
  invoice is paid with ``POST /api/v1/test_helpers/orders/{id}/pay``.
- *Holdings and retirements* are simulated too: credits held per batch, without serials; a
  retirement is checked like a real one and recorded only here, so it has no certificate.

Every object says ``livemode: false``. Webhooks for test events go to the organisation's
test-mode endpoints only.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.schema import Batch, Project, utcnow

from .. import catalogue, checkout
from ..checkout import CartLine, CheckoutError
from ..models.api import (
    ApiQuote,
    SandboxHolding,
    SandboxOrder,
    SandboxOrderLine,
    SandboxRetirement,
)
from . import projects, trading, webhooks
from .keys import Caller
from .pagination import Page, decode, page_of
from .problems import Problem, invalid_field

REFERENCE_PATTERN = r"SLV-TEST-[0-9A-F]{10}"
ACTIVE = ("quoted", "pending", "awaiting_payment")


def _reference() -> str:
    return "SLV-TEST-" + secrets.token_hex(5).upper()


def _pairs(text: str) -> list[tuple[int, int]]:
    return [(int(b), int(q)) for b, q in json.loads(text or "[]")]


def _effective(order: SandboxOrder, now: dt.datetime | None = None) -> str:
    """A test order that lapsed unpaid is expired (nothing needs to run to release it)."""
    now = now or utcnow()
    expires = projects.aware(order.expires_at)
    assert expires is not None
    if order.status in ACTIVE and now >= expires:
        return "expired"
    return order.status


def simulated_for_sale(session: Session, now: dt.datetime | None = None) -> dict[int, int]:
    """Live tonnes for sale per batch, less active test reservations."""
    now = now or utcnow()
    held: dict[int, int] = defaultdict(int)
    rows = session.execute(
        select(SandboxOrderLine.allocation)
        .join(SandboxOrder, SandboxOrder.id == SandboxOrderLine.order_id)
        .where(SandboxOrder.status.in_(ACTIVE), SandboxOrder.expires_at > now)
    ).scalars()
    for allocation in rows:
        for batch_id, quantity in _pairs(allocation):
            held[batch_id] += quantity
    live = catalogue.for_sale_now(session)
    return {batch: max(0, total - held.get(batch, 0)) for batch, total in live.items()}


def _lock(session: Session, caller: Caller) -> None:
    """Serialise test-mode writes of one organisation (PostgreSQL), as the storefront locks
    its listings: simulated stock and holdings are read, then written."""
    if session.get_bind().dialect.name != "sqlite":
        from ..models import Organisation

        session.execute(select(Organisation.id).where(Organisation.id == caller.organisation.id)
                        .with_for_update()).all()


def _new_order(session: Session, caller: Caller, lines: Sequence[CartLine], *, status: str,
               ttl: dt.timedelta, payment_method: str, key: str | None = None,
               request_hash: str | None = None) -> SandboxOrder:
    try:
        priced = checkout.price_lines(session, lines)
        stock = simulated_for_sale(session)
        allocations = [checkout._allocate(session, p, stock) for p in priced]
    except CheckoutError as exc:
        raise trading._checkout_problem(exc) from None
    now = utcnow()
    order = SandboxOrder(
        reference=_reference(), organisation_id=caller.organisation.id, status=status,
        action="hold", payment_method=payment_method, currency=priced[0].listing.currency,
        total_minor=sum(p.amount_minor for p in priced), expires_at=now + ttl, created_at=now,
        idempotency_key=key, request_hash=request_hash)
    for p, allocation in zip(priced, allocations, strict=True):
        order.lines.append(SandboxOrderLine(
            listing_id=p.listing.id, project_id=p.listing.project_id,
            batch_id=p.batch.id if p.batch else None, quantity=p.quantity,
            unit_price_minor=p.listing.price_minor, amount_minor=p.amount_minor,
            allocation=json.dumps(allocation)))
    session.add(order)
    session.flush()
    return order


# -- views --------------------------------------------------------------------------------------


def _lines(session: Session, order: SandboxOrder) -> list[dict[str, Any]]:
    lines = []
    for line in order.lines:
        project = session.get(Project, line.project_id)
        assert project is not None
        pairs = _pairs(line.allocation)
        lines.append({"project": projects.project_ref(project), "batch": line.batch_id,
                      "quantity": line.quantity, "unit_price_minor": line.unit_price_minor,
                      "amount_minor": line.amount_minor,
                      "allocation": trading._allocation(session, pairs)})
    return lines


def order_dict(session: Session, order: SandboxOrder) -> dict[str, Any]:
    retire = order.action == "retire"
    quote = session.scalar(select(ApiQuote.public_id).where(ApiQuote.sandbox_order_id == order.id))
    retirements = [{"id": r.public_id, "quantity": r.quantity, "certificate": None}
                   for r in session.scalars(select(SandboxRetirement).where(
                       SandboxRetirement.order_id == order.id).order_by(SandboxRetirement.id))]
    return {
        "id": order.reference, "object": "order", "livemode": False,
        "status": _effective(order), "action": order.action,
        "payment_method": order.payment_method, "currency": order.currency,
        "total_minor": order.total_minor, "quantity": sum(l.quantity for l in order.lines),
        "lines": _lines(session, order),
        "beneficiary": order.beneficiary if retire else None,
        "purpose": order.purpose if retire else None, "note": order.note if retire else None,
        "country": order.country if retire else None,
        "period_start": order.period_start if retire else None,
        "period_end": order.period_end if retire else None,
        "quote": quote, "created_at": projects.aware(order.created_at),
        "expires_at": projects.aware(order.expires_at),
        "paid_at": projects.aware(order.paid_at),
        "fulfilled_at": projects.aware(order.fulfilled_at), "failure": order.failure,
        "retirements": retirements,
    }


def quote_dict(session: Session, quote: ApiQuote) -> dict[str, Any]:
    order = session.get(SandboxOrder, quote.sandbox_order_id)
    assert order is not None
    return {
        "id": quote.public_id, "object": "quote", "livemode": False,
        "status": trading.quote_status(quote, order.status), "currency": order.currency,
        "total_minor": order.total_minor, "lines": _lines(session, order),
        "created_at": projects.aware(quote.created_at),
        "expires_at": projects.aware(quote.expires_at),
        "order": order.reference if quote.ordered_at is not None else None,
    }


def retirement_dict(session: Session, retirement: SandboxRetirement) -> dict[str, Any]:
    pairs = _pairs(retirement.allocation)
    batches = [session.get(Batch, b) for b, _ in pairs]
    refs = {b.project_id: projects.project_ref(b.project) for b in batches if b is not None}
    return {
        "id": retirement.public_id, "object": "retirement", "livemode": False, "seq": None,
        "hash": None, "quantity": retirement.quantity, "beneficiary": retirement.beneficiary,
        "purpose": retirement.purpose, "note": retirement.note, "country": retirement.country,
        "period_start": retirement.period_start, "period_end": retirement.period_end,
        "projects": list(refs.values()), "allocation": trading._allocation(session, pairs),
        "serials": [], "created_at": projects.aware(retirement.created_at), "certificate": None,
        "origin": None, "labels": [],
    }


# -- quotes and orders ------------------------------------------------------------------------


def create_quote(session: Session, caller: Caller, data: Mapping[str, Any]) -> ApiQuote:
    _lock(session, caller)
    line = projects.quote_line(session, data, lambda: simulated_for_sale(session))
    order = _new_order(session, caller, [line], status="quoted", ttl=trading.quote_ttl(),
                       payment_method="saved")
    quote = ApiQuote(public_id=trading.new_id("qt"), organisation_id=caller.organisation.id,
                     livemode=False, sandbox_order_id=order.id, created_at=order.created_at,
                     expires_at=order.expires_at)
    session.add(quote)
    session.flush()
    return quote


def find_quote(session: Session, caller: Caller, public_id: str) -> ApiQuote | None:
    return trading.find_quote(session, caller, public_id, livemode=False)


def idempotent_order(session: Session, caller: Caller, key: str | None,
                     request_hash: str) -> SandboxOrder | None:
    if key is None:
        return None
    order = session.scalars(select(SandboxOrder).where(
        SandboxOrder.organisation_id == caller.organisation.id,
        SandboxOrder.idempotency_key == key)).one_or_none()
    if order is not None and order.request_hash != request_hash:
        raise trading.idempotency_conflict()
    return order


def place_order(session: Session, caller: Caller, data: Mapping[str, Any], key: str | None,
                request_hash: str) -> SandboxOrder:
    """A test order: reserved in the simulated inventory and, with the saved payment method,
    paid and fulfilled at once."""
    _lock(session, caller)
    invoice = data["payment_method"] == "invoice"
    ttl = trading.invoice_ttl() if invoice else checkout.RESERVATION_TTL
    now = utcnow()
    if "quote" in data:
        quote = find_quote(session, caller, data["quote"])
        if quote is None:
            raise invalid_field("#/quote", "No such quote.")
        order = session.get(SandboxOrder, quote.sandbox_order_id)
        assert order is not None
        if quote.ordered_at is not None:
            raise Problem(409, "Quote already ordered", f"Quote {quote.public_id} was already "
                          f"ordered as {order.reference}.", slug="quote-used")
        if trading.quote_status(quote, order.status, now) != "open":
            raise Problem(409, "Quote expired", f"Quote {quote.public_id} expired; ask for a "
                          "new one.", slug="quote-expired")
        quote.ordered_at = now
        order.expires_at = now + ttl
        order.idempotency_key, order.request_hash = key, request_hash
        order.payment_method = data["payment_method"]
    else:
        lines = [projects.cart_line(session, line["project"], line["quantity"], line.get("batch"),
                                    f"#/lines/{i}") for i, line in enumerate(data["lines"])]
        order = _new_order(session, caller, lines, status="pending", ttl=ttl,
                           payment_method=data["payment_method"], key=key,
                           request_hash=request_hash)
    first = session.get(Project, order.lines[0].project_id)
    assert first is not None
    details = trading.details_from(data, caller.organisation, first.country)
    try:
        details = details.validated()
    except CheckoutError as exc:
        raise trading._checkout_problem(exc) from None
    order.action = data["action"]
    order.beneficiary, order.purpose, order.note = details.beneficiary, details.purpose, details.note
    order.country = details.country
    order.period_start, order.period_end = details.period_start, details.period_end
    order.status = "awaiting_payment" if invoice else "pending"
    session.flush()
    if not invoice:
        fulfil(session, order)
    return order


def fulfil(session: Session, order: SandboxOrder) -> None:
    """The (simulated) payment arrived: release the simulated reservation, and hold or retire
    the tonnes in the sandbox."""
    now = utcnow()
    order.status = "fulfilled"
    order.paid_at = order.fulfilled_at = now
    allocation: list[tuple[int, int]] = [pair for line in order.lines
                                         for pair in _pairs(line.allocation)]
    retirement = None
    if order.action == "hold":
        for batch_id, quantity in allocation:
            _add_holding(session, order.organisation_id, batch_id, quantity)
    else:
        retirement = SandboxRetirement(
            public_id=trading.new_id("ret_test"), organisation_id=order.organisation_id,
            quantity=sum(q for _, q in allocation), allocation=json.dumps(allocation),
            beneficiary=order.beneficiary, purpose=order.purpose, note=order.note,
            country=order.country, period_start=order.period_start,
            period_end=order.period_end, order_id=order.id, created_at=now)
        session.add(retirement)
    session.flush()
    webhooks.emit(session, order.organisation_id, "order.fulfilled", False,
                  order_dict(session, order))
    if retirement is not None:
        webhooks.emit(session, order.organisation_id, "retirement.created", False,
                      retirement_dict(session, retirement))


def pay(session: Session, caller: Caller, reference: str) -> SandboxOrder | None:
    """Test helper: the invoice of a test order was paid."""
    _lock(session, caller)
    order = get_order(session, caller, reference)
    if order is None:
        return None
    status = _effective(order)
    if status != "awaiting_payment":
        raise Problem(409, "Nothing to pay", f"The order is {status}, not awaiting payment.",
                      slug="not-payable")
    fulfil(session, order)
    return order


def _add_holding(session: Session, organisation_id: int, batch_id: int, quantity: int) -> None:
    holding = session.scalars(select(SandboxHolding).where(
        SandboxHolding.organisation_id == organisation_id,
        SandboxHolding.batch_id == batch_id)).one_or_none()
    if holding is None:
        session.add(SandboxHolding(organisation_id=organisation_id, batch_id=batch_id,
                                   quantity=quantity))
    else:
        holding.quantity += quantity


def _visible(caller: Caller) -> Any:
    return select(SandboxOrder).where(SandboxOrder.organisation_id == caller.organisation.id,
                                      SandboxOrder.status != "quoted")


def get_order(session: Session, caller: Caller, reference: str) -> SandboxOrder | None:
    return session.scalars(_visible(caller).where(SandboxOrder.reference == reference)).one_or_none()


def list_orders(session: Session, caller: Caller, query: Mapping[str, Any]) -> Page[dict[str, Any]]:
    after = decode("orders", query.get("cursor"), (int,))
    stmt = _visible(caller)
    if after is not None:
        stmt = stmt.where(SandboxOrder.id < after[0])
    wanted = query.get("status")
    limit = int(query["limit"])
    rows: list[SandboxOrder] = []
    for order in session.scalars(stmt.order_by(SandboxOrder.id.desc())):
        if wanted is None or _effective(order) == wanted:
            rows.append(order)
            if len(rows) > limit:
                break
    page = page_of(rows, limit, "orders", lambda o: [o.id])
    return Page([order_dict(session, o) for o in page.items], page.next_cursor)


# -- holdings and retirements -------------------------------------------------------------------


def list_holdings(session: Session, caller: Caller, query: Mapping[str, Any]) -> Page[dict[str, Any]]:
    after = decode("holdings", query.get("cursor"), (int,))
    stmt = (select(SandboxHolding, Batch).join(Batch, Batch.id == SandboxHolding.batch_id)
            .where(SandboxHolding.organisation_id == caller.organisation.id,
                   SandboxHolding.quantity > 0))
    if query.get("project") is not None:
        stmt = stmt.where(Batch.project_id == query["project"])
    if after is not None:
        stmt = stmt.where(Batch.id > after[0])
    limit = int(query["limit"])
    rows = list(session.execute(stmt.order_by(Batch.id).limit(limit + 1)).all())
    page = page_of(rows, limit, "holdings", lambda row: [row.Batch.id])
    return Page([{
        "object": "holding", "livemode": False, "project": projects.project_ref(batch.project),
        "batch": batch.id, "vintage": projects.vintage_label(batch),
        "vintage_start": batch.vintage_start, "vintage_end": batch.vintage_end,
        "quantity": holding.quantity, "serials": [],
    } for holding, batch in page.items], page.next_cursor)


def retire(session: Session, caller: Caller, data: Mapping[str, Any]) -> SandboxRetirement:
    """Retire simulated held credits, oldest vintage first, as the ledger would."""
    _lock(session, caller)
    stmt = (select(SandboxHolding).join(Batch, Batch.id == SandboxHolding.batch_id)
            .where(SandboxHolding.organisation_id == caller.organisation.id,
                   SandboxHolding.quantity > 0)
            .order_by(Batch.vintage_start, Batch.id))
    if data.get("project") is not None:
        stmt = stmt.where(Batch.project_id == data["project"])
    if data.get("batch") is not None:
        stmt = stmt.where(Batch.id == data["batch"])
    quantity = int(data["quantity"])
    holdings = list(session.scalars(stmt))
    held = sum(h.quantity for h in holdings)
    if held < quantity:
        raise not_enough(quantity, held)
    allocation, needed = [], quantity
    for holding in holdings:
        take = min(needed, holding.quantity)
        holding.quantity -= take
        allocation.append((holding.batch_id, take))
        needed -= take
        if not needed:
            break
    retirement = SandboxRetirement(
        public_id=trading.new_id("ret_test"), organisation_id=caller.organisation.id,
        quantity=quantity, allocation=json.dumps(allocation), beneficiary=data["beneficiary"],
        purpose=data["purpose"], note=data.get("note", ""), country=data["country"],
        period_start=data["period_start"], period_end=data["period_end"], created_at=utcnow())
    session.add(retirement)
    session.flush()
    webhooks.emit(session, caller.organisation.id, "retirement.created", False,
                  retirement_dict(session, retirement))
    return retirement


def not_enough(quantity: int, held: int) -> Problem:
    return Problem(409, "Not enough credits held", f"Not enough tradable credits: {quantity:,} "
                   f"t asked, {held:,} t held.", slug="insufficient-credits")


def get_retirement(session: Session, caller: Caller, public_id: str) -> SandboxRetirement | None:
    return session.scalars(select(SandboxRetirement).where(
        SandboxRetirement.public_id == public_id,
        SandboxRetirement.organisation_id == caller.organisation.id)).one_or_none()


def list_retirements(session: Session, caller: Caller,
                     query: Mapping[str, Any]) -> Page[dict[str, Any]]:
    after = decode("retirements", query.get("cursor"), (int,))
    stmt = select(SandboxRetirement).where(
        SandboxRetirement.organisation_id == caller.organisation.id)
    if after is not None:
        stmt = stmt.where(SandboxRetirement.id < after[0])
    limit = int(query["limit"])
    rows = list(session.scalars(stmt.order_by(SandboxRetirement.id.desc()).limit(limit + 1)))
    page = page_of(rows, limit, "retirements", lambda r: [r.id])
    return Page([retirement_dict(session, r) for r in page.items], page.next_cursor)
