"""Errors under /api/ are RFC 9457 problem details, never HTML or a stack trace (404, 405,
500 included), while the site keeps its HTML error pages; rate limits per key and per
address answer 429 with Retry-After."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from marketplace.api import projects

from .test_api_helpers import (  # noqa: F401  (fixtures)
    Company,
    api_app_for,
    app,
    assert_problem,
    bearer,
    client,
    company,
    keypair,
    make_company,
)


def test_unknown_addresses_and_methods_are_problems(client: FlaskClient, company: Company) -> None:
    for path in ("/api/v1/nothing-here", "/api/v2/projects", "/api/v1/orders/a/b/c"):
        response = client.get(path, headers={"Accept": "text/html", **company.headers})
        body = assert_problem(response, 404, "about:blank")
        assert body["title"] == "Not Found" and body["instance"] == path
    wrong = client.delete("/api/v1/projects", headers=company.headers)
    assert_problem(wrong, 405, "about:blank")
    assert wrong.headers["Allow"] == "GET, HEAD, OPTIONS"
    put = client.put("/api/v1/orders", json={}, headers=company.headers)
    assert_problem(put, 405)
    # outside the API the site's HTML error pages are untouched
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.mimetype == "text/html"


def test_an_unexpected_error_is_a_500_problem_without_a_trace(
        client: FlaskClient, company: Company, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def explode(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(projects, "list_projects", explode)
    response = client.get("/api/v1/projects", headers=company.headers)
    body = assert_problem(response, 500, "about:blank")
    text = response.get_data(as_text=True)
    assert "hunter2" not in text and "RuntimeError" not in text and "<html" not in text
    assert body["detail"] == "Something went wrong on our side; it has been logged."
    assert "hunter2" in caplog.text  # logged for us, with its trace


def test_problem_documents_have_the_rfc_9457_members(client: FlaskClient,
                                                     company: Company) -> None:
    response = client.post("/api/v1/quotes", json={"quantity": 0, "project": "x"},
                           headers=company.headers)
    body = assert_problem(response, 422, "validation")
    assert set(body) == {"type", "title", "status", "detail", "instance", "errors"}
    assert body["type"].startswith("http://localhost/developers#problem-")
    assert sorted(body["errors"], key=lambda e: e["pointer"]) == [
        {"pointer": "#/project", "detail": "Not a valid integer."},
        {"pointer": "#/quantity",
         "detail": "Must be greater than or equal to 1 and less than or equal to 1000000."},
    ]
    developers = client.get("/developers").get_data(as_text=True)
    assert 'id="problem-validation"' in developers and 'id="problem-rate-limited"' in developers
    assert "/api/v1/orders" in developers and "Idempotency-Key" in developers


@pytest.fixture
def limited(databases: Any, backend: str, keypair: tuple[Path, Path]) -> Flask:
    return api_app_for(databases.fresh(backend), keypair[0], RATELIMIT_ENABLED=True,
                       API_RATE_LIMIT="3 per minute", API_PUBLIC_RATE_LIMIT="2 per minute")


def test_rate_limits_per_key_with_retry_after(limited: Flask) -> None:
    client = limited.test_client()
    one, two = make_company(limited, "One"), make_company(limited, "Two")
    for _ in range(3):
        ok = client.get("/api/v1/orders", headers=one.headers)
        assert ok.status_code == 200
        assert ok.headers["X-RateLimit-Limit"] == "3"
    assert ok.headers["X-RateLimit-Remaining"] == "0"
    refused = client.get("/api/v1/orders", headers=one.headers)
    body = assert_problem(refused, 429, "rate-limited")
    retry = int(refused.headers["Retry-After"])
    assert 1 <= retry <= 60 and "retry in" in body["detail"]
    # another key of the same organisation has its own budget; so has another organisation
    assert client.get("/api/v1/orders", headers=one.test_headers).status_code == 200
    assert client.get("/api/v1/orders", headers=two.headers).status_code == 200
    # without a key (public calls, bad keys) the budget is per address
    assert client.get("/api/v1/registry/totals").status_code == 200
    assert_problem(client.get("/api/v1/orders", headers=bearer("sk_live_" + "B" * 40)), 401)
    public = client.get("/api/v1/registry/totals")
    assert_problem(public, 429, "rate-limited")
    assert int(public.headers["Retry-After"]) >= 1
    assert_problem(client.get("/api/v1/orders", headers=bearer("sk_live_" + "B" * 40)), 429)
