"""The operator's back office: who may use it, and that every form either does its whole job
in one transaction or shows why not, beside the form, having written nothing."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable
from decimal import Decimal

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from ledger import operations, queries
from ledger.schema import Account, Batch, Entry, Project
from marketplace import checkout, demo
from marketplace.checkout import CartLine, CheckoutDetails
from marketplace.models import Listing, User

from .conftest import dispose, make_app, transaction

Login = Callable[[str], FlaskClient]

PAGES = ["/operator/", "/operator/projects/new", "/operator/batches/new",
         "/operator/listings/new", "/operator/listings/1/edit"]


def text(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(response.get_data(as_text=True))


def counts(app: Flask) -> dict[str, int]:
    with transaction(app) as session:
        return {name: int(session.scalar(select(func.count()).select_from(model)) or 0)
                for name, model in (("projects", Project), ("batches", Batch),
                                    ("entries", Entry), ("listings", Listing),
                                    ("accounts", Account))}


def project_id(app: Flask, registry_id: str) -> int:
    with transaction(app) as session:
        return int(session.scalar(select(Project.id).where(Project.registry_id == registry_id)))


def listing(app: Flask, slug: str) -> Listing:
    with transaction(app) as session:
        return session.scalars(select(Listing).where(Listing.slug == slug)).one()


# -- access ------------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_log_in(client: FlaskClient) -> None:
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 302, url
        assert "/login" in response.headers["Location"], url
    response = client.post("/operator/listings/1/status", data={"status": "unlisted"})
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_customer_gets_403_everywhere(app: Flask, login_as: Login) -> None:
    client = login_as("customer")
    before = counts(app)
    for url in PAGES:
        assert client.get(url).status_code == 403, url
    assert client.post("/operator/projects/new", data={
        "registry": "VCS", "registry_id": "999", "name": "Sneaky", "country": "PE"}).status_code == 403
    assert client.post("/operator/listings/1/status", data={"status": "unlisted"}).status_code == 403
    assert counts(app) == before
    assert listing(app, "alto-mayo").status == "listed"


def test_an_auditor_is_not_an_operator(login_as: Login) -> None:
    """Auditors read the back office (``marketplace.access``) and change nothing."""
    auditor = login_as("auditor")
    assert auditor.get("/operator/").status_code == 200
    assert auditor.get("/operator/projects/new").status_code == 200
    assert auditor.post("/operator/projects/new", data={
        "registry": "VCS", "registry_id": "12345", "name": "Not allowed",
        "country": "PE"}).status_code == 403


# -- dashboard ---------------------------------------------------------------------------------


def test_dashboard_shows_projects_listings_batches_and_orders(app: Flask, login_as: Login) -> None:
    client = login_as("operator")
    with transaction(app) as session:
        buyer = session.scalars(select(User).where(User.email == "operator@example.org")).one()
        alto = session.scalars(select(Listing).where(Listing.slug == "alto-mayo")).one()
        order = checkout.place_order(
            session, user=buyer, lines=[CartLine(alto.id, 3)], gateway="demo",
            details=CheckoutDetails("Ada", "voluntary", "GB", dt.date(2025, 1, 1),
                                    dt.date(2025, 12, 31)))
        reference = order.reference
    page = text(client.get("/operator/"))
    for name in ("Alto Mayo Protected Forest", "Madre de Dios Amazon Forest Protection",
                 "Tambopata Agroforestry and Forest Conservation"):
        assert name in page
    assert "$18.00" in page and "$12.50" in page and "$24.00" in page
    assert "Listed" in page and "Unlist" in page
    assert "2,100,000" not in page  # batch figures are per batch
    assert "700,000" in page and "84,000" in page  # issued and buffer of an Alto Mayo batch
    assert "615,972" in page  # for sale: 615,975 less the 3 t just reserved
    assert reference in page and "$54.00" in page and "operator@example.org" in page
    assert "<th scope=\"col\">Actions</th>" in page


# -- register a project -------------------------------------------------------------------------


def test_operator_registers_a_project(app: Flask, login_as: Login) -> None:
    client = login_as("operator")
    assert "Register a project" in text(client.get("/operator/projects/new"))
    response = client.post("/operator/projects/new", data={
        "registry": "vcs", "registry_id": "1650", "name": "Cordillera Azul", "country": "pe",
        "standards": "VCS, CCB", "methodology": "REDD+", "sector": "Forestry"})
    assert response.status_code == 302
    with transaction(app) as session:
        project = session.scalars(select(Project).where(Project.registry_id == "1650")).one()
        assert (project.registry_name, project.country, project.name) == ("VCS", "PE",
                                                                          "Cordillera Azul")
    assert "Registered Cordillera Azul (VCS-1650)" in text(client.get("/operator/"))


REFUSED_PROJECTS = [
    ({"registry": "VCS", "registry_id": "944", "name": "Alto Mayo again", "country": "PE"},
     "already registered"),
    ({"registry": "V1", "registry_id": "5", "name": "Bad registry", "country": "PE"},
     "registry must be 2 to 10 letters"),
    ({"registry": "VCS", "registry_id": "a b", "name": "Bad id", "country": "PE"},
     "registry project id must be 1 to 20 letters or digits"),
    ({"registry": "VCS", "registry_id": "77", "name": "Bad country", "country": "XX"},
     "country"),
    ({"registry": "VCS", "registry_id": "77", "name": "", "country": "PE"},
     "This field is required"),
]


def test_a_refused_project_shows_why_and_writes_nothing(app: Flask, login_as: Login) -> None:
    client = login_as("operator")
    before = counts(app)
    for data, message in REFUSED_PROJECTS:
        response = client.post("/operator/projects/new", data=data)
        assert response.status_code == 200, data
        assert message in text(response), data
        assert counts(app) == before, data


# -- issue a batch ------------------------------------------------------------------------------


def issue_form(project: int, **overrides: object) -> dict[str, object]:
    form: dict[str, object] = {
        "project_id": project, "scheme": "native", "vintage_start": "2022-01-01",
        "vintage_end": "2022-12-31", "issued_on": "2023-05-02", "quantity": "5000",
        "first": "", "last": "", "verra_issuance": "", "verra_code": "", "verra_scope": "",
        "verra_flag": "0", "origin": "", "buffer_quantity": "500"}
    form.update(overrides)
    return form


def test_operator_issues_a_native_batch_into_the_inventory(app: Flask, login_as: Login) -> None:
    client = login_as("operator")
    tambopata = project_id(app, "1001")
    response = client.post("/operator/batches/new", data=issue_form(tambopata,
                                                                    origin="SLV:1001:2022"))
    assert response.status_code == 302, text(response)[:3000]
    with transaction(app) as session:
        batch = session.scalars(select(Batch).where(Batch.origin == "SLV:1001:2022")).one()
        assert batch.quantity == 5000 and batch.buffer_quantity == 500
        assert batch.issued_on == dt.date(2023, 5, 2)
        inventory = checkout.inventory_account(session)
        assert queries.available(session, inventory.id, batch_id=batch.id) == 4500
        totals = queries.batch_totals(session)[batch.id]
        assert (totals.issued, totals.tradable, totals.buffer) == (5000, 4500, 500)
    # The new vintage is on sale at once.
    assert "2022 (4,500 t available)" in text(client.get("/projects/tambopata"))


def test_operator_issues_a_verra_batch(app: Flask, login_as: Login) -> None:
    client = login_as("operator")
    madre = project_id(app, "868")
    response = client.post("/operator/batches/new", data=issue_form(
        madre, scheme="verra", quantity="", first="70000001", last="70001000",
        verra_issuance="9001", verra_code="263", verra_scope="14", verra_flag="1",
        buffer_quantity="0", vintage_start="2016-01-01", vintage_end="2016-12-31"))
    assert response.status_code == 302, text(response)[:3000]
    with transaction(app) as session:
        batch = session.scalars(select(Batch).where(Batch.origin == "VCS:868:9001")).one()
        assert (batch.scheme, batch.first_serial, batch.quantity) == ("verra", 70000001, 1000)
        assert batch.buffer_quantity == 0


def test_the_buffer_pool_is_opened_when_missing(fresh_url: str) -> None:
    app = make_app(fresh_url)
    try:
        from .conftest import PASSWORD, add_user

        with transaction(app) as session:
            project = operations.register_project(session, registry="SLV", registry_id="42",
                                                  name="Fresh forest", country="PE")
            pid = project.id
        add_user(app, "op@example.org", role="operator")
        client = app.test_client()
        client.post("/login", data={"email": "op@example.org", "password": PASSWORD})
        response = client.post("/operator/batches/new", data=issue_form(pid, quantity="100",
                                                                        buffer_quantity="10"))
        assert response.status_code == 302, text(response)[:3000]
        with transaction(app) as session:
            pool = session.scalars(select(Account).where(Account.name == demo.BUFFER)).one()
            assert pool.kind == "buffer"
            assert queries.available(session, pool.id) == 10
    finally:
        dispose(app)


REFUSED_BATCHES = [
    # The demo already imported Verra issuance 4821 of Alto Mayo.
    ({"scheme": "verra", "quantity": "", "first": "1", "last": "10", "verra_issuance": "4821",
      "verra_code": "263", "verra_scope": "14"}, "was already issued"),
    ({"origin": "SLV:1001:2019"}, "was already issued"),
    ({"scheme": "verra", "quantity": "", "first": "500", "last": "100", "verra_issuance": "77",
      "verra_code": "263", "verra_scope": "14"}, "["),
    # Overlaps the demo's 2016 Alto Mayo range.
    ({"scheme": "verra", "quantity": "", "first": "61407300", "last": "61407400",
      "verra_issuance": "78", "verra_code": "263", "verra_scope": "14"}, "overlap"),
    ({"scheme": "verra", "quantity": "50", "first": "1", "last": "10", "verra_issuance": "79",
      "verra_code": "263", "verra_scope": "14"}, "holds 10 t, not 50 t"),
    ({"quantity": "100", "buffer_quantity": "100"}, "buffer share must be smaller"),
    ({"quantity": "0", "buffer_quantity": "0"}, "quantity"),
    ({"quantity": "-5", "buffer_quantity": "0"}, "quantity"),
    ({"vintage_start": "2023-01-01", "vintage_end": "2022-01-01"}, "ends before it starts"),
]


def test_a_refused_batch_shows_why_and_writes_nothing(app: Flask, login_as: Login) -> None:
    client = login_as("operator")
    before = counts(app)
    for overrides, message in REFUSED_BATCHES:
        project = project_id(app, "944" if overrides.get("scheme") == "verra" else "1001")
        response = client.post("/operator/batches/new", data=issue_form(project, **overrides))
        assert response.status_code == 200, overrides
        page = text(response)
        assert message in page, (overrides, page[page.find("<main>"):][:3000])
        assert "Nothing was saved" in page or "has-error" in page, overrides
        assert counts(app) == before, overrides


BAD_BATCH_FORMS = [
    ({"quantity": ""}, "Give the number of tonnes to issue"),
    ({"first": "1"}, "A native batch is allocated its serials"),
    ({"scheme": "verra", "first": "", "verra_issuance": ""}, "Required for a Verra batch"),
    ({"quantity": "ten"}, "Not a valid integer value"),
    ({"project_id": "99999"}, "Not a valid choice"),
    ({"verra_flag": "7"}, "Number must be between 0 and 1"),
]


def test_a_badly_filled_batch_form_shows_field_errors(app: Flask, login_as: Login) -> None:
    client = login_as("operator")
    before = counts(app)
    for overrides, message in BAD_BATCH_FORMS:
        response = client.post("/operator/batches/new",
                               data=issue_form(project_id(app, "1001"), **overrides))
        assert response.status_code == 200, overrides
        assert message in text(response), overrides
        assert counts(app) == before, overrides


# -- listings -----------------------------------------------------------------------------------


def listing_form(project: int | None, **overrides: object) -> dict[str, object]:
    form: dict[str, object] = {
        "slug": "cordillera-azul", "status": "listed", "price": "18.50", "currency": "USD",
        "headline": "A mountain forest", "summary": "Short.", "story": "One.\n\nTwo.",
        "location": "San Martín, Peru", "latitude": "-7.5", "longitude": "-76.25",
        "developer": "A developer", "project_type": "REDD+", "area_hectares": "1000",
        "annual_reduction_t": "5000", "total_reduction_t": "100000", "validator": "Someone",
        "co_benefits": "Water\nJobs", "sdgs": "15, 13,13"}
    if project is not None:
        form["project_id"] = project
    form.update(overrides)
    return form


def new_project(app: Flask) -> int:
    with transaction(app) as session:
        return operations.register_project(session, registry="VCS", registry_id="1650",
                                           name="Cordillera Azul", country="PE",
                                           standards="VCS, CCB").id


def test_operator_creates_a_listing_with_an_exact_price(app: Flask, login_as: Login) -> None:
    client = login_as("operator")
    pid = new_project(app)
    assert "Cordillera Azul (VCS-1650)" in text(client.get(f"/operator/listings/new?project={pid}"))
    response = client.post("/operator/listings/new", data=listing_form(pid))
    assert response.status_code == 302, text(response)[:3000]
    created = listing(app, "cordillera-azul")
    assert created.price_minor == 1850 and created.currency == "USD"
    assert created.latitude == Decimal("-7.5") and created.longitude == Decimal("-76.25")
    assert created.sdgs == "13,15"
    assert created.co_benefit_list == ["Water", "Jobs"]
    assert created.area_hectares == 1000 and created.total_reduction_t == 100000
    page = text(client.get("/projects"))
    assert "Cordillera Azul" in page and "$18.50" in page
    assert "SDG 13: Climate action" in text(client.get("/projects/cordillera-azul"))


def test_prices_are_converted_exactly(app: Flask, login_as: Login) -> None:
    client = login_as("operator")
    pid = new_project(app)
    assert client.post("/operator/listings/new",
                       data=listing_form(pid, price="0.10")).status_code == 302
    listing_id = listing(app, "cordillera-azul").id
    assert listing(app, "cordillera-azul").price_minor == 10
    for price, minor in [("1234.5", 123450), ("7", 700), ("19.99", 1999), ("0.01", 1),
                         ("1,000.10", 100010), ("21474836.47", 2_147_483_647)]:
        response = client.post(f"/operator/listings/{listing_id}/edit",
                               data=listing_form(pid, price=price))
        assert response.status_code == 302, (price, text(response)[:2000])
        assert listing(app, "cordillera-azul").price_minor == minor, price


REFUSED_LISTINGS = [
    ({"price": "18.555"}, "at most 2 decimal places"),
    ({"price": "abc"}, "must be a number"),
    ({"price": "0"}, "more than zero"),
    ({"price": "-3"}, "more than zero"),
    ({"price": "1e3"}, "must be a number"),
    ({"currency": "BTC"}, "Not a valid choice"),
    ({"slug": "Alto Mayo!"}, "Lower-case letters"),
    ({"slug": "alto-mayo"}, "already uses that web address"),
    ({"latitude": "-95"}, "between -90 and 90"),
    ({"longitude": "abc"}, "must be a number"),
    ({"sdgs": "1, 18"}, "from 1 to 17"),
    ({"area_hectares": "-1"}, "Number must be"),
    ({"status": "deleted"}, "Not a valid choice"),
]


def test_a_refused_listing_shows_why_and_writes_nothing(app: Flask, login_as: Login) -> None:
    client = login_as("operator")
    pid = new_project(app)
    before = counts(app)
    for overrides, message in REFUSED_LISTINGS:
        response = client.post("/operator/listings/new", data=listing_form(pid, **overrides))
        assert response.status_code == 200, overrides
        assert message in text(response), overrides
        assert counts(app) == before, overrides


def test_a_project_has_one_listing(app: Flask, login_as: Login) -> None:
    client = login_as("operator")
    new_project(app)
    before = counts(app)
    response = client.post("/operator/listings/new",
                           data=listing_form(project_id(app, "944"), slug="alto-mayo-2"))
    assert response.status_code == 200
    assert "Not a valid choice" in text(response)  # only projects without a listing are offered
    assert counts(app) == before


def test_operator_edits_a_listing(app: Flask, login_as: Login) -> None:
    client = login_as("operator")
    alto = listing(app, "alto-mayo")
    page = text(client.get(f"/operator/listings/{alto.id}/edit"))
    assert 'value="18.00"' in page and 'value="-5.75"' in page
    assert "Conservation International" in page
    response = client.post(f"/operator/listings/{alto.id}/edit", data=listing_form(
        alto.project_id, slug="alto-mayo", price="19.99", currency="EUR", headline="New words"))
    assert response.status_code == 302, text(response)[:3000]
    edited = listing(app, "alto-mayo")
    assert (edited.price_minor, edited.currency, edited.headline) == (1999, "EUR", "New words")
    assert edited.project_id == alto.project_id
    assert "€19.99" in text(client.get("/projects/alto-mayo"))
    # A clash with another listing's slug is shown, not raised.
    response = client.post(f"/operator/listings/{alto.id}/edit",
                           data=listing_form(alto.project_id, slug="tambopata"))
    assert response.status_code == 200
    assert "already uses that web address" in text(response)
    assert listing(app, "alto-mayo").price_minor == 1999
    assert client.get("/operator/listings/9999/edit").status_code == 404


def test_unlist_and_list_again(app: Flask, login_as: Login) -> None:
    client = login_as("operator")
    alto = listing(app, "alto-mayo")
    response = client.post(f"/operator/listings/{alto.id}/status", data={"status": "unlisted"})
    assert response.status_code == 302
    assert listing(app, "alto-mayo").status == "unlisted"
    assert "Alto Mayo" not in text(client.get("/projects"))
    assert "Alto Mayo" not in text(client.get("/"))
    assert client.get("/projects/alto-mayo").status_code == 404
    assert "Unlisted" in text(client.get("/operator/"))
    client.post(f"/operator/listings/{alto.id}/status", data={"status": "listed"})
    assert listing(app, "alto-mayo").status == "listed"
    assert "Alto Mayo" in text(client.get("/projects"))
    # Nonsense is refused.
    client.post(f"/operator/listings/{alto.id}/status", data={"status": "deleted"})
    assert listing(app, "alto-mayo").status == "listed"
    assert client.post("/operator/listings/9999/status",
                       data={"status": "listed"}).status_code == 404


def test_operator_forms_need_the_csrf_token(fresh_url: str) -> None:
    import re

    from .conftest import PASSWORD, add_user

    app = make_app(fresh_url, WTF_CSRF_ENABLED=True)
    try:
        add_user(app, "op@example.org", role="operator")
        client = app.test_client()

        def token(url: str) -> str:
            found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"|'
                              r'type="hidden" name="csrf_token" value="([^"]+)"|'
                              r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"',
                              client.get(url).get_data(as_text=True))
            assert found, url
            return next(g for g in found.groups() if g)

        assert client.post("/login", data={"email": "op@example.org", "password": PASSWORD,
                                           "csrf_token": token("/login")}).status_code == 302
        data = {"registry": "VCS", "registry_id": "1650", "name": "Cordillera Azul",
                "country": "PE"}
        assert client.post("/operator/projects/new", data=data).status_code == 400
        assert counts(app)["projects"] == 0
        data["csrf_token"] = token("/operator/projects/new")
        assert client.post("/operator/projects/new", data=data).status_code == 302
        assert counts(app)["projects"] == 1
    finally:
        dispose(app)
