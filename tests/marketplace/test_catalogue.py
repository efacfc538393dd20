"""The storefront: home, catalogue (filters, sorting, pagination), project pages, and the
money helper. What is for sale always comes from the ledger."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from ledger import operations
from ledger.schema import Account, Batch, Project
from marketplace import checkout
from marketplace.catalogue import page_numbers, standard_names
from marketplace.formatting import money, parse_price, tonnes
from marketplace.listings_demo import load_listings
from marketplace.models import Listing

from .conftest import transaction

ALTO = "Alto Mayo Protected Forest"
MADRE = "Madre de Dios Amazon Forest Protection"
TAMBO = "Tambopata Agroforestry and Forest Conservation"
DEMO = (ALTO, MADRE, TAMBO)


def page(client: FlaskClient, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    return html.unescape(response.get_data(as_text=True))


def cards(text: str) -> list[str]:
    """Project names on the cards of a page, in order."""
    return re.findall(r'class="card-title"[^>]*>\s*<a href="[^"]+">([^<]+)</a>', text)


def add_listing(app: Flask, n: int | str, *, country: str = "PE", standards: str = "VCS",
                project_type: str = "REDD+", price_minor: int = 1000, tonnes_: int = 0,
                vintage: int = 2021, status: str = "listed", **facts: str) -> int:
    """A registered project with a listing (and, if asked, a batch in the inventory)."""
    with transaction(app) as session:
        project = operations.register_project(
            session, registry="SLV", registry_id=f"T{n}", name=f"Test forest {n}",
            country=country, standards=standards)
        if tonnes_:
            operations.issue(session, project_id=project.id,
                             account_id=checkout.inventory_account(session).id,
                             vintage_start=dt.date(vintage, 1, 1),
                             vintage_end=dt.date(vintage, 12, 31), quantity=tonnes_,
                             origin=f"SLV:T{n}:{vintage}")
        listing = Listing(project_id=project.id, slug=f"test-forest-{n}", status=status,
                          price_minor=price_minor, currency="USD", project_type=project_type,
                          **facts)
        session.add(listing)
        session.flush()
        return listing.id


# -- the money helper ------------------------------------------------------------------------


def test_money_formats_minor_units_with_symbols_and_separators() -> None:
    assert money(1800, "USD") == "$18.00"
    assert money(123456, "EUR") == "€1,234.56"
    assert money(5, "GBP") == "£0.05"
    assert money(1850, "PEN") == "S/ 18.50"
    assert money(-250, "USD") == "-$2.50"
    assert money(100_000_000, "usd") == "$1,000,000.00"
    assert money(1000, "CHF") == "10.00 CHF"
    assert tonnes(64_688_764) == "64,688,764"


@pytest.mark.parametrize(("typed", "minor"), [("18.50", 1850), ("18.5", 1850), ("18", 1800),
                                              (" 0.01 ", 1), ("1,234.56", 123456),
                                              ("0.1", 10), ("21474836.47", 2_147_483_647)])
def test_prices_are_parsed_exactly(typed: str, minor: int) -> None:
    assert parse_price(typed) == minor


@pytest.mark.parametrize("typed", ["", "abc", "18.555", "0", "-1", "NaN", "Infinity", "1e400",
                                   "18,50", "21474836.48", "9" * 30])
def test_bad_prices_are_refused_with_a_message(typed: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_price(typed)
    assert str(error.value)


def test_standards_and_page_links() -> None:
    assert standard_names("VCS, CCB (Gold Level biodiversity)") == ["VCS", "CCB"]
    assert standard_names("VCS, CCBS") == ["VCS", "CCB"]
    assert standard_names("Gold Standard") == ["Gold Standard"]
    assert page_numbers(1, 1) == [1]
    assert page_numbers(5, 10) == [1, None, 3, 4, 5, 6, 7, None, 10]
    assert page_numbers(1, 4) == [1, 2, 3, 4]


# -- demo listings ------------------------------------------------------------------------------


def test_demo_listings_are_loaded_once_per_project(app: Flask) -> None:
    with transaction(app) as session:
        assert load_listings(session) == 0
        listings = {l.slug: l for l in session.scalars(select(Listing))}
    assert set(listings) == {"alto-mayo", "madre-de-dios", "tambopata"}
    assert {l.status for l in listings.values()} == {"listed"}
    assert listings["alto-mayo"].price_minor == 1800
    assert len({l.price_minor for l in listings.values()}) == 3
    assert listings["madre-de-dios"].sdg_numbers == [1, 5, 8, 10, 12, 13, 15]
    assert listings["tambopata"].developer.startswith("AIDER")


# -- home and catalogue --------------------------------------------------------------------------


def test_home_shows_the_listed_projects_totals_and_how_it_works(client: FlaskClient) -> None:
    text = page(client, "/")
    assert sorted(cards(text)) == sorted(DEMO)
    assert "Keep the Peruvian Amazon standing" in text
    assert "How it works" in text and "certificate" in text
    assert 'href="/projects"' in text
    # The demo retires 12 + 8 t from Alto Mayo and 10 t from Madre de Dios; 7 batches are
    # issued in all.
    assert re.search(r'stat-value">30 t</span><span class="stat-label">CO<sub>2</sub>e retired',
                     text)
    assert "$18.00" in text and "$12.50" in text and "$24.00" in text


def test_catalogue_lists_the_three_projects_with_prices_and_stock(client: FlaskClient) -> None:
    text = page(client, "/projects")
    assert cards(text) == [ALTO, MADRE, TAMBO]  # by name by default
    assert "3 projects" in text
    # Alto Mayo: 3 x (700,000 - 84,000 buffer) less the 25 t the demo sold.
    assert "1,847,975 t" in text
    assert "2016–2018" in text


def test_unlisted_listings_are_not_in_the_catalogue(app: Flask, client: FlaskClient) -> None:
    add_listing(app, 1, status="unlisted")
    assert "Test forest 1" not in page(client, "/projects")
    assert "Test forest 1" not in page(client, "/")


FILTER_CASES = [
    ("type=REDD%2B", [ALTO, MADRE]),
    ("type=Agroforestry+%2B+REDD%2B", [TAMBO]),
    ("standard=CCB", [ALTO, MADRE, TAMBO]),
    ("standard=vcs", [ALTO, MADRE, TAMBO]),
    ("vintage=2015", [MADRE]),
    ("vintage=2017", [ALTO]),
    ("vintage=2019", [TAMBO]),
    ("vintage=1999", []),
    ("min_price=15", [ALTO, TAMBO]),
    ("max_price=20", [ALTO, MADRE]),
    ("min_price=18.00&max_price=18", [ALTO]),
    ("min_price=12.51&max_price=23.99", [ALTO]),
    ("country=PE&type=REDD%2B&max_price=15", [MADRE]),
    ("country=BR", []),
]


def test_each_filter(client: FlaskClient) -> None:
    for query, expected in FILTER_CASES:
        text = page(client, f"/projects?{query}")
        assert cards(text) == expected, query
        if not expected:
            assert "No listed project matches these filters" in text, query


def test_country_and_standard_filters_with_other_projects(app: Flask, client: FlaskClient) -> None:
    add_listing(app, "BR", country="BR", standards="Gold Standard", tonnes_=10)
    assert cards(page(client, "/projects?country=BR")) == ["Test forest BR"]
    assert cards(page(client, "/projects?country=pe")) == [ALTO, MADRE, TAMBO]
    assert cards(page(client, "/projects?standard=Gold+Standard")) == ["Test forest BR"]
    text = page(client, "/projects")
    assert '<option value="BR">Brazil</option>' in text
    assert '<option value="Gold Standard">Gold Standard</option>' in text


def test_sorting(client: FlaskClient) -> None:
    for sort, expected in [("name", [ALTO, MADRE, TAMBO]), ("price_asc", [MADRE, ALTO, TAMBO]),
                           ("price_desc", [TAMBO, ALTO, MADRE]), ("available", [MADRE, ALTO, TAMBO])]:
        assert cards(page(client, f"/projects?sort={sort}")) == expected, sort


def test_sort_by_availability_follows_the_ledger(app: Flask, client: FlaskClient) -> None:
    add_listing(app, "big", tonnes_=9_000_000)
    assert cards(page(client, "/projects?sort=available"))[0] == "Test forest big"


def test_pagination_keeps_the_filters(app: Flask, client: FlaskClient) -> None:
    for n in range(14):
        add_listing(app, n, project_type="Mangrove", price_minor=1000 + n)
    first = page(client, "/projects?type=Mangrove&sort=price_desc")
    assert "14 projects" in first and "showing 1–12" in first
    assert cards(first) == [f"Test forest {n}" for n in range(13, 1, -1)]
    links = re.findall(r'<a class="page-link"[^>]*href="([^"]+)"', first)
    assert links, first
    for link in links:
        assert "type=Mangrove" in link and "sort=price_desc" in link
    assert any("page=2" in link for link in links)
    second = page(client, "/projects?type=Mangrove&sort=price_desc&page=2")
    assert cards(second) == ["Test forest 1", "Test forest 0"]
    assert 'aria-current="page">2<' in second
    # Past the end: the last page.
    assert cards(page(client, "/projects?type=Mangrove&sort=price_desc&page=99")) == cards(second)
    # Unfiltered: 17 projects over two pages of at most 12.
    assert len(cards(page(client, "/projects"))) == 12
    assert len(cards(page(client, "/projects?page=2"))) == 5


BAD_INPUT = [
    ("min_price=abc", "The minimum price must be a number"),
    ("max_price=-5", "The maximum price cannot be negative"),
    ("min_price=NaN", "The minimum price must be a number"),
    ("max_price=1e999999999", "The maximum price must be a number"),
    ("max_price=" + "9" * 24, ""),
    ("min_price=" + "9" * 200, "too long"),
    ("min_price=30&max_price=10", "higher than the maximum price"),
    ("vintage=20x6", "The vintage must be a year"),
    ("sort=cheapest", "not one we offer"),
    ("page=zero", "The page must be a whole number"),
    ("page=0", "The page must be a whole number"),
    ("page=-1", "The page must be a whole number"),
    ("page=" + "9" * 40, "The page must be a whole number"),
    ("country=%ff&type=<b>", ""),
]


def test_a_nul_byte_in_a_filter_is_a_400_naming_the_parameter(client: FlaskClient) -> None:
    text = page(client, "/projects?country=%00%ff&type=<b>", 400)
    assert "The parameter 'country' holds a control character" in text


def test_bad_filter_input_gives_a_message_not_an_error(client: FlaskClient) -> None:
    for query, message in BAD_INPUT:
        text = page(client, f"/projects?{query}")
        assert message in text, query
        if message:
            assert 'class="notice notice-error" role="alert"' in text, query
        assert "<b>" not in text.split("</header>", 1)[1].replace("&lt;b&gt;", ""), query


def test_a_bad_bound_is_ignored_and_the_good_one_kept(client: FlaskClient) -> None:
    text = page(client, "/projects?min_price=abc&max_price=20")
    assert cards(text) == [ALTO, MADRE]
    assert 'value="abc"' in text  # what was typed is shown back, flagged
    assert 'aria-invalid="true"' in text


# -- project page --------------------------------------------------------------------------------


def test_project_page_shows_the_facts(client: FlaskClient) -> None:
    text = page(client, "/projects/alto-mayo")
    for fact in ("Conservation International", "VCS, CCB", "REDD+", "182,000 ha",
                 "700,000 t CO₂e", "10,300,000 t CO₂e", "San Martín", "5.75° S, 77.30° W",
                 "SDG 13: Climate action", "SDG 15: Life on land", "1,033 families",
                 "The story", "VCS-944"):
        assert fact in text, fact
    assert "https://www.openstreetmap.org/?mlat=-5.75&mlon=-77.3#map=9/-5.75/-77.3" in text
    assert text.count("<p>") >= 4  # the story, in paragraphs
    madre = page(client, "/projects/madre-de-dios")
    for fact in ("SCS Global Services", "2,086,089 t CO₂e", "64,688,764 t CO₂e", "100,000 ha",
                 "SDG 5: Gender equality", "SDG 10: Reduced inequalities", "Brazil"):
        assert fact in madre, fact
    tambo = page(client, "/projects/tambopata")
    assert "AIDER" in tambo and "Agroforestry + REDD+" in tambo and "570,000 ha" in tambo
    assert "Not published" in tambo  # no yearly figure in its description: none invented


def test_project_page_vintages_and_cart_form(app: Flask, client: FlaskClient) -> None:
    text = page(client, "/projects/alto-mayo")
    with transaction(app) as session:
        listing = session.scalars(select(Listing).where(Listing.slug == "alto-mayo")).one()
        batches = list(session.scalars(select(Batch).where(Batch.project_id == listing.project_id)
                                       .order_by(Batch.vintage_start)))
        listing_id = listing.id
    with app.test_request_context():
        from flask import url_for
        action = url_for("cart.add")
    assert f'<form method="post" action="{action}"' in text
    assert f'name="listing_id" value="{listing_id}"' in text
    assert '<option value="">Oldest vintage first</option>' in text
    for batch, stock in zip(batches, ("615,975", "616,000", "616,000"), strict=True):
        year = batch.vintage_start.year
        assert f'<option value="{batch.id}">{year} ({stock} t available)</option>' in text
    assert 'name="quantity" type="number" min="1" step="1"' in text
    assert 'type="hidden" name="csrf_token"' in text
    assert "$18.00" in text
    assert re.search(r'stat-value">20 t</span><span class="stat-label">retired to date', text)


def test_tonnes_for_sale_follow_the_ledger(app: Flask, client: FlaskClient) -> None:
    with transaction(app) as session:
        project = session.scalars(select(Project).where(Project.registry_id == "944")).one()
        first = session.scalars(select(Batch).where(Batch.project_id == project.id)
                                .order_by(Batch.vintage_start)).first()
        assert first is not None
        batch_id = first.id
    assert "615,975 t" in page(client, "/projects/alto-mayo")
    with transaction(app) as session:
        buyer = operations.open_account(session, "someone-else", "customer")
        operations.transfer(session, from_account=checkout.inventory_account(session).id,
                            to_account=buyer.id, quantity=1_000, batch_id=batch_id)
    text = page(client, "/projects/alto-mayo")
    assert "615,975 t" not in text
    assert "614,975 t" in text
    assert "1,846,975 t" in text  # the total available moved too


def test_a_sold_out_vintage_cannot_be_chosen(app: Flask, client: FlaskClient) -> None:
    with transaction(app) as session:
        project = session.scalars(select(Project).where(Project.registry_id == "1001")).one()
        batch = session.scalars(select(Batch).where(Batch.project_id == project.id)
                                .order_by(Batch.vintage_start)).first()
        assert batch is not None
        batch_id = batch.id
        buyer = operations.open_account(session, "bulk-buyer", "customer")
        operations.transfer(session, from_account=checkout.inventory_account(session).id,
                            to_account=buyer.id, quantity=43_200, batch_id=batch_id)
    text = page(client, "/projects/tambopata")
    assert f'<option value="{batch_id}">' not in text
    assert "Sold out" in text
    assert cards(page(client, "/projects?vintage=2019")) == []
    assert cards(page(client, "/projects?vintage=2020")) == [TAMBO]


def test_unknown_or_unlisted_project_is_a_404(app: Flask, client: FlaskClient) -> None:
    page(client, "/projects/no-such-forest", 404)
    add_listing(app, 7, status="unlisted")
    page(client, "/projects/test-forest-7", 404)
    with transaction(app) as session:
        session.scalars(select(Listing).where(Listing.slug == "test-forest-7")).one().status = "listed"
    page(client, "/projects/test-forest-7")


def test_listing_text_is_escaped(app: Flask, client: FlaskClient) -> None:
    add_listing(app, "x", headline="<script>alert(1)</script>", story="<img src=x onerror=alert(1)>",
                co_benefits="<b>bold</b>", location="<i>here</i>")
    for url in ("/projects", "/projects/test-forest-x"):
        raw = client.get(url).get_data(as_text=True)
        assert "<script>alert(1)</script>" not in raw
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw
        assert "<i>here</i>" not in raw
    raw = client.get("/projects/test-forest-x").get_data(as_text=True)
    assert "<img src=x" not in raw and "<b>bold</b>" not in raw


def test_pages_do_not_write_to_an_empty_ledger(fresh_url: str) -> None:
    from .conftest import dispose, make_app

    app = make_app(fresh_url)
    try:
        client = app.test_client()
        assert "No projects are on sale right now" in page(client, "/")
        assert "No projects match" in page(client, "/projects")
        with transaction(app) as session:
            assert session.scalars(select(Account)).all() == []
    finally:
        dispose(app)


def test_the_cart_form_posts_with_its_csrf_token(fresh_url: str) -> None:
    from marketplace import demo

    from .conftest import dispose, make_app

    app = make_app(fresh_url, WTF_CSRF_ENABLED=True)
    try:
        with transaction(app) as session:
            demo.load(session)
            load_listings(session)
        client = app.test_client()
        text = client.get("/projects/madre-de-dios").get_data(as_text=True)
        token = re.search(r'type="hidden" name="csrf_token" value="([^"]+)"', text)
        listing_id = re.search(r'name="listing_id" value="(\d+)"', text)
        assert token and listing_id
        form = {"listing_id": listing_id.group(1), "batch_id": "", "quantity": "3"}
        assert client.post("/cart/add", data=form).status_code == 400  # no token: refused
        response = client.post("/cart/add", data={**form, "csrf_token": token.group(1)})
        assert response.status_code == 302
        assert "Madre de Dios" in client.get("/cart").get_data(as_text=True)
    finally:
        dispose(app)
