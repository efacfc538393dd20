"""Live quotes and orders: the storefront's checkout (``marketplace.checkout``) driven by an
API key instead of a cart.

A quote is a storefront order in ``pending`` placed by ``checkout.place_order`` with a short
time to live: its reservations hold the tonnes exactly as a checkout's do, so nothing can be
oversold, and it lapses like an abandoned checkout. An ``api_quotes`` row marks it as a quote
(the orders list leaves out quotes never ordered). Ordering from the quote fills in the
retirement details and the payment and keeps the same reservations.

Payment: ``saved`` charges the organisation's saved payment method at once (the demo gateway
sends the app the same signed webhook its hosted page sends; Stripe gets an off-session
PaymentIntent); ``invoice`` leaves the order ``awaiting_payment`` with its tonnes reserved
until an operator records the payment. Fulfilment is always ``checkout.fulfil``, the same
transfer (and retirement, if asked) the storefront makes.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.schema import Batch, utcnow

from .. import access, checkout, kilograms, payments
from ..database import db
from ..order_states import transition
from ..checkout import CheckoutDetails, CheckoutError, OutOfStockError
from ..urls import external_url, registry_blueprint
from ..models import Listing, Order, Organisation
from ..models.api import ApiOrder, ApiQuote
from . import projects
from .keys import Caller
from .pagination import Page, decode, page_of
from .problems import Problem, invalid_field

REFERENCE_PATTERN = r"SLV-[0-9A-F]{10}"
QUOTE_PATTERN = r"qt_[0-9a-f]{24}"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def quote_ttl() -> dt.timedelta:
    return dt.timedelta(seconds=int(current_app.config["API_QUOTE_TTL"]))


def invoice_ttl() -> dt.timedelta:
    return dt.timedelta(days=int(current_app.config["API_INVOICE_DAYS"]))


def gateway_name(payment_method: str) -> str:
    if payment_method in ("invoice", "account"):
        return payment_method
    return payments.gateway_name()


def bill_to_account(session: Session, order: Order) -> str:
    """Kilograms billed on the organisation's monthly statement: the order is paid on account
    and fulfilled at once, in the caller's transaction (``flask api statement`` lists a
    month's orders for the invoice). Sub-dollar sales cannot be card charges one by one."""
    month = utcnow().strftime("%Y-%m")
    return checkout.fulfil(session, order.reference, amount_minor=order.total_minor,
                           currency=order.currency, payment_reference=f"account:{month}")


def placeholder_details(organisation: Organisation, country: str) -> CheckoutDetails:
    """Details for an order that retires nothing yet (a quote, or credits to hold): the
    storefront's order row needs them; the API shows them as null."""
    year = utcnow().year
    return CheckoutDetails(beneficiary=organisation.name, purpose="voluntary", country=country,
                           period_start=dt.date(year, 1, 1), period_end=dt.date(year, 12, 31),
                           action="hold")


def details_from(data: Mapping[str, Any], organisation: Organisation,
                 country: str) -> CheckoutDetails:
    if data.get("action") != "retire":
        return placeholder_details(organisation, country)
    return CheckoutDetails(beneficiary=data["beneficiary"], purpose=data["purpose"],
                           country=data["country"], period_start=data["period_start"],
                           period_end=data["period_end"], action="retire",
                           note=data.get("note", ""))


def checkout_problem(exc: CheckoutError) -> Problem:
    if isinstance(exc, OutOfStockError):
        return projects.out_of_stock(str(exc))
    return Problem(422, "The order cannot be placed", str(exc), slug="order-refused")


# -- views of orders and quotes ------------------------------------------------------------


def _allocation(session: Session, pairs: list[tuple[int, int]]) -> list[dict[str, Any]]:
    return [{"batch": batch_id, "vintage": projects.vintage_label(session.get(Batch, batch_id)),
             "quantity": quantity} for batch_id, quantity in pairs]


def _lines(session: Session, order: Order) -> list[dict[str, Any]]:
    lines = []
    for line in order.lines:
        listing = session.get(Listing, line.listing_id)
        assert listing is not None
        pairs = [(r.batch_id, r.quantity) for r in order.reservations if r.line_id == line.id]
        lines.append({"project": projects.project_ref(listing.project), "batch": line.batch_id,
                      "quantity": line.quantity, "grams": line.grams,
                      "unit_price_minor": line.unit_price_minor,
                      "amount_minor": line.amount_minor,
                      "allocation": _allocation(session, pairs)})
    return lines


def certificate_links(seq: int) -> dict[str, str]:
    """Where the certificate is: on this mode's registry (test mode: ``/test/registry``)."""
    registry = registry_blueprint()
    return {"json": external_url(f"{registry}.certificate_json", seq=seq),
            "page": external_url(f"{registry}.certificate", seq=seq),
            "pdf": external_url(f"{registry}.certificate_pdf", seq=seq)}


