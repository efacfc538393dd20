"""The demo gateway: a local hosted-checkout page for ``make run``.

Paying sends the app a ``checkout.session.completed`` event signed exactly as Stripe signs
webhooks, verified by the official library and handled by the same code as a real one; so the
demo exercises the real fulfilment path. No money moves, and the page says so. The app refuses
to start with this gateway when CARBON_ENV=production.
"""

from __future__ import annotations

import json
import secrets
import time

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.wrappers import Response

from ..database import db
from ..models import Order
from . import CheckoutSession
from .signature import sign_payload
from .webhooks import construct_event, handle_event

bp = Blueprint("demo_pay", __name__, url_prefix="/demo-checkout")


class DemoGateway:
    name = "demo"

    def create_checkout(self, order: Order, *, success_url: str, cancel_url: str,
                        customer_email: str | None = None) -> CheckoutSession:
        session_id = order.checkout_session_id or f"cs_demo_{secrets.token_hex(12)}"
        return CheckoutSession(session_id, url_for("demo_pay.page", session_id=session_id))

    def refund(self, order: Order) -> None:
        """Nothing to give back: no money moved."""


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
