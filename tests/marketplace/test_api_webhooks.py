"""Outbound webhooks: order.fulfilled and retirement.created, written in the transaction that
causes them (API, shop checkout, holdings page), signed with the endpoint's secret as Stripe
signs, POSTed with urllib to a receiver on 127.0.0.1, retried with backoff, each attempt
logged; test-mode events to test endpoints only."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from ledger.schema import utcnow
from marketplace import checkout
from marketplace.api import webhooks
from marketplace.models import User
from marketplace.models.api import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from marketplace.payments.demo import send_event

from .shop import transaction
from .test_api_helpers import (  # noqa: F401  (fixtures)
    ALTO_MAYO,
    RETIRE,
    Company,
    app,
    client,
    company,
    keypair,
    login,
)

SECRET_ON_PAGE = re.compile(r'id="new-secret">(whsec_[A-Za-z0-9_-]+)<')


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """A company's webhook endpoint: records each POST, answers with queued statuses."""

    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    url: str = ""

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                payload = b'{"ok": true}' if status < 300 else b"try later"
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/selva"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def add_endpoint(app: Flask, company: Company, url: str, *, livemode: bool = True,
                 events: tuple[str, ...] = ("order.fulfilled", "retirement.created")) -> str:
    secret = webhooks.new_secret()
    with transaction(app) as session:
        session.add(WebhookEndpoint(organisation_id=company.org_id, url=url, secret=secret,
                                    livemode=livemode, events=",".join(events),
                                    created_by=company.user_id))
    return secret


def deliver(app: Flask, now: dt.datetime | None = None, **kwargs: Any) -> list[webhooks.Outcome]:
    with app.app_context():
        return webhooks.deliver_due(now=now, **kwargs)


def deliveries(app: Flask, company: Company) -> list[tuple[WebhookDelivery, WebhookEvent]]:
    with transaction(app) as session:
        return [(d, e) for d, e in session.execute(
            select(WebhookDelivery, WebhookEvent)
            .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
            .where(WebhookEvent.organisation_id == company.org_id)
            .order_by(WebhookDelivery.id)).all()]


