"""One module per rule: the order state machine, refunds that never call the payment provider
under a lock, and who may see and do what (``marketplace.access``)."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from ledger import audit, operations
from ledger.schema import Account
from marketplace import order_states, refunds
from marketplace.checkout import inventory_account
from marketplace.models import Order
from marketplace.order_states import TRANSITIONS, TransitionError, transition
from marketplace.payments import GatewayError

from .shop import add_user, checkout_form, listing_for, load_demo, login, make_app, pay_demo
from .shop import transaction

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(fresh_url: str) -> Flask:
    app = make_app(fresh_url)
    load_demo(app)
    return app


# -- the order state machine ------------------------------------------------------------------


def _order_in(status: str) -> Order:
    order = Order(reference="SLV-0000000001")
    with order_states._writing():
        order.status = status
    return order


@pytest.mark.parametrize(("move", "event"), sorted(
    (move, event) for move, events in TRANSITIONS.items() for event in events))
def test_every_declared_transition_moves_the_order(move: tuple[str, str], event: str) -> None:
    current, target = move
    order = _order_in(current)
    transition(order, target, event)
    assert order.status == target


@pytest.mark.parametrize("current", order_states.STATES)
def test_undeclared_transitions_raise(current: str) -> None:
    for target in order_states.STATES:
        for event in sorted(order_states.EVENTS):
            if order_states.can(current, target, event):
                continue
            order = _order_in(current)
            with pytest.raises(TransitionError):
                transition(order, target, event)
            assert order.status == current


def test_the_status_cannot_be_written_around_transition() -> None:
    order = Order(reference="SLV-0000000002")
    assert order.status in (None, order_states.INITIAL)
    with pytest.raises(TransitionError):
        order.status = "fulfilled"
    with pytest.raises(TransitionError):
        Order(reference="SLV-0000000003", status="fulfilled")
    order = _order_in("fulfilled")
    with pytest.raises(TransitionError):
        order.status = "refunded"
    assert order.status == "fulfilled"


def test_no_code_writes_an_order_status_outside_the_state_machine() -> None:
    """Belt and braces for the ORM guard: no module assigns ``.status`` of an order, and no
    SQL updates the orders' status column, except ``marketplace/order_states.py``."""
    assignment = re.compile(r"\border\w*\.status\s*=(?!=)|\bfresh\.status\s*=(?!=)")
    raw_sql = re.compile(r"UPDATE\s+orders\b[^\"']*\bstatus\b", re.IGNORECASE)
    core_update = re.compile(r"update\(Order\)[^\n]*\n?[^\n]*values\([^)]*status")
    offenders = []
    for path in sorted((ROOT / "marketplace").rglob("*.py")):
        if path.name == "order_states.py":
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in (assignment, raw_sql, core_update):
            for found in pattern.finditer(text):
                line = text.count("\n", 0, found.start()) + 1
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {found.group(0)!r}")
    assert offenders == []


def test_the_database_refuses_an_unknown_status(app: Flask) -> None:
    with pytest.raises(IntegrityError), transaction(app) as session:
        user_id = session.scalar(select(Account.id).limit(1))
        session.execute(insert(Order.__table__).values(
            reference="SLV-00000000FF", status="shipped", user_id=user_id))


# -- refunds: the provider is never called under a lock ----------------------------------------


