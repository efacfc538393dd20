"""A forgotten password reset in a real browser, against a live server: the login page's link,
the request (the same answer for any address), the emailed link from the outbox, the new
password, logging in with it; the link refused the second time."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from marketplace.models.mail import OutboxEmail
from tests.marketplace.shop import add_user

from .server import LiveServer, Pages, browser, live, pages  # noqa: F401  (fixtures used by name)


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def test_a_forgotten_password_is_reset_in_the_browser(pages: Pages, live: LiveServer) -> None:
    page = pages.new()
    add_user(live.app, "forgot@example.org", name="Flo Forgot")
    page.goto("/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.wait_for_url(re.compile(r"/password/forgot$"))
    page.get_by_label("Email").fill("forgot@example.org")
    page.get_by_role("button", name="Send the link").click()
    page.wait_for_url(re.compile(r"/login$"))
    expect(page.locator("main")).to_contain_text("a link to reset its password is on its way")

    with live.session() as session:
        body = session.scalars(select(OutboxEmail.body).where(
            OutboxEmail.to_address == "forgot@example.org",
            OutboxEmail.kind == "password_reset")).one()
    found = re.search(r"https?://\S+/password/reset/\S+", body)
    assert found is not None, body
    link = urlsplit(found.group(0)).path

    page.goto(link)
    page.get_by_label("New password", exact=True).fill("a shiny new password")
    page.get_by_label("Repeat the new password").fill("a shiny new password")
    page.get_by_role("button", name="Change the password").click()
    page.wait_for_url(re.compile(r"/login$"))
    expect(page.locator("main")).to_contain_text("Your password is changed")
    page.get_by_label("Email").fill("forgot@example.org")
    page.get_by_label("Password").fill("a shiny new password")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    page.goto("/account")
    expect(page.get_by_role("heading", level=1)).to_have_text("Flo Forgot")

    page.goto(link)  # used once: refused
    expect(page.get_by_role("heading", level=1)).to_have_text("This link no longer works")
