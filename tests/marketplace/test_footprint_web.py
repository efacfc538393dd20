"""The calculator's pages on SQLite and PostgreSQL: no login needed, every line shown with its
factor and source, bad input explained beside the field (never a 500), the airport search,
"offset this" into the cart, saving and history, and the opt-in public page."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from ledger.schema import Project
from marketplace.checkout import CartLine, CheckoutDetails, fulfil, place_order
from marketplace.models import Listing, User
from marketplace.models.footprints import FootprintProfile, SavedFootprint

from .conftest import add_user, transaction

VISITOR = {  # one long-haul return flight and a year of driving
    "country": "GB", "rf": "with", "f0_from": "LHR", "f0_to": "LIM", "f0_trip": "return",
    "f0_cabin": "economy", "f0_trips": "1", "car_km": "12000", "car_fuel": "petrol",
    "car_size": "medium",
}
# 2 × 10,150 km × 0.11704 = 2,375.912 kg; 12,000 km × 0.17474 = 2,096.880 kg
VISITOR_GRAMS = 2_375_912 + 2_096_880  # 4,472,792 g = 4.47 t; offset 5 t


def text_of(response: Any) -> str:
    return response.get_data(as_text=True)


def result(client: FlaskClient, **params: str) -> Any:
    return client.get("/footprint/result?" + urlencode(params))


def field_errors(page: str) -> dict[str, str]:
    return {name: html.unescape(message) for name, message in
            re.findall(r'<p class="error" role="alert" id="([^"]+)-error">([^<]+)</p>', page)}


def alto_mayo(app: Flask) -> int:
    with transaction(app) as session:
        return int(session.scalar(select(Listing.id).where(Listing.slug == "alto-mayo")))


# -- the calculator -------------------------------------------------------------------------------


def test_the_calculator_needs_no_login(client: FlaskClient) -> None:
    page = client.get("/footprint")
    assert page.status_code == 200
    body = text_of(page)
    for label in ("Country", "From (flight 1)", "To (flight 1)", "Cabin (flight 1)",
                  "Distance driven a year", "Electricity a year", "Heating oil a year",
                  "Electricity your heat pump used", "Train a year", "What you usually eat",
                  "Start from what is typical for my country", "Count the non-CO2 effects"):
        assert label in body, label
    assert 'list="airport-list"' in body and "Peru" in body


def test_the_result_shows_every_line_the_chart_the_average_and_offset_this(
        client: FlaskClient) -> None:
    page = result(client, **VISITOR)
    assert page.status_code == 200
    body = text_of(page)
    assert f'class="fp-total" data-grams="{VISITOR_GRAMS}">4.47</span> t CO2e a year' in body
    lines = re.findall(r'<tr class="fp-line" data-category="([a-z_]+)">(.*?)</tr>', body, re.S)
    assert [category for category, _ in lines] == ["flights", "car"]
    flight, car = (html.unescape(re.sub(r"\s+", " ", row)) for _, row in lines)
    for expected in ("LHR → LIM, return, economy", "20,300 passenger-km", "0.11704",
                     "kg CO2e per passenger-km", "DESNZ conversion factors 2025: long-haul, "
                     "economy, with RF", "2,375.9 kg", "10,150 km great-circle distance",
                     "8% distance uplift", "with non-CO2 effects"):
        assert expected in flight, expected
    for expected in ("Driving a medium petrol car", "12,000 km", "0.17474", "2,096.9 kg"):
        assert expected in car, expected
    assert "4,472.8 kg = 4.47 t" in body
    # The chart: server-drawn SVG, one bar per category, with its share.
    svg = re.search(r"<svg class=\"fp-chart\".*?</svg>", body, re.S)
    assert svg is not None
    assert re.findall(r'<g class="fp-bar fp-([a-z_]+)"', svg.group(0)) == ["flights", "car"]
    assert "2.38 t · 53%" in svg.group(0) and "2.10 t · 47%" in svg.group(0)
    # The country average: 4.7 t in the UK (GCB 2023 via OWID), 4.47 / 4.7 = 95%.
    assert "The average in United Kingdom is" in body and "<strong>4.7 t</strong>" in body
    assert '<span class="fp-ratio">95%</span>' in body
    # The non-CO2 choice is visible, and can be flipped.
    assert "flights with non-CO2 effects" in body and "rf=without" in body
    # Offset this: whole tonnes, rounded up, into the cart.
    assert '<input type="hidden" name="quantity" value="5">' in body
    assert 'action="/cart/add"' in body and "Offset this: add 5 t to the cart" in body


def test_without_non_co2_effects(client: FlaskClient) -> None:
    body = text_of(result(client, **dict(VISITOR, rf="without")))
    assert "1,406.0 kg" in body  # 2 × 10,150 × 0.06926 = 1,405.978 kg
    assert "flights without non-CO2 effects" in body and "without RF" in body


def test_typical_for_my_country(client: FlaskClient) -> None:
    body = text_of(result(client, country="PE", typical="1"))
    assert 'data-grams="1700000">1.70</span>' in body
    assert "Typical emissions per person, Peru" in body
    assert '<input type="hidden" name="quantity" value="2">' in body


@pytest.mark.parametrize(("params", "field", "message"), [
    ({"car_km": "-12000"}, "car_km", "Enter a positive amount"),
    ({"car_km": "9999999999"}, "car_km", "more than 200,000 km a year"),
    ({"electricity_kwh": "lots"}, "electricity_kwh", "Enter a number"),
    ({"gas_kwh": "∞"}, "gas_kwh", "Enter a number"),
    ({"country": "ZZ"}, "country", "We have no electricity figures for that country"),
    ({"country": "<script>alert(1)</script>"}, "country", "no electricity figures"),
    ({"f0_from": "QQQ"}, "f0_from", "No airport found for “QQQ”"),
    ({"f0_to": "Nowhere-on-sea"}, "f0_to", "No airport found"),
    ({"f0_trips": "0"}, "f0_trips", "from 1 to 365"),
    ({"f0_cabin": "cockpit"}, "f0_cabin", "cabin class"),
])
def test_bad_input_gets_a_clear_message_beside_the_field(
        client: FlaskClient, params: dict[str, str], field: str, message: str) -> None:
    page = result(client, **dict(VISITOR, **params))
    assert page.status_code == 400
    body = text_of(page)
    assert message in field_errors(body).get(field, ""), field_errors(body)
    assert f'id="{field}" ' in body and 'aria-invalid="true"' in body
    assert "<script>alert(1)</script>" not in body
    assert "Some answers need another look" in body


@pytest.mark.parametrize("query", [
    "", "country=GB&f0_from=" + "A" * 5000, "country=GB&f99_from=LHR&f99_to=LIM",
    "country=GB&car_km=%00", "country=GB&car_km=1,2,3", "country=GB&f0_trips=1e3&f0_from=LHR",
    "country=GB&rf=%FF%FE", "country[]=GB", "typical=1",
])
def test_odd_queries_never_fail(client: FlaskClient, query: str) -> None:
    page = client.get("/footprint/result?" + query)
    assert page.status_code in (200, 400)


def test_airport_search_is_json_and_bounded(client: FlaskClient) -> None:
    found = client.get("/footprint/airports?q=lima").get_json()["results"]
    assert found[0] == {"code": "LIM", "name": "Jorge Chavez International Airport",
                        "city": "Lima", "country": "PE",
                        "label": "Jorge Chavez International Airport, Lima, PE (LIM)"}
    assert len(client.get("/footprint/airports?q=an").get_json()["results"]) == 10
    assert client.get("/footprint/airports?q=l").get_json() == {"results": []}
    assert client.get("/footprint/airports").get_json() == {"results": []}
    big = client.get("/footprint/airports?q=" + "x" * 100_000)
    assert big.status_code == 400  # past the 2,000 characters any query value may have


def test_the_sources_page_cites_every_file(client: FlaskClient) -> None:
    body = html.unescape(text_of(client.get("/footprint/sources")))
    for cited in ("Greenhouse gas reporting: conversion factors 2025",
                  "Greenhouse gas reporting: conversion factors 2023", "Ember",
                  "Scarborough", "Global Carbon Budget 2023", "transcribed by hand",
                  'id="flights"', "0.11704", "237.59"):
        assert cited in body, cited


# -- offset this --------------------------------------------------------------------------------


def test_offset_this_puts_the_rounded_up_tonnes_of_the_chosen_project_in_the_cart(
        app: Flask, client: FlaskClient) -> None:
    body = text_of(result(client, **VISITOR))
    form = re.search(r'<form method="post" action="/cart/add".*?</form>', body, re.S)
    assert form is not None
    listings = re.findall(r'name="listing_id" value="(\d+)"', form.group(0))
    chosen = alto_mayo(app)
    assert str(chosen) in listings and len(listings) == 3
    quantity = re.search(r'name="quantity" value="(\d+)"', form.group(0))
    assert quantity is not None and quantity.group(1) == "5"
    added = client.post("/cart/add", data={"listing_id": str(chosen), "quantity": "5"})
    assert added.status_code == 302 and added.headers["Location"].endswith("/cart")
    with client.session_transaction() as session:
        assert session["cart"] == [{"listing": chosen, "batch": None, "quantity": 5}]
    cart = text_of(client.get("/cart"))
    assert "Alto Mayo Protected Forest" in cart and 'value="5"' in cart


@pytest.mark.parametrize(("field", "value"), [
    ("listing_id", "²"), ("quantity", "²"), ("listing_id", "99999999999999999999999")])
def test_offset_this_into_a_cart_that_refuses_odd_numbers_politely(
        app: Flask, client: FlaskClient, field: str, value: str) -> None:
    form = {"listing_id": str(alto_mayo(app)), "quantity": "5", field: value}
    response = client.post("/cart/add", data=form)
    assert response.status_code == 302
    with client.session_transaction() as session:
        assert not session.get("cart")


# -- saving, updating, history --------------------------------------------------------------------


def saved_params(body: str) -> str:
    found = re.search(r'name="params" value="([^"]+)"', body)
    assert found is not None, "no save form on the page"
    return html.unescape(found.group(1))


def test_saving_needs_an_account(client: FlaskClient) -> None:
    body = text_of(result(client, **VISITOR))
    assert 'name="params"' not in body and "to save it" in body
    refused = client.post("/footprint/save", data={"params": urlencode(VISITOR)})
    assert refused.status_code == 302 and "/login" in refused.headers["Location"]


def test_save_update_and_history(app: Flask, client: FlaskClient,
                                 login_as: Callable[[str], FlaskClient]) -> None:
    login_as("customer")
    first = client.post("/footprint/save", data={"params": saved_params(
        text_of(result(client, **VISITOR)))})
    assert first.status_code == 302 and first.headers["Location"].endswith("/footprint/history")
    # Update: fly business instead, and save again; history keeps both, newest first.
    changed = dict(VISITOR, f0_cabin="business")  # 20,300 × 0.33940 = 6,889.82 kg
    second = client.post("/footprint/save", data={"params": saved_params(
        text_of(result(client, **changed)))})
    assert second.status_code == 302
    page = text_of(client.get("/footprint/history"))
    totals = re.findall(r'<td class="num"><strong>([\d.,]+) t</strong></td>', page)
    assert totals == ["8.99", "4.47"]  # (6,889,820 + 2,096,880) g, then the first
    assert page.count("current</span>") == 1
    with transaction(app) as session:
        rows = list(session.scalars(select(SavedFootprint).order_by(SavedFootprint.id)))
        assert [r.total_grams for r in rows] == [VISITOR_GRAMS, 6_889_820 + 2_096_880]
        assert all(r.factor_versions.startswith("cars=desnz-2025.1") for r in rows)
        assert '"f0_cabin": "business"' in rows[1].inputs
        assert '"grams": 2375912' in rows[0].lines
    # "Update" opens the calculator filled in with the saved answers.
    update = re.findall(r'<a href="(/footprint\?[^"]+)">Update</a>', page)[0]
    form = text_of(client.get(html.unescape(update)))
    assert 'value="LHR"' in form and 'value="12000"' in form
    assert '<option value="business" selected>' in form


def test_a_tampered_save_is_refused_politely(client: FlaskClient,
                                             login_as: Callable[[str], FlaskClient]) -> None:
    login_as("customer")
    response = client.post("/footprint/save", data={"params": "country=GB&car_km=-1"})
    assert response.status_code == 302 and "/footprint?" in response.headers["Location"]
    assert client.post("/footprint/save", data={}).status_code == 302


# -- the public page ------------------------------------------------------------------------------


def retire_for(app: Flask, user_id: int, tonnes: int) -> int:
    """A retirement in the user's name through the storefront's own order and fulfilment."""
    with transaction(app) as session:
        user = session.get(User, user_id)
        listing = session.scalar(select(Listing.id).where(Listing.slug == "tambopata"))
        order = place_order(session, user=user, lines=[CartLine(int(listing), tonnes)],
                            details=CheckoutDetails("Grace Hopper", "voluntary", "GB",
                                                    dt.date(2025, 1, 1), dt.date(2025, 12, 31)),
                            gateway="demo")
        assert fulfil(session, order.reference, amount_minor=order.total_minor,
                      currency=order.currency).startswith("fulfilled")
        return int(order.reservations[0].retire_seq)


def test_the_public_page_shows_only_people_who_opted_in(
        app: Flask, client: FlaskClient, login_as: Callable[[str], FlaskClient]) -> None:
    login_as("customer")
    with transaction(app) as session:
        me = int(session.scalar(select(User.id).where(User.email == "customer@example.org")))
    other = add_user(app, "other@example.org", name="Someone Else")
    mine = retire_for(app, me, 3)
    retire_for(app, other, 7)
    # Nobody has a page until they opt in.
    assert client.post("/footprint/profile", data={"display_name": "Grace H."}).status_code == 302
    with transaction(app) as session:
        profile = session.get(FootprintProfile, me)
        assert profile is not None and not profile.public
        slug = profile.slug
    assert client.get(f"/footprint/people/{slug}").status_code == 404
    client.post("/footprint/profile", data={"display_name": "Grace H.", "public": "on"})
    page = client.get(f"/footprint/people/{slug}")
    assert page.status_code == 200
    body = text_of(page)
    assert "Grace H." in body and "<strong>3 t</strong> CO2e retired to date" in body
    assert f'href="/registry/certificates/{mine}"' in body
    assert re.findall(r"ledger entry (\d+)", body) == [str(mine)]
    assert "Someone Else" not in body and "7 t" not in body
    # The other person never opted in: no page, whatever is guessed.
    with transaction(app) as session:
        assert session.scalar(select(func.count()).select_from(FootprintProfile)) == 1
    assert client.get("/footprint/people/not-a-real-slug").status_code == 404
    # Turning it off takes it down again.
    client.post("/footprint/profile", data={"display_name": "Grace H."})
    assert client.get(f"/footprint/people/{slug}").status_code == 404


def test_the_account_page_lists_what_was_retired(
        app: Flask, client: FlaskClient, login_as: Callable[[str], FlaskClient]) -> None:
    login_as("customer")
    with transaction(app) as session:
        me = int(session.scalar(select(User.id).where(User.email == "customer@example.org")))
        project = session.scalar(select(Project.name).where(Project.registry_id == "1001"))
    seq = retire_for(app, me, 2)
    body = text_of(client.get("/footprint/account"))
    assert f"2 t · {project} ·" in body and f"ledger entry {seq}" in body
    assert "No footprint saved yet" in body
