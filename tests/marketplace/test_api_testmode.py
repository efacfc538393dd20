"""Test mode is live mode on another ledger: the same scenarios run with a live key and a test
key (``sk_test_...``), through the same code, and only the data differs. A test key's quotes,
orders, holdings and retirements live in the test ledger (native ``TEST`` batches), get
certificates and proofs signed with the test ledger's own key, and leave every live table and
the live journal exactly as they were."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, MetaData, select, text

from ledger import audit
from ledger.verify import Invalid, verify_certificate
from marketplace.database import db
from marketplace.models import Order

from .shop import load_demo, transaction
from .test_api_helpers import (  # noqa: F401  (fixtures)
    ALTO_MAYO,
    RETIRE,
    Company,
    api_app_for,
    app,
    assert_problem,
    client,
    company,
    keypair,
    make_company,
    pointers,
)

MODES = ("live", "test")
DETAILS = {k: v for k, v in RETIRE.items() if k != "action"}


def headers_for(company: Company, mode: str) -> dict[str, str]:
    return company.headers if mode == "live" else company.test_headers


def first_vintage(client: FlaskClient, headers: dict[str, str]) -> tuple[int, int]:
    """Alto Mayo's oldest vintage on sale in the key's mode: (batch, tonnes available)."""
    project = client.get(f"/api/v1/projects/{ALTO_MAYO}", headers=headers).get_json()
    vintage = project["vintages"][0]
    return int(vintage["batch"]), int(vintage["available_tonnes"])


def path_of(url: str) -> str:
    return urlsplit(url).path


@pytest.mark.parametrize("mode", MODES)
def test_quote_hold_retire_and_verify_the_certificate_offline(
        app: Flask, client: FlaskClient, company: Company, mode: str) -> None:
    headers = headers_for(company, mode)
    livemode = mode == "live"
    batch, stock = first_vintage(client, headers)

    q = client.post("/api/v1/quotes", json={"project": ALTO_MAYO, "quantity": 25},
                    headers=headers).get_json()
    assert q["livemode"] is livemode and q["status"] == "open"
    assert first_vintage(client, headers) == (batch, stock - 25)  # held for the quote

    made = client.post("/api/v1/orders", json={"quote": q["id"], "action": "hold"},
                       headers={**headers, "Idempotency-Key": f"{mode}-hold"})
    assert made.status_code == 201, made.get_data(as_text=True)
    order = made.get_json()
    assert order["livemode"] is livemode and order["status"] == "fulfilled"
    assert order["quote"] == q["id"] and order["quantity"] == 25
    replay = client.post("/api/v1/orders", json={"quote": q["id"], "action": "hold"},
                         headers={**headers, "Idempotency-Key": f"{mode}-hold"})
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == order
    assert_problem(client.post("/api/v1/orders", json={"quote": q["id"], **RETIRE},
                               headers={**headers, "Idempotency-Key": f"{mode}-hold"}),
                   409, "idempotency-conflict")

    [holding] = client.get("/api/v1/holdings", headers=headers).get_json()["data"]
    assert holding["livemode"] is livemode and holding["quantity"] == 25
    [serial] = holding["serials"]
    assert ("-VCS-VCU-" in serial) is livemode and ("-TEST-" in serial) is not livemode

    made = client.post("/api/v1/retirements", json={"quantity": 10, **DETAILS},
                       headers={**headers, "Idempotency-Key": f"{mode}-retire"})
    assert made.status_code == 201, made.get_data(as_text=True)
    ret = made.get_json()
    assert ret["livemode"] is livemode and ret["quantity"] == 10
    assert ret["beneficiary"] == "Acme Travel Ltd"
    assert client.get(f"/api/v1/retirements/{ret['id']}", headers=headers).get_json() == ret
    assert [r["id"] for r in client.get("/api/v1/retirements", headers=headers)
            .get_json()["data"]] == [ret["id"]]
    assert client.get("/api/v1/holdings", headers=headers).get_json()["data"][0][
        "quantity"] == 15
    assert_problem(client.post("/api/v1/retirements", json={"quantity": 16, **DETAILS},
                               headers=headers), 409, "insufficient-credits")

    # The certificate comes from this mode's registry, signed by this mode's key, and
    # verifies offline with that key only.
    registry = "/registry" if livemode else "/test/registry"
    certificate_url = path_of(ret["certificate"]["json"])
    assert certificate_url == f"{registry}/certificates/{ret['seq']}.json"
    certificate = client.get(certificate_url)
    assert certificate.status_code == 200, certificate.get_data(as_text=True)[:300]
    ledger = "/ledger" if livemode else "/test/ledger"
    key = client.get(f"{ledger}/key").get_data(as_text=True).strip()
    other_key = client.get(f"{'/test/ledger' if livemode else '/ledger'}/key").get_data(
        as_text=True).strip()
    assert key != other_key
    assert key.startswith("selva.example/ledger+" if livemode else "selva.example/test-ledger+")
    assert verify_certificate(certificate.get_json(), key).startswith(
        f"certificate OK: seq {ret['seq']}, 10 t retired")
    with pytest.raises(Invalid):
        verify_certificate(certificate.get_json(), other_key)

    # The other mode sees none of it.
    other = company.test_headers if livemode else company.headers
    assert_problem(client.get(f"/api/v1/orders/{order['id']}", headers=other), 404)
    assert_problem(client.get(f"/api/v1/retirements/{ret['id']}", headers=other), 404)
    assert_problem(client.get(f"/api/v1/quotes/{q['id']}", headers=other), 404)
    with transaction(app, mode) as session:
        audit.verify(session)


@pytest.mark.parametrize("mode", MODES)
def test_invoices_are_paid_the_same_way(app: Flask, client: FlaskClient, company: Company,
                                        mode: str) -> None:
    """A live invoice is paid by the operator's command; a test one by the test helper, which
    runs that same code on the test ledger."""
    headers = headers_for(company, mode)
    batch, stock = first_vintage(client, headers)
    made = client.post("/api/v1/orders", json={"lines": [{"project": ALTO_MAYO, "quantity": 5}],
                                               "action": "hold", "payment_method": "invoice"},
                       headers=headers).get_json()
    assert made["status"] == "awaiting_payment" and made["payment_method"] == "invoice"
    assert first_vintage(client, headers) == (batch, stock - 5)
    waiting = client.get("/api/v1/orders?status=awaiting_payment", headers=headers).get_json()
    assert [o["id"] for o in waiting["data"]] == [made["id"]]
    if mode == "test":
        paid = client.post(f"/api/v1/test_helpers/orders/{made['id']}/pay", headers=headers)
        assert paid.status_code == 200, paid.get_data(as_text=True)
        assert paid.get_json()["status"] == "fulfilled"
    else:
        assert_problem(client.post(f"/api/v1/test_helpers/orders/{made['id']}/pay",
                                   headers=headers), 403, "test-mode-only")
        ran = app.test_cli_runner().invoke(args=["api", "invoice-paid", made["id"]])
        assert ran.exit_code == 0, ran.output
    fetched = client.get(f"/api/v1/orders/{made['id']}", headers=headers).get_json()
    assert fetched["status"] == "fulfilled"
    assert first_vintage(client, headers) == (batch, stock - 5)  # sold, not released
    [holding] = client.get("/api/v1/holdings", headers=headers).get_json()["data"]
    assert holding["quantity"] == 5
    other = make_company(app, "Other Ltd")
    assert_problem(client.get(f"/api/v1/orders/{made['id']}", headers=headers_for(other, mode)),
                   404)


def test_test_helpers_refuse_what_they_cannot_do(app: Flask, client: FlaskClient,
                                                 company: Company) -> None:
    headers = company.test_headers
    made = client.post("/api/v1/orders", json={"lines": [{"project": ALTO_MAYO, "quantity": 1}],
                                               "action": "hold"}, headers=headers).get_json()
    assert made["status"] == "fulfilled"
    assert_problem(client.post(f"/api/v1/test_helpers/orders/{made['id']}/pay",
                               headers=headers), 409)
    assert_problem(client.post("/api/v1/test_helpers/orders/SLV-0000000000/pay",
                               headers=headers), 404)
    assert_problem(client.post("/api/v1/test_helpers/orders/nonsense/pay", headers=headers), 404)


@pytest.mark.parametrize("mode", MODES)
def test_both_modes_validate_alike(app: Flask, client: FlaskClient, company: Company,
                                   mode: str) -> None:
    headers = headers_for(company, mode)
    problem = assert_problem(client.post("/api/v1/orders", json={
        "lines": [{"project": 999999, "quantity": 1}], "action": "hold"}, headers=headers),
        422, "validation")
    assert pointers(problem) == {"#/lines/0/project"}
    retire_unknown = client.post("/api/v1/retirements", json={
        "quantity": 1, "project": 999999, **DETAILS}, headers=headers)
    assert pointers(assert_problem(retire_unknown, 422, "validation")) == {"#/project"}
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


# -- nothing in test mode touches live data -----------------------------------------------------


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table the engine's own target holds, in primary-key order."""
    metadata = MetaData()
    metadata.reflect(engine, resolve_fks=False)
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as connection:
        for name, table in sorted(metadata.tables.items()):
            order = list(table.primary_key.columns) or list(table.columns)
            rows[name] = [tuple(row) for row in connection.execute(
                select(table).order_by(*order))]
    return rows


