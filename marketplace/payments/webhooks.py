"""``POST /webhooks/stripe``: verify, store the event once, dispatch.

The signature is checked on the raw body with the official library. Each event id is stored
once (a repeated delivery does nothing), and each handler is idempotent on the order, whose
status only moves forward, so Stripe's retries and reordering cannot fulfil twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import stripe
from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError

from ledger.errors import LedgerError

from .. import checkout, modes
from ..database import db
from ..extensions import csrf
from ..models import PaymentEvent

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

FULFIL = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
Handler = Callable[[Any, dict[str, Any]], str]
_HANDLERS: dict[str, Handler] = {}
"""Event types handled outside the orders' path, by the feature that owns them (the
footprint's ``invoice.paid``), registered with :func:`handles`: payments never imports them."""


def handles(event_type: str, handler: Handler) -> None:
    """Route ``event_type`` to ``handler(session, event_object)``, which returns the outcome
    to log; it runs inside the handler's transaction, like order fulfilment."""
    _HANDLERS[event_type] = handler
RELEASE = {"checkout.session.expired": "expired", "checkout.session.async_payment_failed": "failed"}


class BadEvent(Exception):
    """The request is not a correctly signed event."""


def construct_event(payload: bytes, signature: str | None) -> dict[str, Any]:
    secret = current_app.config["STRIPE_WEBHOOK_SECRET"]
    if not signature:
        raise BadEvent("missing Stripe-Signature header")
    try:
        stripe.Webhook.construct_event(payload, signature, secret,
                                       tolerance=current_app.config["WEBHOOK_TOLERANCE"])
    except (ValueError, stripe.SignatureVerificationError) as exc:
        raise BadEvent(f"invalid payload or signature: {type(exc).__name__}") from None
    return dict(json.loads(payload))


def handle_event(event: dict[str, Any]) -> tuple[str, int]:
    """Store and dispatch one verified event; return (outcome, HTTP status)."""
    event_id = event.get("id")
    event_type = event.get("type", "")
    obj = (event.get("data") or {}).get("object") or {}
    if not isinstance(event_id, str) or not isinstance(obj, dict):
        return "malformed event", 400
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        return "malformed event", 400
    mode = metadata.get("mode", modes.LIVE)
    if mode not in modes.MODES:
        return "malformed event: unknown mode", 400
    with db.use(mode):  # the order lives in the mode its checkout was made in
        return _handle(event_id, str(event_type), obj, metadata, event.get("created"))


def _handle(event_id: str, event_type: str, obj: dict[str, Any],
            metadata: dict[str, Any], created: Any) -> tuple[str, int]:
    reference = obj.get("client_reference_id") or metadata.get("order")
    session = db.session
    try:
        with session.begin():
            order = checkout.locked_order(session, reference) if isinstance(reference, str) else None
            stored = PaymentEvent(id=event_id, type=str(event_type)[:80],
                                  order_id=order.id if order else None,
                                  created=created if isinstance(created, int) else 0)
            session.add(stored)
            session.flush()
            stored.outcome = _dispatch(session, event_type, obj, reference)
        return stored.outcome, 200
    except IntegrityError:
        session.rollback()
        return "duplicate event: already handled", 200
    except LedgerError as exc:
        session.rollback()
        log.error("fulfilment of %s failed: %s", reference, exc)
        return "fulfilment failed; will retry", 500


def _dispatch(session: Any, event_type: str, obj: dict[str, Any], reference: Any) -> str:
    handler = _HANDLERS.get(event_type)
    if handler is not None:
        return handler(session, obj)
    if not isinstance(reference, str):
        return "no order reference: ignored"
    order = checkout.locked_order(session, reference)
    session_id = obj.get("id")
    if order is not None and order.checkout_session_id and isinstance(session_id, str) \
            and session_id.startswith("cs_") and session_id != order.checkout_session_id:
        return "the event's checkout session is not this order's: ignored"
    if event_type in FULFIL:
        if obj.get("payment_status") not in ("paid", "no_payment_required"):
            return f"payment status {obj.get('payment_status')!r}: waiting"
        amount = obj.get("amount_total")
        currency = obj.get("currency")
        if not isinstance(amount, int) or not isinstance(currency, str):
            return "no amount or currency: ignored"
        return checkout.fulfil(session, reference, amount_minor=amount, currency=currency,
                               payment_reference=obj.get("payment_intent"))
    if (obj.get("metadata") or {}).get("source") == "api":  # API orders charged off-session
        if event_type == "payment_intent.succeeded":
            amount, currency = obj.get("amount_received"), obj.get("currency")
            if not isinstance(amount, int) or not isinstance(currency, str):
                return "no amount or currency: ignored"
            return checkout.fulfil(session, reference, amount_minor=amount, currency=currency,
                                   payment_reference=obj.get("id"))
        if event_type == "payment_intent.payment_failed":
            return checkout.release(session, reference, "failed")
    if event_type in RELEASE:
        return checkout.release(session, reference, RELEASE[event_type])
    return f"{event_type}: not handled"


@bp.post("/webhooks/stripe")
@csrf.exempt
def stripe_webhook() -> ResponseReturnValue:
    payload = request.get_data(cache=False)
    try:
        event = construct_event(payload, request.headers.get("Stripe-Signature"))
    except BadEvent as exc:
        return jsonify(error=str(exc)), 400
    outcome, status = handle_event(event)
    return jsonify(outcome=outcome), status
