"""Every response carries the browser protections (``marketplace.security``), the pages keep
to the policy (no inline script or style), and a request body has a size limit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from marketplace import create_app

from .conftest import CONFIG

Login = Any

ROOT = Path(__file__).resolve().parents[2]

PAGES = [
    "/", "/projects", "/projects/alto-mayo", "/registry", "/registry/retirements",
    "/registry/origin", "/registry/entries/1", "/ledger/checkpoint", "/ledger/key",
    "/ledger/manifest.json", "/footprint", "/login", "/signup", "/cart", "/developers",
    "/api/v1/projects", "/api/v1/openapi.json", "/static/site.css", "/static/footprint.js",
    "/no-such-page", "/registry/entries/999999999",
]


def assert_protected(response: Any, path: str) -> None:
    headers = response.headers
    csp = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp, (path, csp)
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp, (path, csp)
    assert "object-src 'none'" in csp and "base-uri 'none'" in csp, (path, csp)
    assert headers.get("X-Frame-Options") == "DENY", path
    assert headers.get("X-Content-Type-Options") == "nosniff", path
    assert headers.get("Referrer-Policy") == "strict-origin-when-cross-origin", path
    assert "Strict-Transport-Security" not in headers, path  # development: plain HTTP


@pytest.mark.parametrize("path", PAGES)
def test_every_kind_of_response_carries_the_headers(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    response.close()
    # 503: the ledger's endpoints on an app with no signing key configured (as here)
    assert response.status_code in (200, 401, 404, 503), (path, response.status_code)
    assert_protected(response, path)


def test_the_back_office_and_forms_carry_them_too(client: FlaskClient, login_as: Login) -> None:
    operator = login_as("operator")
    for path in ("/operator/", "/operator/projects/new", "/operator/origin", "/orders",
                 "/holdings", "/organisations"):
        response = operator.get(path)
        assert response.status_code == 200, path
        assert_protected(response, path)
    refused = operator.post("/operator/projects/new", data={"name": "\x00"})
    assert_protected(refused, "POST /operator/projects/new")


def test_hsts_and_stripe_checkout_in_production(app: Flask, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBON_ENV", "production")
    production = create_app({**CONFIG, "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
                             "PAYMENT_GATEWAY": "stripe", "STRIPE_SECRET_KEY": "sk_test_x",
                             "STRIPE_WEBHOOK_SECRET": "whsec_x"})
    response = production.test_client().get("/static/site.css")
    response.close()
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    csp = response.headers["Content-Security-Policy"]
    assert "form-action 'self' https://checkout.stripe.com" in csp
    assert "form-action 'self';" in app.test_client().get("/").headers[
        "Content-Security-Policy"]


def test_a_body_over_the_limit_is_refused_before_any_view_reads_it(app: Flask) -> None:
    client = app.test_client()
    big = "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    page = client.post("/cart/add", data={"quantity": big})
    assert page.status_code == 413
    webhook = client.post("/webhooks/stripe", data=big, headers={"Stripe-Signature": "t=1"})
    assert webhook.status_code == 413


def test_templates_have_no_inline_script_or_style() -> None:
    """The policy allows scripts and styles from files only: nothing inline may creep in."""
    inline_script = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
    inline_style = re.compile(r"<style\b|\sstyle=\"", re.IGNORECASE)
    handler = re.compile(r"\son[a-z]+=\"", re.IGNORECASE)
    offenders = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        if path.name.endswith("_print.html"):
            continue  # rendered to PDF on the server, never served to a browser
        text = path.read_text(encoding="utf-8")
        for pattern in (inline_script, inline_style, handler):
            for found in pattern.finditer(text):
                offenders.append(f"{path.relative_to(ROOT)}: {found.group(0)!r}")
    assert offenders == []


def test_only_an_operator_may_send_the_large_origin_upload(app: Flask, login_as: Login) -> None:
    """The origin registry's CSV may be large, but only an operator's upload is read past the
    default limit: a visitor's or an auditor's is refused before the form is parsed."""
    big = b"x" * (2 * 1024 * 1024)

    boundary = "selva-upload-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"registry\"\r\n\r\n"
            f"verra\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"export.csv\"\r\nContent-Type: text/csv\r\n\r\n").encode() + big \
        + f"\r\n--{boundary}--\r\n".encode()

    def upload(client: FlaskClient) -> tuple[int, str]:
        # Raw bytes (the test client would spool a form with a file to a temporary file
        # that it never closes).
        response = client.post("/operator/origin/import", data=body,
                               content_type=f"multipart/form-data; boundary={boundary}")
        return response.status_code, response.get_data(as_text=True)

    assert upload(app.test_client())[0] == 413
    assert upload(login_as("auditor"))[0] == 413
    operator = app.test_client()
    email = "ops-upload@example.org"
    from .conftest import PASSWORD, add_user

    add_user(app, email, role="operator")
    assert operator.post("/login", data={"email": email, "password": PASSWORD}).status_code == 302
    status, page = upload(operator)  # read in full, then refused as not a Verra export
    assert status == 200 and "header" in page.lower()
