"""Buying tonnes end to end through the pages and the demo gateway (the same webhook path as
Stripe), and the rules around it: reservations, access to orders, refunds, organisations."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from ledger import audit, queries
from ledger.schema import Beneficiary, Block
from marketplace import checkout, refunds
from marketplace.accounts import account_id_of
from marketplace.models import Order, Organisation

from .shop import (
    add_user,
    checkout_form,
    listing_for,
    load_demo,
    login,
    make_app,
    pay_demo,
    small_project,
    transaction,
)


@pytest.fixture
def app(fresh_url: str):  # type: ignore[no-untyped-def]
    app = make_app(fresh_url)
    load_demo(app)
    return app


def test_an_individual_buys_two_tonnes_retired_in_their_name(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    add_user(app, "ada@example.org", "Ada Lovelace")
    login(client, "ada@example.org")
    listing = listing_for(app, "944")
    assert client.post("/cart/add", data={"listing_id": listing, "batch_id": "", "quantity": "2"}).status_code == 302
    cart = client.get("/cart").get_data(as_text=True)
    assert "Alto Mayo" in cart
    reference = pay_demo(client, client.post("/checkout", data=checkout_form()))
    page = client.get(f"/orders/{reference}/success").get_data(as_text=True)
    assert "your order is complete" in page and "Ada Lovelace" in page
    with transaction(app) as session:
        order = session.scalars(select(Order).where(Order.reference == reference)).one()
        assert order.status == "fulfilled"
        [reservation] = order.reservations
        retired = session.scalars(select(Block).where(Block.created_by == reservation.retire_seq,
                                                      Block.state == "retired")).all()
        assert sum(b.quantity for b in retired) == 2
        assert session.get(Beneficiary, reservation.retire_seq).name == "Ada Lovelace"
        audit.verify(session)


def test_escaped_beneficiary_and_no_fulfilment_on_redirect_alone(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    add_user(app, "eve@example.org", "Eve")
    login(client, "eve@example.org")
    client.post("/cart/add", data={"listing_id": listing_for(app, "944"), "quantity": "1"})
    response = client.post("/checkout", data=checkout_form(beneficiary="<script>alert(1)</script>"))
    assert response.status_code == 302
    with transaction(app) as session:
        order = session.scalars(select(Order)).one()
        reference = order.reference
        assert order.status == "awaiting_payment"
    # The success redirect alone fulfils nothing: only the webhook does.
    page = client.get(f"/orders/{reference}/success").get_data(as_text=True)
    assert "Confirming your payment" in page
    pay_demo(client, response)
    page = client.get(f"/orders/{reference}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_another_buyers_order_is_a_404(app) -> None:  # type: ignore[no-untyped-def]
    alice, bob = app.test_client(), app.test_client()
    add_user(app, "alice@example.org")
    add_user(app, "bob@example.org")
    login(alice, "alice@example.org")
    login(bob, "bob@example.org")
    alice.post("/cart/add", data={"listing_id": listing_for(app, "944"), "quantity": "1"})
    reference = pay_demo(alice, alice.post("/checkout", data=checkout_form()))
    assert alice.get(f"/orders/{reference}").status_code == 200
    assert bob.get(f"/orders/{reference}").status_code == 404
    assert bob.get(f"/orders/{reference}/success").status_code == 404
    assert reference not in bob.get("/orders").get_data(as_text=True)


def test_cannot_buy_more_than_is_for_sale_and_cancel_releases(app) -> None:  # type: ignore[no-untyped-def]
    listing = small_project(app, 5)
    client = app.test_client()
    add_user(app, "carol@example.org")
    login(client, "carol@example.org")
    client.post("/cart/add", data={"listing_id": listing, "quantity": "6"})
    page = client.post("/checkout", data=checkout_form()).get_data(as_text=True)
    assert "Only 5 t of Small test forest are left" in page
    client.post("/cart/update", data={"index": "0", "quantity": "5"})
    first = client.post("/checkout", data=checkout_form())
    assert first.status_code == 302
    with transaction(app) as session:
        assert sum(checkout.for_sale_by_batch(session).get(b, 0) for b in _batches(session, listing)) == 0
        reference = session.scalars(select(Order.reference)).one()
    client.post(f"/orders/{reference}/cancel")
    with transaction(app) as session:
        assert sum(checkout.for_sale_by_batch(session).get(b, 0) for b in _batches(session, listing)) == 5


def _batches(session, listing_id: int) -> list[int]:  # type: ignore[no-untyped-def]
    from ledger.schema import Batch
    from marketplace.models import Listing

    project = session.get(Listing, listing_id).project_id
    return list(session.scalars(select(Batch.id).where(Batch.project_id == project)))


def test_bad_checkout_input_is_a_message_not_a_500(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    add_user(app, "dan@example.org")
    login(client, "dan@example.org")
    assert client.post("/cart/add", data={"listing_id": "x", "quantity": "1"}).status_code == 302
    assert client.post("/cart/add", data={"listing_id": listing_for(app, "944"), "quantity": "1.5"}).status_code == 302
    assert client.get("/cart").get_data(as_text=True).count("Whole") == 0
    client.post("/cart/add", data={"listing_id": listing_for(app, "944"), "quantity": "3"})
    for bad in (checkout_form(period_end="2024-01-01"), checkout_form(purpose="other"),
                checkout_form(beneficiary="")):
        response = client.post("/checkout", data=bad)
        assert response.status_code == 200
        assert 'role="alert"' in response.get_data(as_text=True)
    with transaction(app) as session:
        assert session.scalar(select(func.count(Order.id))) == 0


def test_company_holds_then_retires_part_and_refund_rules(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    add_user(app, "cfo@example.org", "Grace CFO")
    login(client, "cfo@example.org")
    client.post("/organisations", data={"name": "Acme Shipping Ltd"})
    with transaction(app) as session:
        org = session.scalars(select(Organisation)).one()
        org_id = org.id
    client.post("/cart/add", data={"listing_id": listing_for(app, "868"), "quantity": "100"})
    reference = pay_demo(client, client.post("/checkout", data=checkout_form(
        buy_for=str(org_id), beneficiary="Acme Shipping Ltd", action="hold")))
    with transaction(app) as session:
        account = account_id_of(session, session.get(Organisation, org_id))
        assert account is not None and queries.available(session, account) == 100
        [holding] = queries.holdings(session, account)
        batch_id = holding.batch_id
    response = client.post("/holdings", data={
        "holder": f"org:{org_id}", "batch_id": str(batch_id), "quantity": "40",
        "beneficiary": "Acme Shipping Ltd (2025 fleet)", "purpose": "net_zero", "note": "",
        "country": "GB", "period_start": "2025-01-01", "period_end": "2025-12-31"})
    assert response.status_code == 302
    page = client.get("/holdings").get_data(as_text=True)
    assert f'data-holding="org:{org_id}-{batch_id}">60<' in page
    # Part of the held credits were retired: the order can no longer be refunded.
    with pytest.raises(checkout.RefundError, match="retired or moved"), app.app_context():
        refunds.refund_order(reference)


def test_refund_returns_held_credits_and_retired_orders_refuse(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    add_user(app, "fay@example.org")
    login(client, "fay@example.org")
    client.post("/cart/add", data={"listing_id": listing_for(app, "944"), "quantity": "7"})
    held = pay_demo(client, client.post("/checkout", data=checkout_form(action="hold")))
    client.post("/cart/add", data={"listing_id": listing_for(app, "944"), "quantity": "3"})
    retired = pay_demo(client, client.post("/checkout", data=checkout_form()))
    with transaction(app) as session:
        before = checkout.for_sale_by_batch(session)
    with app.app_context():
        assert refunds.refund_order(held).startswith("refunded")
    with transaction(app) as session:
        after = checkout.for_sale_by_batch(session)
        assert sum(after.values()) == sum(before.values()) + 7
        assert session.scalars(select(Order.status).where(Order.reference == held)).one() == "refunded"
    with pytest.raises(checkout.RefundError, match="final"), app.app_context():
        refunds.refund_order(retired)
    with transaction(app) as session:
        audit.verify(session)


def test_organisation_pages_check_membership(app) -> None:  # type: ignore[no-untyped-def]
    admin, outsider = app.test_client(), app.test_client()
    add_user(app, "admin@example.org", "Org Admin")
    add_user(app, "member@example.org", "Org Member")
    add_user(app, "outsider@example.org", "Outsider")
    login(admin, "admin@example.org")
    login(outsider, "outsider@example.org")
    admin.post("/organisations", data={"name": "Acme"})
    with transaction(app) as session:
        org_id = session.scalars(select(Organisation.id)).one()
    assert outsider.get(f"/organisations/{org_id}").status_code == 404
    admin.post(f"/organisations/{org_id}", data={"email": "member@example.org", "role": "member"})
    assert "Org Member" in admin.get(f"/organisations/{org_id}").get_data(as_text=True)
    member = app.test_client()
    login(member, "member@example.org")
    assert member.get(f"/organisations/{org_id}").status_code == 200
    assert member.post(f"/organisations/{org_id}", data={"email": "outsider@example.org",
                                                         "role": "admin"}).status_code == 403


@pytest.mark.postgres
def test_100_concurrent_checkouts_for_50_tonnes(pg_url: str) -> None:
    app = make_app(pg_url)
    load_demo(app)
    listing = small_project(app, 50)
    emails = [f"buyer{i}@example.org" for i in range(100)]
    for email in emails:
        add_user(app, email)
    clients = []
    for email in emails:
        client = app.test_client()
        login(client, email)
        client.post("/cart/add", data={"listing_id": listing, "quantity": "1"})
        clients.append(client)
    workers = 25
    barrier = threading.Barrier(workers)  # cyclic: releases each wave of 25 at once

    def buy(client):  # type: ignore[no-untyped-def]
        barrier.wait()
        response = client.post("/checkout", data=checkout_form())
        if response.status_code != 302:
            return response.status_code, None
        paid = client.post(f"/demo-checkout/{response.headers['Location'].rsplit('/', 1)[1]}/pay")
        return paid.status_code, response.headers["Location"]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(buy, clients))
    statuses = [status for status, _ in results]
    assert all(status < 500 for status in statuses), statuses
    assert sum(1 for _, location in results if location) == 50
    with transaction(app) as session:
        fulfilled = session.scalars(select(Order).where(Order.status == "fulfilled")).all()
        assert sum(o.quantity for o in fulfilled) == 50
        assert sum(checkout.for_sale_by_batch(session).get(b, 0)
                   for b in _batches(session, listing)) == 0
        report = audit.verify(session)
        assert report.totals["SLV-SMALL1"].retired == 50


def test_operator_refunds_a_held_order_and_is_told_why_not_for_a_retired_one(app) -> None:  # type: ignore[no-untyped-def]
    buyer, operator = app.test_client(), app.test_client()
    add_user(app, "held@example.org")
    add_user(app, "ops@example.org", "Operator", role="operator")
    login(buyer, "held@example.org")
    login(operator, "ops@example.org")
    buyer.post("/cart/add", data={"listing_id": listing_for(app, "944"), "quantity": "4"})
    held = pay_demo(buyer, buyer.post("/checkout", data=checkout_form(action="hold")))
    buyer.post("/cart/add", data={"listing_id": listing_for(app, "944"), "quantity": "1"})
    retired = pay_demo(buyer, buyer.post("/checkout", data=checkout_form()))
    dashboard = operator.get("/operator/").get_data(as_text=True)
    assert "Retired: not refundable" in dashboard
    assert operator.post(f"/operator/orders/{held}/refund").status_code == 302
    assert "refunded: 4 t returned to inventory" in operator.get("/operator/").get_data(as_text=True)
    operator.post(f"/operator/orders/{retired}/refund")
    assert "A retirement is final" in operator.get("/operator/").get_data(as_text=True)
    assert buyer.post(f"/operator/orders/{held}/refund").status_code == 403
    with transaction(app) as session:
        statuses = dict(session.execute(select(Order.reference, Order.status)).all())
        assert statuses == {held: "refunded", retired: "fulfilled"}
        audit.verify(session)
