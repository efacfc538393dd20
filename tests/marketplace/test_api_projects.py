"""GET /api/v1/projects and /projects/{id}: the catalogue with the shop's filters, the tonnes
for sale by vintage from the ledger, each invalid parameter named, cursor pagination."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from marketplace import catalogue

from .shop import transaction
from .test_api_helpers import (  # noqa: F401  (fixtures)
    ALTO_MAYO,
    Company,
    app,
    assert_problem,
    client,
    company,
    keypair,
    pointers,
)


def names(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return [p["name"] for p in response.get_json()["data"]]


def test_projects_with_availability_by_vintage(app: Flask, client: FlaskClient,
                                               company: Company) -> None:
    response = client.get("/api/v1/projects", headers=company.headers)
    body = response.get_json()
    assert response.mimetype == "application/json"
    assert body["object"] == "list" and body["has_more"] is False and body["next_cursor"] is None
    assert [p["name"] for p in body["data"]] == [
        "Alto Mayo Protected Forest", "Madre de Dios Amazon Forest Protection",
        "Tambopata Agroforestry and Forest Conservation"]
    with transaction(app) as session:
        stock = catalogue.for_sale_now(session)
    alto = body["data"][0]
    assert alto["id"] == ALTO_MAYO and alto["slug"] == "alto-mayo" and alto["ref"] == "VCS-944"
    assert alto["price_minor"] == 1800 and alto["currency"] == "USD"
    assert alto["standards"] == ["VCS", "CCB"] and alto["url"].endswith("/projects/alto-mayo")
    assert [v["first_year"] for v in alto["vintages"]] == [2016, 2017, 2018]
    for vintage in alto["vintages"]:
        assert vintage["available_tonnes"] == stock[vintage["batch"]]
    assert alto["available_tonnes"] == sum(v["available_tonnes"] for v in alto["vintages"])
    one = client.get(f"/api/v1/projects/{ALTO_MAYO}", headers=company.headers)
    assert one.status_code == 200 and one.get_json() == alto


def test_filters_and_sorting_as_in_the_catalogue(client: FlaskClient, company: Company) -> None:
    get = lambda query: client.get(f"/api/v1/projects?{query}", headers=company.headers)  # noqa: E731
    assert len(names(get("country=PE"))) == 3
    assert names(get("country=GB")) == []
    assert names(get("vintage=2016")) == ["Alto Mayo Protected Forest"]
    assert names(get("vintage=2019")) == ["Tambopata Agroforestry and Forest Conservation"]
    assert names(get("standard=CCB&vintage=2020")) == [
        "Tambopata Agroforestry and Forest Conservation"]
    assert names(get("max_price=1500")) == ["Madre de Dios Amazon Forest Protection"]
    assert names(get("min_price=1800&max_price=1800")) == ["Alto Mayo Protected Forest"]
    assert names(get("sort=price_asc")) == [
        "Madre de Dios Amazon Forest Protection", "Alto Mayo Protected Forest",
        "Tambopata Agroforestry and Forest Conservation"]
    assert names(get("sort=price_desc"))[0] == "Tambopata Agroforestry and Forest Conservation"
    assert names(get("sort=available"))[0] == "Madre de Dios Amazon Forest Protection"
    assert names(get("type=nothing-like-this")) == []


def test_each_invalid_parameter_is_named(client: FlaskClient, company: Company) -> None:
    cases = {
        "limit=0": {"limit"}, "limit=101": {"limit"}, "limit=abc": {"limit"},
        "limit=1.5": {"limit"}, "vintage=20": {"vintage"}, "vintage=year": {"vintage"},
        "min_price=-1": {"min_price"}, "min_price=1e3": {"min_price"},
        "min_price=2000&max_price=1000": {"max_price"}, "sort=cheapest": {"sort"},
        "country=PER": {"country"}, "colour=green": {"colour"},
        "vintage=20&sort=x&limit=0": {"vintage", "sort", "limit"},
        "cursor=%00": {"cursor"}, "type=": {"type"},
    }
    for query, expected in cases.items():
        response = client.get(f"/api/v1/projects?{query}", headers=company.headers)
        body = assert_problem(response, 422, "validation")
        assert pointers(body) == expected, (query, body)
    assert_problem(client.get("/api/v1/projects/999999", headers=company.headers), 404)
    assert_problem(client.get("/api/v1/projects/alto-mayo", headers=company.headers), 404)
    assert_problem(client.get(f"/api/v1/projects/{ALTO_MAYO}?x=1", headers=company.headers), 422)


def test_cursor_pagination(client: FlaskClient, company: Company) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "limit=1&sort=price_desc" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(f"/api/v1/projects?{query}", headers=company.headers).get_json()
        pages += 1
        seen += [p["name"] for p in body["data"]]
        cursor = body["next_cursor"]
        assert body["has_more"] is (cursor is not None)
        if cursor is None:
            break
    assert pages == 3
    everything = client.get("/api/v1/projects?sort=price_desc", headers=company.headers)
    assert seen == names(everything)
    first = client.get("/api/v1/projects?limit=2", headers=company.headers).get_json()
    assert len(first["data"]) == 2 and first["has_more"]
    rest = client.get(f"/api/v1/projects?limit=2&cursor={first['next_cursor']}",
                      headers=company.headers).get_json()
    assert [p["name"] for p in rest["data"]] == ["Tambopata Agroforestry and Forest Conservation"]
    # a cursor is only good for the list (and order) that gave it out
    for bad in ("garbage", first["next_cursor"] + "x", "eyJsIjoib3JkZXJzIiwiayI6WzFdfQ"):
        body = assert_problem(client.get(f"/api/v1/projects?limit=2&cursor={bad}",
                                         headers=company.headers), 422, "validation")
        assert pointers(body) == {"cursor"}
    assert_problem(client.get(f"/api/v1/projects?sort=price_asc&cursor={first['next_cursor']}",
                              headers=company.headers), 422)
