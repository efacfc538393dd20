"""Faults on PostgreSQL: database connections terminated in the middle of fulfilment
(``pg_terminate_backend`` from a second connection), alone and under 50 concurrent checkouts.

Afterwards: tonnes are conserved (every batch's serials are held, retired, cancelled, frozen
or in the buffer exactly once, and the journal replays to the blocks), no order is fulfilled
twice, every paid order has its credits or a visible refund due, no reservation outlives its
order's expiry, and the connection pool serves the next request without a restart.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from ledger import audit, canonical, operations, queries
from ledger.schema import Account, Entry, utcnow
from marketplace import checkout
from marketplace.checkout import CartLine, CheckoutDetails
from marketplace.database import db
from marketplace.models import Order, Reservation, User
from marketplace.payments.demo import send_event

from .shop import add_user, load_demo, make_app, small_project, transaction

pytestmark = pytest.mark.postgres

DETAILS = CheckoutDetails("Faulty Buyer", "voluntary", "GB", dt.date(2025, 1, 1),
                          dt.date(2025, 12, 31))


def place(app: Flask, user_id: int, listing: int, quantity: int) -> str:
    with transaction(app) as session:
        order = checkout.place_order(session, user=session.get(User, user_id),
                                     lines=[CartLine(listing, quantity)], details=DETAILS,
                                     gateway="demo")
        return order.reference


def pay(app: Flask, reference: str) -> tuple[str, int]:
    """The provider's ``checkout.session.completed`` for the order, signed and handled."""
    with app.app_context():
        order = db.session.scalars(select(Order).where(Order.reference == reference)).one()
        db.session.rollback()
        return send_event("checkout.session.completed", order)


def kill(pg_url: str, pid: int) -> None:
    with psycopg.connect(pg_url, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (pid,))


def check_invariants(app: Flask) -> None:
    """The checks every fault test ends with."""
    with transaction(app) as session:
        report = audit.verify(session)  # the journal replays to exactly these blocks
        for batch_id, totals in queries.batch_totals(session).items():
            held = (totals.tradable + totals.retired + totals.cancelled + totals.buffer
                    + totals.frozen)
            assert held == totals.issued, (batch_id, totals)
        assert report is not None
        orders = list(session.scalars(select(Order)))
        for order in orders:
            transfers = [r.transfer_seq for r in order.reservations if r.transfer_seq]
            assert len(transfers) == len(set(transfers))
            if order.status == "fulfilled":
                assert all(r.state == "consumed" and r.transfer_seq for r in order.reservations)
                assert sum(r.quantity for r in order.reservations) == order.quantity
            else:
                assert not transfers, (order.reference, order.status)
            if order.paid_at is not None:
                assert order.status in ("fulfilled", "paid", "refund_pending", "refunded"), \
                    order.reference
                if order.status == "paid":
                    assert order.failure and "refund due" in order.failure
        # Every transfer to a buyer is one fulfilled reservation's, once: none was made twice.
        seqs = [r.transfer_seq for o in orders for r in o.reservations if r.transfer_seq]
        assert len(seqs) == len(set(seqs))
        buyers = {a.id for a in session.scalars(select(Account).where(
            Account.name.like("user:%") | Account.name.like("org:%")))}
        to_buyers = [e.seq for e in session.scalars(select(Entry).where(Entry.kind == "transfer"))
                     if canonical.loads(bytes(e.record))["data"]["to"] in buyers]
        assert sorted(to_buyers) == sorted(seqs)
        # Nothing stays reserved past its order's expiry.
        later = utcnow() + checkout.RESERVATION_TTL + checkout.GRACE + dt.timedelta(minutes=1)
        assert checkout.reserved_by_batch(session, now=later) == {}
        active = session.scalars(select(Reservation).where(Reservation.state == "active"))
        for reservation in active:
            assert reservation.order.status in ("pending", "awaiting_payment")