def kg_certificate_links(reference: str) -> dict[str, str]:
    """Where a kilogram retirement's certificate is (this mode's registry)."""
    registry = registry_blueprint()
    return {"json": external_url(f"{registry}.kg_certificate_json", reference=reference),
            "page": external_url(f"{registry}.kg_certificate", reference=reference),
            "pdf": external_url(f"{registry}.kg_certificate_pdf", reference=reference)}


def order_dict(session: Session, order: Order) -> dict[str, Any]:
    api = session.get(ApiOrder, order.id)
    quote = session.scalar(select(ApiQuote.public_id).where(ApiQuote.order_id == order.id))
    retire = order.action == "retire"
    retirements = [{"id": f"ret_{r.retire_seq}", "quantity": r.quantity,
                    "grams": r.quantity * kilograms.GRAMS_PER_TONNE,
                    "certificate": certificate_links(r.retire_seq)}
                   for r in order.reservations if r.retire_seq is not None]
    retirements += [{"id": a.reference, "quantity": 0, "grams": a.grams,
                     "certificate": kg_certificate_links(a.reference)}
                    for a in kilograms.allocations_of(session, order.id)
                    if a.state in ("allocated", "sealed")]
    return {
        "id": order.reference, "object": "order", "livemode": db.livemode, "status": order.status,
        "action": order.action,
        "payment_method": api.payment_method if api is not None else "checkout",
        "currency": order.currency, "total_minor": order.total_minor,
        "quantity": order.quantity, "grams": order.grams, "lines": _lines(session, order),
        "beneficiary": order.beneficiary if retire else None,
        "purpose": order.purpose if retire else None,
        "note": order.note if retire else None,
        "country": order.country if retire else None,
        "period_start": order.period_start if retire else None,
        "period_end": order.period_end if retire else None,
        "quote": quote, "created_at": projects.aware(order.created_at),
        "expires_at": projects.aware(order.expires_at),
        "paid_at": projects.aware(order.paid_at),
        "fulfilled_at": projects.aware(order.fulfilled_at), "failure": order.failure,
        "retirements": retirements,
    }


def quote_status(quote: ApiQuote, order_status: str, now: dt.datetime | None = None) -> str:
    now = now or utcnow()
    if quote.ordered_at is not None:
        return "ordered"
    expires = projects.aware(quote.expires_at)
    assert expires is not None
    if now >= expires or order_status != "pending":
        return "expired"
    return "open"


def quote_dict(session: Session, quote: ApiQuote) -> dict[str, Any]:
    order = session.get(Order, quote.order_id)
    assert order is not None
    return {
        "id": quote.public_id, "object": "quote", "livemode": db.livemode,
        "status": quote_status(quote, order.status), "currency": order.currency,
        "total_minor": order.total_minor, "lines": _lines(session, order),
        "created_at": projects.aware(quote.created_at),
        "expires_at": projects.aware(quote.expires_at),
        "order": order.reference if quote.ordered_at is not None else None,
    }


# -- quotes ----------------------------------------------------------------------------------


def create_quote(session: Session, caller: Caller, data: Mapping[str, Any]) -> ApiQuote:
    """Price the tonnes and reserve them for ``API_QUOTE_TTL`` seconds."""
    from .. import catalogue

    line = projects.quote_line(session, data, lambda: catalogue.for_sale_now(session))
    listing = session.get(Listing, line.listing_id)
    assert listing is not None
    try:
        order = checkout.place_order(
            session, user=caller.user, lines=[line],
            details=placeholder_details(caller.organisation, listing.project.country),
            gateway=gateway_name("saved"), organisation=caller.organisation, ttl=quote_ttl(),
            quote=True)
    except CheckoutError as exc:
        raise checkout_problem(exc) from None
    quote = ApiQuote(public_id=new_id("qt"), organisation_id=caller.organisation.id,
                     order_id=order.id, created_at=order.created_at, expires_at=order.expires_at)
    session.add(quote)
    session.flush()
    return quote


def find_quote(session: Session, caller: Caller, public_id: str) -> ApiQuote | None:
    """The caller's organisation's quote (in this session's mode), or None."""
    return session.scalars(select(ApiQuote).where(
        ApiQuote.public_id == public_id,
        ApiQuote.organisation_id == caller.organisation.id)).one_or_none()


# -- orders ----------------------------------------------------------------------------------


