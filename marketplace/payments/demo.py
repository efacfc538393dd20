"""The demo gateway: a local hosted-checkout page for ``make run``.

Paying sends the app a ``checkout.session.completed`` event signed exactly as Stripe signs
webhooks, verified by the official library and handled by the same code as a real one; so the
demo exercises the real fulfilment path. No money moves, and the page says so. The app refuses
to start with this gateway when CARBON_ENV=production.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.wrappers import Response

from ..database import db
from ..models import Order
from ..models.api import SavedPaymentMethod
from ..models.footprints import OffsetSubscription
from . import SUBSCRIPTION_METADATA_KEY, CheckoutSession
from .signature import sign_payload
from .webhooks import construct_event, handle_event

bp = Blueprint("demo_pay", __name__, url_prefix="/demo-checkout")


class DemoGateway:
    """The :class:`~marketplace.payments.Gateway` of ``make run``: local pages and signed
    events instead of a provider; no money moves."""

    name = "demo"

    def create_checkout(self, order: Order, *, success_url: str, cancel_url: str,
                        customer_email: str | None = None) -> CheckoutSession:
        session_id = order.checkout_session_id or f"cs_demo_{secrets.token_hex(12)}"
        return CheckoutSession(session_id, url_for("demo_pay.page", session_id=session_id))

    def create_subscription_checkout(self, subscription: OffsetSubscription, *,
                                     success_url: str, cancel_url: str,
                                     customer_email: str | None,
                                     description: str) -> CheckoutSession:
        session_id = subscription.checkout_session_id or f"cs_demo_sub_{secrets.token_hex(12)}"
        return CheckoutSession(session_id, url_for("footprint_demo.page", session_id=session_id))

    def charge_saved_method(self, order: Order,
                            method: SavedPaymentMethod | None) -> str | None:
        """Every organisation has the demo card on file: the payment succeeds at once, and the
        signed ``checkout.session.completed`` it sends fulfils the order through the webhook
        handler, as a real provider's would."""
        send_event("checkout.session.completed", order)
        return None

    def refund(self, order: Order) -> None:
        """Nothing to give back: no money moved."""

    def cancel_subscription(self, subscription: OffsetSubscription) -> None:
        """Nothing to stop: the demo only sends invoices when asked."""


def _order_for(session_id: str) -> Order:
    order = db.session.scalars(
        select(Order).where(Order.checkout_session_id == session_id)
    ).one_or_none()
    if order is None or order.user_id != current_user.id:
        abort(404)
    return order


def send_event(event_type: str, order: Order, *, payment_status: str = "paid") -> tuple[str, int]:
    """Build, sign and deliver one Stripe-shaped event about ``order`` to our webhook code."""
    event = {
        "id": f"evt_demo_{secrets.token_hex(12)}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": db.livemode,
        "data": {"object": {
            "id": order.checkout_session_id,
            "object": "checkout.session",
            "client_reference_id": order.reference,
            "amount_total": order.total_minor,
            "currency": order.currency.lower(),
            "payment_status": payment_status,
            "payment_intent": f"pi_demo_{order.reference}",
            "metadata": {"order": order.reference, "mode": db.mode()},
        }},
    }
    payload = json.dumps(event, separators=(",", ":")).encode()
    signature = sign_payload(payload, current_app.config["STRIPE_WEBHOOK_SECRET"])
    return handle_event(construct_event(payload, signature))


@bp.get("/<session_id>")
@login_required
def page(session_id: str) -> str:
    with db.session.begin():
        order = _order_for(session_id)
        return render_template("checkout/demo_pay.html", order=order, session_id=session_id)


@bp.post("/<session_id>/pay")
@login_required
def pay(session_id: str) -> Response:
    with db.session.begin():
        order = _order_for(session_id)
        if order.status != "awaiting_payment":
            flash(f"This checkout is {order.status.replace('_', ' ')}.", "info")
            return redirect(url_for("orders.detail", reference=order.reference))
    _outcome, status = send_event("checkout.session.completed", order)
    if status != 200:
        flash("The payment went through but the credits could not be moved yet; we will "
              "retry. Nothing will be charged twice.", "error")
        return redirect(url_for("orders.detail", reference=order.reference))
    return redirect(url_for("orders.success", reference=order.reference))


@bp.post("/<session_id>/cancel")
@login_required
def cancel(session_id: str) -> Response:
    with db.session.begin():
        order = _order_for(session_id)
    send_event("checkout.session.expired", order, payment_status="unpaid")
    flash("Checkout cancelled: nothing was charged and the tonnes are back on sale.", "info")
    return redirect(url_for("cart.view"))


# -- the demo subscription provider ------------------------------------------------------------


def demo_invoice(subscription: OffsetSubscription, *, now: int | None = None) -> dict[str, Any]:
    """A Stripe-shaped ``invoice.paid`` event for the subscription's next month."""
    created = int(time.time()) if now is None else now
    today = dt.datetime.fromtimestamp(created, dt.UTC).date().replace(day=1)
    month = today.month - 1 + subscription.months_paid
    start = dt.date(today.year + month // 12, month % 12 + 1, 1)
    end = dt.date(start.year + start.month // 12, start.month % 12 + 1, 1)

    def stamp(day: dt.date) -> int:
        return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())

    provider = subscription.provider_subscription_id or f"sub_demo_{subscription.reference}"
    return {
        "id": f"evt_demo_{secrets.token_hex(12)}",
        "object": "event",
        "type": "invoice.paid",
        "created": created,
        "livemode": False,
        "data": {"object": {
            "id": f"in_demo_{secrets.token_hex(12)}",
            "object": "invoice",
            "status": "paid",
            "amount_paid": subscription.price_minor,
            "currency": subscription.currency.lower(),
            "billing_reason": ("subscription_create" if subscription.months_paid == 0
                               else "subscription_cycle"),
            "customer": f"cus_demo_{subscription.user_id}",
            "created": created,
            "status_transitions": {"paid_at": created},
            "parent": {"type": "subscription_details", "subscription_details": {
                "subscription": provider,
                "metadata": {SUBSCRIPTION_METADATA_KEY: subscription.reference}}},
            "lines": {"object": "list", "data": [{
                "object": "line_item", "amount": subscription.price_minor,
                "period": {"start": stamp(start), "end": stamp(end)},
            }]},
        }},
    }


def send_demo_invoice(subscription: OffsetSubscription) -> str:
    """Sign the next month's ``invoice.paid`` exactly as Stripe signs webhooks and deliver it
    to the webhook code, as the demo checkout does for orders."""
    payload = json.dumps(demo_invoice(subscription), separators=(",", ":")).encode()
    signature = sign_payload(payload, current_app.config["STRIPE_WEBHOOK_SECRET"])
    outcome, _status = handle_event(construct_event(payload, signature))
    return outcome
