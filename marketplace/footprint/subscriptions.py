"""Monthly offset subscriptions: a twelfth of a saved footprint, retired every month.

How it works (the design in one place):

- Subscribing fixes the arithmetic: ``monthly_grams`` is a twelfth of the saved footprint, to
  the nearest gram, and the monthly price is that many tonnes at the chosen project's price,
  rounded up to the cent. The payment provider runs the subscription (a Stripe Checkout
  Session with ``mode="subscription"``, or the demo gateway's local page).
- Money arriving is the only thing that retires credits: each ``invoice.paid`` webhook,
  verified and stored once by event id like every other event, reaches
  ``handle_invoice_paid``. It locks the subscription, refuses an invoice id it has seen, and
  works out the month in the open: due = carried in + monthly_grams, and exactly that many
  grams are bought from the project's kilogram pool and retired in the subscriber's name (an
  order in grams placed and fulfilled at once, through the storefront's own ``place_order``
  and ``fulfil``). Nothing is left over to carry (months paid before kilograms carried the
  part short of a whole tonne; the next month retires it).
- If the project has run out, nothing is retired that month and the whole amount is carried,
  so nothing paid for is lost.
- Cancelling stops the provider's subscription and ours; invoices already paid stay
  fulfilled, and one paid after cancelling is still honoured (the money arrived).

The provider's side (checkout, cancel, the demo's invoices) is the payment gateway's
(``marketplace.payments``); ``handle_invoice_paid`` is registered with the webhook handler for
``invoice.paid`` (``payments.webhooks.handles``). This module never commits: the webhook
handler owns the transaction.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.schema import utcnow

from .. import checkout
from ..kilograms import format_mass
from ..checkout import CartLine, CheckoutDetails, CheckoutError
from ..models import Listing, User
from ..models.footprints import OffsetInvoice, OffsetSubscription, SavedFootprint
from ..payments import SUBSCRIPTION_METADATA_KEY
from .calculator import GRAMS_PER_TONNE

log = logging.getLogger(__name__)

MIN_MONTHLY_MINOR = 50
"""Stripe charges at least 0.50 in the currencies we sell in."""
METADATA_KEY = SUBSCRIPTION_METADATA_KEY


class SubscriptionError(Exception):
    """The subscription cannot be started or changed; the message is for the subscriber."""


# -- the arithmetic ------------------------------------------------------------------------------


def monthly_grams(annual_grams: int) -> int:
    """A twelfth of a year's footprint, to the nearest gram (half up)."""
    return (annual_grams * 2 + 12) // 24