def test_a_connection_killed_between_transfer_and_retire_loses_nothing(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(pg_url)
    load_demo(app)
    listing = small_project(app, 10)
    user = add_user(app, "killed@example.org")
    reference = place(app, user, listing, 3)
    with transaction(app) as session:
        entries_before = session.scalar(select(func.count()).select_from(Entry))

    original = operations.retire
    armed = [True]

    def retire_after_losing_the_connection(session: Any, **kwargs: Any) -> Any:
        if armed and armed.pop():
            # The transfer is written (not committed); now the connection dies.
            pid = session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            kill(pg_url, pid)
        return original(session, **kwargs)

    monkeypatch.setattr(operations, "retire", retire_after_losing_the_connection)
    outcome, status = pay(app, reference)
    assert status == 503 and "retry" in outcome
    with transaction(app) as session:  # the pool hands out a working connection again
        order = session.scalars(select(Order).where(Order.reference == reference)).one()
        assert order.status == "awaiting_payment" or order.status == "pending"
        assert session.scalar(select(func.count()).select_from(Entry)) == entries_before
    check_invariants(app)

    # The provider redelivers (a new delivery of the same payment): fulfilled, once.
    outcome, status = pay(app, reference)
    assert status == 200 and outcome.startswith("fulfilled: 3 t retired"), outcome
    assert pay(app, reference)[1] == 200
    with transaction(app) as session:
        order = session.scalars(select(Order).where(Order.reference == reference)).one()
        assert order.status == "fulfilled"
        assert session.scalar(select(func.count()).select_from(Entry)) == entries_before + 2
    check_invariants(app)
    db.dispose_all()


@pytest.mark.slow
def test_50_concurrent_checkouts_while_connections_are_terminated(pg_url: str) -> None:
    app = make_app(pg_url)
    load_demo(app)
    listing = small_project(app, 30)
    users = [add_user(app, f"storm-{uuid.uuid4().hex[:8]}@example.org") for _ in range(50)]
    stop = threading.Event()
    killed = [0]

    def killer() -> None:
        rng = random.Random(944)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            while not stop.is_set():
                pids = [row[0] for row in admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")]
                if pids:
                    admin.execute("SELECT pg_terminate_backend(%s)", (rng.choice(pids),))
                    killed[0] += 1
                time.sleep(rng.uniform(0.005, 0.03))

    def attempt(step: Any, *args: Any) -> Any:
        """A step retried as a browser or the provider would, after a lost connection."""
        for _ in range(20):
            try:
                return step(*args)
            except DBAPIError:
                time.sleep(0.01)
        return None

    def buy(user_id: int) -> str:
        try:
            reference = attempt(place, app, user_id, listing, 1)
        except checkout.CheckoutError:
            return "out of stock"
        if reference is None:
            return "could not order"
        for _ in range(20):
            result = attempt(pay, app, reference)
            if result is not None and result[1] == 200:
                return result[0]
        return "payment not delivered"

    storm = threading.Thread(target=killer, daemon=True)
    storm.start()
    try:
        with ThreadPoolExecutor(max_workers=10) as pool:
            outcomes = list(pool.map(buy, users))
    finally:
        stop.set()
        storm.join(timeout=10)
    assert killed[0] > 0
    check_invariants(app)
    with transaction(app) as session:
        fulfilled = list(session.scalars(select(Order).where(Order.status == "fulfilled")))
        sold = sum(order.quantity for order in fulfilled)
    # A buyer told "fulfilled" (or, on a redelivery after a lost answer, "already fulfilled")
    # has the tonne; nobody else does; and 30 t is all there was.
    told = sum(1 for o in outcomes if o.startswith(("fulfilled", "already fulfilled")))
    assert sold == told and 0 < sold <= 30, (sold, told, outcomes)
    # The pool recovered: a page is served without a restart.
    assert app.test_client().get("/projects").status_code == 200
    db.dispose_all()


def _kill_once(pg_url: str, monkeypatch: pytest.MonkeyPatch, name: str,
               module: Any = operations) -> list[bool]:
    """Make the next ``module.<name>(session, ...)`` lose its database connection first."""
    original = getattr(module, name)
    armed = [True]

    def losing_the_connection(session: Any, *args: Any, **kwargs: Any) -> Any:
        if armed and armed.pop():
            kill(pg_url, session.connection().exec_driver_sql(
                "SELECT pg_backend_pid()").scalar_one())
        return original(session, *args, **kwargs)

    monkeypatch.setattr(module, name, losing_the_connection)
    return armed


def test_api_orders_and_retirements_survive_a_killed_connection(
        pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from ledger.checkpoint import write_keypair

    from .test_api_helpers import ALTO_MAYO, RETIRE, api_app_for, make_company

    signer, _ = write_keypair(tmp_path, "selva.example/ledger")
    app = api_app_for(pg_url, signer)
    load_demo(app)
    company = make_company(app)
    client = app.test_client()
    body = {"lines": [{"project": ALTO_MAYO, "quantity": 5}], "action": "hold"}
    headers = {**company.headers, "Idempotency-Key": "storm-order"}

    # The order is placed and committed; the payment's event then loses its connection in
    # the middle of fulfilment: the order is honest about it (pending, tonnes reserved).
    armed = _kill_once(pg_url, monkeypatch, "transfer")
    placed = client.post("/api/v1/orders", json=body, headers=headers)
    assert placed.status_code == 201 and not armed, placed.get_data(as_text=True)
    order = placed.get_json()
    assert order["status"] == "pending" and order["paid_at"] is None
    check_invariants(app)
    # The provider delivers the event again: fulfilled, once; the client's retry replays.
    assert pay(app, order["id"])[1] == 200
    again = client.post("/api/v1/orders", json=body, headers=headers)
    assert again.status_code == 200 and again.get_json()["id"] == order["id"]
    assert again.get_json()["status"] == "fulfilled"
    check_invariants(app)

    # A lost connection while the order itself is written is a 503 problem: nothing kept.
    other = make_company(app, "Other Ltd")
    armed = _kill_once(pg_url, monkeypatch, "lock_listings", checkout)
    lost = client.post("/api/v1/orders", json=body, headers={
        **other.headers, "Idempotency-Key": "storm-2"})
    assert lost.status_code == 503 and not armed, lost.get_data(as_text=True)
    assert lost.mimetype == "application/problem+json" and lost.headers["Retry-After"] == "1"
    check_invariants(app)
    made = client.post("/api/v1/orders", json=body, headers={
        **other.headers, "Idempotency-Key": "storm-2"})
    assert made.status_code == 201 and made.get_json()["status"] == "fulfilled"

    retire = {k: v for k, v in RETIRE.items() if k != "action"}
    key = {**company.headers, "Idempotency-Key": "storm-retire"}
    armed = _kill_once(pg_url, monkeypatch, "retire")
    lost = client.post("/api/v1/retirements", json={"quantity": 2, **retire}, headers=key)
    assert lost.status_code == 503 and not armed
    done = client.post("/api/v1/retirements", json={"quantity": 2, **retire}, headers=key)
    assert done.status_code == 201, done.get_data(as_text=True)
    [holding] = client.get("/api/v1/holdings", headers=company.headers).get_json()["data"]
    assert holding["quantity"] == 3
    check_invariants(app)
    db.dispose_all()


def test_retire_later_on_the_holdings_page_survives_a_killed_connection(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from .shop import checkout_form, listing_for, login, pay_demo

    app = make_app(pg_url)
    load_demo(app)
    client = app.test_client()
    add_user(app, "later@example.org", "Lee Later")
    login(client, "later@example.org")
    client.post("/cart/add", data={"listing_id": listing_for(app, "944"), "quantity": "6"})
    pay_demo(client, client.post("/checkout", data=checkout_form(action="hold")))
    with transaction(app) as session:
        user = session.scalars(select(User).where(User.email == "later@example.org")).one()
        [holding] = queries.holdings(session, session.scalars(select(Account).where(
            Account.name == f"user:{user.id}")).one().id)
        batch_id = holding.batch_id
    form = {"holder": "self", "batch_id": str(batch_id), "quantity": "4",
            "beneficiary": "Lee Later", "purpose": "voluntary", "note": "", "country": "GB",
            "period_start": "2025-01-01", "period_end": "2025-12-31"}
    armed = _kill_once(pg_url, monkeypatch, "retire")
    lost = client.post("/holdings", data=form)
    assert lost.status_code == 503 and not armed
    assert "nothing was saved" in lost.get_data(as_text=True)
    check_invariants(app)
    assert client.post("/holdings", data=form).status_code == 302
    assert 'data-holding="self-' in client.get("/holdings").get_data(as_text=True)
    check_invariants(app)
    db.dispose_all()


@pytest.mark.slow
def test_api_orders_survive_gunicorn_workers_killed_mid_request(
        pg_url: str, tmp_path: Any) -> None:
    """Real gunicorn workers SIGKILLed while API orders are in flight: the master starts new
    ones, clients retry with their Idempotency-Key, and nothing is lost or made twice."""
    import json
    import os
    import signal
    import socket
    import subprocess
    import sys
    import urllib.error
    import urllib.request
    from pathlib import Path

    from ledger.checkpoint import write_keypair

    from .test_api_helpers import ALTO_MAYO, api_app_for, make_company

    root = Path(__file__).resolve().parents[2]
    signer, _ = write_keypair(tmp_path, "selva.example/ledger")
    app = api_app_for(pg_url, signer)
    load_demo(app)
    company = make_company(app)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "CARBON_DATABASE_URL": pg_url, "CARBON_SECRET_KEY": "faults",
           "CARBON_STRIPE_WEBHOOK_SECRET": "whsec_faults", "CARBON_CHECKPOINT_KEY": str(signer),
           "CARBON_RATELIMIT_ENABLED": "false", "CARBON_PAYMENT_GATEWAY": "demo"}
    gunicorn = Path(sys.executable).with_name("gunicorn")
    log = (tmp_path / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [str(gunicorn), "--bind", f"127.0.0.1:{port}", "--workers", "2", "--timeout", "30",
         "--graceful-timeout", "1", "--chdir", str(root), "wsgi:app"],
        env=env, cwd=root, stdout=log, stderr=log, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def call(method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            base + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **company.headers, **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=20) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def workers() -> list[int]:
        """The master's children (from /proc: no process tools needed)."""
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == server.pid:
                children.append(int(stat.parent.name))
        return children

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if call("GET", "/api/v1/projects")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "gunicorn did not start"
            time.sleep(0.2)
        stop = threading.Event()
        kills = [0]

        def killer() -> None:
            """Six kills, each once both workers are up again (a worker takes a moment to
            boot), so requests keep landing on workers about to die."""
            rng = random.Random(868)
            while not stop.is_set() and kills[0] < 6:
                time.sleep(rng.uniform(0.1, 0.4))
                pids = workers()
                if len(pids) < 2:
                    continue
                try:
                    os.kill(rng.choice(pids), signal.SIGKILL)
                    kills[0] += 1
                except ProcessLookupError:
                    pass

        def order(i: int) -> tuple[int, Any]:
            body = {"lines": [{"project": ALTO_MAYO, "quantity": 1}], "action": "hold"}
            for _ in range(100):
                try:
                    status, answer = call("POST", "/api/v1/orders", body,
                                          {"Idempotency-Key": f"killed-worker-{i}"})
                except OSError:
                    status, answer = 0, None  # the worker died under this request
                if status in (200, 201):
                    return status, answer
                time.sleep(0.05)
            return status, answer

        storm = threading.Thread(target=killer, daemon=True)
        storm.start()
        try:
            with ThreadPoolExecutor(max_workers=6) as pool:
                results = list(pool.map(order, range(24)))
                storm.join(timeout=30)  # the last kills land before the check below
        finally:
            stop.set()
            storm.join(timeout=10)
        assert kills[0] > 0
        assert all(status in (200, 201) for status, _ in results), results
        references = {answer["id"] for _, answer in results}
        assert len(references) == 24  # one order per Idempotency-Key, whatever was retried
        assert call("GET", "/api/v1/projects")[0] == 200  # the new workers serve
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    check_invariants(app)
    with transaction(app) as session:
        orders = list(session.scalars(select(Order).where(
            Order.organisation_id == company.org_id)))
        assert len(orders) == 24
        for placed in orders:
            # Fulfilled, or still waiting for a payment whose worker died (its tonnes stay
            # reserved until the order lapses): never half-done.
            assert placed.status in ("fulfilled", "pending", "awaiting_payment"), placed.status
    db.dispose_all()