def test_a_test_mode_run_leaves_every_live_table_and_the_live_journal_byte_identical(
        app: Flask, client: FlaskClient, company: Company) -> None:
    headers = company.test_headers
    # One request first: it stamps the key's last use (a shared table), as any call would.
    assert client.get("/api/v1/orders", headers=headers).status_code == 200
    with app.app_context():
        live_engine = db.engine("live")
    journal = client.get("/ledger/journal.jsonl").get_data()
    checkpoint = client.get("/ledger/checkpoint").get_data()
    before = snapshot(live_engine)
    assert before["ledger_entries"] and "api_keys" in before

    q = client.post("/api/v1/quotes", json={"project": ALTO_MAYO, "quantity": 4},
                    headers=headers).get_json()
    client.post("/api/v1/orders", json={"quote": q["id"], "action": "hold"}, headers=headers)
    client.post("/api/v1/orders", json={"lines": [{"project": ALTO_MAYO, "quantity": 2}],
                                        **RETIRE}, headers=headers)
    invoice = client.post("/api/v1/orders", json={
        "lines": [{"project": ALTO_MAYO, "quantity": 1}], "action": "hold",
        "payment_method": "invoice"}, headers=headers).get_json()
    client.post(f"/api/v1/test_helpers/orders/{invoice['id']}/pay", headers=headers)
    made = client.post("/api/v1/retirements", json={"quantity": 3, **DETAILS},
                       headers={**headers, "Idempotency-Key": "untouched"})
    assert made.status_code == 201, made.get_data(as_text=True)
    seq = made.get_json()["seq"]
    assert client.get(f"/test/registry/certificates/{seq}.json").status_code == 200
    assert client.get("/test/ledger/checkpoint").status_code == 200

    assert snapshot(live_engine) == before
    assert client.get("/ledger/journal.jsonl").get_data() == journal
    assert client.get("/ledger/checkpoint").get_data() == checkpoint
    with transaction(app, "test") as session:
        assert session.scalar(select(Order.id).where(Order.reference == invoice["id"]))
        audit.verify(session)


