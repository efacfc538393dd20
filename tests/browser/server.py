"""Browser tests' shared parts: a live Selva server on a fresh SQLite database, Debian's
Chromium driven by Playwright, and the page steps several tests share.

The server is the real app (CSRF on, the demo payment gateway, a checkpoint key of its own)
served by werkzeug in a thread; the browser talks to it over HTTP like any visitor. Tests
import the fixtures from here (``from .server import browser, live  # noqa: F401``).

Chromium is ``/usr/bin/chromium`` (never a downloaded browser). Without it the tests skip,
unless ``CARBON_REQUIRE_BROWSER=1``, when they fail. ``CARBON_SCREENSHOTS=DIR`` makes the
screenshot test save its PNGs there.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ledger.checkpoint import write_keypair
from tests.marketplace.shop import PASSWORD, add_user, load_demo, make_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
REQUIRE_BROWSER = os.environ.get("CARBON_REQUIRE_BROWSER") == "1"
ORIGIN = "selva.example/ledger"
TIMEOUT_MS = 10_000
"""Playwright's wait for any one step; the whole suite takes well under a minute."""

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
ALTO_MAYO = "alto-mayo"

_counter = itertools.count(1)


def unique_email(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_counter)}@example.org"


# -- the live server ------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr (pytest still captures errors through ``logging``)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass
class LiveServer:
    url: str
    app: Flask
    database_url: str
    keys: tuple[Path, Path]

    def session(self) -> Session:
        """A session on the server's own engine, to check what the pages did to the ledger.
        Use it as a context manager; it only reads."""
        return Session(bind=self.app.extensions["selva_engine"])

    def add_user(self, name: str, email: str | None = None) -> str:
        """A customer who can log in with ``PASSWORD`` (faster than signing up by page)."""
        email = email or unique_email("buyer")
        add_user(self.app, email, name=name)
        return email


@pytest.fixture(scope="module")
def live(databases: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app on a fresh SQLite database with the demo data, served on a free port."""
    keys = write_keypair(tmp_path_factory.mktemp("keys"), ORIGIN)
    database_url = databases.fresh("sqlite")
    app = make_app(database_url, WTF_CSRF_ENABLED=True, CHECKPOINT_KEY=str(keys[0]),
                   PAYMENT_GATEWAY="demo")
    load_demo(app)
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True,
                                         request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="selva-live-server",
                              daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", app, database_url, keys)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        app.extensions["selva_engine"].dispose()


# -- the browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, launched by Playwright from /usr/bin/chromium."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium package to run browser tests"
        if REQUIRE_BROWSER:
            pytest.fail(f"CARBON_REQUIRE_BROWSER=1 but {message}")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Pages:
    """Opens pages in fresh browser contexts (each its own cookie jar) and closes them all."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.contexts: list[Any] = []
        self.errors: list[str] = []

    def new(self, viewport: dict[str, int] | None = None, *, phone: bool = False) -> Any:
        context = self.browser.new_context(
            base_url=self.base_url, viewport=viewport or DESKTOP, is_mobile=phone,
            has_touch=phone, device_scale_factor=1,
        )
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()


@pytest.fixture
def pages(browser: Any, live: LiveServer) -> Iterator[Pages]:
    opened = Pages(browser, live.url)
    try:
        yield opened
    finally:
        opened.close()
    assert not opened.errors, f"JavaScript errors on the pages: {opened.errors}"


# -- steps shared by the tests ----------------------------------------------------------------


def sign_up(page: Any, name: str, email: str) -> None:
    """Fill in and send the sign-up form the page is on."""
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_load_state()


def log_in(page: Any, email: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def add_to_cart(page: Any, tonnes: int, slug: str = ALTO_MAYO, vintage: str | None = None) -> None:
    """From the project page: choose the vintage (by its label's start) and add tonnes."""
    if not page.url.endswith(f"/projects/{slug}"):
        page.goto(f"/projects/{slug}")
    if vintage is not None:
        select = page.get_by_label("Vintage", exact=True)
        option = select.locator("option", has_text=vintage).first
        select.select_option(value=option.get_attribute("value"))
    page.get_by_label("Tonnes").fill(str(tonnes))
    page.get_by_role("button", name="Add to cart").click()
    page.wait_for_url(re.compile(r"/cart$"))


def open_payment(page: Any, *, beneficiary: str | None, buy_for: str | None = None,
                 action: str = "retire", expect_beneficiary: str | None = None) -> str:
    """From the cart: fill the checkout form and send it; stop on the demo gateway's payment
    page and return the order reference it shows.

    ``beneficiary=None`` keeps the name the form suggests; ``expect_beneficiary`` checks it.
    """
    page.get_by_role("link", name="Check out").click()
    page.wait_for_url(re.compile(r"/checkout$"))
    if buy_for is not None:
        page.get_by_label("Buy for").select_option(label=buy_for)
    field = page.get_by_role("textbox", name=re.compile(r"^Beneficiary"))
    if expect_beneficiary is not None:
        assert field.input_value() == expect_beneficiary
    if beneficiary is not None:
        field.fill(beneficiary)
    page.locator(f"input[name=action][value={action}]").check()
    page.get_by_role("button", name=re.compile(r"^Continue to payment")).click()
    page.wait_for_url(re.compile(r"/demo-checkout/cs_demo_[0-9a-f]+$"))
    match = re.search(r"Order (SLV-[0-9A-F]+)", page.locator("main").inner_text())
    assert match, page.locator("main").inner_text()
    return match.group(1)


def pay(page: Any, reference: str) -> None:
    """On the demo payment page: pay, and land on the order's success page."""
    page.get_by_role("button", name="Pay (demo)").click()
    page.wait_for_url(re.compile(rf"/orders/{reference}/success$"))


def check_out(page: Any, **details: Any) -> str:
    """Check out (``open_payment``'s arguments) and pay; return the order reference."""
    reference = open_payment(page, **details)
    pay(page, reference)
    return reference


def wait_fulfilled(page: Any) -> None:
    """The success page refreshes itself until the webhook has fulfilled the order."""
    from playwright.sync_api import expect

    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Thank you: your order is complete", timeout=TIMEOUT_MS)
