"""Monthly offset subscriptions on SQLite and PostgreSQL.

Paid invoices arrive as signed ``invoice.paid`` events POSTed to ``/webhooks/stripe``, verified
and stored once like every other event, and routed to ``handle_invoice_paid`` by the handler
the footprint package registers with ``payments.webhooks.handles``.

Worked example used throughout: a saved footprint of 18.6 t a year is 1,550,000 g a month.
Each month retires exactly what is due from the project's kilogram pool: 1,550 kg, nothing
carried. At $18.00 a tonne (Alto Mayo) a month costs ceil(1.55 × 1,800) = 2,790 cents.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from ledger import audit
from ledger.schema import Allocation as AllocationRow
from marketplace.accounts import account_of
from marketplace import create_app
from marketplace.footprint import subscriptions
from marketplace.models import Listing, Order, PaymentEvent, User
from marketplace.models.pools import KgAllocation
from marketplace.models.footprints import OffsetInvoice, OffsetSubscription, SavedFootprint
from marketplace.payments.signature import sign_payload

from ..fakestripe import API_KEY, WEBHOOK_SECRET, FakeStripe, StripeHTTPError
from .conftest import PASSWORD, add_user, transaction
from .shop import load_demo, small_project

ANNUAL = 18_600_000
MONTHLY = 1_550_000
PRICE = 2_790


@pytest.fixture
def site(app: Flask) -> Flask:
    return app


# -- helpers --------------------------------------------------------------------------------------


def sealed_grams(app: Flask, user_id: int) -> list[int]:
    """Grams retired for a user, per kilogram allocation written into the ledger."""
    with transaction(app) as session:
        return [int(g) for g in session.scalars(
            select(KgAllocation.grams).join(Order, Order.id == KgAllocation.order_id)
            .where(Order.user_id == user_id, KgAllocation.state == "sealed")
            .order_by(KgAllocation.id))]


def invoice_event(reference: str | None, *, invoice_id: str | None = None,
                  amount: int = PRICE, currency: str = "usd", event_id: str | None = None,
                  provider: str = "sub_test_123", shape: str = "parent") -> dict[str, Any]:
    """An ``invoice.paid`` event as Stripe sends it (``shape="legacy"``: before the 2025
    ``parent`` field, with ``subscription`` and ``subscription_details`` at the top)."""
    now = int(time.time())
    details: dict[str, Any] = {"subscription": provider,
                               "metadata": {"offset_subscription": reference} if reference else {}}
    invoice: dict[str, Any] = {
        "id": invoice_id or f"in_{secrets.token_hex(8)}", "object": "invoice", "status": "paid",
        "amount_paid": amount, "currency": currency, "created": now,
        "status_transitions": {"paid_at": now}, "billing_reason": "subscription_cycle",
    }
    if shape == "parent":
        invoice["parent"] = {"type": "subscription_details", "subscription_details": details}
    else:
        invoice.update(subscription=provider, subscription_details=details)
    return {"id": event_id or f"evt_{secrets.token_hex(8)}", "object": "event",
            "type": "invoice.paid", "created": now, "livemode": False,
            "data": {"object": invoice}}


def deliver(client: FlaskClient, event: dict[str, Any], secret: str = WEBHOOK_SECRET
            ) -> tuple[int, str]:
    payload = json.dumps(event, indent=2).encode()
    response = client.post("/webhooks/stripe", data=payload, headers={
        "Stripe-Signature": sign_payload(payload, secret), "Content-Type": "application/json"})
    body = response.get_json()
    return response.status_code, body.get("outcome", body.get("error"))


class Subscriber:
    """Grace, her saved footprint of 18.6 t a year, and a subscription to offset it."""

    def __init__(self, app: Flask, client: FlaskClient, *, annual: int = ANNUAL,
                 slug: str = "alto-mayo", listing_id: int | None = None,
                 gateway: str = "demo", email: str = "grace@example.org") -> None:
        self.app, self.client, self.email = app, client, email
        self.user_id = add_user(app, email, name="Grace Hopper")
        with transaction(app) as session:
            self.footprint_id = self.save(session, annual)
            listing = session.get(Listing, listing_id) if listing_id else session.scalar(
                select(Listing).where(Listing.slug == slug))
            subscription = subscriptions.start(session, user=session.get(User, self.user_id),
                                               footprint=session.get(SavedFootprint,
                                                                     self.footprint_id),
                                               listing=listing, gateway=gateway)
            subscription.checkout_session_id = f"cs_demo_sub_{secrets.token_hex(6)}"
            self.reference = subscription.reference
            self.account = account_of(session, session.get(User, self.user_id)).id

    def save(self, session: Any, annual: int) -> int:
        saved = SavedFootprint(user_id=self.user_id, country="GB", inputs="{}", lines="[]",
                               total_grams=annual, factor_versions="test")
        session.add(saved)
        session.flush()
        return saved.id

    def login(self) -> None:
        response = self.client.post("/login", data={"email": self.email, "password": PASSWORD})
        assert response.status_code == 302

    def pay(self, **kwargs: Any) -> tuple[int, str]:
        return deliver(self.client, invoice_event(self.reference, **kwargs))

    def subscription(self) -> OffsetSubscription:
        with transaction(self.app) as session:
            found = session.scalars(select(OffsetSubscription).where(
                OffsetSubscription.reference == self.reference)).one()
            return found

    def months(self) -> list[tuple[int, int, int, int, int]]:
        """(month, carried in, due, retired, carried out) per paid invoice."""
        with transaction(self.app) as session:
            return [(i.month, i.carried_in_grams, i.due_grams, i.retired_grams,
                     i.carried_out_grams)
                    for i in session.scalars(select(OffsetInvoice).order_by(OffsetInvoice.month))]

    def retired(self) -> list[int]:
        """Grams retired for the subscriber, per allocation written into the ledger."""
        return sealed_grams(self.app, self.user_id)


# -- the arithmetic -------------------------------------------------------------------------------


def test_a_twelfth_to_the_gram_and_the_price_rounded_up() -> None:
    assert subscriptions.monthly_grams(ANNUAL) == MONTHLY
    assert subscriptions.monthly_grams(12_222_222) == 1_018_519   # 1,018,518.5 → half up
    assert subscriptions.monthly_grams(12_222_221) == 1_018_518   # 1,018,518.4
    assert subscriptions.monthly_price_minor(MONTHLY, 1_800) == PRICE  # 2,790.0 cents
    assert subscriptions.monthly_price_minor(1_018_519, 1_800) == 1_834  # 1,833.33 → up
    assert subscriptions.split_month(0, MONTHLY) == (1_550_000, 1_550_000, 0)
    # grams carried by a month paid before exact kilograms are retired with the next one
    assert subscriptions.split_month(550_000, MONTHLY) == (2_100_000, 2_100_000, 0)
    assert subscriptions.split_month(0, 999_999) == (999_999, 999_999, 0)


# -- paid invoices --------------------------------------------------------------------------------


def test_two_paid_invoices_retire_exactly_what_each_month_owes(
        site: Flask, client: FlaskClient) -> None:
    grace = Subscriber(site, client)
    before = grace.subscription()
    assert (before.status, before.monthly_grams, before.price_minor, before.currency) == (
        "pending", MONTHLY, PRICE, "USD")

    status, outcome = grace.pay(invoice_id="in_month_1")
    assert status == 200, outcome
    assert outcome == (f"offset subscription {grace.reference}, month 1: 1,550 kg retired, "
                       "0 g carried to next month")
    status, outcome = grace.pay(invoice_id="in_month_2")
    assert status == 200
    assert outcome.endswith("month 2: 1,550 kg retired, 0 g carried to next month")

    assert grace.months() == [(1, 0, 1_550_000, 1_550_000, 0), (2, 0, 1_550_000, 1_550_000, 0)]
    after = grace.subscription()
    assert (after.status, after.provider_subscription_id) == ("active", "sub_test_123")
    assert (after.months_paid, after.retired_grams, after.carried_grams) == (2, 3_100_000, 0)
    assert grace.retired() == [1_550_000, 1_550_000]
    with transaction(site) as session:
        orders = list(session.scalars(select(Order).order_by(Order.id)))
        assert [(o.status, o.grams, o.payment_reference, o.beneficiary) for o in orders] == [
            ("fulfilled", 1_550_000, "in_month_1", "Grace Hopper"),
            ("fulfilled", 1_550_000, "in_month_2", "Grace Hopper")]
        assert orders[0].note == f"Monthly offset {grace.reference}, month 1"
        names = session.scalars(select(AllocationRow.name))
        assert set(names) == {"Grace Hopper"}
        audit.verify(session)

    # The subscriber sees every month's arithmetic, and a certificate for each retirement.
    grace.login()
    page = client.get("/footprint/account").get_data(as_text=True)
    assert re.findall(r'fp-month-retired">([^<]+)<', page) == ["1,550 kg", "1,550 kg"]
    assert re.findall(r'fp-month-carried">([^<]+)<', page) == ["0 g", "0 g"]
    assert 'fp-carried"' not in page and 'fp-retired-total">3,100 kg<' in page
    assert len(re.findall(r'href="/registry/kg/kg_[0-9a-f]{16}">Certificate', page)) == 2


def test_a_repeated_invoice_does_nothing(site: Flask, client: FlaskClient) -> None:
    grace = Subscriber(site, client)
    event = invoice_event(grace.reference, invoice_id="in_once", event_id="evt_once")
    assert deliver(client, event)[0] == 200
    # Stripe redelivers the same event: stored once by its id.
    assert deliver(client, event) == (200, "duplicate event: already handled")
    # The same invoice under a new event id: fulfilled once by the invoice's id.
    again = invoice_event(grace.reference, invoice_id="in_once", event_id="evt_twice")
    assert deliver(client, again) == (200, "invoice in_once already fulfilled: nothing to do")
    assert grace.months() == [(1, 0, 1_550_000, 1_550_000, 0)]
    assert grace.retired() == [1_550_000]
    assert grace.subscription().months_paid == 1
    with transaction(site) as session:
        assert session.scalar(select(func.count()).select_from(PaymentEvent)) == 2


def test_invoices_of_the_older_api_shape_and_by_provider_id(
        site: Flask, client: FlaskClient) -> None:
    grace = Subscriber(site, client)
    assert grace.pay(shape="legacy", provider="sub_legacy")[0] == 200
    # Later invoices found by the provider's subscription id alone (no metadata).
    status, outcome = deliver(client, invoice_event(None, provider="sub_legacy"))
    assert status == 200 and "month 2: 1,550 kg retired" in outcome
    assert grace.retired() == [1_550_000, 1_550_000]


@pytest.mark.parametrize(("change", "outcome"), [
    ({"amount": PRICE - 1}, "amount mismatch"),
    ({"currency": "eur"}, "amount mismatch"),
])
def test_a_wrong_amount_is_not_fulfilled(site: Flask, client: FlaskClient,
                                         change: dict[str, Any], outcome: str) -> None:
    grace = Subscriber(site, client)
    status, said = grace.pay(**change)
    assert status == 200 and said.startswith(outcome)
    assert grace.months() == [] and grace.retired() == []
    assert grace.subscription().status == "pending"


def test_invoices_that_are_not_ours_or_not_signed_are_ignored(
        site: Flask, client: FlaskClient) -> None:
    grace = Subscriber(site, client)
    assert deliver(client, invoice_event("OFS-NOSUCHREF0", provider="sub_other")) == (
        200, "not an offset subscription's invoice: ignored")
    assert deliver(client, invoice_event(None, provider="sub_unknown"))[1].startswith("not an")
    assert deliver(client, invoice_event(grace.reference), secret="whsec_wrong")[0] == 400
    unpaid = invoice_event(grace.reference)
    unpaid["data"]["object"]["status"] = "open"
    assert deliver(client, unpaid)[1] == "invoice status 'open': ignored"
    assert grace.months() == []


def test_a_month_with_too_few_credits_left_carries_everything(
        site: Flask, client: FlaskClient) -> None:
    """A project with 1 t left, and 2.5 t a month due: nothing retired, all carried."""
    listing = small_project(site, tonnes=1, price_minor=2_000)
    grace = Subscriber(site, client, annual=30_000_000, listing_id=listing)
    status, outcome = deliver(client, invoice_event(
        grace.reference, amount=grace.subscription().price_minor))
    assert status == 200 and "month 1: nothing retired, 2,500,000 g carried" in outcome
    assert grace.months() == [(1, 0, 2_500_000, 0, 2_500_000)]
    with transaction(site) as session:
        note = session.scalar(select(OffsetInvoice.note))
        assert note.startswith("Nothing retired this month (Only 1,000 kg")
        assert session.scalar(select(func.count()).select_from(Order)) == 0


def test_a_subscriber_can_have_one_live_subscription(site: Flask, client: FlaskClient) -> None:
    grace = Subscriber(site, client)
    grace.pay()
    with transaction(site) as session:
        user = session.get(User, grace.user_id)
        saved = session.get(SavedFootprint, grace.footprint_id)
        listing = session.scalar(select(Listing).where(Listing.slug == "alto-mayo"))
        with pytest.raises(subscriptions.SubscriptionError, match="already offset monthly"):
            subscriptions.start(session, user=user, footprint=saved, listing=listing,
                                gateway="demo")


# -- through the pages with the demo gateway ------------------------------------------------------


def test_subscribe_pay_twice_and_cancel_through_the_demo_pages(
        site: Flask, client: FlaskClient) -> None:
    user_id = add_user(site, "ada@example.org", name="Ada Lovelace")
    assert client.post("/login", data={"email": "ada@example.org",
                                       "password": PASSWORD}).status_code == 302
    # No saved footprint yet: the subscription has nothing to divide.
    assert client.get("/footprint/subscribe").headers["Location"].endswith("/footprint")
    with transaction(site) as session:
        session.add(SavedFootprint(user_id=user_id, country="GB", inputs="{}", lines="[]",
                                   total_grams=ANNUAL, factor_versions="test"))
        alto = int(session.scalar(select(Listing.id).where(Listing.slug == "alto-mayo")))
    form = client.get("/footprint/subscribe").get_data(as_text=True)
    assert "<strong>1.55 t</strong>" in form and "$27.90 a month" in form
    for odd in ("", "²", "99999999999999", "x"):
        refused = client.post("/footprint/subscribe", data={"listing_id": odd})
        assert refused.status_code == 400 and "Choose a project" in refused.get_data(as_text=True)
    started = client.post("/footprint/subscribe", data={"listing_id": str(alto)})
    assert started.status_code == 302
    provider_page = started.headers["Location"]
    assert re.search(r"/footprint/demo-subscription/cs_demo_sub_[0-9a-f]{24}$", provider_page)
    page = client.get(provider_page).get_data(as_text=True)
    assert "no money moves" in page and "$27.90 a month" in page
    assert client.post(provider_page + "/pay").status_code == 302
    assert client.post(provider_page + "/pay").status_code == 302
    account = client.get("/footprint/account").get_data(as_text=True)
    assert re.findall(r'fp-month-retired">([^<]+)<', account) == ["1,550 kg", "1,550 kg"]
    assert re.findall(r'fp-month-carried">([^<]+)<', account) == ["0 g", "0 g"]
    assert "Active" in account

    cancelled = client.post("/footprint/subscription/cancel")
    assert cancelled.status_code == 302
    account = client.get("/footprint/account").get_data(as_text=True)
    assert "Cancelled" in account and "Cancel the monthly subscription" not in account
    # The demo provider sends no more invoices; what was retired stays retired.
    client.post(provider_page + "/pay")
    with transaction(site) as session:
        subscription = session.scalars(select(OffsetSubscription)).one()
        assert (subscription.status, subscription.months_paid) == ("cancelled", 2)
        assert subscription.cancelled_at is not None
    assert sealed_grams(site, user_id) == [1_550_000, 1_550_000]
    # Cancelling twice is harmless; subscribing again is possible.
    assert client.post("/footprint/subscription/cancel").status_code == 302
    assert client.post("/footprint/subscribe", data={"listing_id": str(alto)}).status_code == 302


def test_abandoning_the_demo_checkout_leaves_nothing_live(
        site: Flask, client: FlaskClient) -> None:
    grace = Subscriber(site, client)
    grace.login()
    session_id = grace.subscription().checkout_session_id
    assert client.post(f"/footprint/demo-subscription/{session_id}/cancel").status_code == 302
    assert grace.subscription().status == "cancelled"
    other = add_user(site, "other@example.org")
    assert other
    # Someone else's provider page is not found.
    client.post("/logout")
    client.post("/login", data={"email": "other@example.org", "password": PASSWORD})
    assert client.get(f"/footprint/demo-subscription/{session_id}").status_code == 404


def test_the_real_webhook_branch_dispatches_invoice_paid(
        site: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """``payments.webhooks._dispatch`` itself sends invoice.paid to ``handle_invoice_paid``."""
    monkeypatch.undo()
    grace = Subscriber(site, client)
    status, outcome = grace.pay()
    assert status == 200 and "month 1: 1,550 kg retired" in outcome


# -- the Stripe gateway, against a local fake Stripe ----------------------------------------------


class SubscriptionStripe(FakeStripe):
    """The shared fake Stripe plus the three subscription calls this feature makes."""

    def _dispatch(self, method: str, path: str, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        subscription_mode = form.get("mode") == "subscription"
        if method == "POST" and path == "/v1/checkout/sessions" and subscription_mode:
            session_id = f"cs_test_{secrets.token_hex(12)}"
            session = {"id": session_id, "object": "checkout.session", "mode": "subscription",
                       "status": "open", "url": f"{self.url}/c/pay/{session_id}",
                       "client_reference_id": form.get("client_reference_id"),
                       "metadata": form.get("metadata") or {}}
            with self._lock:
                self.sessions[session_id] = session
            return 200, session
        expire = re.fullmatch(r"/v1/checkout/sessions/([A-Za-z0-9_]+)/expire", path)
        if method == "POST" and expire:
            with self._lock:
                found = self.sessions.get(expire.group(1))
                if found is None:
                    raise StripeHTTPError(404, "invalid_request_error", "No such session",
                                          code="resource_missing")
                found["status"] = "expired"
            return 200, dict(found)
        cancel = re.fullmatch(r"/v1/subscriptions/([A-Za-z0-9_]+)", path)
        if method == "DELETE" and cancel:
            return 200, {"id": cancel.group(1), "object": "subscription", "status": "canceled"}
        return super()._dispatch(method, path, form)


@pytest.fixture
def stripe_site(fresh_url: str) -> Iterator[tuple[Flask, SubscriptionStripe]]:
    with SubscriptionStripe() as fake:
        app = create_app({"DATABASE_URL": fresh_url, "SECRET_KEY": "test",
                          "PAYMENT_GATEWAY": "stripe", "STRIPE_SECRET_KEY": API_KEY,
                          "STRIPE_API_BASE": fake.url, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                          "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False,
                          "POOL_SEAL_SECONDS": 0})
        load_demo(app)
        yield app, fake
        gateway = app.extensions.get("selva_gateway_stripe")
        if gateway is not None:
            gateway.close()
        app.extensions["selva_engine"].dispose()


def test_stripe_subscription_checkout_invoices_and_cancel(
        stripe_site: tuple[Flask, SubscriptionStripe]) -> None:
    app, fake = stripe_site
    client = app.test_client()
    user_id = add_user(app, "lin@example.org", name="Lin Wei")
    assert client.post("/login", data={"email": "lin@example.org",
                                       "password": PASSWORD}).status_code == 302
    assert "footprint_demo" not in app.blueprints
    with transaction(app) as session:
        session.add(SavedFootprint(user_id=user_id, country="GB", inputs="{}", lines="[]",
                                   total_grams=ANNUAL, factor_versions="test"))
        alto = int(session.scalar(select(Listing.id).where(Listing.slug == "alto-mayo")))
    started = client.post("/footprint/subscribe", data={"listing_id": str(alto)})
    assert started.status_code == 302, started.get_data(as_text=True)[:500]
    (call,) = fake.calls("POST", "/v1/checkout/sessions")
    with transaction(app) as session:
        subscription = session.scalars(select(OffsetSubscription)).one()
        reference = subscription.reference
        assert subscription.checkout_session_id in started.headers["Location"]
    assert call.idempotency_key == f"subscription-{reference}"
    form = call.form
    assert form["mode"] == "subscription"
    assert form["client_reference_id"] == reference
    assert form["metadata"] == {"offset_subscription": reference}
    assert form["subscription_data"] == {"metadata": {"offset_subscription": reference}}
    assert form["customer_email"] == "lin@example.org"
    assert form["line_items"] == [{"price_data": {
        "currency": "usd", "unit_amount": str(PRICE),
        "recurring": {"interval": "month", "interval_count": "1"},
        "product_data": {"name": "Monthly offset: 1.55 t CO2e a month from Alto Mayo "
                                 "Protected Forest"}}, "quantity": "1"}]

    # Stripe's checkout.session.completed for a subscription touches no order.
    completed = {"id": "evt_done", "object": "event", "type": "checkout.session.completed",
                 "created": int(time.time()), "data": {"object": {
                     "id": "cs_x", "object": "checkout.session", "mode": "subscription",
                     "client_reference_id": reference, "payment_status": "paid",
                     "amount_total": PRICE, "currency": "usd", "subscription": "sub_live"}}}
    assert deliver(client, completed)[0] == 200
    for month in (1, 2):
        status, outcome = deliver(client, invoice_event(reference, provider="sub_live",
                                                        invoice_id=f"in_live_{month}"))
        assert status == 200 and f"month {month}: 1,550 kg retired" in outcome
    assert client.post("/footprint/subscription/cancel").status_code == 302
    (cancel,) = fake.calls("DELETE", "/v1/subscriptions/sub_live")
    assert cancel.idempotency_key == f"cancel-{reference}"
    with transaction(app) as session:
        subscription = session.scalars(select(OffsetSubscription)).one()
        assert (subscription.status, subscription.retired_grams,
                subscription.carried_grams) == ("cancelled", 3_100_000, 0)


def test_stripe_cancelling_an_unpaid_subscription_expires_its_checkout(
        stripe_site: tuple[Flask, SubscriptionStripe]) -> None:
    app, fake = stripe_site
    client = app.test_client()
    grace = Subscriber(app, client, gateway="stripe")
    grace.login()
    with transaction(app) as session:
        subscription = session.scalars(select(OffsetSubscription)).one()
        subscription.checkout_session_id = "cs_test_unknown"
    # The provider no longer knows the checkout: still cancelled here, nothing charged.
    assert client.post("/footprint/subscription/cancel").status_code == 302
    assert fake.calls("POST", "/v1/checkout/sessions/cs_test_unknown/expire")
    assert grace.subscription().status == "cancelled"


def test_stripe_refusing_the_checkout_is_explained(
        stripe_site: tuple[Flask, SubscriptionStripe]) -> None:
    app, fake = stripe_site
    client = app.test_client()
    user_id = add_user(app, "kim@example.org", name="Kim")
    client.post("/login", data={"email": "kim@example.org", "password": PASSWORD})
    with transaction(app) as session:
        session.add(SavedFootprint(user_id=user_id, country="GB", inputs="{}", lines="[]",
                                   total_grams=ANNUAL, factor_versions="test"))
        alto = int(session.scalar(select(Listing.id).where(Listing.slug == "alto-mayo")))
    fake.failures.append((400, {"error": {"type": "invalid_request_error",
                                          "message": "sk_live_secret leaked?",
                                          "param": "line_items"}}))
    response = client.post("/footprint/subscribe", data={"listing_id": str(alto)})
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "The payment provider refused the request" in body and "sk_live" not in body
    with transaction(app) as session:
        assert session.scalars(select(OffsetSubscription.status)).one() == "cancelled"


def test_an_invoice_of_an_odd_shape_is_never_a_500(site: Flask, client: FlaskClient) -> None:
    """A correctly signed invoice.paid whose times or ids no real invoice has is never a 500
    (which the provider would retry forever): impossible times are ignored (the payment's own
    month is used), ids no column could hold match no subscription and retire nothing."""
    grace = Subscriber(site, client)
    paid = grace.subscription().months_paid
    late = invoice_event(grace.reference)
    late["data"]["object"]["status_transitions"]["paid_at"] = 10**13
    late["data"]["object"]["created"] = 10**20
    periods = invoice_event(grace.reference)
    periods["data"]["object"]["lines"] = {"data": [{"period": {"start": 10**18, "end": 10**19}}]}
    for event in (late, periods):
        status, outcome = deliver(client, event)
        assert status == 200 and "retired" in outcome, (status, outcome)
    assert grace.subscription().months_paid == paid + 2
    for event in (invoice_event(grace.reference + "\x00", provider="sub_other"),
                  invoice_event(None, provider="sub_\x00" + "x" * 5000)):
        status, outcome = deliver(client, event)
        assert status < 500, (status, outcome)
    assert grace.subscription().months_paid == paid + 2
    with transaction(site) as session:
        audit.verify(session)