# -- the cross-organisation race ----------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.slow
def test_concurrent_test_orders_from_two_organisations_never_over_allocate(
        pg_url: str, keypair: tuple[Path, Path]) -> None:
    app = api_app_for(pg_url, keypair[0])
    load_demo(app)
    acme, other = make_company(app, "Acme Ltd"), make_company(app, "Other Ltd")
    client = app.test_client()
    batch, stock = first_vintage(client, acme.test_headers)
    quantity = stock // 10
    body = {"lines": [{"project": ALTO_MAYO, "quantity": quantity, "batch": batch}],
            "action": "hold"}

    def post(i: int) -> int:
        who = acme if i % 2 else other
        response = app.test_client().post("/api/v1/orders", json=body,
                                          headers=who.test_headers)
        return response.status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(post, range(20)))
    assert sorted(statuses) == [201] * (stock // quantity) + [409] * (20 - stock // quantity)
    with transaction(app, "test") as session:
        fulfilled = list(session.scalars(select(Order).where(Order.status == "fulfilled")))
        assert sum(o.quantity for o in fulfilled) <= stock
        assert {o.organisation_id for o in fulfilled} == {acme.org_id, other.org_id}
        audit.verify(session)
    assert first_vintage(client, acme.test_headers) == (batch, stock - quantity * len(fulfilled))
    # live stock never moved
    with transaction(app) as session:
        assert session.scalar(text("SELECT count(*) FROM orders")) == 0
