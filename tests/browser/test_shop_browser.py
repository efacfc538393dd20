"""The shop in a real browser (issues 3 and 4): a visitor's first purchase, a company holding
and later retiring, screenshots at phone and desktop sizes, and CSRF refusals.

Runs against a live server with CSRF on (``tests/browser/server.py``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ledger import canonical
from ledger.schema import Account, Batch, Beneficiary, Block, Entry, Project
from marketplace.accounts import account_of
from marketplace.models import Order, Organisation, Reservation, User

from .server import (  # noqa: F401  (fixtures)
    ALTO_MAYO,
    DESKTOP,
    PHONE,
    LiveServer,
    Pages,
    add_to_cart,
    browser,
    check_out,
    live,
    log_in,
    open_payment,
    pages,
    pay,
    sign_up,
    unique_email,
    wait_fulfilled,
)


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def test_visitor_filters_signs_up_buys_and_sees_their_retirement(
        pages: Pages, live: LiveServer) -> None:
    expect = _expect()
    page = pages.new()
    name = "Rosa Quispe Huamán"
    email = unique_email("rosa")

    # Browse: home, the catalogue, filtered to Peru.
    page.goto("/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Projects").click()
    page.wait_for_url(re.compile(r"/projects$"))
    page.get_by_label("Country").select_option(label="Peru")
    page.get_by_role("button", name="Show projects").click()
    page.wait_for_url(re.compile(r"/projects\?(.*&)?country=PE\b"))
    expect(page.get_by_label("Country")).to_have_value("PE")
    cards = page.locator(".card")
    assert cards.count() >= 1
    for country in cards.locator(".card-country").all_inner_texts():
        assert country.strip() == "Peru"

    # Open Alto Mayo.
    page.get_by_role("link", name="Alto Mayo Protected Forest", exact=True).click()
    page.wait_for_url(re.compile(rf"/projects/{ALTO_MAYO}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Alto Mayo Protected Forest")
    project_url = page.url

    # Sign up from the project page's header.
    page.get_by_role("link", name="Sign up").click()
    page.wait_for_url(re.compile(r"/signup"))
    sign_up(page, name, email)
    expect(page.locator(".flash-success")).to_contain_text(f"Welcome, {name}.")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name=name)).to_be_visible()
    if page.url != project_url:
        # The header's sign-up link carries no ?next=, so sign-up lands on the home page.
        page.goto(project_url)

    # 2 t in the cart, then checkout with the prefilled beneficiary (their name).
    add_to_cart(page, 2)
    expect(page.locator("table.cart tbody tr")).to_have_count(1)
    expect(page.locator("table.cart input[name=quantity]")).to_have_value("2")
    reference = open_payment(page, beneficiary=None, expect_beneficiary=name)

    # Before paying, the success page (in a second tab) says it is waiting and refreshes
    # itself; once the payment is made it shows the retirement without anyone reloading it.
    waiting = page.context.new_page()
    waiting.goto(f"/orders/{reference}/success")
    expect(waiting.get_by_role("heading", level=1)).to_have_text("Confirming your payment…")
    expect(waiting.locator('meta[http-equiv="refresh"]')).to_have_count(1)
    pay(page, reference)
    wait_fulfilled(page)
    wait_fulfilled(waiting)
    expect(waiting.locator('meta[http-equiv="refresh"]')).to_have_count(0)
    waiting.close()
    expect(page.locator("main")).to_contain_text(
        f"2 t have been retired on the ledger in the name of {name}")
    expect(page.get_by_role("heading", name=f"Retired in the name of {name}")).to_be_visible()
    expect(page.locator(".retirement")).to_have_count(1)
    expect(page.locator(".retirement")).to_contain_text("2 t retired")

    # The ledger really holds a retirement of 2 t in that name, from Alto Mayo.
    with live.session() as session:
        order = session.scalars(select(Order).where(Order.reference == reference)).one()
        assert order.status == "fulfilled"
        assert order.action == "retire"
        assert order.beneficiary == name
        buyer = session.scalars(select(User).where(User.email == email)).one()
        assert order.user_id == buyer.id
        seqs = session.scalars(select(Reservation.retire_seq)
                               .where(Reservation.order_id == order.id)).all()
        assert len(seqs) == 1 and seqs[0] is not None
        entry = session.get(Entry, seqs[0])
        assert entry is not None and entry.kind == "retire"
        data = canonical.loads(bytes(entry.record))["data"]
        assert data["quantity"] == 2
        assert data["account"] == account_of(session, buyer).id
        person = session.get(Beneficiary, entry.seq)
        assert person is not None and person.name == name
        blocks = session.scalars(select(Block).where(Block.created_by == entry.seq)).all()
        assert {b.state for b in blocks} == {"retired"}
        assert sum(b.quantity for b in blocks) == 2
        projects = session.scalars(
            select(Project.registry_id).join(Batch, Batch.project_id == Project.id)
            .where(Batch.id.in_({b.batch_id for b in blocks}))).all()
        assert set(projects) == {"944"}
    page.close()


def test_company_admin_buys_to_hold_then_retires_part(pages: Pages, live: LiveServer) -> None:
    expect = _expect()
    page = pages.new()
    admin = "Lucía Fernández"
    company = f"Andes Roasters {os.getpid()}"
    beneficiary = "Andes Roasters S.A.C., 2025 office emissions"

    page.goto("/signup")
    sign_up(page, admin, unique_email("admin"))

    # Create the organisation.
    page.goto("/organisations")
    page.get_by_label("Organisation name").fill(company)
    page.get_by_role("button", name="Create organisation").click()
    page.wait_for_url(re.compile(r"/organisations/\d+$"))
    org_id = int(page.url.rsplit("/", 1)[1])
    expect(page.get_by_role("heading", level=1)).to_have_text(company)
    expect(page.locator("main")).to_contain_text("You are an admin.")

    # Buy 100 t of the 2017 vintage for the organisation, to hold.
    page.goto(f"/projects/{ALTO_MAYO}")
    vintage = page.get_by_label("Vintage", exact=True).locator("option", has_text=re.compile(r"^2017 "))
    batch_id = vintage.get_attribute("value")
    assert batch_id and batch_id.isdigit()
    add_to_cart(page, 100, vintage="2017 ")
    reference = check_out(page, beneficiary=company, buy_for=company, action="hold")
    wait_fulfilled(page)
    expect(page.locator("main")).to_contain_text("100 t are now held")
    expect(page.locator(".retirement")).to_have_count(0)

    # The holdings page shows the 100 t under the organisation.
    page.get_by_role("link", name="your holdings").click()
    page.wait_for_url(re.compile(r"/holdings$"))
    held = page.locator(f'[data-holding="org:{org_id}-{batch_id}"]')
    expect(held).to_have_text("100")
    expect(page.locator('[data-holding^="self-"]')).to_have_count(0)

    # Retire 40 t for a named beneficiary.
    page.get_by_label("Held by").select_option(label=company)
    page.get_by_label("Project and vintage").select_option(value=batch_id)
    page.get_by_label("Tonnes to retire").fill("40")
    page.get_by_role("textbox", name="Beneficiary", exact=True).fill(beneficiary)
    page.get_by_role("button", name="Retire", exact=True).click()
    page.wait_for_url(re.compile(r"/holdings$"))
    expect(page.locator(".flash-success")).to_contain_text(f"Retired 40 t for {beneficiary}")
    expect(held).to_have_text("60")

    # The organisation's page agrees, and so does the ledger.
    page.goto(f"/organisations/{org_id}")
    expect(page.locator("main")).to_contain_text("60 t · Alto Mayo Protected Forest · vintage 2017")
    with live.session() as session:
        org = session.get(Organisation, org_id)
        assert org is not None
        order = session.scalars(select(Order).where(Order.reference == reference)).one()
        assert (order.status, order.action, order.organisation_id) == ("fulfilled", "hold", org_id)
        assert order.ledger_account_id == account_of(session, org).id
        tradable = session.scalar(
            select(func.sum(Block.last_serial - Block.first_serial + 1))
            .where(Block.account_id == account_of(session, org).id, Block.state == "tradable",
                   Block.spent_by.is_(None)))
        assert tradable == 60
        retirement = session.scalars(
            select(Entry).join(Beneficiary, Beneficiary.seq == Entry.seq)
            .where(Entry.kind == "retire", Beneficiary.name == beneficiary)).one()
        data = canonical.loads(bytes(retirement.record))["data"]
        assert (data["quantity"], data["account"]) == (40, account_of(session, org).id)
        assert session.scalar(select(Account.kind).where(Account.id == account_of(session, org).id)) \
            == "organisation"
    page.close()


def _overflow(page: Any) -> int:
    """How many CSS pixels the page is wider than the viewport (0 when it fits)."""
    return int(page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - document.documentElement.clientWidth"))


def test_screenshots_of_project_and_checkout_pages(pages: Pages, live: LiveServer) -> None:
    """Full-page PNGs at a phone and a desktop size, saved to $CARBON_SCREENSHOTS if set.
    Whether or not they are saved, neither page may scroll sideways."""
    expect = _expect()
    target = os.environ.get("CARBON_SCREENSHOTS")
    shots = Path(target) if target else None
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
    email = live.add_user("María José Villanueva Castañeda de la Cruz")
    overflow: dict[str, int] = {}
    for label, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        page = pages.new(viewport, phone=label == "phone")
        log_in(page, email)
        page.goto(f"/projects/{ALTO_MAYO}")
        expect(page.get_by_role("button", name="Add to cart")).to_be_visible()
        overflow[f"project-{label}"] = _overflow(page)
        if shots is not None:
            page.screenshot(path=str(shots / f"project-{label}.png"), full_page=True)
        add_to_cart(page, 3)
        page.goto("/checkout")
        expect(page.get_by_role("heading", name="Checkout")).to_be_visible()
        overflow[f"checkout-{label}"] = _overflow(page)
        if shots is not None:
            page.screenshot(path=str(shots / f"checkout-{label}.png"), full_page=True)
        page.close()
    assert overflow == dict.fromkeys(overflow, 0), f"pages wider than the viewport: {overflow}"


def test_forms_posted_without_their_csrf_token_are_refused(pages: Pages, live: LiveServer) -> None:
    expect = _expect()
    page = pages.new()

    # Add to cart, its hidden token removed: 400, and the cart stays empty.
    page.goto(f"/projects/{ALTO_MAYO}")
    page.evaluate("document.querySelector('form.buy-form input[name=csrf_token]').remove()")
    assert page.locator("form.buy-form input[name=csrf_token]").count() == 0
    page.get_by_label("Tonnes").fill("5")
    with page.expect_response(lambda r: r.url.endswith("/cart/add")) as refused:
        page.get_by_role("button", name="Add to cart").click()
    assert refused.value.status == 400
    expect(page.locator("main")).to_contain_text("CSRF")
    page.goto("/cart")
    expect(page.locator("main")).to_contain_text("Your cart is empty.")

    # The sign-up form, token removed: 400, and no account is created.
    email = unique_email("nocsrf")
    page.goto("/signup")
    page.evaluate("document.querySelector('main form input[name=csrf_token]').remove()")
    page.get_by_label("Your name").fill("No Token")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill("a long enough password")
    page.get_by_label("Repeat the password").fill("a long enough password")
    with page.expect_response(lambda r: "/signup" in r.url
                              and r.request.method == "POST") as refused:
        page.get_by_role("button", name="Create account").click()
    assert refused.value.status == 400
    with live.session() as session:
        assert session.scalar(select(User.id).where(User.email == email)) is None

    # With the token left in place the same page works (the refusal was the token's doing).
    page.goto(f"/projects/{ALTO_MAYO}")
    page.get_by_label("Tonnes").fill("5")
    with page.expect_response(lambda r: r.url.endswith("/cart/add")) as accepted:
        page.get_by_role("button", name="Add to cart").click()
    assert accepted.value.status == 302
    page.wait_for_url(re.compile(r"/cart$"))
    expect(page.locator("table.cart input[name=quantity]")).to_have_value("5")
    page.close()


def test_the_checkout_page_refuses_to_render_inside_a_frame(pages: Pages,
                                                            live: LiveServer) -> None:
    """frame-ancestors 'none' (and X-Frame-Options: DENY): not even a page of the same origin
    can frame the checkout, so no other site can dress it up to steal a click. The control
    frame, a page without those headers, renders in the same place."""
    expect = _expect()
    page = pages.new()
    email = live.add_user("Framed Buyer")
    log_in(page, email)
    add_to_cart(page, 1)
    page.goto("/checkout")
    expect(page.get_by_role("button", name=re.compile(r"^Continue to payment"))).to_be_visible()

    framer = f"{live.url}/__framer"
    control = f"{live.url}/__control"
    page.route(framer, lambda route: route.fulfill(
        content_type="text/html",
        body=(f'<iframe id="checkout" src="{live.url}/checkout"></iframe>'
              f'<iframe id="control" src="{control}"></iframe>')))
    page.route(control, lambda route: route.fulfill(
        content_type="text/html", body="<p>control frame rendered</p>"))
    with page.expect_response(f"{live.url}/checkout") as answer:
        page.goto(framer)
    response = answer.value
    assert response.status == 200
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    control_frame = page.frame(url=control)
    assert control_frame is not None
    expect(control_frame.locator("p")).to_have_text("control frame rendered")
    page.wait_for_timeout(300)
    rendered = [frame for frame in page.frames if frame.url == f"{live.url}/checkout"]
    for frame in rendered:
        assert frame.locator("text=Continue to payment").count() == 0
    assert page.frame_locator("#checkout").locator("form").count() == 0
