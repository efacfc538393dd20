"""Quotes, orders, holdings and retirements through the API with live keys: the storefront's
reservations and fulfilment into the ledger, idempotent replays and conflicts, invoices,
another organisation's objects invisible, every validation error named, cursors."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from ledger import audit
from ledger.schema import Beneficiary
from ledger.verify import verify_certificate
from marketplace.api import billing
from marketplace.checkout import for_sale_by_batch
from marketplace.models import Order
from marketplace.models.api import ApiQuote, IdempotencyRecord

from .shop import load_demo, transaction
from .test_api_helpers import (  # noqa: F401  (fixtures)
    ALTO_MAYO,
    RETIRE,
    Company,
    api_app_for,
    app,
    assert_problem,
    bearer,
    client,
    company,
    keypair,
    make_company,
    pointers,
)

ALTO_2016 = 1  # the first batch the demo issues


def quote(client: FlaskClient, company: Company, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/quotes", json={"project": ALTO_MAYO, "quantity": 25, **body},
                           headers=company.headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return dict(response.get_json())


def order(client: FlaskClient, company: Company, body: dict[str, Any],
          key: str | None = None, status: int = 201) -> dict[str, Any]:
    headers = dict(company.headers)
    if key:
        headers["Idempotency-Key"] = key
    response = client.post("/api/v1/orders", json=body, headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)
    return dict(response.get_json())


def stock(app: Flask) -> dict[int, int]:
    with transaction(app) as session:
        return for_sale_by_batch(session)


def test_quote_holds_tonnes_until_it_expires(app: Flask, client: FlaskClient,
                                             company: Company) -> None:
    before = stock(app)
    q = quote(client, company)
    assert q["id"].startswith("qt_") and q["object"] == "quote" and q["livemode"] is True
    assert q["status"] == "open" and q["order"] is None
    assert q["total_minor"] == 25 * 1800 and q["currency"] == "USD"
    [line] = q["lines"]
    assert line["project"]["ref"] == "VCS-944" and line["unit_price_minor"] == 1800
    assert line["allocation"] == [{"batch": ALTO_2016, "vintage": "2016", "quantity": 25}]
    expires = dt.datetime.fromisoformat(q["expires_at"])
    assert dt.timedelta(minutes=14) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=15)
    assert stock(app)[ALTO_2016] == before[ALTO_2016] - 25
    again = client.get(f"/api/v1/quotes/{q['id']}", headers=company.headers)
    assert again.status_code == 200 and again.get_json() == q
    # quotes are not orders
    assert client.get("/api/v1/orders", headers=company.headers).get_json()["data"] == []
    # once expired it cannot be ordered
    with transaction(app) as session:
        session.execute(update(ApiQuote).where(ApiQuote.public_id == q["id"]).values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    assert client.get(f"/api/v1/quotes/{q['id']}", headers=company.headers
                      ).get_json()["status"] == "expired"
    body = order(client, company, {"quote": q["id"], "action": "hold"}, status=409)
    assert body["type"].endswith("#problem-quote-expired")


def test_quote_of_any_project_matching_filters(client: FlaskClient, company: Company) -> None:
    cheapest = client.post("/api/v1/quotes", json={"quantity": 3}, headers=company.headers)
    assert cheapest.get_json()["lines"][0]["project"]["ref"] == "VCS-868"
    vintage = client.post("/api/v1/quotes", json={"quantity": 3, "filters": {"vintage": 2019}},
                          headers=company.headers).get_json()
    [line] = vintage["lines"]
    assert line["project"]["ref"] == "SLV-1001" and line["allocation"][0]["vintage"] == "2019"
    assert line["batch"] == line["allocation"][0]["batch"]
    priced = client.post("/api/v1/quotes", json={"quantity": 3, "filters": {
        "min_price": 1500, "max_price": 2000, "standard": "VCS", "country": "PE"}},
        headers=company.headers).get_json()
    assert priced["lines"][0]["project"]["ref"] == "VCS-944"
    none = client.post("/api/v1/quotes", json={"quantity": 3, "filters": {"country": "GB"}},
                       headers=company.headers)
    assert_problem(none, 409, "out-of-stock")
    batch = client.post("/api/v1/quotes", json={"project": ALTO_MAYO, "batch": 3, "quantity": 2},
                        headers=company.headers).get_json()
    assert batch["lines"][0]["allocation"][0]["batch"] == 3


def test_each_invalid_quote_is_named(client: FlaskClient, company: Company) -> None:
    cases: list[tuple[Any, set[str]]] = [
        ({}, {"#/quantity"}),
        ({"quantity": 0}, {"#/quantity"}),
        ({"quantity": 1_000_001}, {"#/quantity"}),
        ({"quantity": "5"}, {"#/quantity"}),
        ({"quantity": 2.5}, {"#/quantity"}),
        ({"quantity": True}, {"#/quantity"}),
        ({"quantity": 1, "project": 0}, {"#/project"}),
        ({"quantity": 1, "project": "alto-mayo"}, {"#/project"}),
        ({"quantity": 1, "colour": "green"}, {"#/colour"}),
        ({"quantity": 1, "batch": 1}, {"#/batch"}),
        ({"quantity": 1, "project": 1, "filters": {}}, {"#/filters"}),
        ({"quantity": 1, "filters": {"vintage": 1800}}, {"#/filters/vintage"}),
        ({"quantity": 1, "filters": {"country": "XX"}}, {"#/filters/country"}),
        ({"quantity": 1, "filters": {"min_price": 5, "max_price": 1}}, {"#/filters/max_price"}),
        ({"quantity": 1, "filters": {"wood": "oak"}}, {"#/filters/wood"}),
        ({"quantity": 1, "project": 999999}, {"#/project"}),
        ({"quantity": 1, "project": ALTO_MAYO, "batch": 6}, {"#/batch"}),
        ([1, 2], {"#"}),
    ]
    for body, expected in cases:
        response = client.post("/api/v1/quotes", json=body, headers=company.headers)
        problem = assert_problem(response, 422, "validation")
        assert pointers(problem) == expected, (body, problem)
    tambopata = client.get("/api/v1/projects?vintage=2019", headers=company.headers).get_json()
    too_much = client.post("/api/v1/quotes", json={
        "project": tambopata["data"][0]["id"], "quantity": 1_000_000}, headers=company.headers)
    assert_problem(too_much, 409, "out-of-stock")


def test_order_from_quote_to_hold_then_retire_part(app: Flask, client: FlaskClient,
                                                   company: Company,
                                                   keypair: tuple[Path, Path]) -> None:
    q = quote(client, company)
    held = order(client, company, {"quote": q["id"], "action": "hold"}, key="order-1")
    assert held["id"].startswith("SLV-") and held["livemode"] is True
    assert held["status"] == "fulfilled" and held["action"] == "hold"
    assert held["quote"] == q["id"] and held["quantity"] == 25 and held["total_minor"] == 45000
    assert held["payment_method"] == "saved" and held["beneficiary"] is None
    assert held["retirements"] == []
    assert client.get(f"/api/v1/quotes/{q['id']}", headers=company.headers).get_json()[
        "order"] == held["id"]
    holdings = client.get("/api/v1/holdings", headers=company.headers).get_json()
    [holding] = holdings["data"]
    assert holding["quantity"] == 25 and holding["batch"] == ALTO_2016
    assert holding["project"]["ref"] == "VCS-944" and holding["vintage"] == "2016"
    assert len(holding["serials"]) == 1 and "-VCS-VCU-263-VER-PE-14-944-" in holding["serials"][0]
    used = order(client, company, {"quote": q["id"], "action": "hold"}, key="order-2",
                 status=409)
    assert used["type"].endswith("#problem-quote-used")

    retirement = {"quantity": 10, "beneficiary": "Acme Travel Ltd", "purpose": "travel",
                  "note": "Staff flights, Q1", "country": "GB", "period_start": "2025-01-01",
                  "period_end": "2025-03-31"}
    made = client.post("/api/v1/retirements", json=retirement,
                       headers={**company.headers, "Idempotency-Key": "retire-1"})
    assert made.status_code == 201, made.get_data(as_text=True)
    ret = made.get_json()
    assert ret["id"] == f"ret_{ret['seq']}" and ret["quantity"] == 10 and ret["livemode"]
    assert ret["beneficiary"] == "Acme Travel Ltd" and ret["purpose"] == "travel"
    assert ret["period_end"] == "2025-03-31" and ret["projects"][0]["ref"] == "VCS-944"
    assert made.headers["Location"] == f"/api/v1/retirements/{ret['id']}"
    assert ret["certificate"]["json"].endswith(f"/registry/certificates/{ret['seq']}.json")
    replay = client.post("/api/v1/retirements", json=retirement,
                         headers={**company.headers, "Idempotency-Key": "retire-1"})
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == ret
    conflict = client.post("/api/v1/retirements", json={**retirement, "quantity": 11},
                           headers={**company.headers, "Idempotency-Key": "retire-1"})
    assert_problem(conflict, 409, "idempotency-conflict")
    assert client.get("/api/v1/holdings", headers=company.headers).get_json()["data"][0][
        "quantity"] == 15
    fetched = client.get(f"/api/v1/retirements/{ret['id']}", headers=company.headers)
    assert fetched.status_code == 200 and fetched.get_json() == ret
    listed = client.get("/api/v1/retirements", headers=company.headers).get_json()
    assert [r["id"] for r in listed["data"]] == [ret["id"]]

    # the certificate is public, and verifies offline with the operator's key
    cert = client.get(f"/api/v1/certificates/{ret['seq']}")
    assert cert.status_code == 200
    verifier = keypair[1].read_text().strip()
    assert verify_certificate(cert.get_json(), verifier).startswith(
        f"certificate OK: seq {ret['seq']}, 10 t retired")
    assert cert.get_json()["beneficiary"]["name"] == "Acme Travel Ltd"
    too_many = client.post("/api/v1/retirements", json={**retirement, "quantity": 16},
                           headers=company.headers)
    assert_problem(too_many, 409, "insufficient-credits")
    with transaction(app) as session:
        audit.verify(session)


def test_order_from_lines_retired_at_once(app: Flask, client: FlaskClient,
                                          company: Company) -> None:
    body = {"lines": [{"project": ALTO_MAYO, "quantity": 2},
                      {"project": ALTO_MAYO, "quantity": 1, "batch": 2}], **RETIRE}
    made = order(client, company, body)
    assert made["status"] == "fulfilled" and made["action"] == "retire"
    assert made["beneficiary"] == "Acme Travel Ltd" and made["country"] == "GB"
    assert made["quote"] is None and made["total_minor"] == 3 * 1800
    assert [line["allocation"][0]["batch"] for line in made["lines"]] == [ALTO_2016, 2]
    assert sum(r["quantity"] for r in made["retirements"]) == 3
    for ret in made["retirements"]:
        seq = int(ret["id"].removeprefix("ret_"))
        with transaction(app) as session:
            assert session.get(Beneficiary, seq).name == "Acme Travel Ltd"
        assert client.get(ret["certificate"]["json"].replace("http://localhost", "")
                          ).status_code == 200
    retirements = client.get("/api/v1/retirements", headers=company.headers).get_json()["data"]
    assert {r["id"] for r in retirements} == {r["id"] for r in made["retirements"]}
    assert client.get("/api/v1/holdings", headers=company.headers).get_json()["data"] == []


def test_idempotent_replay_and_conflict(app: Flask, client: FlaskClient,
                                        company: Company) -> None:
    body = {"lines": [{"project": ALTO_MAYO, "quantity": 4}], "action": "hold"}
    first = order(client, company, body, key="same-key")
    with transaction(app) as session:
        count = session.scalar(select(func.count()).select_from(Order))
    headers = {**company.headers, "Idempotency-Key": "same-key"}
    # the same body (whatever the key order or spacing) replays the order
    replay = client.post("/api/v1/orders", headers=headers,
                         data='{"action":"hold",  "lines":[{"quantity":4,"project":1}]}',
                         content_type="application/json")
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == first
    conflict = client.post("/api/v1/orders", headers=headers,
                           json={**body, "lines": [{"project": ALTO_MAYO, "quantity": 5}]})
    assert_problem(conflict, 409, "idempotency-conflict")
    with transaction(app) as session:
        assert session.scalar(select(func.count()).select_from(Order)) == count
    # keys are per organisation: another one may use the same key
    other = make_company(app, "Other Ltd")
    theirs = order(client, other, body, key="same-key")
    assert theirs["id"] != first["id"]
    bad = client.post("/api/v1/orders", json=body,
                      headers={**company.headers, "Idempotency-Key": "x" * 256})
    assert pointers(assert_problem(bad, 422, "validation")) == {"Idempotency-Key"}


def test_invoice_waits_as_awaiting_payment_until_paid(app: Flask, client: FlaskClient,
                                                      company: Company) -> None:
    before = stock(app)
    body = {"lines": [{"project": ALTO_MAYO, "quantity": 7}], "action": "hold",
            "payment_method": "invoice"}
    made = order(client, company, body)
    assert made["status"] == "awaiting_payment" and made["payment_method"] == "invoice"
    expires = dt.datetime.fromisoformat(made["expires_at"])
    assert expires - dt.datetime.now(dt.UTC) > dt.timedelta(days=29)
    assert stock(app)[ALTO_2016] == before[ALTO_2016] - 7
    assert client.get("/api/v1/holdings", headers=company.headers).get_json()["data"] == []
    runner = app.test_cli_runner()
    paid = runner.invoke(args=["api", "invoice-paid", made["id"]])
    assert paid.exit_code == 0 and "fulfilled" in paid.output, paid.output
    now = client.get(f"/api/v1/orders/{made['id']}", headers=company.headers).get_json()
    assert now["status"] == "fulfilled" and now["paid_at"] is not None
    assert client.get("/api/v1/holdings", headers=company.headers).get_json()["data"][0][
        "quantity"] == 7
    again = runner.invoke(args=["api", "invoice-paid", made["id"]])
    assert "already fulfilled" in again.output
    saved = order(client, company, {"lines": [{"project": ALTO_MAYO, "quantity": 1}],
                                    "action": "hold"})
    refused = runner.invoke(args=["api", "invoice-paid", saved["id"]])
    assert refused.exit_code == 1 and "invoice" in refused.output
    with transaction(app) as session:
        try:
            billing.record_invoice_payment(session, "SLV-0000000000")
        except LookupError:
            pass
        else:  # pragma: no cover
            raise AssertionError("an unknown order was paid")


def test_orders_of_another_organisation_are_invisible(app: Flask, client: FlaskClient,
                                                      company: Company) -> None:
    mine = order(client, company, {"lines": [{"project": ALTO_MAYO, "quantity": 2}],
                                   "action": "hold"})
    q = quote(client, company, quantity=1)
    other = make_company(app, "Nosy Ltd")
    assert_problem(client.get(f"/api/v1/orders/{mine['id']}", headers=other.headers), 404)
    assert_problem(client.get(f"/api/v1/quotes/{q['id']}", headers=other.headers), 404)
    assert client.get("/api/v1/orders", headers=other.headers).get_json()["data"] == []
    assert client.get("/api/v1/holdings", headers=other.headers).get_json()["data"] == []
    stolen = order(client, other, {"quote": q["id"], "action": "hold"}, status=422)
    assert pointers(stolen) == {"#/quote"}
    ret = client.post("/api/v1/retirements", json={"quantity": 1, **{
        k: v for k, v in RETIRE.items() if k != "action"}}, headers=company.headers).get_json()
    assert_problem(client.get(f"/api/v1/retirements/{ret['id']}", headers=other.headers), 404)
    for bad in ("SLV-XYZ", "ret_0", "ret_abc", "x" * 100, "qt_" + "0" * 24):
        assert_problem(client.get(f"/api/v1/orders/{bad}", headers=company.headers), 404)
        assert_problem(client.get(f"/api/v1/retirements/{bad}", headers=company.headers), 404)
        assert_problem(client.get(f"/api/v1/quotes/{bad}", headers=company.headers), 404)
    # a test key does not see live objects either
    assert_problem(client.get(f"/api/v1/orders/{mine['id']}", headers=company.test_headers), 404)


def test_each_invalid_order_is_named(client: FlaskClient, company: Company) -> None:
    line = [{"project": ALTO_MAYO, "quantity": 1}]
    cases: list[tuple[Any, set[str]]] = [
        ({"action": "hold"}, {"#/quote"}),
        ({"quote": "qt_x", "lines": line, "action": "hold"}, {"#/quote"}),
        ({"lines": [], "action": "hold"}, {"#/lines"}),
        ({"lines": line * 21, "action": "hold"}, {"#/lines"}),
        ({"lines": [{"project": ALTO_MAYO}], "action": "hold"}, {"#/lines/0/quantity"}),
        ({"lines": [{"quantity": 1}], "action": "hold"}, {"#/lines/0/project"}),
        ({"lines": [{"project": 1, "quantity": -1, "x": 1}], "action": "hold"},
         {"#/lines/0/quantity", "#/lines/0/x"}),
        ({"lines": line, "action": "burn"}, {"#/action"}),
        ({"lines": line, "action": "hold", "payment_method": "cash"}, {"#/payment_method"}),
        ({"lines": line, "action": "retire"},
         {"#/beneficiary", "#/country", "#/period_start", "#/period_end"}),
        ({"lines": line, **RETIRE, "period_end": "2024-12-31"}, {"#/period_end"}),
        ({"lines": line, **RETIRE, "period_start": "2025-1-1"}, {"#/period_start"}),
        ({"lines": line, **RETIRE, "period_start": "2025-02-30"}, {"#/period_start"}),
        ({"lines": line, **RETIRE, "period_start": "20250101"}, {"#/period_start"}),
        ({"lines": line, **RETIRE, "country": "gb"}, {"#/country"}),
        ({"lines": line, **RETIRE, "purpose": "fun"}, {"#/purpose"}),
        ({"lines": line, **RETIRE, "purpose": "other"}, {"#/note"}),
        ({"lines": line, **RETIRE, "beneficiary": "   "}, {"#/beneficiary"}),
        ({"lines": line, **RETIRE, "beneficiary": "Ada\x00"}, {"#/beneficiary"}),
        ({"lines": line, **RETIRE, "beneficiary": "A" * 201}, {"#/beneficiary"}),
        ({"lines": line, **RETIRE, "note": "\ud800"}, {"#/note"}),
        ({"lines": [{"project": 999999, "quantity": 1}], "action": "hold"}, {"#/lines/0/project"}),
        ({"lines": [line[0], {"project": ALTO_MAYO, "quantity": 1, "batch": 7}],
          "action": "hold"}, {"#/lines/1/batch"}),
        ({"quote": "qt_" + "0" * 24, "action": "hold"}, {"#/quote"}),
        ({"lines": line, "action": "hold", "extra": True}, {"#/extra"}),
        ("a string", {"#"}),
    ]
    for body, expected in cases:
        response = client.post("/api/v1/orders", json=body, headers=company.headers)
        problem = assert_problem(response, 422, "validation")
        assert pointers(problem) == expected, (body, problem)
    malformed = client.post("/api/v1/orders", data="{not json", headers=company.headers,
                            content_type="application/json")
    assert_problem(malformed, 400, "malformed-json")
    nan = client.post("/api/v1/orders", data='{"lines": [{"project": 1, "quantity": NaN}]}',
                      headers=company.headers, content_type="application/json")
    assert_problem(nan, 400, "malformed-json")
    form = client.post("/api/v1/orders", data={"lines": "1"}, headers=company.headers)
    assert_problem(form, 415, "unsupported-media-type")
    huge = client.post("/api/v1/orders", data="[" + "1," * 40000 + "1]", headers=company.headers,
                       content_type="application/json")
    assert_problem(huge, 413)
    deep = client.post("/api/v1/orders", data="[" * 100000 + "]" * 100000,
                       headers=company.headers, content_type="application/json")
    assert deep.status_code in (400, 413)
    query = client.post("/api/v1/orders?debug=1", json={"lines": line, "action": "hold"},
                        headers=company.headers)
    assert pointers(assert_problem(query, 422)) == {"debug"}


def test_list_orders_pages_with_cursors_and_filters(client: FlaskClient,
                                                    company: Company) -> None:
    made = [order(client, company, {"lines": [{"project": ALTO_MAYO, "quantity": 1}],
                                    "action": "hold"})["id"] for _ in range(3)]
    invoice = order(client, company, {"lines": [{"project": ALTO_MAYO, "quantity": 1}],
                                      "action": "hold", "payment_method": "invoice"})["id"]
    first = client.get("/api/v1/orders?limit=2", headers=company.headers).get_json()
    assert [o["id"] for o in first["data"]] == [invoice, made[2]] and first["has_more"]
    second = client.get(f"/api/v1/orders?limit=2&cursor={first['next_cursor']}",
                        headers=company.headers).get_json()
    assert [o["id"] for o in second["data"]] == [made[1], made[0]]
    assert second["has_more"] is False and second["next_cursor"] is None
    waiting = client.get("/api/v1/orders?status=awaiting_payment", headers=company.headers)
    assert [o["id"] for o in waiting.get_json()["data"]] == [invoice]
    assert pointers(assert_problem(client.get("/api/v1/orders?status=lost",
                                              headers=company.headers), 422)) == {"status"}
    holdings = client.get("/api/v1/holdings?limit=1", headers=company.headers).get_json()
    assert holdings["data"][0]["quantity"] == 3 and holdings["has_more"] is False
    assert client.get(f"/api/v1/holdings?project={ALTO_MAYO + 1}", headers=company.headers
                      ).get_json()["data"] == []


def test_each_invalid_retirement_is_named(client: FlaskClient, company: Company) -> None:
    base = {"quantity": 1, **{k: v for k, v in RETIRE.items() if k != "action"}}
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({k: v for k, v in base.items() if k != "quantity"}, {"#/quantity"}),
        ({**base, "quantity": 0}, {"#/quantity"}),
        ({k: v for k, v in base.items() if k != "beneficiary"}, {"#/beneficiary"}),
        ({k: v for k, v in base.items() if k != "period_end"}, {"#/period_end"}),
        ({**base, "country": "ZZ"}, {"#/country"}),
        ({**base, "project": 999999}, {"#/project"}),
        ({**base, "batch": 999999}, {"#/batch"}),
        ({**base, "project": ALTO_MAYO, "batch": 6}, {"#/batch"}),
        ({**base, "action": "retire"}, {"#/action"}),
    ]
    for body, expected in cases:
        response = client.post("/api/v1/retirements", json=body, headers=company.headers)
        assert pointers(assert_problem(response, 422, "validation")) == expected, body
    assert_problem(client.post("/api/v1/retirements", json=base, headers=company.headers),
                   409, "insufficient-credits")


def test_public_registry_endpoints_need_no_key(app: Flask, client: FlaskClient,
                                               company: Company) -> None:
    made = order(client, company, {"lines": [{"project": ALTO_MAYO, "quantity": 2}], **RETIRE})
    seq = int(made["retirements"][0]["id"].removeprefix("ret_"))
    totals = client.get("/api/v1/registry/totals").get_json()
    assert totals["totals"]["retired"] >= 2 and totals["journal_size"] >= seq
    assert {p["project"]["ref"] for p in totals["projects"]} == {"VCS-944", "VCS-868", "SLV-1001"}
    cert = client.get(f"/api/v1/certificates/{seq}").get_json()
    assert cert["seq"] == seq and cert["quantity"] == 2
    assert_problem(client.get("/api/v1/certificates/1"), 404)  # an issuance, not a retirement
    assert_problem(client.get("/api/v1/certificates/99999999999999999999"), 404)
    serial = cert["serials"][0]
    looked = client.get(f"/api/v1/serials/{serial}").get_json()
    [timeline] = looked["timelines"]
    assert timeline["state"] == "retired" and timeline["project"]["ref"] == "VCS-944"
    assert [s["holder"] for s in timeline["steps"]][-1] == "an organisation's account"
    by_number = client.get(f"/api/v1/serials/{cert['blocks'][0]['first']}").get_json()
    assert by_number["timelines"][0]["state"] == "retired"
    assert_problem(client.get("/api/v1/serials/not-a-serial"), 422, "validation")
    assert_problem(client.get("/api/v1/serials/99999999999"), 404)
    checkpoint = client.get("/api/v1/checkpoint").get_json()
    assert checkpoint["size"] >= seq and checkpoint["note"].startswith("selva.example/ledger\n")
    earlier = client.get(f"/api/v1/checkpoint?size={checkpoint['size']}").get_json()
    assert earlier == checkpoint
    assert_problem(client.get("/api/v1/checkpoint?size=999999999"), 404)
    size = checkpoint["size"]
    inclusion = client.get(f"/api/v1/proofs/inclusion?seq={seq}&size={size}").get_json()
    assert inclusion["root"] == checkpoint["root"] and inclusion["leaf_index"] == seq - 1
    consistency = client.get(f"/api/v1/proofs/consistency?from=1&to={size}").get_json()
    assert consistency["to_root"] == checkpoint["root"] and consistency["from"] == 1
    for bad, expected in ((f"inclusion?seq={size}&size={size - 1}", {"seq", "size"}),
                          (f"inclusion?seq=1&size={size + 1000}", {"size"}),
                          ("inclusion?seq=0&size=1", {"seq"}), ("inclusion?size=1", {"seq"}),
                          (f"consistency?from=2&to=1", {"from", "to"}),
                          (f"consistency?from=1&to={size + 1000}", {"to"}),
                          ("consistency?from=x&to=1", {"from"})):
        assert pointers(assert_problem(client.get(f"/api/v1/proofs/{bad}"), 422)) == expected


@pytest.mark.postgres
def test_concurrent_retries_with_one_idempotency_key_make_one_order(
        pg_url: str, keypair: tuple[Path, Path]) -> None:
    app = api_app_for(pg_url, keypair[0])
    load_demo(app)
    company = make_company(app)
    body = {"lines": [{"project": ALTO_MAYO, "quantity": 3}], "action": "hold"}

    def post(_: int) -> tuple[int, str]:
        response = app.test_client().post("/api/v1/orders", json=body, headers={
            **company.headers, "Idempotency-Key": "one-purchase"})
        return response.status_code, response.get_json().get("id", "")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(post, range(8)))
    assert sorted(status for status, _ in results) == [200] * 7 + [201], results
    assert len({reference for _, reference in results}) == 1
    with transaction(app) as session:
        [record] = session.scalars(select(IdempotencyRecord).where(
            IdempotencyRecord.key == "one-purchase"))
        assert (record.endpoint, record.resource_id) == ("orders", results[0][1])
        orders = list(session.scalars(select(Order).where(
            Order.organisation_id == company.org_id)))
        assert [o.status for o in orders] == ["fulfilled"]
        assert sum(r.quantity for r in orders[0].reservations) == 3
        audit.verify(session)
