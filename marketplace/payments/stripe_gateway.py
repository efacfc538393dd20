"""The Stripe gateway: hosted Checkout Sessions and refunds through the official library.

Every call carries an idempotency key derived from the order (``checkout-<reference>``,
``refund-<reference>``) and parameters that are a pure function of the stored order, so a
retry (ours, or the library's own after a dropped connection) gets the same session or the
same refund back from Stripe, never a second one.

Expiry: Stripe accepts a Checkout Session ``expires_at`` from 30 minutes to 24 hours after the
session is created, and our reservation TTL is 30 minutes from the moment the order is placed,
which is always a little too soon. So the session expires at
``max(order.expires_at, order.created_at + 30 min + SLACK)`` (whole seconds, at most 24 h), and
the order's ``expires_at`` is set to that same instant (in the caller's transaction if one is
open, else in a short one of the gateway's own), so that the reservation and the hosted page
lapse together (the reservation then holds for the
checkout's GRACE beyond it, for late webhooks). The value depends only on the order, never on
the clock at the time of the call, so a retried create sends identical parameters and
Stripe's idempotency layer returns the original session. Stripe refuses the create if it comes
more than SLACK after the order was placed; the caller then gets a PaymentGatewayError and
the buyer places the order again.

Fulfilment never happens here: only the signed webhook (``payments.webhooks``) moves credits.
The API key is never logged, shown, or put in an error message.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import stripe
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, object_session
from sqlalchemy.orm.attributes import set_committed_value

from ledger.schema import Batch, Project

from ..database import db
from ..models import Listing, Order, OrderLine
from ..models.api import SavedPaymentMethod
from ..models.footprints import OffsetSubscription
from . import (
    SUBSCRIPTION_METADATA_KEY,
    CheckoutSession,
    GatewayError,
    NoPaymentMethod,
    PaymentDeclined,
)

log = logging.getLogger(__name__)

STRIPE_MIN_EXPIRY = dt.timedelta(minutes=30)
STRIPE_MAX_EXPIRY = dt.timedelta(hours=24)
SLACK = dt.timedelta(minutes=2)
"""How long after placing an order its checkout may still be opened (network latency, clock
skew between us and Stripe); the session's expiry is pushed out by as much."""

CHECKOUT = "open the checkout"
REFUND = "refund the payment"
CHARGE = "take the payment"
_SECRETS = re.compile(r"\b(?:sk|rk|pk|whsec)_[A-Za-z0-9_*]+")


