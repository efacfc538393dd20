"""Payment gateways behind one interface, chosen by configuration (CARBON_PAYMENT_GATEWAY).

``stripe``: the official stripe library, its API base configurable (tests point it at a local
fake). ``demo``: local pages standing in for the provider's hosted checkout, which send the app
webhooks signed exactly as Stripe signs them, so the demo runs the same fulfilment path;
refused in production. Fulfilment only ever happens in the webhook handler
(``payments.webhooks``).

Every caller goes through :class:`Gateway`: the shop's checkout, the footprint's monthly
subscriptions, the API's charge of a saved payment method, refunds and cancellations. No
gateway method is ever called while a database lock is held: callers commit first (an order
``refund_pending``, a subscription ``pending``), call, then record the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from flask import current_app

from ..models import Order

if TYPE_CHECKING:
    from ..models.api import SavedPaymentMethod
    from ..models.footprints import OffsetSubscription

SUBSCRIPTION_METADATA_KEY = "offset_subscription"
"""The metadata key naming a subscription's reference on the provider's objects."""


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


class GatewayError(Exception):
    """A gateway could not do what was asked; the message is safe to show."""


class PaymentDeclined(GatewayError):
    """The payment method was refused (a card error): nothing was charged."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class NoPaymentMethod(GatewayError):
    """There is no saved payment method to charge."""


class Gateway(Protocol):
    name: str

    def create_checkout(self, order: Order, *, success_url: str, cancel_url: str,
                        customer_email: str | None = None) -> CheckoutSession:
        """Open a hosted checkout for the order (idempotent per order)."""
        ...

    def create_subscription_checkout(self, subscription: OffsetSubscription, *,
                                     success_url: str, cancel_url: str,
                                     customer_email: str | None,
                                     description: str) -> CheckoutSession:
        """Open the page where the subscriber agrees to pay monthly (idempotent per
        subscription)."""
        ...

    def charge_saved_method(self, order: Order,
                            method: SavedPaymentMethod | None) -> str | None:
        """Charge the organisation's saved payment method for ``order`` off-session
        (idempotent per order). Returns the provider's payment reference, whose webhook will
        fulfil the order, or None when the payment was settled at once. Raises
        :class:`NoPaymentMethod`, :class:`PaymentDeclined` or :class:`GatewayError`."""
        ...

    def refund(self, order: Order) -> None:
        """Return the order's payment to the buyer (idempotent per order)."""
        ...

    def cancel_subscription(self, subscription: OffsetSubscription) -> None:
        """Stop the provider charging for the subscription (idempotent)."""
        ...


def gateway_name(mode: str | None = None) -> str:
    """The gateway that takes payments in ``mode`` (default: the current one): live mode uses
    ``CARBON_PAYMENT_GATEWAY``; test mode ``CARBON_TEST_PAYMENT_GATEWAY`` (the demo gateway by
    default: test orders are paid by the same webhook path, and no money ever moves)."""
    from ..database import db
    from ..modes import LIVE

    mode = mode or db.mode()
    config = current_app.config
    return str(config["PAYMENT_GATEWAY"] if mode == LIVE else config["TEST_PAYMENT_GATEWAY"])


def gateway(mode: str | None = None) -> Gateway:
    """The gateway for ``mode`` (default: the current one)."""
    return gateway_named(gateway_name(mode))


def gateway_named(name: str) -> Gateway:
    """The gateway called ``name`` (``demo`` or ``stripe``), built once per app (it keeps an
    HTTP session)."""
    cached: Gateway | None = current_app.extensions.get(f"selva_gateway_{name}")
    if cached is not None:
        return cached
    made: Gateway
    if name == "demo":
        from .demo import DemoGateway

        made = DemoGateway()
    elif name == "stripe":
        from .stripe_gateway import StripeGateway

        cfg = current_app.config
        made = StripeGateway(api_key=cfg["STRIPE_SECRET_KEY"], api_base=cfg.get("STRIPE_API_BASE"))
    else:
        raise RuntimeError(f"unknown payment gateway {name!r}")
    current_app.extensions[f"selva_gateway_{name}"] = made
    return made
