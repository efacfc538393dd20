"""The footprint calculator in a real browser (issue 6), against a live server.

1. A visitor enters one long-haul return flight (with the airport autocomplete) and a year
   of driving, sees the breakdown, clicks "offset this", and buys the rounded-up tonnes
   through the demo gateway.
2. A subscriber saves a footprint, subscribes monthly through the demo gateway, receives two
   paid invoices, and sees two monthly retirements of exactly a twelfth, to the gram.
3. A visitor offsets exactly the footprint, in kilograms from the project's pool, and opens
   the certificate, which shows the pool retirement's serials.

The live server and Chromium come from ``tests/browser/server.py`` (CSRF on, the demo
payment gateway, a fresh SQLite database with the demo data).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from marketplace.models import Order, User
from marketplace.models.footprints import OffsetInvoice
from tests.marketplace.shop import PASSWORD, add_user

from .server import LiveServer, browser, live  # noqa: F401  (fixtures used by name)

TIMEOUT_MS = 10_000


@pytest.fixture
def page(browser: Any, live: LiveServer) -> Iterator[Any]:
    context = browser.new_context(base_url=live.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    opened = context.new_page()
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield opened
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the pages: {errors}"


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def pick_airport(page: Any, label: str, typed: str, code: str) -> None:
    """Type into an airport field, wait for the autocomplete to offer the airport, take it."""
    field = page.get_by_label(label)
    field.fill("")
    field.press_sequentially(typed, delay=30)
    option = page.locator(f"#airport-list option[value$='({code})']")
    expect(option.first).to_be_attached()
    field.fill(option.first.get_attribute("value"))


def log_in(page: Any, email: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


# -- 1. a visitor offsets a flight and a year of driving ------------------------------------------


def test_a_visitor_works_out_a_footprint_and_offsets_it(page: Any, live: LiveServer) -> None:
    email = "visitor@example.org"
    add_user(live.app, email, name="Vera Visitor")
    page.goto("/footprint")
    page.get_by_label("Country").select_option(label="United Kingdom")
    pick_airport(page, "From (flight 1)", "Heathrow", "LHR")
    pick_airport(page, "To (flight 1)", "Lima", "LIM")
    page.get_by_label("Trip (flight 1)").select_option("return")
    page.get_by_label("Cabin (flight 1)").select_option("economy")
    page.get_by_label("Distance driven a year").fill("12,000")
    page.get_by_label("Fuel").select_option(label="petrol")
    page.get_by_label("Size").select_option(label="medium")
    page.get_by_role("button", name="Calculate my footprint").click()
    page.wait_for_url(re.compile(r"/footprint/result\?"))

    # 2 × 10,150 km × 0.11704 = 2,375.912 kg; 12,000 km × 0.17474 = 2,096.880 kg.
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Your footprint: 4.47 t CO2e a year")
    bars = page.locator("svg.fp-chart g.fp-bar")
    expect(bars).to_have_count(2)
    expect(bars.nth(0)).to_contain_text("Flights")
    expect(bars.nth(0)).to_contain_text("2.38 t · 53%")
    expect(bars.nth(1)).to_contain_text("Car")
    rows = page.locator("tr.fp-line")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("LHR → LIM, return, economy")
    expect(rows.nth(0)).to_contain_text("20,300 passenger-km")
    expect(rows.nth(0)).to_contain_text("0.11704")
    expect(rows.nth(0)).to_contain_text("DESNZ conversion factors 2025")
    expect(rows.nth(0)).to_contain_text("2,375.9 kg")
    expect(rows.nth(1)).to_contain_text("2,096.9 kg")
    expect(page.locator(".fp-compare")).to_contain_text("The average in United Kingdom is 4.7 t")

    # Offset this: 4.47 t rounded up is 5 t, from the project chosen.
    expect(page.locator(".fp-offset-tonnes")).to_have_text("5 t")
    rounded = page.locator("form.fp-offset-form:not(.fp-offset-exact)")
    rounded.get_by_role("radio", name=re.compile("Alto Mayo Protected Forest")).check()
    page.get_by_role("button", name="Offset this: add 5 t to the cart").click()
    page.wait_for_url(re.compile(r"/cart$"))
    expect(page.get_by_label("Tonnes")).to_have_value("5")
    expect(page.locator("table.cart")).to_contain_text("Alto Mayo Protected Forest")

    # Check out through the demo gateway (logging in on the way).
    page.get_by_role("link", name="Check out").click()
    page.wait_for_url(re.compile(r"/login"))
    log_in(page, email)
    page.wait_for_url(re.compile(r"/checkout$"))
    page.get_by_role("button", name=re.compile(r"^Continue to payment")).click()
    page.wait_for_url(re.compile(r"/demo-checkout/cs_demo_[0-9a-f]+$"))
    expect(page.locator("main")).to_contain_text("no money moves")
    page.get_by_role("button", name="Pay (demo)").click()
    page.wait_for_url(re.compile(r"/orders/SLV-[0-9A-F]+/success$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Thank you: your order is complete")
    expect(page.locator("main")).to_contain_text("5 t have been retired")
    with live.session() as session:
        order = session.scalars(select(Order)).one()
        assert (order.status, order.quantity, order.beneficiary) == (
            "fulfilled", 5, "Vera Visitor")


# -- 2. a monthly subscription, two invoices ------------------------------------------------------


def test_a_subscriber_offsets_monthly_to_the_gram(
        page: Any, live: LiveServer) -> None:
    email = "subscriber@example.org"
    add_user(live.app, email, name="Sam Subscriber")
    page.goto("/login")
    log_in(page, email)
    # One business-class return flight to Lima, a year of driving, home energy and diet:
    # 6,889,820 + 2,096,880 + 641,493 + 2,103,695 + 2,624,350 = 14,356,238 g a year.
    page.goto("/footprint?country=GB&f0_from=LHR&f0_to=LIM&f0_cabin=business&car_km=12000"
              "&car_fuel=petrol&car_size=medium&electricity_kwh=2700&gas_kwh=11500"
              "&diet=high_meat")
    page.get_by_role("button", name="Calculate my footprint").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Your footprint: 14.36 t CO2e a year")
    page.get_by_role("button", name="Save this footprint").click()
    page.wait_for_url(re.compile(r"/footprint/history$"))
    expect(page.locator("tr.fp-saved")).to_have_count(1)

    # A twelfth: 14,356,238 / 12 = 1,196,353 g a month, at $18.00 a tonne = $21.54 a month.
    page.goto("/footprint/subscribe")
    expect(page.locator("main")).to_contain_text("a month is 1.20 t (1,196,353 g)")
    page.get_by_role("radio", name=re.compile("Alto Mayo Protected Forest")).check()
    page.get_by_role("button", name="Continue to the monthly payment").click()
    page.wait_for_url(re.compile(r"/footprint/demo-subscription/cs_demo_sub_[0-9a-f]+$"))
    expect(page.locator("main")).to_contain_text("no money moves")
    expect(page.get_by_role("heading", level=1)).to_have_text("$21.54 a month")
    page.get_by_role("button", name="Subscribe (demo): pay the first month").click()
    page.wait_for_url(re.compile(r"/footprint/account$"))
    expect(page.locator("tr.fp-month")).to_have_count(1)

    # The next month's invoice arrives (the demo provider's page sends it when asked).
    page.get_by_role("link", name=re.compile("pay next month's invoice")).click()
    page.get_by_role("button", name="Pay next month's invoice (demo)").click()
    page.wait_for_url(re.compile(r"/footprint/account$"))
    months = page.locator("tr.fp-month")
    expect(months).to_have_count(2)
    # Each month retires exactly what is due, 1,196,353 g, from the kilogram pool.
    for month in (0, 1):
        expect(months.nth(month).locator(".fp-month-retired")).to_have_text("1,196.353 kg")
        expect(months.nth(month).locator(".fp-month-carried")).to_have_text("0 g")
    expect(page.locator(".fp-carried")).to_have_count(0)
    expect(page.locator(".fp-retired-total")).to_have_text("2,392.706 kg")
    expect(page.locator("tr.fp-month a", has_text="Certificate")).to_have_count(2)
    with live.session() as session:
        invoices = list(session.scalars(select(OffsetInvoice).order_by(OffsetInvoice.month)))
        assert [(i.retired_grams, i.carried_out_grams) for i in invoices] == [
            (1_196_353, 0), (1_196_353, 0)]
        user = session.scalars(select(User).where(User.email == email)).one()
        orders = list(session.scalars(select(Order).where(Order.user_id == user.id)))
        assert sorted((o.status, o.grams) for o in orders) == [("fulfilled", 1_196_353)] * 2

    # Cancel any time, from the account page.
    page.get_by_role("button", name="Cancel the monthly subscription").click()
    page.wait_for_url(re.compile(r"/footprint/account$"))
    expect(page.locator(".fp-status-cancelled")).to_be_visible()
    expect(page.locator("tr.fp-month")).to_have_count(2)


# -- 3. offset exactly, in kilograms ---------------------------------------------------------------


def test_a_visitor_offsets_exactly_the_footprint_in_kilograms(page: Any,
                                                              live: LiveServer) -> None:
    email = "exact@example.org"
    add_user(live.app, email, name="Eva Exact")
    # One economy return flight to Lima and a year of driving: 4,472,792 g.
    page.goto("/footprint/result?country=GB&f0_from=LHR&f0_to=LIM&f0_cabin=economy"
              "&car_km=12000&car_fuel=petrol&car_size=medium")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Your footprint: 4.47 t CO2e a year")
    expect(page.locator("#offset-exactly")).to_have_text("Or offset exactly 4.47 t")
    exact = page.locator("form.fp-offset-exact")
    exact.get_by_role("radio", name=re.compile("Alto Mayo Protected Forest")).check()
    # 4,472,792 g at $18.00 a tonne is $80.51 (8,051.0256 cents, rounded half up).
    expect(exact).to_contain_text("$80.51 for 4,472.792 kg")
    exact.get_by_role("button", name="Offset exactly 4,472.792 kg").click()
    page.wait_for_url(re.compile(r"/cart$"))
    expect(page.locator("table.cart .kg-mass")).to_have_text("4,472.792 kg")
    expect(page.locator("table.cart .total")).to_have_text("$80.51")

    page.get_by_role("link", name="Check out").click()
    page.wait_for_url(re.compile(r"/login"))
    log_in(page, email)
    page.wait_for_url(re.compile(r"/checkout$"))
    page.get_by_role("button", name=re.compile(r"^Continue to payment")).click()
    page.wait_for_url(re.compile(r"/demo-checkout/cs_demo_[0-9a-f]+$"))
    page.get_by_role("button", name="Pay (demo)").click()
    page.wait_for_url(re.compile(r"/orders/SLV-[0-9A-F]+/success$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Thank you: your order is complete")
    expect(page.locator("main")).to_contain_text("4,472.792 kg have been retired")
    retired = page.locator(".kg-retirement")
    expect(retired.locator(".kg-mass")).to_have_text("4,472.792 kg retired")
    pool_serials = retired.locator(".serial")
    expect(pool_serials.first).to_be_visible()
    serial = pool_serials.first.inner_text()

    # The certificate: the allocation, its pool retirement's serials, its own proof.
    retired.get_by_role("link", name="Certificate").click()
    page.wait_for_url(re.compile(r"/registry/kg/kg_[0-9a-f]{16}$"))
    main = page.locator("main")
    expect(main).to_contain_text("4,472.792 kg")
    expect(main).to_contain_text("Eva Exact")
    expect(main).to_contain_text(serial)
    with live.session() as session:
        order = session.scalars(select(Order).join(User, User.id == Order.user_id)
                                .where(User.email == email)).one()
        assert (order.status, order.grams, order.quantity, order.total_minor) == (
            "fulfilled", 4_472_792, 0, 8_051)
