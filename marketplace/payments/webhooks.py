"""``POST /webhooks/stripe``: verify, store the event once, dispatch.

The signature is checked on the raw body with the official library. Each event id is stored
once (a repeated delivery does nothing), and each handler is idempotent on the order, whose
status only moves forward, so Stripe's retries and reordering cannot fulfil twice.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import stripe
from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import DBAPIError, IntegrityError

from ledger.errors import LedgerError

from .. import checkout, kilograms, modes
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


class Malformed(Exception):
    """A correctly signed event whose shape is not one this handler reads."""


_EVENT_ID = re.compile(r"[\x21-\x7e]{1,255}")
_EVENT_TYPE = re.compile(r"[a-z0-9_.]{1,80}")
_CURRENCY = re.compile(r"[A-Za-z]{3}")
MAX_AMOUNT = 2**63 - 1
MAX_CREATED = 2**31 - 1


def _printable(value: Any, what: str, limit: int) -> str | None:
    """None, or one line of text of at most ``limit`` characters (no NUL, no control)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        raise Malformed(f"{what} is not text of at most {limit} printable characters")
    return value


def _amount(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT:
        raise Malformed(f"{what} is not a whole number of minor units")
    return value


def check_shape(event: Any) -> tuple[str, str, dict[str, Any], dict[str, Any], int]:
    """(id, type, object, metadata, created) of a signed event, every field this handler (or
    a registered one) reads checked for type, range and length before it reaches SQL;
    :class:`Malformed` otherwise."""
    if not isinstance(event, dict):
        raise Malformed("the event is not an object")
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        raise Malformed("the event id is missing or not 1 to 255 printable ASCII characters")
    if not isinstance(event_type, str) or not _EVENT_TYPE.fullmatch(event_type):
        raise Malformed("the event type is missing or malformed")
    created = event.get("created", 0)
    if isinstance(created, bool) or not isinstance(created, int) \
            or not 0 <= created <= MAX_CREATED:
        raise Malformed("created is not a Unix time")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise Malformed("data.object is not an object")
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise Malformed("metadata is not an object")
    for key, value in metadata.items():
        _printable(value, f"metadata.{str(key)[:40]}", 500)
    if metadata.get("mode", modes.LIVE) not in modes.MODES:
        raise Malformed("metadata.mode is not live or test")
    for field in ("id", "client_reference_id", "payment_intent", "payment_status"):
        _printable(obj.get(field), field, 255)
    for field in ("amount_total", "amount_received", "amount_paid"):
        _amount(obj.get(field), field)
    currency = obj.get("currency")
    if currency is not None and not (isinstance(currency, str) and _CURRENCY.fullmatch(currency)):
        raise Malformed("currency is not a three-letter code")
    return event_id, event_type, obj, metadata, created


def _reject(event: Any, reason: str) -> None:
    """Log a malformed event by its id and keep it as rejected (once), so that the operator
    sees it and a redelivery changes nothing."""
    raw_id = event.get("id") if isinstance(event, dict) else None
    event_id = raw_id if isinstance(raw_id, str) and _EVENT_ID.fullmatch(raw_id) else None
    log.warning("payment event %s rejected: %s", event_id or "(no usable id)", reason)
    if event_id is None:
        return
    raw_type = event.get("type")
    event_type = raw_type if isinstance(raw_type, str) and _EVENT_TYPE.fullmatch(raw_type) \
        else "malformed"
    session = db.session_for(modes.LIVE)
    try:
        with session.begin():
            session.add(PaymentEvent(id=event_id, type=event_type, order_id=None, created=0,
                                     outcome=f"rejected: {reason}"[:300]))
    except IntegrityError:
        session.rollback()  # seen before: it was rejected (or handled) then


def construct_event(payload: bytes, signature: str | None) -> dict[str, Any]:
    secret = current_app.config["STRIPE_WEBHOOK_SECRET"]
    if not signature:
        raise BadEvent("missing Stripe-Signature header")
    try:
        stripe.Webhook.construct_event(payload, signature, secret,
                                       tolerance=current_app.config["WEBHOOK_TOLERANCE"])
    except (ValueError, stripe.SignatureVerificationError) as exc:
        raise BadEvent(f"invalid payload or signature: {type(exc).__name__}") from None
    event = json.loads(payload)
    return event if isinstance(event, dict) else {"data": event}


def handle_event(event: Any) -> tuple[str, int]:
    """Store and dispatch one verified event; return (outcome, HTTP status). A signed event of
    an unexpected shape is a 400, logged and stored as rejected; nothing is fulfilled."""
    try:
        event_id, event_type, obj, metadata, created = check_shape(event)
    except Malformed as exc:
        _reject(event, str(exc))
        return f"malformed event: {exc}", 400
    with db.use(metadata.get("mode", modes.LIVE)):  # the order lives in its checkout's mode
        outcome, status = _handle(event_id, event_type, obj, metadata, created)
        if status == 200:
            kilograms.seal_due(db.session)  # grams it allocated go into the ledger now
        return outcome, status


def _handle(event_id: str, event_type: str, obj: dict[str, Any],
            metadata: dict[str, Any], created: int) -> tuple[str, int]:
    reference = obj.get("client_reference_id") or metadata.get("order")
    session = db.session
    try:
        with session.begin():
            order = checkout.locked_order(session, reference) if isinstance(reference, str) else None
            stored = PaymentEvent(id=event_id, type=event_type,
                                  order_id=order.id if order else None, created=created)
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
    except DBAPIError as exc:
        # The database connection was lost mid-transaction (a restart, a failover, a killed
        # backend): nothing of the transaction was kept, the pool drops the connection, and the
        # provider redelivers the event later, which then fulfils the order once.
        session.rollback()
        if not exc.connection_invalidated:
            raise
        log.warning("payment event %s: database connection lost; the provider will retry",
                    event_id)
        return "database unavailable; retry later", 503


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