def check_signature(received: Received, secret: str) -> None:
    header = received.headers["Selva-Signature"]
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + received.body,
                        hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert abs(time.time() - int(parts["t"])) < 60
    stripe.WebhookSignature.verify_header(received.body.decode(), header, secret, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(received.body.decode(), header, "whsec_wrong")


def test_admin_registers_an_endpoint_and_signed_events_arrive(
        app: Flask, client: FlaskClient, company: Company, receiver: Receiver) -> None:
    login(client, company.email)
    page = client.post(f"/organisations/{company.org_id}/webhooks", data={
        "url": receiver.url, "mode": "live", "events": ["order.fulfilled", "retirement.created"],
        "description": "Our ERP"})
    assert page.status_code == 201 and page.headers["Cache-Control"] == "no-store"
    secret = SECRET_ON_PAGE.search(page.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    assert secret not in client.get(f"/organisations/{company.org_id}/webhooks"
                                    ).get_data(as_text=True)
    bad = client.post(f"/organisations/{company.org_id}/webhooks",
                      data={"url": "ftp://example.org/x", "mode": "live",
                            "events": ["order.fulfilled"]})
    assert bad.status_code == 200 and "new-secret" not in bad.get_data(as_text=True)

    made = client.post("/api/v1/orders", json={"lines": [{"project": ALTO_MAYO, "quantity": 2}],
                                               **RETIRE}, headers=company.headers).get_json()
    assert made["status"] == "fulfilled"
    queued = deliveries(app, company)
    assert sorted(e.type for _, e in queued) == ["order.fulfilled", "retirement.created"]
    assert all(d.status == "pending" and d.attempts == 0 for d, _ in queued)

    outcomes = deliver(app)
    assert [o.delivered for o in outcomes] == [True, True]
    assert len(receiver.received) == 2
    by_type = {r.event["type"]: r for r in receiver.received}
    for received in receiver.received:
        check_signature(received, secret)
        assert received.path == "/hooks/selva"
        assert received.headers["Content-Type"] == "application/json"
        assert received.headers["Selva-Event-Id"] == received.event["id"]
        assert received.event["livemode"] is True and received.event["object"] == "event"
    fulfilled = by_type["order.fulfilled"].event["data"]["object"]
    assert fulfilled["id"] == made["id"] and fulfilled["status"] == "fulfilled"
    retired = by_type["retirement.created"].event["data"]["object"]
    assert retired["id"] == made["retirements"][0]["id"] and retired["quantity"] == 2
    assert retired["beneficiary"] == "Acme Travel Ltd"

    logged = deliveries(app, company)
    assert all(d.status == "succeeded" and d.attempts == 1 and d.last_status_code == 200
               for d, _ in logged)
    with transaction(app) as session:
        attempts = list(session.scalars(select(WebhookAttempt).where(
            WebhookAttempt.delivery_id.in_([d.id for d, _ in logged]))))
        assert [a.status_code for a in attempts] == [200, 200]
        assert all('"ok"' in a.response_excerpt and a.error is None for a in attempts)
    assert deliver(app) == []  # nothing is delivered twice
    log = client.get(f"/organisations/{company.org_id}/webhooks").get_data(as_text=True)
    assert "succeeded" in log and "order.fulfilled" in log and by_type[
        "order.fulfilled"].event["id"] in log


def test_failed_deliveries_are_retried_with_backoff_then_given_up(
        app: Flask, client: FlaskClient, company: Company, receiver: Receiver) -> None:
    secret = add_endpoint(app, company, receiver.url, events=("order.fulfilled",))
    client.post("/api/v1/orders", json={"lines": [{"project": ALTO_MAYO, "quantity": 1}],
                                        "action": "hold"}, headers=company.headers)
    receiver.statuses = [500, 503]
    t0 = utcnow()
    [first] = deliver(app, t0)
    assert not first.delivered and first.status_code == 500 and not first.gave_up
    [(delivery, _)] = deliveries(app, company)
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.last_error == "HTTP 500"
    assert abs((webhooks_aware(delivery.next_attempt_at) - t0).total_seconds() - 60) < 1
    assert deliver(app, t0 + dt.timedelta(seconds=30)) == []          # not due yet
    [second] = deliver(app, t0 + dt.timedelta(seconds=61))
    assert second.status_code == 503
    [(delivery, _)] = deliveries(app, company)
    assert delivery.attempts == 2
    assert abs((webhooks_aware(delivery.next_attempt_at) - t0).total_seconds() - 361) < 1
    assert deliver(app, t0 + dt.timedelta(seconds=200)) == []
    [third] = deliver(app, t0 + dt.timedelta(seconds=362))
    assert third.delivered
    assert len(receiver.received) == 3
    assert len({r.event["id"] for r in receiver.received}) == 1       # the same event, again
    for received in receiver.received:
        check_signature(received, secret)
    [(delivery, _)] = deliveries(app, company)
    assert delivery.status == "succeeded" and delivery.attempts == 3
    with transaction(app) as session:
        codes = list(session.scalars(select(WebhookAttempt.status_code).where(
            WebhookAttempt.delivery_id == delivery.id).order_by(WebhookAttempt.id)))
    assert codes == [500, 503, 200]

    # an endpoint that never answers 2xx is given up after the last backoff step
    receiver.statuses = [500] * webhooks.MAX_ATTEMPTS
    client.post("/api/v1/orders", json={"lines": [{"project": ALTO_MAYO, "quantity": 1}],
                                        "action": "hold"}, headers=company.headers)
    now = utcnow()
    outcomes = []
    for step in (0, *webhooks.BACKOFF):
        now += dt.timedelta(seconds=step + 1)
        outcomes += deliver(app, now)
    assert len(outcomes) == webhooks.MAX_ATTEMPTS
    assert [o.gave_up for o in outcomes] == [False] * (webhooks.MAX_ATTEMPTS - 1) + [True]
    last = deliveries(app, company)[-1][0]
    assert last.status == "failed" and last.next_attempt_at is None
    assert deliver(app, now + dt.timedelta(days=30)) == []


def webhooks_aware(value: dt.datetime | None) -> dt.datetime:
    assert value is not None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def test_unreachable_and_slow_endpoints_are_logged_errors(
        app: Flask, client: FlaskClient, company: Company, receiver: Receiver) -> None:
    closed = Receiver()
    url = closed.url
    closed.close()
    add_endpoint(app, company, url, events=("order.fulfilled",))
    add_endpoint(app, company, receiver.url, events=("order.fulfilled",))
    receiver.delay = 1.5
    client.post("/api/v1/orders", json={"lines": [{"project": ALTO_MAYO, "quantity": 1}],
                                        "action": "hold"}, headers=company.headers)
    outcomes = deliver(app, timeout=0.5)
    assert len(outcomes) == 2 and not any(o.delivered for o in outcomes)
    errors = sorted(o.error or "" for o in outcomes)
    assert any("Connection refused" in e or "URLError" in e for e in errors), errors
    assert any("timed out" in e.lower() or "timeout" in e.lower() for e in errors), errors
    with transaction(app) as session:
        attempts = list(session.scalars(select(WebhookAttempt).join(
            WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id).join(
            WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id).where(
            WebhookEvent.organisation_id == company.org_id)))
        assert len(attempts) == 2 and all(a.status_code is None and a.error for a in attempts)


def test_events_from_the_shop_and_the_holdings_page_too(
        app: Flask, client: FlaskClient, company: Company, receiver: Receiver) -> None:
    add_endpoint(app, company, receiver.url)
    # a checkout in the shop, for the organisation, paid through the demo gateway's webhook
    with transaction(app) as session:
        user = session.get(User, company.user_id)
        org = next(m.organisation for m in user.memberships)
        placed = checkout.place_order(
            session, user=user, lines=[checkout.CartLine(ALTO_MAYO, 6)],
            details=checkout.CheckoutDetails("Acme", "voluntary", "GB", dt.date(2025, 1, 1),
                                             dt.date(2025, 12, 31), "hold"),
            gateway="demo", organisation=org)
    with app.test_request_context():
        assert send_event("checkout.session.completed", placed)[0].startswith("fulfilled")
    # a retirement on the holdings page
    login(client, company.email)
    page = client.post("/holdings", data={
        "holder": f"org:{company.org_id}", "batch_id": "1", "quantity": "2",
        "beneficiary": "Acme Offices", "purpose": "voluntary", "note": "", "country": "GB",
        "period_start": "2025-01-01", "period_end": "2025-12-31"})
    assert page.status_code == 302, page.get_data(as_text=True)[:1000]
    deliver(app)
    events = [r.event for r in receiver.received]
    assert [e["type"] for e in events] == ["order.fulfilled", "retirement.created"]
    assert events[0]["data"]["object"]["id"] == placed.reference
    assert events[0]["data"]["object"]["payment_method"] == "checkout"
    assert events[1]["data"]["object"]["beneficiary"] == "Acme Offices"
    assert events[1]["data"]["object"]["quantity"] == 2


def test_test_events_go_to_test_endpoints_only(app: Flask, client: FlaskClient,
                                               company: Company, receiver: Receiver) -> None:
    live = Receiver()
    try:
        add_endpoint(app, company, live.url, livemode=True)
        add_endpoint(app, company, receiver.url, livemode=False,
                     events=("retirement.created",))
        made = client.post("/api/v1/orders", json={"lines": [{"project": ALTO_MAYO,
                                                              "quantity": 3}], **RETIRE},
                           headers=company.test_headers).get_json()
        deliver(app)
        assert live.received == []
        [received] = receiver.received
        assert received.event["type"] == "retirement.created"
        assert received.event["livemode"] is False
        assert received.event["data"]["object"]["id"] == made["retirements"][0]["id"]
    finally:
        live.close()


def test_no_endpoint_no_event_and_disabled_endpoints_get_nothing(
        app: Flask, client: FlaskClient, company: Company, receiver: Receiver) -> None:
    client.post("/api/v1/orders", json={"lines": [{"project": ALTO_MAYO, "quantity": 1}],
                                        "action": "hold"}, headers=company.headers)
    assert deliveries(app, company) == []
    add_endpoint(app, company, receiver.url)
    client.post("/api/v1/orders", json={"lines": [{"project": ALTO_MAYO, "quantity": 1}],
                                        "action": "hold"}, headers=company.headers)
    login(client, company.email)
    with transaction(app) as session:
        endpoint_id = session.scalars(select(WebhookEndpoint.id).where(
            WebhookEndpoint.organisation_id == company.org_id)).one()
    assert client.post(f"/organisations/{company.org_id}/webhooks/{endpoint_id}/disable"
                       ).status_code == 302
    assert deliver(app) == []
    [(delivery, _)] = deliveries(app, company)
    assert delivery.status == "failed" and delivery.last_error == "endpoint disabled"
    client.post("/api/v1/orders", json={"lines": [{"project": ALTO_MAYO, "quantity": 1}],
                                        "action": "hold"}, headers=company.headers)
    assert len(deliveries(app, company)) == 1 and receiver.received == []
    runner = app.test_cli_runner()
    assert runner.invoke(args=["api", "deliver-webhooks"]).exit_code == 0


def test_cli_delivers_and_production_refuses_private_addresses(
        app: Flask, client: FlaskClient, company: Company, receiver: Receiver) -> None:
    add_endpoint(app, company, receiver.url, events=("order.fulfilled",))
    client.post("/api/v1/orders", json={"lines": [{"project": ALTO_MAYO, "quantity": 1}],
                                        "action": "hold"}, headers=company.headers)
    result = app.test_cli_runner().invoke(args=["api", "deliver-webhooks"])
    assert result.exit_code == 0 and "200 (delivered)" in result.output, result.output
    for url in ("http://example.org/hook", "https://127.0.0.1/hook", "https://10.1.2.3/hook",
                "https://[::1]/hook", "https://169.254.169.254/latest", "ftp://example.org/",
                "https://user:pw@example.org/", "not a url"):
        with pytest.raises(webhooks.EndpointURLError):
            webhooks.check_url(url, private_ok=False)
    assert webhooks.check_url(receiver.url, private_ok=True) == receiver.url
    app.config["API_WEBHOOK_ALLOW_PRIVATE"] = False
    try:
        client.post("/api/v1/orders", json={"lines": [{"project": ALTO_MAYO, "quantity": 1}],
                                            "action": "hold"}, headers=company.headers)
        [outcome] = deliver(app)
        assert not outcome.delivered and "https" in (outcome.error or "")
        assert len(receiver.received) == 1
    finally:
        app.config["API_WEBHOOK_ALLOW_PRIVATE"] = None
