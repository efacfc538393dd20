"""Paying through Stripe: the real ``stripe`` library talks HTTP to a local fake Stripe API
(``tests/fakestripe.py``), and signed webhooks are POSTed to ``/webhooks/stripe``.

Covers the Checkout Session request (line items, reference, metadata, expiry, idempotency),
fulfilment exactly once whatever Stripe repeats or reorders, signature and replay checks,
amount and currency checks, delayed payment methods, refunds, and the configuration rules.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import types
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from ledger import audit, queries
from ledger.schema import Batch, Beneficiary, Block
from marketplace.accounts import account_of
from marketplace import checkout, create_app, refunds
from marketplace.checkout import CartLine, CheckoutDetails
from marketplace.config import ConfigError
from marketplace.database import db
from marketplace.models import Listing, Order, PaymentEvent, User
from marketplace.payments import CheckoutSession, gateway
from marketplace.payments.stripe_gateway import PaymentGatewayError, StripeGateway

from ..fakestripe import API_KEY, WEBHOOK_SECRET, FakeStripe, SignedEvent, fake_stripe
from .shop import add_user, checkout_form, listing_for, load_demo, login, small_project, transaction

__all__ = ["fake_stripe"]  # the fixture, imported for this module's tests

SUCCESS_URL = "https://shop.example/orders/success"
CANCEL_URL = "https://shop.example/cart"


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def stripe_config(url: str, api_base: str) -> dict[str, Any]:
    return {"DATABASE_URL": url, "SECRET_KEY": "test", "PAYMENT_GATEWAY": "stripe",
            "STRIPE_SECRET_KEY": API_KEY, "STRIPE_API_BASE": api_base,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "WTF_CSRF_ENABLED": False,
            "RATELIMIT_ENABLED": False}


def dispose(app: Flask) -> None:
    bind = app.extensions["selva_db"].kw["bind"]
    bind.dispose()


class Shop:
    """The app, the fake Stripe, a buyer and a gateway, with the steps of a purchase."""

    def __init__(self, app: Flask, fake: FakeStripe) -> None:
        self.app = app
        self.fake = fake
        self.client = app.test_client()
        self.gateway = StripeGateway(api_key=API_KEY, api_base=fake.url)
        self.buyer = add_user(app, "ada@example.org", "Ada Lovelace")
        self.alto_mayo = listing_for(app, "944")
        with transaction(app) as session:
            self.account = account_of(session, session.get(User, self.buyer)).id

    def place(self, quantity: int = 2, *, action: str = "retire",
              lines: list[CartLine] | None = None, listing: int | None = None) -> str:
        details = CheckoutDetails(beneficiary="Ada Lovelace", purpose="voluntary", country="GB",
                                  period_start=dt.date(2025, 1, 1),
                                  period_end=dt.date(2025, 12, 31), action=action)
        with transaction(self.app) as session:
            order = checkout.place_order(
                session, user=session.get(User, self.buyer), details=details, gateway="stripe",
                lines=lines or [CartLine(listing or self.alto_mayo, quantity)])
            return order.reference

    def open(self, reference: str, **overrides: Any) -> CheckoutSession:
        """Open the hosted checkout and attach it, as the checkout page does."""
        options = {"success_url": SUCCESS_URL, "cancel_url": CANCEL_URL,
                   "customer_email": "ada@example.org", **overrides}
        with transaction(self.app) as session:
            order = checkout.locked_order(session, reference)
            assert order is not None
            hosted = self.gateway.create_checkout(order, **options)
            checkout.attach_checkout(order, hosted.id, hosted.url)
            return hosted

    def buy(self, quantity: int = 2, **kwargs: Any) -> tuple[str, CheckoutSession]:
        reference = self.place(quantity, **kwargs)
        return reference, self.open(reference)

    def deliver(self, event: SignedEvent | bytes, signature: str | None = None) -> tuple[int, Any]:
        if isinstance(event, SignedEvent):
            payload, headers = event.payload, event.headers
        else:
            payload = event
            headers = {"Content-Type": "application/json"}
            if signature is not None:
                headers["Stripe-Signature"] = signature
        response = self.client.post("/webhooks/stripe", data=payload, headers=headers)
        body = response.get_json()
        return response.status_code, body.get("outcome", body.get("error"))

    def order(self, reference: str) -> Order:
        with transaction(self.app) as session:
            order: Order = session.scalars(select(Order).where(Order.reference == reference)).one()
            return order

    def for_sale(self) -> int:
        with transaction(self.app) as session:
            return sum(checkout.for_sale_by_batch(session).values())

    def held(self) -> int:
        with transaction(self.app) as session:
            return queries.available(session, self.account)

    def retired(self) -> int:
        with transaction(self.app) as session:
            blocks = session.scalars(select(Block).where(
                Block.account_id == self.account, Block.state == "retired",
                Block.spent_by.is_(None)))
            return sum(b.last_serial - b.first_serial + 1 for b in blocks)

    def events(self) -> int:
        with transaction(self.app) as session:
            return int(session.scalar(select(func.count()).select_from(PaymentEvent)))

    def verify(self) -> None:
        with transaction(self.app) as session:
            audit.verify(session)


@pytest.fixture
def app(fresh_url: str, fake_stripe: FakeStripe) -> Iterator[Flask]:
    app = create_app(stripe_config(fresh_url, fake_stripe.url))
    load_demo(app)
    yield app
    dispose(app)


@pytest.fixture
def shop(app: Flask, fake_stripe: FakeStripe) -> Iterator[Shop]:
    shop = Shop(app, fake_stripe)
    yield shop
    shop.gateway.close()


# -- the Checkout Session -------------------------------------------------------------------


def test_checkout_session_carries_the_order_and_is_idempotent(shop: Shop) -> None:
    fake = shop.fake
    with transaction(shop.app) as session:
        listing = session.get(Listing, shop.alto_mayo)
        price = listing.price_minor
        vintage_2018 = session.scalar(select(Batch.id).where(Batch.origin == "VCS:944:7114"))
    reference = shop.place(lines=[CartLine(shop.alto_mayo, 2, vintage_2018),
                                  CartLine(shop.alto_mayo, 3)])
    placed = shop.order(reference)
    with transaction(shop.app) as session:
        order = checkout.locked_order(session, reference)
        assert order is not None
        hosted = shop.gateway.create_checkout(order, success_url=SUCCESS_URL,
                                              cancel_url=CANCEL_URL,
                                              customer_email="ada@example.org")
        # A retry (say the first response was lost): same key, same parameters, same session.
        again = shop.gateway.create_checkout(order, success_url=SUCCESS_URL,
                                             cancel_url=CANCEL_URL,
                                             customer_email="ada@example.org")
        checkout.attach_checkout(order, hosted.id, hosted.url)
    assert again == hosted
    assert hosted.url.endswith(hosted.id)
    assert list(fake.sessions) == [hosted.id]

    first, second = fake.calls("POST", "/v1/checkout/sessions")
    assert first.idempotency_key == second.idempotency_key == f"checkout-{reference}"
    assert first.form == second.form
    assert first.headers["authorization"] == f"Bearer {API_KEY}"
    form = first.form
    assert form["mode"] == "payment"
    assert form["client_reference_id"] == reference
    assert form["metadata"] == {"order": reference, "mode": "live"}
    assert form["customer_email"] == "ada@example.org"
    assert (form["success_url"], form["cancel_url"]) == (SUCCESS_URL, CANCEL_URL)
    assert form["line_items"] == [
        {"price_data": {"currency": "usd", "unit_amount": str(price),
                        "product_data": {"name": "Alto Mayo Protected Forest, vintage 2018 "
                                                 "(tonnes of CO2e)"}},
         "quantity": "2"},
        {"price_data": {"currency": "usd", "unit_amount": str(price),
                        "product_data": {"name": "Alto Mayo Protected Forest, oldest vintage "
                                                 "first (tonnes of CO2e)"}},
         "quantity": "3"},
    ]
    assert fake.sessions[hosted.id]["amount_total"] == 5 * price == placed.total_minor

    # Stripe wants 30 min..24 h; the order's 30-minute reservation is stretched to match, so
    # the order and the hosted page lapse at the same second.
    expires_at = int(form["expires_at"])
    stored = shop.order(reference)
    assert int(_utc(stored.expires_at).timestamp()) == expires_at
    assert _utc(stored.expires_at) >= _utc(placed.expires_at)
    assert expires_at - _utc(placed.created_at).timestamp() >= 30 * 60
    assert expires_at - fake.sessions[hosted.id]["created"] >= 30 * 60
    assert stored.status == "awaiting_payment" and stored.checkout_session_id == hosted.id

    # Ten minutes later the parameters are still the same (they depend on the order, not on
    # the clock), so Stripe replays the original session instead of refusing the expiry.
    fake.clock_offset = 600
    assert shop.open(reference) == hosted
    assert len(fake.sessions) == 1
    # The same key with different parameters is Stripe's idempotency error, shown safely.
    with pytest.raises(PaymentGatewayError, match="already received a different request"):
        shop.open(reference, success_url="https://elsewhere.example/")
    assert shop.order(reference).checkout_session_id == hosted.id

    # An order placed more than SLACK ago: Stripe refuses the expiry, and says so safely.
    fake.clock_offset = 0
    reference = shop.place(1)
    with transaction(shop.app) as session:  # placed five minutes ago
        order = checkout.locked_order(session, reference)
        assert order is not None
        order.created_at = _utc(order.created_at) - dt.timedelta(minutes=5)
        order.expires_at = _utc(order.expires_at) - dt.timedelta(minutes=5)
    with pytest.raises(PaymentGatewayError) as caught:
        shop.open(reference)
    assert "refused the request to open the checkout" in str(caught.value)
    assert "expires_at" in str(caught.value)
    assert API_KEY not in str(caught.value)
    assert list(fake.sessions) == [hosted.id]  # no second session


def test_the_factory_builds_the_configured_gateway(fake_stripe: FakeStripe,
                                                   tmp_path: Any) -> None:
    app = create_app(stripe_config(f"sqlite:///{tmp_path / 'factory.db'}", fake_stripe.url))
    with app.app_context():
        built = gateway()
    dispose(app)
    assert isinstance(built, StripeGateway) and built.name == "stripe"
    assert built.api_base == fake_stripe.url
    assert API_KEY not in repr(built)
    built.close()


def test_checkout_opened_between_transactions_as_the_checkout_page_does(shop: Shop) -> None:
    """The checkout page commits the order, calls the gateway outside any transaction (no
    lock held while Stripe answers), then attaches the session in a new transaction."""
    details = CheckoutDetails(beneficiary="Ada Lovelace", purpose="voluntary", country="GB",
                              period_start=dt.date(2025, 1, 1), period_end=dt.date(2025, 12, 31))
    with shop.app.app_context():
        with db.session.begin():
            buyer = db.session.get(User, shop.buyer)
            assert buyer is not None
            order = checkout.place_order(db.session, user=buyer,
                                         lines=[CartLine(shop.alto_mayo, 2)], details=details,
                                         gateway="stripe")
        placed_expiry = _utc(order.expires_at)
        hosted = shop.gateway.create_checkout(order, success_url=SUCCESS_URL,
                                              cancel_url=CANCEL_URL)
        assert not db.session.in_transaction()  # the gateway left none open behind it
        with db.session.begin():
            fresh = checkout.locked_order(db.session, order.reference)
            assert fresh is not None
            checkout.attach_checkout(fresh, hosted.id, hosted.url)
        reference = order.reference
    stored = shop.order(reference)
    stripe_session = shop.fake.sessions[hosted.id]
    assert "customer_email" not in shop.fake.requests[-1].form
    assert stored.status == "awaiting_payment" and stored.checkout_session_id == hosted.id
    assert int(_utc(stored.expires_at).timestamp()) == stripe_session["expires_at"]
    assert _utc(stored.expires_at) > placed_expiry
    assert shop.deliver(shop.fake.completed(hosted)) == (200, "fulfilled: 2 t retired")

    # And through the page itself.
    login(shop.client, "ada@example.org")
    shop.client.post("/cart/add", data={"listing_id": shop.alto_mayo, "quantity": "4"})
    response = shop.client.post("/checkout", data=checkout_form())
    assert response.status_code == 302, response.get_data(as_text=True)[:800]
    [session_id] = [k for k in shop.fake.sessions if k != hosted.id]
    stripe_session = shop.fake.sessions[session_id]
    assert response.headers["Location"] == stripe_session["url"]
    reference = stripe_session["client_reference_id"]
    order = shop.order(reference)
    assert order.status == "awaiting_payment" and order.checkout_session_id == session_id
    assert int(_utc(order.expires_at).timestamp()) == stripe_session["expires_at"]
    assert stripe_session["customer_email"] == "ada@example.org"
    assert shop.deliver(shop.fake.completed(session_id))[0] == 200
    assert shop.order(reference).status == "fulfilled"
    assert shop.retired() == 2 + 4


# -- fulfilment once --------------------------------------------------------------------------


def test_completed_fulfils_once_whatever_stripe_repeats(shop: Shop) -> None:
    fake = shop.fake
    reference, hosted = shop.buy(2)
    for_sale = shop.for_sale()
    completed = fake.completed(hosted)
    assert shop.deliver(completed) == (200, "fulfilled: 2 t retired")
    # The same delivery again, a new event for the same payment, the delayed-payment event,
    # and an expiry arriving late: nothing more happens.
    assert shop.deliver(completed) == (200, "duplicate event: already handled")
    assert shop.deliver(fake.completed(hosted)) == (200, "already fulfilled: nothing to do")
    assert shop.deliver(fake.async_succeeded(hosted)) == (200, "already fulfilled: nothing to do")
    assert shop.deliver(fake.expired(hosted)) == (200, "order is fulfilled: not released")

    order = shop.order(reference)
    assert order.status == "fulfilled"
    assert order.payment_reference == fake.sessions[hosted.id]["payment_intent"]
    assert shop.retired() == 2 and shop.held() == 0
    assert shop.for_sale() == for_sale  # the reserved tonnes were sold, nothing else moved
    assert shop.events() == 4
    with transaction(shop.app) as session:
        locked = checkout.locked_order(session, reference)
        assert locked is not None
        reservations = locked.reservations
        assert [r.state for r in reservations] == ["consumed"]
        assert session.get(Beneficiary, reservations[0].retire_seq).name == "Ada Lovelace"
        assert session.scalar(select(func.count()).select_from(PaymentEvent).where(
            PaymentEvent.order_id == order.id)) == 4
    shop.verify()

    # A retirement is final: no refund, and Stripe is never asked.
    with pytest.raises(checkout.RefundError, match="final and cannot be undone"), \
            transaction(shop.app) as session:
        checkout.request_refund(session, reference)
    assert fake.calls("POST", "/v1/refunds") == []


def test_completed_after_expired_fulfils_when_the_tonnes_are_still_there(shop: Shop) -> None:
    reference, hosted = shop.buy(3)
    for_sale = shop.for_sale()
    assert shop.deliver(shop.fake.expired(hosted)) == (200, "expired: reservation released")
    assert shop.order(reference).status == "expired"
    assert shop.for_sale() == for_sale + 3
    status, outcome = shop.deliver(shop.fake.completed(hosted))
    assert (status, outcome) == (200, "fulfilled: 3 t retired")
    assert shop.order(reference).status == "fulfilled"
    assert shop.retired() == 3 and shop.for_sale() == for_sale
    shop.verify()


def test_completed_after_expired_when_sold_out_oversells_nothing(shop: Shop) -> None:
    small = small_project(shop.app, 5)
    late, late_session = shop.buy(5, listing=small)
    assert shop.deliver(shop.fake.expired(late_session))[0] == 200
    # Someone else takes the five tonnes while the first buyer's payment is in flight.
    other, other_session = shop.buy(5, listing=small)
    status, outcome = shop.deliver(shop.fake.completed(late_session))
    assert status == 200 and "refund due" in outcome
    order = shop.order(late)
    assert order.status == "paid" and "refund due" in (order.failure or "")
    assert order.payment_reference == shop.fake.sessions[late_session.id]["payment_intent"]
    assert shop.retired() == 0
    assert shop.deliver(shop.fake.completed(other_session)) == (200, "fulfilled: 5 t retired")
    assert shop.retired() == 5
    with transaction(shop.app) as session:
        [batch] = session.scalars(select(Batch.id).where(Batch.origin == "SLV:SMALL1:2021"))
        assert checkout.for_sale_by_batch(session).get(batch, 0) == 0
        assert queries.available(session, checkout.inventory_account(session).id,
                                 batch_id=batch) == 0
    shop.verify()


def test_paid_but_sold_out_order_stays_refund_due_when_stripe_repeats(shop: Shop) -> None:
    """Deliberately exposes a bug in ``checkout.fulfil`` (see the report): an order left
    ``paid`` (paid after its reservation lapsed and the tonnes were sold) is marked
    ``fulfilled`` by the next paid event with a new id, although nothing is transferred, and
    its "refund due" note is wiped."""
    small = small_project(shop.app, 5)
    late, late_session = shop.buy(5, listing=small)
    assert shop.deliver(shop.fake.expired(late_session))[0] == 200
    shop.buy(5, listing=small)
    assert "refund due" in shop.deliver(shop.fake.completed(late_session))[1]
    shop.deliver(shop.fake.completed(late_session))  # Stripe's retry, with a new event id
    order = shop.order(late)
    assert shop.retired() == 0  # holds today: nothing was transferred...
    assert (order.status, order.failure) == (  # ...yet the order says "fulfilled"
        "paid", "paid after the reservation lapsed and the tonnes were sold: refund due")


def test_lapsed_reservation_paid_late_does_not_oversell(shop: Shop) -> None:
    """Deliberately exposes a bug in ``checkout.fulfil`` (see the report): a checkout whose
    reservation lapsed (no expiry event, ``expire_lapsed`` never ran) is still
    ``awaiting_payment``, so a late ``completed`` event fulfils it from reservations that no
    longer hold, taking tonnes another paid order reserved since; that order's fulfilment
    then fails in the ledger on every retry: the same tonnes were sold twice."""
    small = small_project(shop.app, 5)
    late, late_session = shop.buy(5, listing=small)
    with transaction(shop.app) as session:  # its reservation lapses, quietly
        session.execute(update(Order).where(Order.reference == late).values(
            expires_at=dt.datetime.now(dt.UTC) - checkout.GRACE - dt.timedelta(minutes=1)))
    other, other_session = shop.buy(5, listing=small)
    # Stripe retries webhooks for days: the late buyer's payment is announced now.
    shop.deliver(shop.fake.completed(late_session))
    status, outcome = shop.deliver(shop.fake.completed(other_session))
    assert (status, outcome) == (200, "fulfilled: 5 t retired"), (
        "the second buyer, whose reservation was valid, paid and got nothing: "
        f"{shop.order(late).status=}, {shop.order(other).status=}")
    assert shop.order(late).status == "paid"


# -- what is refused ----------------------------------------------------------------------------


def test_bad_signatures_and_replays_are_refused_and_nothing_is_stored(shop: Shop) -> None:
    fake = shop.fake
    reference, hosted = shop.buy(1)
    good = fake.completed(hosted)
    wrong_secret = fake.completed(hosted, secret="whsec_not_ours")
    tampered = good.payload.replace(b'"amount_total": ', b'"amount_total": 1')
    replayed = fake.completed(hosted, signed_at=fake.now() - 600)  # older than the 300 s
    for payload, signature in [(wrong_secret.payload, wrong_secret.signature),
                               (tampered, good.signature),
                               (good.payload, None),
                               (good.payload, "t=1,v1=deadbeef"),
                               (replayed.payload, replayed.signature)]:
        status, error = shop.deliver(payload, signature)
        assert status == 400, (status, error)
    assert shop.events() == 0
    assert shop.order(reference).status == "awaiting_payment"
    assert shop.deliver(good) == (200, "fulfilled: 1 t retired")


def test_wrong_amount_or_currency_fails_the_order_and_releases(shop: Shop) -> None:
    for_sale = shop.for_sale()
    for wrong in ("amount", "currency"):
        reference, hosted = shop.buy(2)
        total = shop.order(reference).total_minor
        event = (shop.fake.completed(hosted, amount=total - 1) if wrong == "amount"
                 else shop.fake.completed(hosted, currency="eur"))
        status, outcome = shop.deliver(event)
        assert status == 200 and outcome.startswith("amount mismatch")
        order = shop.order(reference)
        assert order.status == "failed"
        assert order.failure == (f"paid {total - 1} USD, expected {total} USD" if wrong == "amount"
                                 else f"paid {total} EUR, expected {total} USD")
        assert shop.for_sale() == for_sale  # the reservation was released
    assert shop.retired() == 0 and shop.held() == 0
    shop.verify()


def test_delayed_payments_wait_then_succeed_or_release(shop: Shop) -> None:
    fake = shop.fake
    failing, failing_session = shop.buy(2)
    paying, paying_session = shop.buy(3)
    for_sale = shop.for_sale()
    for session in (failing_session, paying_session):
        assert shop.deliver(fake.completed(session, payment_status="unpaid")) == (
            200, "payment status 'unpaid': waiting")
    assert shop.order(failing).status == shop.order(paying).status == "awaiting_payment"

    assert shop.deliver(fake.async_failed(failing_session)) == (
        200, "failed: reservation released")
    assert shop.order(failing).status == "failed"
    assert shop.for_sale() == for_sale + 2  # back on sale

    assert shop.deliver(fake.async_succeeded(paying_session)) == (200, "fulfilled: 3 t retired")
    assert shop.order(paying).status == "fulfilled" and shop.retired() == 3
    # A late failure notice cannot undo a fulfilled order.
    assert shop.deliver(fake.async_failed(paying_session)) == (
        200, "order is fulfilled: not released")
    assert shop.order(paying).status == "fulfilled"
    shop.verify()


# -- refunds ------------------------------------------------------------------------------------


def refund(shop: Shop, reference: str) -> str:
    """The operator's refund: ledger first and committed (``refund_pending``), then Stripe
    with no transaction open, then the outcome in a transaction of its own."""
    with shop.app.app_context():
        return refunds.refund_order(reference)


def test_refund_of_held_credits_returns_money_and_tonnes(shop: Shop) -> None:
    fake = shop.fake
    before = shop.for_sale()
    reference, hosted = shop.buy(3, action="hold")
    assert shop.deliver(fake.completed(hosted)) == (200, "fulfilled: 3 t held")
    assert shop.held() == 3
    intent = fake.sessions[hosted.id]["payment_intent"]

    # Stripe refuses: the credits are back in inventory (that step committed), the order waits
    # in refund_pending with Stripe's answer for the operator, and no money has moved.
    fake.failures.append((402, {"error": {"type": "card_error", "code": "expired_card",
                                          "message": "The card has expired."}}))
    with pytest.raises(refunds.RefundPending, match="declined to refund the payment"):
        refund(shop, reference)
    order = shop.order(reference)
    assert order.status == "refund_pending" and order.refunded_at is None
    assert order.failure is not None and "declined to refund" in order.failure
    assert shop.held() == 0 and shop.for_sale() == before
    assert fake.refunds == {}
    shop.verify()

    # Asked again, Stripe refunds: only the money moves now, the ledger already did.
    assert refund(shop, reference) == "refunded: 3 t returned to inventory"
    [call] = [c for c in fake.calls("POST", "/v1/refunds") if c.status == 200]
    assert call.form["payment_intent"] == intent
    assert call.form["metadata"] == {"order": reference, "mode": "live"}
    assert call.idempotency_key == f"refund-{reference}"
    [stripe_refund] = fake.refunds.values()
    assert stripe_refund["amount"] == shop.order(reference).total_minor
    order = shop.order(reference)
    assert order.status == "refunded" and order.refunded_at is not None and order.failure is None
    assert shop.held() == 0 and shop.for_sale() == before
    shop.verify()

    with pytest.raises(checkout.RefundError, match="this one is refunded"):
        refund(shop, reference)
    # Asking Stripe again is harmless: the same key gives back the same refund.
    shop.gateway.refund(order)
    assert len(fake.refunds) == 1


# -- the gateway's errors -----------------------------------------------------------------------


def test_gateway_errors_are_safe_to_show(fake_stripe: FakeStripe,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    paid = types.SimpleNamespace(reference="SLV-0000000001", payment_reference="pi_unknown")
    wrong_key = "sk_test_51WrongKeyDoNotLeakThis"
    with StripeGateway(api_key=wrong_key, api_base=fake_stripe.url) as gw:
        assert wrong_key not in repr(gw)
        with pytest.raises(PaymentGatewayError) as caught:
            gw.refund(paid)  # type: ignore[arg-type]
    assert "refused our credentials" in str(caught.value) and not caught.value.retryable
    assert fake_stripe.requests[-1].status == 401  # the fake echoed the key back: not shown

    with StripeGateway(api_key=API_KEY, api_base=fake_stripe.url) as gw:
        with pytest.raises(PaymentGatewayError, match="resource_missing"):
            gw.refund(paid)  # type: ignore[arg-type]
        fake_stripe.failures.append((500, {"error": {"type": "api_error",
                                                     "message": "An error occurred."}}))
        with pytest.raises(PaymentGatewayError) as caught:
            gw.refund(paid)  # type: ignore[arg-type]
        assert caught.value.retryable and "try again" in str(caught.value)
        assert "charged" not in str(caught.value)  # that is for checkouts
        unpaid = types.SimpleNamespace(reference="SLV-1", payment_reference=None)
        with pytest.raises(PaymentGatewayError, match="no recorded payment"):
            gw.refund(unpaid)  # type: ignore[arg-type]

    closed = FakeStripe().start()
    unreachable = closed.url
    closed.close()
    with StripeGateway(api_key=API_KEY, api_base=unreachable, max_network_retries=0) as gw:
        with pytest.raises(PaymentGatewayError, match="Could not reach") as caught:
            gw.refund(paid)  # type: ignore[arg-type]
    assert caught.value.retryable
    # Neither the library nor the gateway logs the key it sends (the library does log
    # response bodies at DEBUG: real Stripe masks a key it echoes, this fake does not).
    assert API_KEY not in caplog.text
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("marketplace")]
    assert ours and not any(wrong_key in m or API_KEY in m for m in ours)


# -- configuration --------------------------------------------------------------------------------


def test_configuration_refuses_unsafe_gateways(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'config.db'}"
    monkeypatch.setenv("CARBON_ENV", "production")
    with pytest.raises(ConfigError, match="demo payment gateway is refused in production"):
        create_app({"DATABASE_URL": url, "SECRET_KEY": "test", "PAYMENT_GATEWAY": "demo"})
    monkeypatch.delenv("CARBON_ENV")
    for missing in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"):
        config = stripe_config(url, "http://127.0.0.1:9")
        config[missing] = None
        with pytest.raises(ConfigError, match="stripe gateway needs"):
            create_app(config)
    with pytest.raises(ConfigError, match="must be demo or stripe"):
        create_app({**stripe_config(url, "http://127.0.0.1:9"), "PAYMENT_GATEWAY": "paypal"})
    monkeypatch.setenv("CARBON_ENV", "production")
    app = create_app(stripe_config(url, "http://127.0.0.1:9"))  # keys given: fine
    assert app.config["PAYMENT_GATEWAY"] == "stripe"
    dispose(app)


# -- signed events of an unexpected shape ---------------------------------------------------


def _reshaped(fake: FakeStripe, event: Any, change: Any) -> Any:
    body = json.loads(event.payload)
    change(body)
    return fake.sign(body)


MALFORMED = {
    "object-is-a-list": lambda e: e["data"].__setitem__("object", [e["data"]["object"]]),
    "data-is-a-list": lambda e: e.__setitem__("data", [1, 2]),
    "amount-is-text": lambda e: e["data"]["object"].__setitem__("amount_total", "2000"),
    "amount-past-2**63": lambda e: e["data"]["object"].__setitem__("amount_total", 2**64),
    "amount-is-true": lambda e: e["data"]["object"].__setitem__("amount_total", True),
    "currency-is-a-number": lambda e: e["data"]["object"].__setitem__("currency", 840),
    "nul-in-the-reference": lambda e: e["data"]["object"].__setitem__(
        "client_reference_id", "SLV-\x00"),
    "metadata-is-a-list": lambda e: e["data"]["object"].__setitem__("metadata", ["order"]),
    "unknown-mode": lambda e: e["data"]["object"]["metadata"].__setitem__("mode", "staging"),
    "created-past-2**31": lambda e: e.__setitem__("created", 2**40),
    "type-with-a-nul": lambda e: e.__setitem__("type", "checkout.session.completed\x00"),
    "id-too-long": lambda e: e.__setitem__("id", "evt_" + "x" * 300),
}


@pytest.mark.parametrize("change", list(MALFORMED.values()), ids=list(MALFORMED))
def test_a_signed_event_of_an_unexpected_shape_is_a_400_and_fulfils_nothing(
        shop: Shop, change: Any, caplog: pytest.LogCaptureFixture) -> None:
    reference, hosted = shop.buy(2)
    for_sale, events = shop.for_sale(), shop.events()
    event = _reshaped(shop.fake, shop.fake.completed(hosted), change)
    body = json.loads(event.payload)
    with caplog.at_level(logging.WARNING, logger="marketplace.payments.webhooks"):
        status, answer = shop.deliver(event)
        again = shop.deliver(event)
    assert status == 400 and again[0] == 400, answer
    assert "malformed event" in str(answer)
    assert shop.order(reference).status == "awaiting_payment"
    assert shop.for_sale() == for_sale and shop.retired() == 0
    usable_id = isinstance(body.get("id"), str) and len(body["id"]) <= 255
    assert any("rejected" in r.getMessage() for r in caplog.records)
    if usable_id:
        assert any(body["id"] in r.getMessage() for r in caplog.records)
        assert shop.events() == events + 1  # stored once, as rejected
        with transaction(shop.app) as session:
            stored = session.get(PaymentEvent, body["id"])
            assert stored is not None and stored.outcome.startswith("rejected: ")
            assert stored.order_id is None
    else:
        assert shop.events() == events
    # The well-formed event still fulfils the order afterwards.
    assert shop.deliver(shop.fake.completed(hosted))[0] == 200
    assert shop.order(reference).status == "fulfilled"
    shop.verify()
