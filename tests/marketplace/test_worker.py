"""The worker (``flask --app wsgi worker``) on PostgreSQL: two workers never deliver one
webhook twice; a checkpoint appears without any request; a lapsed reservation is released
without a new order; a failing job does not stop the others."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from ledger import operations
from ledger.schema import SignedCheckpoint, utcnow
from marketplace import checkout
from marketplace.checkout import CartLine, CheckoutDetails
from marketplace.models import Order, User
from marketplace.models.api import WebhookDelivery, WebhookEndpoint, WebhookEvent
from marketplace.worker import Worker

from .shop import add_user, load_demo, ticks_at_once, transaction
from .test_api_helpers import api_app_for, keypair, make_company  # noqa: F401
from .test_api_webhooks import Receiver

pytestmark = pytest.mark.postgres


@pytest.fixture
def app(pg_url: str, keypair: tuple[Path, Path]) -> Any:
    found = api_app_for(pg_url, keypair[0])
    load_demo(found)
    return found


def test_two_workers_deliver_each_webhook_once(app: Any) -> None:
    company = make_company(app, "Hooks Ltd")
    receiver = Receiver(delay=0.05)
    try:
        from marketplace.api import webhooks

        with transaction(app) as session:
            session.add(WebhookEndpoint(organisation_id=company.org_id, url=receiver.url,
                                        secret=webhooks.new_secret(), livemode=True,
                                        events="order.fulfilled", created_by=company.user_id))
        with app.app_context():
            from marketplace.database import db

            with db.session.begin():
                for n in range(30):
                    webhooks.emit(db.session, company.org_id, "order.fulfilled", True,
                                  {"id": f"SLV-{n:010d}", "object": "order"})
        ticks_at_once(app)
        ids = [r.event["data"]["object"]["id"] for r in receiver.received]
        assert sorted(ids) == sorted(f"SLV-{n:010d}" for n in range(30))  # each exactly once
        with transaction(app) as session:
            statuses = set(session.scalars(select(WebhookDelivery.status)))
            assert statuses == {"succeeded"}
            assert session.scalar(select(func.count()).select_from(WebhookEvent)) == 30
    finally:
        receiver.close()


def test_a_checkpoint_appears_without_any_request(app: Any) -> None:
    with transaction(app) as session:
        before = session.scalar(select(func.max(SignedCheckpoint.size))) or 0
        inventory = checkout.inventory_account(session)
        buyer = operations.open_account(session, "worker-buyer", "customer")
        operations.transfer(session, from_account=inventory.id, to_account=buyer.id,
                            quantity=3)
    done = Worker(app, checkpoint_every=0).tick()
    with transaction(app) as session:
        after = session.scalar(select(func.max(SignedCheckpoint.size)))
        assert after is not None and after > before
        from ledger import tree

        assert after == tree.size(session)
    assert done.signed["live"] == after and not done.errors
    assert Worker(app, checkpoint_every=0).tick().signed == {}  # nothing new: nothing signed


def test_a_lapsed_reservation_is_released_without_a_new_order(app: Any) -> None:
    user_id = add_user(app, "lapse@example.org")
    details = CheckoutDetails("Ana", "voluntary", "PE", dt.date(2025, 1, 1),
                              dt.date(2025, 12, 31))
    with transaction(app) as session:
        stock = checkout.for_sale_by_batch(session)
        order = checkout.place_order(session, user=session.get(User, user_id),
                                     lines=[CartLine(1, 40), CartLine(1, 0, None, 2_500)],
                                     details=details, gateway="demo")
        reference = order.reference
        batch = order.reservations[0].batch_id
        held = checkout.for_sale_by_batch(session)[batch]
        assert held <= stock[batch] - 40  # 40 t reserved (and the pool's refill retired)
        session.execute(update(Order).where(Order.id == order.id)
                        .values(expires_at=utcnow() - dt.timedelta(hours=1)))
    done = Worker(app).tick()
    assert done.expired == 1 and not done.errors
    with transaction(app) as session:
        found = session.scalars(select(Order).where(Order.reference == reference)).one()
        assert found.status == "expired"
        assert {r.state for r in found.reservations} == {"released"}
        assert checkout.for_sale_by_batch(session)[batch] == held + 40
        from marketplace.models.pools import KgAllocation

        assert set(session.scalars(select(KgAllocation.state)
                                   .where(KgAllocation.order_id == found.id))) == {"released"}


def test_a_failing_job_stops_no_other(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from marketplace.api import webhooks

    def broken(**_: Any) -> list[Any]:
        raise ConnectionError("the network is down")

    monkeypatch.setattr(webhooks, "deliver_due", broken)
    with transaction(app) as session:
        buyer = operations.open_account(session, "worker-buyer-2", "customer")
        operations.transfer(session, from_account=checkout.inventory_account(session).id,
                            to_account=buyer.id, quantity=1)
    done = Worker(app, checkpoint_every=0).tick()
    assert any("webhook deliveries" in error for error in done.errors)
    assert done.signed  # the checkpoint was still signed


def test_operators_are_reminded_once_a_day_of_tonnes_pending_at_origin(app: Any) -> None:
    from marketplace.models.mail import OutboxEmail

    add_user(app, "ops@example.org", name="Oli Ops", role="operator")
    add_user(app, "buyer@example.org")  # a customer gets no reminder
    app.config["ORIGIN_REMINDER_DAYS"] = 0  # the demo's pending retirement is old enough
    first = Worker(app).tick()
    assert first.reminded == 1 and not first.errors
    assert Worker(app).tick().reminded == 0  # once a day, whoever runs
    with transaction(app) as session:
        [note] = session.scalars(select(OutboxEmail).where(
            OutboxEmail.kind == "origin_reminder")).all()
        assert note.to_address == "ops@example.org"
        assert "pending at the origin registry" in note.subject
        assert "VCS-944" in note.body and "/operator/origin" in note.body
    app.config["ORIGIN_REMINDER_DAYS"] = 3650  # nothing that old: nothing to say
    app.config["ORIGIN_REMINDER_HOURS"] = 0
    assert Worker(app).tick().reminded == 0