class PaymentGatewayError(GatewayError):
    """The payment provider could not do what we asked. The message is safe to show a buyer
    or an operator: it never carries the API key or the provider's raw response."""

    def __init__(self, message: str, *, code: str | None = None, retryable: bool = False,
                 request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable
        self.request_id = request_id


def redact(text: str) -> str:
    """``text`` with anything shaped like a Stripe key or webhook secret blanked out."""
    return _SECRETS.sub("[redacted]", text)


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; every datetime we store is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def checkout_expiry(created_at: dt.datetime, expires_at: dt.datetime) -> dt.datetime:
    """When the hosted checkout (and so the order's reservation) lapses.

    A pure function of the order, and a fixed point (``checkout_expiry(c, checkout_expiry(c, e))
    == checkout_expiry(c, e)``), so retries send Stripe the same ``expires_at``.
    """
    created, wanted = _aware(created_at), _aware(expires_at)
    chosen = min(max(wanted, created + STRIPE_MIN_EXPIRY + SLACK),
                 created + STRIPE_MAX_EXPIRY - SLACK)
    return dt.datetime.fromtimestamp(math.ceil(chosen.timestamp()), dt.UTC)


@dataclass(frozen=True)
class _Line:
    name: str
    unit_amount: int
    quantity: int


@dataclass(frozen=True)
class _OrderFacts:
    reference: str
    currency: str
    created_at: dt.datetime
    expires_at: dt.datetime
    lines: tuple[_Line, ...]


def line_name(project: str, vintage_start: dt.date | None, vintage_end: dt.date | None) -> str:
    """What the buyer sees on Stripe's page for one line."""
    if vintage_start is None:
        vintage = "oldest vintage first"
    elif vintage_end is None or vintage_end.year == vintage_start.year:
        vintage = f"vintage {vintage_start.year}"
    else:
        vintage = f"vintage {vintage_start.year}-{vintage_end.year}"
    return f"{project}, {vintage} (tonnes of CO2e)"[:250]


def _lines(session: Session, order_id: int) -> tuple[_Line, ...]:
    rows = session.execute(
        select(OrderLine.quantity, OrderLine.unit_price_minor, Project.name,
               Batch.vintage_start, Batch.vintage_end)
        .join(Listing, Listing.id == OrderLine.listing_id)
        .join(Project, Project.id == Listing.project_id)
        .outerjoin(Batch, Batch.id == OrderLine.batch_id)
        .where(OrderLine.order_id == order_id)
        .order_by(OrderLine.id)
    ).all()
    return tuple(_Line(line_name(name, start, end), int(unit), int(quantity))
                 for quantity, unit, name, start, end in rows)


def _prepare(order: Order) -> _OrderFacts:
    """Read everything the session needs and fix the order's expiry (see the module's doc).

    Inside the caller's transaction if one is open: the new expiry is then written there and
    committed by the caller. Otherwise (the checkout page calls the gateway between two
    transactions, so that no lock is held while Stripe answers) in a short transaction of our
    own, which must not leave the caller's session with a transaction begun: even setting an
    attribute on a persistent object would begin one.
    """
    session = object_session(order)
    if session is not None and session.in_transaction():
        session.flush()
        expires = checkout_expiry(order.created_at, order.expires_at)
        if _aware(order.expires_at) != expires:
            order.expires_at = expires  # the caller's transaction stores it
        return _OrderFacts(order.reference, order.currency, order.created_at, expires,
                           _lines(session, order.id))
    identity = inspect(order).identity
    if identity is None:
        raise PaymentGatewayError("The order has not been saved yet, so no checkout can be "
                                  "opened for it.")
    if session is not None:
        own = Session(bind=session.get_bind(), expire_on_commit=False)
    else:
        from ..database import db

        own = db.new_session()
    with own, own.begin():
        stored = own.get(Order, identity)
        if stored is None:
            raise PaymentGatewayError("No such order.")
        expires = checkout_expiry(stored.created_at, stored.expires_at)
        if _aware(stored.expires_at) != expires:
            stored.expires_at = expires
        facts = _OrderFacts(stored.reference, stored.currency, stored.created_at, expires,
                            _lines(own, stored.id))
    set_committed_value(order, "expires_at", expires)  # in step with the row, not dirty
    return facts


def _safe_error(exc: stripe.StripeError, action: str) -> PaymentGatewayError:
    """Turn a library error into a message fit for a buyer or an operator."""
    code = getattr(exc, "code", None)
    request_id = getattr(exc, "request_id", None)
    nothing = " Nothing was charged." if action in (CHECKOUT, CHARGE) else ""
    if isinstance(exc, stripe.APIConnectionError):
        message, retryable = (f"Could not reach the payment provider to {action}.{nothing} "
                              "Please try again in a moment."), True
    elif isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        message, retryable = ("The payment provider refused our credentials; the shop's "
                              f"payment settings need attention.{nothing}"), False
    elif isinstance(exc, stripe.IdempotencyError):
        message, retryable = (f"The payment provider already received a different request to "
                              f"{action} for this order; please place the order again."), False
    elif isinstance(exc, stripe.RateLimitError):
        message, retryable = ("The payment provider is busy; please try again in a "
                              "moment."), True
    elif isinstance(exc, stripe.CardError):
        message, retryable = f"The payment provider declined to {action}.", False
    elif isinstance(exc, stripe.InvalidRequestError):
        if code == "charge_already_refunded":
            message = "This payment has already been refunded."
        else:
            param = getattr(exc, "param", None)
            detail = ", ".join(f"{k} {v}" for k, v in (("code", code), ("parameter", param)) if v)
            message = (f"The payment provider refused the request to {action}"
                       f"{f' ({detail})' if detail else ''}.")
        retryable = False
    else:
        message, retryable = (f"The payment provider could not {action} just now.{nothing} "
                              "Please try again in a moment."), True
    log.warning("stripe: could not %s: %s (status %s, code %s, request %s): %s", action,
                type(exc).__name__, getattr(exc, "http_status", None), code, request_id,
                redact(getattr(exc, "user_message", None) or ""))
    return PaymentGatewayError(message, code=code, retryable=retryable, request_id=request_id)


def stripe_client(api_key: str, api_base: str | None,
                  max_network_retries: int) -> tuple[Any, stripe.StripeClient]:
    """An HTTP client and a StripeClient on it; ``api_base`` replaces Stripe's own."""
    if not api_key:
        raise ValueError("the stripe gateway needs a secret API key")
    http = stripe.new_default_http_client()
    base = {"api": api_base.rstrip("/")} if api_base else None
    client = stripe.StripeClient(api_key, base_addresses=base,  # type: ignore[arg-type]
                                 http_client=http, max_network_retries=max_network_retries)
    return http, client


def subscription_checkout_params(subscription: OffsetSubscription, *, success_url: str,
                                 cancel_url: str, customer_email: str | None,
                                 description: str) -> dict[str, Any]:
    """The Checkout Session parameters of a monthly subscription."""
    metadata = {SUBSCRIPTION_METADATA_KEY: subscription.reference}
    params: dict[str, Any] = {
        "mode": "subscription",
        "line_items": [{
            "price_data": {
                "currency": subscription.currency.lower(),
                "unit_amount": subscription.price_minor,
                "recurring": {"interval": "month", "interval_count": 1},
                "product_data": {"name": description[:250]},
            },
            "quantity": 1,
        }],
        "client_reference_id": subscription.reference,
        "metadata": metadata,
        "subscription_data": {"metadata": metadata},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    if customer_email:
        params["customer_email"] = customer_email
    return params


class StripeGateway:
    """Stripe Checkout through the official library (``stripe.StripeClient``).

    ``api_base`` replaces ``https://api.stripe.com`` (tests point it at a local fake over
    plain HTTP). The HTTP layer is the library's default (``requests`` when installed).
    """

    name = "stripe"

    def __init__(self, api_key: str, api_base: str | None = None, *,
                 max_network_retries: int = 2) -> None:
        self._http, self._client = stripe_client(api_key, api_base, max_network_retries)
        self.api_base = api_base.rstrip("/") if api_base else stripe.DEFAULT_API_BASE

    def __repr__(self) -> str:  # never the key
        return f"StripeGateway(api_base={self.api_base!r})"

    def close(self) -> None:
        """Close the HTTP connections this gateway holds."""
        self._http.close()

    def __enter__(self) -> StripeGateway:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- the Gateway protocol -----------------------------------------------------------

    def checkout_params(self, order: Order, *, success_url: str, cancel_url: str,
                        customer_email: str | None = None) -> dict[str, Any]:
        """The Checkout Session parameters for ``order``; fixes the order's expiry to the
        session's (see the module's doc)."""
        facts = _prepare(order)
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": facts.currency.lower(),
                        "unit_amount": line.unit_amount,
                        "product_data": {"name": line.name},
                    },
                    "quantity": line.quantity,
                }
                for line in facts.lines
            ],
            "client_reference_id": facts.reference,
            "metadata": {"order": facts.reference, "mode": db.mode()},
            "payment_intent_data": {"metadata": {"order": facts.reference, "mode": db.mode()}},
            "expires_at": int(facts.expires_at.timestamp()),
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        if customer_email:
            params["customer_email"] = customer_email
        if not params["line_items"]:
            raise PaymentGatewayError("The order has no lines to pay for.")
        return params

    def create_checkout(self, order: Order, *, success_url: str, cancel_url: str,
                        customer_email: str | None = None) -> CheckoutSession:
        params = self.checkout_params(order, success_url=success_url, cancel_url=cancel_url,
                                      customer_email=customer_email)
        reference = params["client_reference_id"]
        return self._open_checkout(params, f"checkout-{reference}", f"order {reference}")

    def create_subscription_checkout(self, subscription: OffsetSubscription, *,
                                     success_url: str, cancel_url: str,
                                     customer_email: str | None,
                                     description: str) -> CheckoutSession:
        """Stripe Checkout in subscription mode, its idempotency key from the subscription."""
        params = subscription_checkout_params(subscription, success_url=success_url,
                                              cancel_url=cancel_url,
                                              customer_email=customer_email,
                                              description=description)
        return self._open_checkout(params, f"subscription-{subscription.reference}",
                                   f"subscription {subscription.reference}")

    def _open_checkout(self, params: dict[str, Any], idempotency_key: str,
                       what: str) -> CheckoutSession:
        try:
            session = self._client.v1.checkout.sessions.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _safe_error(exc, CHECKOUT) from None
        if not session.id or not session.url:
            raise PaymentGatewayError("The payment provider returned a checkout without a page "
                                      "to pay on.")
        log.info("stripe: checkout %s opened for %s", session.id, what)
        return CheckoutSession(session.id, session.url)

    def charge_saved_method(self, order: Order,
                            method: SavedPaymentMethod | None) -> str | None:
        """An off-session PaymentIntent on the organisation's saved customer and method, its
        idempotency key from the order (a retried request never charges twice), its metadata
        naming the order, ``source: api`` and the mode; Stripe's ``payment_intent.succeeded``
        webhook then fulfils the order."""
        if method is None:
            raise NoPaymentMethod("The organisation has no saved payment method.")
        try:
            intent = self._client.v1.payment_intents.create(
                {"amount": order.total_minor, "currency": order.currency.lower(),
                 "customer": method.customer, "payment_method": method.payment_method,
                 "off_session": True, "confirm": True,
                 "description": f"Selva order {order.reference}",
                 "metadata": {"order": order.reference, "source": "api", "mode": db.mode()}},
                {"idempotency_key": f"api-charge-{order.reference}"},
            )
        except stripe.CardError as exc:
            code = getattr(exc, "code", None) or "card_error"
            raise PaymentDeclined(f"The saved payment method was declined ({code}).",
                                  code) from None
        except stripe.StripeError as exc:
            raise _safe_error(exc, CHARGE) from None
        return str(intent.id)

    def cancel_subscription(self, subscription: OffsetSubscription) -> None:
        """Cancel the provider's subscription, or expire its checkout if it never started."""
        try:
            if subscription.provider_subscription_id:
                self._client.v1.subscriptions.cancel(
                    subscription.provider_subscription_id, None,
                    {"idempotency_key": f"cancel-{subscription.reference}"})
            elif subscription.checkout_session_id:
                self._client.v1.checkout.sessions.expire(
                    subscription.checkout_session_id, None,
                    {"idempotency_key": f"expire-{subscription.reference}"})
        except stripe.InvalidRequestError as exc:
            # Already cancelled, or a checkout that completed or expired meanwhile: the
            # provider is no longer charging for it, which is what was asked.
            log.info("stripe: cancel %s: %s", subscription.reference, getattr(exc, "code", exc))
        except stripe.StripeError as exc:
            raise _safe_error(exc, "cancel the subscription") from None

    def refund(self, order: Order) -> None:
        """Refund the order's whole payment. Called outside any transaction, after the order
        was committed as ``refund_pending`` (``marketplace.refunds``); a refusal raises and
        the order stays pending with the error."""
        if not order.payment_reference:
            raise PaymentGatewayError("This order has no recorded payment to refund.")
        try:
            refund = self._client.v1.refunds.create(
                {"payment_intent": order.payment_reference,
                 "metadata": {"order": order.reference, "mode": db.mode()}},
                {"idempotency_key": f"refund-{order.reference}"},
            )
        except stripe.StripeError as exc:
            raise _safe_error(exc, REFUND) from None
        if getattr(refund, "status", None) in ("failed", "canceled"):
            raise PaymentGatewayError("The payment provider could not refund this payment.",
                                      code=str(refund.status))
        log.info("stripe: refund %s for order %s (%s)", refund.id, order.reference,
                 getattr(refund, "status", "?"))
