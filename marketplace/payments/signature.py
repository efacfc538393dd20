"""Webhook signatures as Stripe makes them: ``Stripe-Signature: t=<unix time>,v1=<hex>``
where v1 is HMAC-SHA256 of ``"<t>.<payload>"`` under the endpoint's secret. Used by the demo
gateway (and tests) to sign; verification is always ``stripe.Webhook.construct_event``."""

from __future__ import annotations

import hashlib
import hmac
import time


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header value for ``payload``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"
