"""Kilograms through the API, live and test mode: ``mass`` in g, kg or t on quotes, orders and
retirements; grams priced per tonne rounded half up; the pool refilled by whole-tonne pool
retirements; every allocation sealed into the ledger, which replays to the tables."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from ledger import audit
from ledger.records import GRAMS_PER_TONNE
from ledger.schema import Entry, PoolRetirement
from marketplace import kilograms
from marketplace.models.pools import KgAllocation, PoolRetirementStock

from .shop import transaction
from .test_api_helpers import (  # noqa: F401  (fixtures)
    ALTO_MAYO,
    RETIRE,
    Company,
    app,
    assert_problem,
    client,
    company,
    keypair,
    pointers,
)

PRICE = 1800  # Alto Mayo's demo price per tonne, in cents
DETAILS = {key: value for key, value in RETIRE.items() if key != "action"}


def retire_kg(client: FlaskClient, company: Company, amount: int, unit: str = "kg",
              status: int = 201, headers: dict[str, str] | None = None,
              **extra: Any) -> dict[str, Any]:
    body = {"project": ALTO_MAYO, "mass": {"amount": amount, "unit": unit}, **DETAILS, **extra}
    response = client.post("/api/v1/retirements", json=body,
                           headers={**company.headers, **(headers or {})})
    assert response.status_code == status, response.get_data(as_text=True)
    return dict(response.get_json())


def pool_state(app: Flask) -> tuple[int, int]:
    """(tonnes retired into pools, grams allocated in the ledger)."""
    with transaction(app) as session:
        tonnes = session.scalar(select(func.coalesce(func.sum(PoolRetirement.quantity), 0)))
        report = audit.verify(session)
    del report
    with transaction(app) as session:
        from ledger.schema import AllocationDraw

        grams = session.scalar(select(func.coalesce(func.sum(AllocationDraw.grams), 0)))
    return int(tonnes or 0), int(grams or 0)


def test_price_rounds_half_up_to_the_minor_unit() -> None:
    assert kilograms.price_minor(1800, 2_500) == 5          # 4.5 cents -> 5
    assert kilograms.price_minor(1800, 2_499) == 4          # 4.4982 -> 4
    assert kilograms.price_minor(1500, 4_970_000) == 7455   # 74.55 USD exactly
    assert kilograms.price_minor(1800, 277) == 0
    assert kilograms.smallest_chargeable(1800) == 278
    assert kilograms.price_minor(1800, 278) == 1
    assert kilograms.format_mass(4_970_000) == "4,970 kg"
    assert kilograms.format_mass(2_500) == "2.5 kg"
    assert kilograms.format_mass(250) == "250 g"
    assert kilograms.format_mass(1_001) == "1.001 kg"


def test_retire_kilograms_at_once_with_a_certificate(app: Flask, client: FlaskClient,
                                                     company: Company) -> None:
    before = pool_state(app)
    body = retire_kg(client, company, 2500, "g")
    assert body["id"].startswith("kg_") and body["object"] == "retirement"
    assert body["status"] == "recorded" and body["grams"] == 2500 and body["quantity"] == 0
    assert body["seq"] is not None and body["index"] is not None and body["hash"]
    assert body["beneficiary"] == RETIRE["beneficiary"]
    [draw] = body["pool"]
    assert draw["grams"] == 2500 and draw["serials"]
    assert body["serials"] == draw["serials"]
    assert body["certificate"]["page"].endswith(f"/registry/kg/{body['id']}")
    tonnes, grams = pool_state(app)
    assert tonnes > before[0]  # the pool was refilled with whole tonnes
    assert grams == before[1] + 2500
    again = client.get(f"/api/v1/retirements/{body['id']}", headers=company.headers)
    assert again.status_code == 200 and again.get_json() == body


def test_an_order_in_grams_is_priced_per_tonne_and_retired(app: Flask, client: FlaskClient,
                                                           company: Company) -> None:
    response = client.post("/api/v1/orders", headers=company.headers, json={
        "lines": [{"project": ALTO_MAYO, "mass": {"amount": 2500, "unit": "g"}},
                  {"project": ALTO_MAYO, "mass": {"amount": 3, "unit": "t"}}], **RETIRE})
    assert response.status_code == 201, response.get_data(as_text=True)
    order = response.get_json()
    assert order["status"] == "fulfilled"
    assert order["total_minor"] == 5 + 3 * PRICE and order["quantity"] == 3
    assert order["grams"] == 2500
    kg_line, tonne_line = order["lines"]
    assert (kg_line["grams"], kg_line["quantity"], kg_line["amount_minor"]) == (2500, 0, 5)
    assert (tonne_line["grams"], tonne_line["quantity"]) == (None, 3)
    kinds = sorted((r["id"][:3], r["quantity"], r["grams"]) for r in order["retirements"])
    assert kinds == [("kg_", 0, 2500), ("ret", 3, 3_000_000)]
    [kg] = [r for r in order["retirements"] if r["id"].startswith("kg_")]
    retirement = client.get(f"/api/v1/retirements/{kg['id']}", headers=company.headers)
    assert retirement.get_json()["status"] == "recorded"


def test_a_quote_in_kilograms_then_the_order(app: Flask, client: FlaskClient,
                                             company: Company) -> None:
    response = client.post("/api/v1/quotes", headers=company.headers,
                           json={"project": ALTO_MAYO, "mass": {"amount": 12, "unit": "kg"}})
    assert response.status_code == 201, response.get_data(as_text=True)
    quote = response.get_json()
    assert quote["total_minor"] == kilograms.price_minor(PRICE, 12_000) == 22
    held = client.post("/api/v1/orders", headers=company.headers,
                       json={"quote": quote["id"], "action": "hold"})
    assert_problem(held, 422)
    response = client.post("/api/v1/orders", headers=company.headers,
                           json={"quote": quote["id"], **RETIRE})
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["status"] == "fulfilled"
    assert response.get_json()["grams"] == 12_000


@pytest.mark.parametrize("mass, pointer", [
    ({"amount": 2.5, "unit": "kg"}, "#/mass/amount"),
    ({"amount": "25", "unit": "kg"}, "#/mass/amount"),
    ({"amount": 25, "unit": "lb"}, "#/mass/unit"),
    ({"amount": 0, "unit": "g"}, "#/mass/amount"),
    ({"amount": 25}, "#/mass/unit"),
    ({"amount": 10**15, "unit": "g"}, "#/mass/amount"),
])
def test_bad_masses_are_refused_by_name(client: FlaskClient, company: Company,
                                        mass: dict[str, Any], pointer: str) -> None:
    response = client.post("/api/v1/retirements", headers=company.headers,
                           json={"project": ALTO_MAYO, "mass": mass, **DETAILS})
    body = assert_problem(response, 422)
    assert pointer in pointers(body), body


def test_rules_of_kilograms(client: FlaskClient, company: Company) -> None:
    both = client.post("/api/v1/retirements", headers=company.headers, json={
        "project": ALTO_MAYO, "quantity": 1, "mass": {"amount": 1, "unit": "kg"}, **DETAILS})
    assert_problem(both, 422)
    no_project = client.post("/api/v1/retirements", headers=company.headers,
                             json={"mass": {"amount": 1, "unit": "kg"}, **DETAILS})
    assert "#/project" in pointers(assert_problem(no_project, 422))
    held = client.post("/api/v1/orders", headers=company.headers, json={
        "lines": [{"project": ALTO_MAYO, "mass": {"amount": 1, "unit": "kg"}}],
        "action": "hold"})
    assert "#/action" in pointers(assert_problem(held, 422))
    vintage = client.post("/api/v1/orders", headers=company.headers, json={
        "lines": [{"project": ALTO_MAYO, "batch": 1, "mass": {"amount": 1, "unit": "kg"}}],
        **RETIRE})
    assert_problem(vintage, 422)
    too_cheap = retire_kg(client, company, 100, "g", status=422)
    assert "278 g" in too_cheap["detail"]


def test_idempotent_replay_of_a_kilogram_retirement(app: Flask, client: FlaskClient,
                                                    company: Company) -> None:
    first = retire_kg(client, company, 7, headers={"Idempotency-Key": "kg-once"})
    with transaction(app) as session:
        count = session.scalar(select(func.count()).select_from(KgAllocation))
    again = client.post("/api/v1/retirements", headers={**company.headers,
                                                        "Idempotency-Key": "kg-once"},
                        json={"project": ALTO_MAYO, "mass": {"amount": 7, "unit": "kg"},
                              **DETAILS})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first
    with transaction(app) as session:
        assert session.scalar(select(func.count()).select_from(KgAllocation)) == count


def test_the_pool_never_gives_more_than_it_retired(app: Flask, client: FlaskClient,
                                                   company: Company) -> None:
    for amount in (999, 1, 750, 250, 1_600):
        retire_kg(client, company, amount)
    with transaction(app) as session:
        for row in session.scalars(select(PoolRetirementStock)):
            assert 0 <= row.taken <= row.grams
        sealed = session.scalar(select(func.count()).select_from(KgAllocation)
                                .where(KgAllocation.state == "allocated"))
        assert sealed == 0  # nothing left waiting
    tonnes, grams = pool_state(app)
    assert grams <= tonnes * GRAMS_PER_TONNE
    with transaction(app) as session:
        assert session.scalar(select(func.count()).select_from(Entry)
                              .where(Entry.kind == "allocate")) >= 1


def test_test_mode_sells_kilograms_on_its_own_ledger(app: Flask, client: FlaskClient,
                                                     company: Company) -> None:
    live = pool_state(app)
    headers = {"Authorization": f"Bearer {company.test}"}
    body = client.post("/api/v1/retirements", headers=headers, json={
        "project": ALTO_MAYO, "mass": {"amount": 3, "unit": "kg"}, **DETAILS})
    assert body.status_code == 201, body.get_data(as_text=True)
    retirement = body.get_json()
    assert retirement["livemode"] is False and retirement["status"] == "recorded"
    assert "/test/registry/kg/" in retirement["certificate"]["page"]
    assert pool_state(app) == live


def test_a_sealed_kilogram_retirement_is_announced_by_webhook(
        app: Flask, client: FlaskClient, company: Company) -> None:
    import json

    from marketplace.models.api import WebhookEndpoint, WebhookEvent

    with transaction(app) as session:
        session.add(WebhookEndpoint(organisation_id=company.org_id, url="http://127.0.0.1:9/x",
                                    secret="whsec_kg", livemode=True,
                                    events="retirement.created", created_by=company.user_id))
    body = retire_kg(client, company, 40)
    with transaction(app) as session:
        payloads = [json.loads(e.payload) for e in session.scalars(
            select(WebhookEvent).where(WebhookEvent.organisation_id == company.org_id))]
    [event] = [p for p in payloads if p["data"]["object"]["id"] == body["id"]]
    assert event["type"] == "retirement.created"
    announced = event["data"]["object"]
    assert (announced["grams"], announced["seq"], announced["index"], announced["status"]) == (
        40_000, body["seq"], body["index"], "recorded")


def test_the_list_of_retirements_holds_tonnes_and_kilograms_newest_first(
        app: Flask, client: FlaskClient, company: Company) -> None:
    made = []
    for step in range(5):
        if step % 2:
            made.append(retire_kg(client, company, 3 + step)["id"])
        else:
            response = client.post("/api/v1/orders", headers=company.headers, json={
                "lines": [{"project": ALTO_MAYO, "quantity": 1}], **RETIRE})
            assert response.status_code == 201, response.get_data(as_text=True)
            [retirement] = response.get_json()["retirements"]
            made.append(retirement["id"])
    seen, cursor = [], None
    while True:
        url = "/api/v1/retirements?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=company.headers).get_json()
        assert len(page["data"]) <= 2
        seen += [item["id"] for item in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == list(reversed(made))
    kinds = {item_id[:3] for item_id in seen}
    assert kinds == {"ret", "kg_"}
    old = client.get("/api/v1/retirements?cursor=eyJsIjoicmV0aXJlbWVudHMiLCJrIjpbNV19",
                     headers=company.headers)
    assert_problem(old, 422)
