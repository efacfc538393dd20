"""Payment gateways behind one interface, chosen by configuration (CARBON_PAYMENT_GATEWAY).

``stripe``: the official stripe library, its API base configurable (tests point it at a local
fake). ``demo``: a local hosted-checkout page that sends the app a webhook signed exactly as
Stripe signs them, so the demo runs the same fulfilment path; refused in production.
Fulfilment only ever happens in the webhook handler (``payments.webhooks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from flask import current_app

from ..models import Order


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


class GatewayError(Exception):
    """A gateway could not do what was asked; the message is safe to show."""


class Gateway(Protocol):
    name: str

    def create_checkout(self, order: Order, *, success_url: str, cancel_url: str,
                        customer_email: str | None = None) -> CheckoutSession:
        """Open a hosted checkout for the order (idempotent per order)."""
        ...

    def refund(self, order: Order) -> None:
        """Return the order's payment to the buyer (idempotent per order)."""
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
