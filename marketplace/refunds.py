"""Refunds, in three steps so that no lock is held while the payment provider is called:

1. in one transaction, the order is checked, its held credits go back to the inventory through
   the ledger, and it becomes ``refund_pending`` (``checkout.request_refund``); commit;
2. the provider is asked to refund the payment, outside any transaction (an invoice is credited
   outside the provider, so nothing is asked);
3. in a second transaction the order becomes ``refunded``, or keeps ``refund_pending`` with the
   provider's error for the operator to see and retry (asking again starts at step 2).
"""

from __future__ import annotations

import logging

from . import checkout, payments
from .database import db

log = logging.getLogger(__name__)


class RefundPending(Exception):
    """The refund is recorded but the provider has not refunded the money yet."""


def refund_order(reference: str) -> str:
    """Refund ``reference`` (outside any transaction); returns what happened. Raises
    ``checkout.RefundError`` if the order cannot be refunded, :class:`RefundPending` if the
    provider refused or failed."""
    session = db.session
    with session.begin():
        order = checkout.request_refund(session, reference)
        gateway_name = order.gateway
    if gateway_name != "invoice":
        try:
            payments.gateway_named(gateway_name).refund(order)
        except Exception as exc:  # noqa: BLE001 - whatever the provider did, record it
            message = str(exc) if isinstance(exc, payments.GatewayError) else type(exc).__name__
            log.warning("refund of %s failed at the payment provider: %s", reference, message)
            with session.begin():
                checkout.refund_failed(session, reference, message)
            raise RefundPending(message) from None
    with session.begin():
        return checkout.complete_refund(session, reference)
