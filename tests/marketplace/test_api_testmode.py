"""Test-mode keys (sk_test_...) run the same API against a sandbox: real projects and prices,
simulated inventory, payments, holdings and retirements; never a reservation, a block or a
journal entry in the live ledger, and every object marked livemode: false."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from .test_api_helpers import (  # noqa: F401  (fixtures)
    ALTO_MAYO,
    RETIRE,
    Company,
    app,
    assert_problem,
    client,
    company,
    keypair,
    ledger_state,
    make_company,
    pointers,
)

DETAILS = {k: v for k, v in RETIRE.items() if k != "action"}


def alto_2016(client: FlaskClient, headers: dict[str, str]) -> int:
    project = client.get(f"/api/v1/projects/{ALTO_MAYO}", headers=headers).get_json()
    return int(project["vintages"][0]["available_tonnes"])


def test_a_test_key_buys_holds_and_retires_without_touching_the_ledger(
        app: Flask, client: FlaskClient, company: Company) -> None:
    before = ledger_state(app)
    headers = {**company.test_headers}
    simulated = alto_2016(client, headers)
    assert simulated == before.for_sale[1]

    q = client.post("/api/v1/quotes", json={"project": ALTO_MAYO, "quantity": 25},
                    headers=headers).get_json()
    assert q["livemode"] is False and q["status"] == "open"
    assert alto_2016(client, headers) == simulated - 25          # held in the simulation
    assert alto_2016(client, company.headers) == before.for_sale[1]  # not in real life

    held = client.post("/api/v1/orders", json={"quote": q["id"], "action": "hold"},
                       headers={**headers, "Idempotency-Key": "t-1"})
    assert held.status_code == 201, held.get_data(as_text=True)
    order = held.get_json()
    assert order["livemode"] is False and order["status"] == "fulfilled"
    assert order["id"].startswith("SLV-TEST-") and order["quote"] == q["id"]
    assert alto_2016(client, headers) == simulated              # released once paid
    replay = client.post("/api/v1/orders", json={"quote": q["id"], "action": "hold"},
                         headers={**headers, "Idempotency-Key": "t-1"})
    assert replay.status_code == 200 and replay.get_json() == order
    assert_problem(client.post("/api/v1/orders", json={"quote": q["id"], "action": "retire",
                                                       **DETAILS},
                               headers={**headers, "Idempotency-Key": "t-1"}),
                   409, "idempotency-conflict")

    [holding] = client.get("/api/v1/holdings", headers=headers).get_json()["data"]
    assert holding["livemode"] is False and holding["quantity"] == 25 and holding["serials"] == []

    made = client.post("/api/v1/retirements", json={"quantity": 10, **DETAILS},
                       headers={**headers, "Idempotency-Key": "r-1"})
    assert made.status_code == 201, made.get_data(as_text=True)
    ret = made.get_json()
    assert ret["livemode"] is False and ret["certificate"] is None and ret["seq"] is None
    assert ret["id"].startswith("ret_test_") and ret["beneficiary"] == "Acme Travel Ltd"
    assert ret["allocation"] == [{"batch": 1, "vintage": "2016", "quantity": 10}]
    assert client.get(f"/api/v1/retirements/{ret['id']}", headers=headers).get_json() == ret
    assert client.get("/api/v1/retirements", headers=headers).get_json()["data"] == [ret]
    assert client.get("/api/v1/holdings", headers=headers).get_json()["data"][0]["quantity"] == 15
    assert_problem(client.post("/api/v1/retirements", json={"quantity": 16, **DETAILS},
                               headers=headers), 409, "insufficient-credits")

    direct = client.post("/api/v1/orders", json={"lines": [{"project": ALTO_MAYO, "quantity": 3}],
                                                 **RETIRE}, headers=headers).get_json()
    assert direct["status"] == "fulfilled" and len(direct["retirements"]) == 1
    assert direct["retirements"][0]["certificate"] is None

    # nothing reached the ledger or the shop's orders, and live keys see none of it
    assert ledger_state(app) == before
    assert client.get("/api/v1/orders", headers=company.headers).get_json()["data"] == []
    assert client.get("/api/v1/holdings", headers=company.headers).get_json()["data"] == []
    assert_problem(client.get(f"/api/v1/orders/{order['id']}", headers=company.headers), 404)
    assert_problem(client.get(f"/api/v1/retirements/{ret['id']}", headers=company.headers), 404)
    assert_problem(client.get(f"/api/v1/quotes/{q['id']}", headers=company.headers), 404)
    listed = client.get("/api/v1/orders", headers=headers).get_json()["data"]
    assert [o["id"] for o in listed] == [direct["id"], order["id"]]


def test_test_invoices_are_paid_with_the_test_helper(app: Flask, client: FlaskClient,
                                                     company: Company) -> None:
    before = ledger_state(app)
    headers = company.test_headers
    simulated = alto_2016(client, headers)
    made = client.post("/api/v1/orders", json={"lines": [{"project": ALTO_MAYO, "quantity": 5}],
                                               "action": "hold", "payment_method": "invoice"},
                       headers=headers).get_json()
    assert made["status"] == "awaiting_payment" and made["payment_method"] == "invoice"
    assert alto_2016(client, headers) == simulated - 5
    waiting = client.get("/api/v1/orders?status=awaiting_payment", headers=headers).get_json()
    assert [o["id"] for o in waiting["data"]] == [made["id"]]
    paid = client.post(f"/api/v1/test_helpers/orders/{made['id']}/pay", headers=headers)
    assert paid.status_code == 200 and paid.get_json()["status"] == "fulfilled"
    assert alto_2016(client, headers) == simulated
    assert_problem(client.post(f"/api/v1/test_helpers/orders/{made['id']}/pay", headers=headers),
                   409, "not-payable")
    assert_problem(client.post(f"/api/v1/test_helpers/orders/{made['id']}/pay",
                               headers=company.headers), 403, "test-mode-only")
    assert_problem(client.post("/api/v1/test_helpers/orders/SLV-TEST-0000000000/pay",
                               headers=headers), 404)
    assert_problem(client.post("/api/v1/test_helpers/orders/nonsense/pay", headers=headers), 404)
    other = make_company(app, "Other Ltd")
    assert_problem(client.get(f"/api/v1/orders/{made['id']}", headers=other.test_headers), 404)
    assert ledger_state(app) == before


def test_test_mode_validates_like_live_mode(app: Flask, client: FlaskClient,
                                            company: Company) -> None:
    headers = company.test_headers
    problem = assert_problem(client.post("/api/v1/orders", json={"lines": [{"project": 999999,
                                                                            "quantity": 1}],
                                                                 "action": "hold"},
                                         headers=headers), 422, "validation")
    assert pointers(problem) == {"#/lines/0/project"}
    too_much = client.post("/api/v1/quotes", json={"quantity": 1_000_000, "filters": {
        "vintage": 2019}}, headers=headers)
    assert_problem(too_much, 409, "out-of-stock")
    assert pointers(assert_problem(client.post("/api/v1/orders", json={
        "quote": "qt_" + "1" * 24, "action": "hold"}, headers=headers), 422)) == {"#/quote"}
    q = client.post("/api/v1/quotes", json={"project": ALTO_MAYO, "quantity": 1},
                    headers=headers).get_json()
    client.post("/api/v1/orders", json={"quote": q["id"], "action": "hold"}, headers=headers)
    assert_problem(client.post("/api/v1/orders", json={"quote": q["id"], "action": "hold"},
                               headers=headers), 409, "quote-used")
    listed = client.get("/api/v1/orders?limit=1", headers=headers).get_json()
    assert len(listed["data"]) == 1 and listed["has_more"] is False