def monthly_price_minor(grams: int, price_minor: int) -> int:
    """What ``grams`` cost at ``price_minor`` a tonne, rounded up to the minor unit."""
    return -(-(grams * price_minor) // GRAMS_PER_TONNE)


def split_month(carried_in: int, monthly: int) -> tuple[int, int, int]:
    """(due grams, grams to retire, grams carried to next month): everything due is retired,
    to the gram."""
    due = carried_in + monthly
    return due, due, 0


# -- starting and stopping -----------------------------------------------------------------------


def live_subscription(session: Session, user_id: int) -> OffsetSubscription | None:
    return session.scalars(
        select(OffsetSubscription).where(OffsetSubscription.user_id == user_id,
                                         OffsetSubscription.status.in_(("pending", "active")))
    ).one_or_none()


def start(session: Session, *, user: User, footprint: SavedFootprint, listing: Listing,
          gateway: str) -> OffsetSubscription:
    """A pending subscription for ``footprint`` from ``listing``, in the caller's transaction.

    An earlier subscription that never got paid (an abandoned checkout) is cancelled; an
    active one must be cancelled by the subscriber first.
    """
    if footprint.user_id != user.id:
        raise SubscriptionError("That footprint is not yours.")
    if listing.status != "listed":
        raise SubscriptionError("That project is not on sale.")
    existing = live_subscription(session, user.id)
    if existing is not None:
        if existing.status == "active":
            raise SubscriptionError("You already offset monthly: cancel that subscription "
                                    "before starting another.")
        existing.status = "cancelled"
        existing.cancelled_at = utcnow()
        session.flush()
    if footprint.total_grams <= 0:
        raise SubscriptionError("Your saved footprint is zero: there is nothing to offset.")
    grams = monthly_grams(footprint.total_grams)
    price = monthly_price_minor(grams, listing.price_minor)
    if price < MIN_MONTHLY_MINOR:
        raise SubscriptionError("A twelfth of your footprint costs less than the smallest "
                                "monthly payment we can take: buy it once instead.")
    subscription = OffsetSubscription(
        reference="OFS-" + secrets.token_hex(5).upper(), user_id=user.id,
        footprint_id=footprint.id, listing_id=listing.id, annual_grams=footprint.total_grams,
        monthly_grams=grams, price_minor=price, currency=listing.currency,
        beneficiary=user.name, country=footprint.country, gateway=gateway, status="pending",
        months_paid=0, retired_tonnes=0, carried_grams=0,
    )
    session.add(subscription)
    session.flush()
    return subscription


def cancel(subscription: OffsetSubscription) -> None:
    """Mark the subscription cancelled (the caller has stopped the provider's)."""
    if subscription.status != "cancelled":
        subscription.status = "cancelled"
        subscription.cancelled_at = utcnow()


# -- paid invoices -------------------------------------------------------------------------------


def _details(invoice: dict[str, Any]) -> tuple[str | None, str | None]:
    """(our reference, the provider's subscription id) from an invoice, in the shapes of the
    API before and after the 2025 ``parent`` change."""
    parent = invoice.get("parent") if isinstance(invoice.get("parent"), dict) else {}
    found = (parent or {}).get("subscription_details")
    details = found if isinstance(found, dict) else invoice.get("subscription_details")
    details = details if isinstance(details, dict) else {}
    metadata = details.get("metadata") if isinstance(details.get("metadata"), dict) else {}
    reference = (metadata or {}).get(METADATA_KEY)
    if not isinstance(reference, str):
        own = invoice.get("metadata") if isinstance(invoice.get("metadata"), dict) else {}
        reference = (own or {}).get(METADATA_KEY)
    provider = details.get("subscription") or invoice.get("subscription")
    if isinstance(provider, dict):
        provider = provider.get("id")
    return _identifier(reference), _identifier(provider)


def _identifier(value: Any) -> str | None:
    """A reference or provider id as one printable line of at most 255 characters; anything
    else (a NUL, a list, a megabyte) is no id at all, and so matches no subscription."""
    if isinstance(value, str) and 0 < len(value) <= 255 and value.isprintable():
        return value
    return None


def _locked(session: Session, reference: str | None, provider: str | None
            ) -> OffsetSubscription | None:
    if reference is not None:
        stmt = select(OffsetSubscription).where(OffsetSubscription.reference == reference)
    elif provider is not None:
        stmt = select(OffsetSubscription).where(
            OffsetSubscription.provider_subscription_id == provider)
    else:
        return None
    if session.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    return session.scalars(stmt.execution_options(populate_existing=True)).one_or_none()


MAX_TIMESTAMP = 2**31 - 1
"""Unix times past 2038 are not a provider's; ``fromtimestamp`` fails on far larger ones."""


def _timestamp(value: Any) -> dt.datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_TIMESTAMP:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    return None


def _period(invoice: dict[str, Any], paid_at: dt.datetime) -> tuple[dt.date, dt.date]:
    """The month the invoice pays for: its first line's service period (end exclusive), else
    the calendar month it was paid in."""
    lines = invoice.get("lines") if isinstance(invoice.get("lines"), dict) else {}
    data = (lines or {}).get("data")
    if isinstance(data, list) and data and isinstance(data[0], dict):
        period = data[0].get("period") if isinstance(data[0].get("period"), dict) else {}
        start, end = _timestamp((period or {}).get("start")), _timestamp((period or {}).get("end"))
        if start is not None and end is not None and end > start:
            return start.date(), max(start.date(), (end - dt.timedelta(seconds=1)).date())
    first = paid_at.date().replace(day=1)
    last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
    return first, last


def handle_invoice_paid(session: Session, invoice: dict[str, Any]) -> str:
    """Fulfil one paid monthly invoice: retire this month's whole tonnes, carry the rest.

    Called by the webhook handler inside its transaction, after the event's signature was
    checked and its id stored. Idempotent per invoice id. Returns what happened, for the
    event's log.
    """
    invoice_id = invoice.get("id")
    if not isinstance(invoice_id, str) or not invoice_id:
        return "invoice without an id: ignored"
    if invoice.get("status", "paid") != "paid":
        return f"invoice status {invoice.get('status')!r}: ignored"
    reference, provider = _details(invoice)
    subscription = _locked(session, reference, provider)
    if subscription is None:
        return "not an offset subscription's invoice: ignored"
    if session.get(OffsetInvoice, invoice_id) is not None:
        return f"invoice {invoice_id} already fulfilled: nothing to do"
    amount, currency = invoice.get("amount_paid"), invoice.get("currency")
    if (not isinstance(amount, int) or isinstance(amount, bool) or not isinstance(currency, str)
            or currency.upper() != subscription.currency or amount != subscription.price_minor):
        log.error("offset subscription %s: invoice %s paid %r %r, expected %s %s",
                  subscription.reference, invoice_id, amount, currency,
                  subscription.price_minor, subscription.currency)
        return (f"amount mismatch: paid {amount!r} {currency!r}, expected "
                f"{subscription.price_minor} {subscription.currency}; not fulfilled")
    if subscription.status == "pending":
        subscription.status = "active"
        subscription.activated_at = utcnow()
    if provider and not subscription.provider_subscription_id:
        subscription.provider_subscription_id = provider
    transitions = invoice.get("status_transitions")
    paid_at = (_timestamp((transitions or {}).get("paid_at") if isinstance(transitions, dict)
                          else None)
               or _timestamp(invoice.get("created")) or utcnow())
    period_start, period_end = _period(invoice, paid_at)
    month = subscription.months_paid + 1
    carried_in = subscription.carried_grams
    due, retired, carried_out = split_month(carried_in, subscription.monthly_grams)
    order_id, note = None, ""
    if retired:
        user = session.get(User, subscription.user_id)
        assert user is not None
        details = CheckoutDetails(
            beneficiary=subscription.beneficiary, purpose="voluntary",
            country=subscription.country, period_start=period_start, period_end=period_end,
            action="retire",
            note=f"Monthly offset {subscription.reference}, month {month}",
        )
        try:
            with session.begin_nested():
                order = checkout.place_order(
                    session, user=user,
                    lines=[CartLine(subscription.listing_id, 0, None, retired)],
                    details=details, gateway=subscription.gateway)
                outcome = checkout.fulfil(session, order.reference,
                                          amount_minor=order.total_minor, currency=order.currency,
                                          payment_reference=invoice_id)
                if not outcome.startswith("fulfilled"):
                    raise CheckoutError(outcome)
                order_id = order.id
        except CheckoutError as exc:
            log.warning("offset subscription %s month %s: nothing retired: %s",
                        subscription.reference, month, exc)
            note = f"Nothing retired this month ({exc}); it is carried."[:300]
            retired, carried_out = 0, due
    session.add(OffsetInvoice(
        id=invoice_id, subscription_id=subscription.id, month=month, amount_minor=amount,
        currency=subscription.currency, paid_at=paid_at, period_start=period_start,
        period_end=period_end, carried_in_grams=carried_in,
        monthly_grams=subscription.monthly_grams, due_grams=due, retired_tonnes=0,
        retired_grams=retired, carried_out_grams=carried_out, order_id=order_id, note=note,
    ))
    subscription.months_paid = month
    subscription.retired_grams += retired
    subscription.carried_grams = carried_out
    session.flush()
    return (f"offset subscription {subscription.reference}, month {month}: "
            f"{format_mass(retired) if retired else 'nothing'} retired, "
            f"{carried_out:,} g carried to next month")
