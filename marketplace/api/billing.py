"""Paying for API orders: the organisation's saved payment method, or an invoice.

*Saved payment method.* With the demo gateway (local runs, no money moves) the organisation
pays with the demo card every organisation has on file: the app sends itself the signed
``checkout.session.completed`` event the demo's hosted page sends
(``payments.demo.send_event``), so the order is fulfilled by the same webhook handler as a
storefront order. With Stripe, the organisation's saved customer and payment method
(``api_saved_payment_methods``) are charged off-session with a PaymentIntent whose
idempotency key comes from the order (``api-charge-<reference>``), so a retried request never
charges twice, and whose metadata names the order and ``source: api``; the order is then
``awaiting_payment`` until Stripe's signed ``payment_intent.succeeded`` webhook fulfils it
(the webhook handler must only act on PaymentIntents marked ``source: api``: the shop's hosted
checkouts make PaymentIntents too, and a declined attempt there is not a failed order).

*Invoice.* The order waits as ``awaiting_payment`` with its tonnes reserved for
``API_INVOICE_DAYS``; when the money arrives an operator records it
(``flask --app wsgi api invoice-paid SLV-...``), which fulfils the order.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import checkout, payments
from ..order_states import transition
from ..database import db
from ..models import Order
from ..models.api import ApiOrder, SavedPaymentMethod
from .problems import Problem

log = logging.getLogger(__name__)


def charge_saved_method(order: Order) -> None:
    """Charge a pending API order through the payment gateway; outside any transaction. Raises
    a 402 or 502 problem (the order is then released as failed) when the payment is refused or
    cannot be made."""
    gateway = payments.gateway()
    with db.session.begin():
        method = db.session.scalars(select(SavedPaymentMethod).where(
            SavedPaymentMethod.organisation_id == order.organisation_id)).one_or_none()
    try:
        reference = gateway.charge_saved_method(order, method)
    except payments.NoPaymentMethod:
        _failed(order.reference, "no saved payment method")
        raise Problem(402, "No saved payment method",
                      "The organisation has no saved payment method: pay by invoice "
                      "(payment_method 'invoice') or ask us to save one.",
                      slug="payment-method-missing") from None
    except payments.PaymentDeclined as exc:
        _failed(order.reference, "the payment was declined")
        raise Problem(402, "Payment declined", "The saved payment method was declined "
                      f"({exc.code or 'card_error'}). Nothing was charged.",
                      slug="payment-declined") from None
    except payments.GatewayError as exc:
        log.warning("could not charge order %s: %s", order.reference, exc)
        _failed(order.reference, "the payment provider could not be reached")
        raise Problem(502, "Payment provider unavailable", "The payment could not be made "
                      "just now; nothing was charged. Try again with a new Idempotency-Key.",
                      slug="payment-unavailable") from None
    if reference is None:
        return  # settled at once: the provider's event has fulfilled the order already
    with db.session.begin():
        fresh = checkout.locked_order(db.session, order.reference)
        if fresh is not None:
            fresh.payment_reference = reference
            if fresh.status == "pending":
                transition(fresh, "awaiting_payment", "checkout_started")


def _failed(reference: str, why: str) -> None:
    """The charge did not happen: release the order's tonnes and say why."""
    with db.session.begin():
        checkout.release(db.session, reference, "failed")
        fresh = checkout.locked_order(db.session, reference)
        if fresh is not None and fresh.failure is None:
            fresh.failure = why


def record_invoice_payment(session: Session, reference: str) -> str:
    """The invoice for an API order was paid: fulfil it, in the caller's transaction."""
    order = checkout.locked_order(session, reference)
    api = session.get(ApiOrder, order.id) if order is not None else None
    if order is None or api is None or api.payment_method != "invoice":
        raise LookupError(f"no order {reference} paid by invoice")
    return checkout.fulfil(session, reference, amount_minor=order.total_minor,
                           currency=order.currency, payment_reference=f"invoice:{reference}")


def save_payment_method(session: Session, organisation_id: int, customer: str,
                        payment_method: str, label: str = "") -> SavedPaymentMethod:
    found = session.scalars(select(SavedPaymentMethod).where(
        SavedPaymentMethod.organisation_id == organisation_id)).one_or_none()
    if found is None:
        found = SavedPaymentMethod(organisation_id=organisation_id, customer=customer,
                                   payment_method=payment_method, label=label)
        session.add(found)
    else:
        found.customer, found.payment_method, found.label = customer, payment_method, label
    session.flush()
    return found