class HangingProvider:
    """A payment provider that takes its time: while it 'thinks', the test appends to the
    ledger from another thread, which must not wait for the refund."""

    name = "demo"

    def __init__(self, app: Flask, fail_with: str | None = None) -> None:
        self.app = app
        self.fail_with = fail_with
        self.appended: list[int] = []
        self.errors: list[BaseException] = []

    def create_checkout(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("not used here")

    def refund(self, order: Order) -> None:
        def append() -> None:
            try:
                with transaction(self.app) as session:
                    other = operations.open_account(session, f"probe-{len(self.appended)}",
                                                    "customer")
                    moved = operations.transfer(session, from_account=inventory_account(
                        session).id, to_account=other.id, quantity=1)
                    self.appended.append(moved.seq)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(exc)

        worker = threading.Thread(target=append)
        worker.start()
        worker.join(timeout=20)
        if worker.is_alive():
            self.errors.append(TimeoutError("the ledger append waited for the refund"))
        if self.fail_with is not None:
            raise GatewayError(self.fail_with)


def _held_order(app: Flask, email: str, tonnes: int) -> str:
    client = app.test_client()
    add_user(app, email)
    login(client, email)
    client.post("/cart/add", data={"listing_id": listing_for(app, "944"),
                                   "quantity": str(tonnes)})
    return pay_demo(client, client.post("/checkout", data=checkout_form(action="hold")))


def test_a_refund_appends_nothing_under_lock_while_the_provider_answers(app: Flask) -> None:
    reference = _held_order(app, "hold@example.org", 5)
    provider = HangingProvider(app)
    app.extensions["selva_gateway_demo"] = provider
    with app.app_context():
        assert refunds.refund_order(reference).startswith("refunded")
    assert provider.errors == [] and len(provider.appended) == 1
    with transaction(app) as session:
        assert session.scalar(select(Order.status).where(Order.reference == reference)) == \
            "refunded"
        audit.verify(session)


def test_a_failed_refund_waits_as_refund_pending_with_the_error_for_the_operator(
        app: Flask) -> None:
    reference = _held_order(app, "wait@example.org", 4)
    provider = HangingProvider(app, fail_with="The card issuer is not answering.")
    app.extensions["selva_gateway_demo"] = provider
    with app.app_context(), pytest.raises(refunds.RefundPending, match="not answering"):
        refunds.refund_order(reference)
    assert provider.errors == [] and len(provider.appended) == 1
    with transaction(app) as session:
        order = session.scalars(select(Order).where(Order.reference == reference)).one()
        assert order.status == "refund_pending" and order.refunded_at is None
        assert "not answering" in (order.failure or "")
        audit.verify(session)

    operator = app.test_client()
    add_user(app, "ops@example.org", role="operator")
    login(operator, "ops@example.org")
    page = operator.get("/operator/").get_data(as_text=True)
    panel = page[page.index('id="refunds-heading"'):page.index('id="projects-heading"')]
    assert reference in panel and "refund pending" in panel and "not answering" in panel
    assert "Try the refund again" in panel

    # Asked again and the provider answers: the order is refunded, once.
    provider.fail_with = None
    response = operator.post(f"/operator/orders/{reference}/refund")
    assert response.status_code == 302
    with transaction(app) as session:
        order = session.scalars(select(Order).where(Order.reference == reference)).one()
        assert order.status == "refunded" and order.failure is None
    assert provider.errors == []


# -- access: one module for pages and API ------------------------------------------------------


def test_auditors_see_the_back_office_and_change_nothing(app: Flask) -> None:
    reference = _held_order(app, "buyer@example.org", 2)
    auditor = app.test_client()
    add_user(app, "audit@example.org", role="auditor")
    login(auditor, "audit@example.org")
    dashboard = auditor.get("/operator/")
    assert dashboard.status_code == 200
    page = dashboard.get_data(as_text=True)
    assert "as an auditor" in page and reference in page
    assert "Register a project" not in page and ">Refund<" not in page
    assert auditor.get("/operator/origin").status_code == 200
    for path in (f"/operator/orders/{reference}/refund", "/operator/listings/1/status",
                 "/operator/origin/record", "/registry/certificates/1/erase"):
        assert auditor.post(path, data={"status": "unlisted"}).status_code == 403, path
    with transaction(app) as session:
        assert session.scalar(select(Order.status).where(Order.reference == reference)) == \
            "fulfilled"

    customer = app.test_client()
    add_user(app, "someone@example.org")
    login(customer, "someone@example.org")
    assert customer.get("/operator/").status_code == 403
    assert customer.get("/operator/origin").status_code == 403
    assert app.test_client().get("/operator/").status_code == 302  # to the login page


def test_organisation_roles_are_checked_in_one_place(app: Flask) -> None:
    admin, member, outsider = app.test_client(), app.test_client(), app.test_client()
    add_user(app, "boss@example.org")
    add_user(app, "staff@example.org")
    add_user(app, "stranger@example.org")
    login(admin, "boss@example.org")
    login(member, "staff@example.org")
    login(outsider, "stranger@example.org")
    admin.post("/organisations", data={"name": "Acme Shipping Ltd"})
    with transaction(app) as session:
        from marketplace.models import Organisation

        org_id = session.scalars(select(Organisation.id)).one()
    added = admin.post(f"/organisations/{org_id}", data={"email": "staff@example.org",
                                                         "role": "member"})
    assert added.status_code == 302
    assert member.get(f"/organisations/{org_id}").status_code == 200
    assert member.post(f"/organisations/{org_id}", data={
        "email": "stranger@example.org", "role": "admin"}).status_code == 403
    assert member.get(f"/organisations/{org_id}/api-keys").status_code == 403
    assert outsider.get(f"/organisations/{org_id}").status_code == 404
    assert outsider.get(f"/organisations/{org_id}/api-keys").status_code == 404
    assert outsider.post(f"/organisations/{org_id}/members/1/remove").status_code in (400, 404)