def _from_quote(session: Session, caller: Caller, data: Mapping[str, Any]) -> Order:
    quote = find_quote(session, caller, data["quote"])
    if quote is None:
        raise invalid_field("#/quote", "No such quote.")
    stmt = select(Order).where(Order.id == quote.order_id)
    if session.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update()  # as checkout.locked_order, by id
    order = session.scalars(stmt.execution_options(populate_existing=True)).one()
    if quote.ordered_at is not None:
        raise Problem(409, "Quote already ordered", f"Quote {quote.public_id} was already "
                      f"ordered as {order.reference}.", slug="quote-used")
    now = utcnow()
    if quote_status(quote, order.status, now) != "open":
        raise Problem(409, "Quote expired", f"Quote {quote.public_id} expired; ask for a new "
                      "one.", slug="quote-expired")
    listing = session.get(Listing, order.lines[0].listing_id)
    assert listing is not None
    if order.grams and data["action"] != "retire":
        raise invalid_field("#/action", "Kilograms are retired at once in the beneficiary's "
                                        "name; they cannot be held.")
    details = details_from(data, caller.organisation, listing.project.country)
    try:
        details = details.validated()
    except CheckoutError as exc:
        raise checkout_problem(exc) from None
    order.action = data["action"]
    order.beneficiary, order.purpose, order.note = details.beneficiary, details.purpose, details.note
    order.country = details.country
    order.period_start, order.period_end = details.period_start, details.period_end
    order.gateway = gateway_name(data["payment_method"])
    order.expires_at = now + (invoice_ttl() if data["payment_method"] == "invoice"
                              else checkout.RESERVATION_TTL)
    quote.ordered_at = now
    return order


def place_order(session: Session, caller: Caller, data: Mapping[str, Any]) -> Order:
    """Place (and, for an invoice, open) an order in the caller's transaction; payment by a
    saved method happens after it commits (:func:`charge`)."""
    if "quote" in data:
        order = _from_quote(session, caller, data)
    else:
        listings: dict[int, Listing | None] = {}
        lines = [projects.cart_line(session, line["project"], line.get("quantity", 0),
                                    line.get("batch"), f"#/lines/{i}", line.get("grams"),
                                    listings)
                 for i, line in enumerate(data["lines"])]
        first = session.get(Listing, lines[0].listing_id)
        assert first is not None
        invoice = data["payment_method"] == "invoice"
        try:
            order = checkout.place_order(
                session, user=caller.user, lines=lines,
                details=details_from(data, caller.organisation, first.project.country),
                gateway=gateway_name(data["payment_method"]), organisation=caller.organisation,
                ttl=invoice_ttl() if invoice else checkout.RESERVATION_TTL)
        except CheckoutError as exc:
            raise checkout_problem(exc) from None
    if data["payment_method"] == "invoice" and order.status == "pending":
        transition(order, "awaiting_payment", "invoice_issued")
    if data["payment_method"] == "account":
        if order.quantity:
            raise invalid_field("#/payment_method", "Billing on the monthly statement is for "
                                                    "kilograms: pay for tonnes with the saved "
                                                    "method or an invoice.")
        bill_to_account(session, order)
    session.add(ApiOrder(order_id=order.id, api_key_id=caller.key.id,
                         payment_method=data["payment_method"]))
    session.flush()
    return order


def needs_charge(session: Session, order: Order, payment_method: str | None = None) -> bool:
    """Whether a saved payment method must still be charged for this API order (a replay
    finishes what an interrupted request began)."""
    if order.status != "pending":
        return False
    if payment_method is None:
        api = session.get(ApiOrder, order.id)
        payment_method = api.payment_method if api is not None else None
    return payment_method == "saved"


def charge(order: Order) -> None:
    """Charge the organisation's saved payment method for a pending order; call it outside any
    transaction (the demo gateway's event runs the webhook handler's own transaction)."""
    from . import billing

    billing.charge_saved_method(order)


def visible_orders(caller: Caller) -> Any:
    """The organisation's orders (``marketplace.access``: the pages use the same rule)."""
    return access.visible_orders(organisation_id=caller.organisation.id)


def get_order(session: Session, caller: Caller, reference: str) -> Order | None:
    return session.scalars(visible_orders(caller).where(Order.reference == reference)).one_or_none()


def list_orders(session: Session, caller: Caller, query: Mapping[str, Any]) -> Page[dict[str, Any]]:
    after = decode("orders", query.get("cursor"), (int,))
    stmt = visible_orders(caller)
    if query.get("status"):
        stmt = stmt.where(Order.status == query["status"])
    if after is not None:
        stmt = stmt.where(Order.id < after[0])
    limit = int(query["limit"])
    rows = list(session.scalars(stmt.order_by(Order.id.desc()).limit(limit + 1)))
    page = page_of(rows, limit, "orders", lambda o: [o.id])
    return Page([order_dict(session, o) for o in page.items], page.next_cursor)
