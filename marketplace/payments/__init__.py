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


class Gateway(Protocol):
    name: str

    def create_checkout(self, order: Order, *, success_url: str, cancel_url: str,
                        customer_email: str | None = None) -> CheckoutSession:
        """Open a hosted checkout for the order (idempotent per order)."""
        ...

    def refund(self, order: Order) -> None:
        """Return the order's payment to the buyer (idempotent per order)."""
        ...


def gateway() -> Gateway:
    """The configured gateway for this app, built once (it keeps an HTTP session)."""
    cached: Gateway | None = current_app.extensions.get("selva_gateway")
    if cached is not None:
        return cached
    name = current_app.config["PAYMENT_GATEWAY"]
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
    current_app.extensions["selva_gateway"] = made
    return made
