"""The demo gateway's stand-in for the payment provider's subscription pages.

"Subscribe" and "pay next month" each send the app an ``invoice.paid`` event signed exactly
as Stripe signs webhooks, verified and handled by the same webhook code as a real one; so
the demo runs the real fulfilment path. No money moves, and the page says so. Registered
only with the demo gateway, which the app refuses in production.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.wrappers import Response

from ..database import db
from ..models.footprints import OffsetSubscription
from ..payments.demo import send_demo_invoice
from . import subscriptions

bp = Blueprint("footprint_demo", __name__, url_prefix="/footprint/demo-subscription")


def _mine(session_id: str) -> OffsetSubscription:
    found = db.session.scalars(select(OffsetSubscription).where(
        OffsetSubscription.checkout_session_id == session_id)).one_or_none()
    if found is None or found.user_id != current_user.id or found.gateway != "demo":
        abort(404)
    return found


@bp.get("/<session_id>")
@login_required
def page(session_id: str) -> str:
    with db.session.begin():
        subscription = _mine(session_id)
        return render_template("footprint/demo_subscription.html", subscription=subscription,
                               session_id=session_id)


@bp.post("/<session_id>/pay")
@login_required
def pay(session_id: str) -> Response:
    with db.session.begin():
        subscription = _mine(session_id)
        if subscription.status == "cancelled":
            flash("This subscription is cancelled: the provider sends no more invoices.", "info")
            return redirect(url_for("footprint.account"))
    first = subscription.months_paid == 0
    send_demo_invoice(subscription)
    flash("Subscribed (demo): the first month is paid." if first
          else "Next month's invoice paid (demo).", "success")
    return redirect(url_for("footprint.account"))


@bp.post("/<session_id>/cancel")
@login_required
def cancel(session_id: str) -> Response:
    with db.session.begin():
        subscription = _mine(session_id)
        if subscription.status == "pending":
            subscriptions.cancel(subscription)
    flash("Nothing was charged: the subscription was not started.", "info")
    return redirect(url_for("footprint.subscribe"))
