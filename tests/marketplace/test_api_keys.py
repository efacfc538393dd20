"""API keys: made by an organisation's admin in the browser (or the CLI), shown once, stored
as a hash with a visible prefix, revoked; every way a request can fail to authenticate (401)
or lack the scope (403); the admin pages' membership and CSRF checks."""

from __future__ import annotations

import base64
import hashlib
import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from marketplace.api.keys import KEY_PATTERN
from marketplace.models import Membership
from marketplace.models.api import ApiKey

from .shop import transaction
from .test_api_helpers import (  # noqa: F401  (fixtures)
    Company,
    add_member,
    app,
    assert_problem,
    bearer,
    client,
    company,
    keypair,
    login,
    make_company,
)

NEW_KEY = re.compile(r'id="new-key">(sk_(?:live|test)_[A-Za-z0-9]{40})<')


def test_no_key_bad_key_unknown_key_are_401(client: FlaskClient, company: Company) -> None:
    well_formed_but_unknown = "sk_live_" + "A" * 40
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer sk_live_short"},
                    {"Authorization": "Token " + company.live},
                    {"Authorization": "Basic !!!not-base64"},
                    bearer(well_formed_but_unknown), bearer(company.live + "x")):
        response = client.get("/api/v1/projects", headers=headers)
        body = assert_problem(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert company.live not in response.get_data(as_text=True)
        assert body["instance"] == "/api/v1/projects"
    assert client.get("/api/v1/projects", headers=company.headers).status_code == 200
    basic = base64.b64encode(f"{company.live}:".encode()).decode()
    assert client.get("/api/v1/projects",
                      headers={"Authorization": f"Basic {basic}"}).status_code == 200


def test_cookies_do_not_authenticate_the_api(app: Flask, client: FlaskClient,
                                             company: Company) -> None:
    login(client, company.email)
    assert client.get("/organisations").status_code == 200
    assert_problem(client.get("/api/v1/orders"), 401, "unauthorized")


def test_revoked_key_and_key_of_a_departed_member_are_401(app: Flask, client: FlaskClient,
                                                          company: Company) -> None:
    login(client, company.email)
    with transaction(app) as session:
        key = session.scalars(select(ApiKey).where(ApiKey.key_hash == hashlib.sha256(
            company.live.encode()).hexdigest())).one()
        key_id = key.id
    assert client.post(f"/organisations/{company.org_id}/api-keys/{key_id}/revoke").status_code == 302
    body = assert_problem(client.get("/api/v1/projects", headers=company.headers), 401)
    assert "revoked" in body["detail"]
    # the other keys still work, until their creator leaves the organisation
    assert client.get("/api/v1/projects", headers=company.test_headers).status_code == 200
    with transaction(app) as session:
        membership = session.scalars(select(Membership).where(
            Membership.organisation_id == company.org_id)).one()
        session.delete(membership)
    body = assert_problem(client.get("/api/v1/projects", headers=company.test_headers), 401)
    assert "no longer a member" in body["detail"]


def test_read_only_key_reads_but_may_not_write(client: FlaskClient, company: Company) -> None:
    read = bearer(company.read)
    for path in ("/api/v1/projects", "/api/v1/orders", "/api/v1/holdings", "/api/v1/retirements"):
        assert client.get(path, headers=read).status_code == 200, path
    for path, body in (("/api/v1/quotes", {"project": 1, "quantity": 1}),
                       ("/api/v1/orders", {"lines": [{"project": 1, "quantity": 1}],
                                           "action": "hold"}),
                       ("/api/v1/retirements", {"quantity": 1})):
        response = client.post(path, json=body, headers=read)
        assert_problem(response, 403, "insufficient-scope")


def test_admin_creates_a_key_shown_once_and_stored_as_a_hash(app: Flask, client: FlaskClient,
                                                             company: Company) -> None:
    login(client, company.email)
    page = client.post(f"/organisations/{company.org_id}/api-keys",
                       data={"name": "Expense tool", "mode": "test", "scope": "write"})
    assert page.status_code == 201
    assert page.headers["Cache-Control"] == "no-store"
    match = NEW_KEY.search(page.get_data(as_text=True))
    assert match, page.get_data(as_text=True)[:2000]
    secret = match.group(1)
    assert secret.startswith("sk_test_") and KEY_PATTERN.fullmatch(secret)
    with transaction(app) as session:
        stored = session.scalars(select(ApiKey).where(ApiKey.name == "Expense tool",
                                                      ApiKey.organisation_id == company.org_id)
                                 ).one()
        assert stored.key_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert stored.prefix == secret[:16] and not stored.livemode and stored.scope == "write"
        row = [str(getattr(stored, c.key)) for c in ApiKey.__table__.columns]
        assert not any(secret in value for value in row)
    listing = client.get(f"/organisations/{company.org_id}/api-keys").get_data(as_text=True)
    assert secret not in listing and secret[:16] in listing
    assert client.get("/api/v1/orders", headers=bearer(secret)).status_code == 200
    with transaction(app) as session:
        assert session.get(ApiKey, stored.id).last_used_at is not None
    live = client.post(f"/organisations/{company.org_id}/api-keys",
                       data={"name": "Booking flow", "mode": "live", "scope": "read"})
    live_secret = NEW_KEY.search(live.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    assert live_secret.startswith("sk_live_")
    assert_problem(client.post("/api/v1/quotes", json={"project": 1, "quantity": 1},
                               headers=bearer(live_secret)), 403, "insufficient-scope")
    invalid = client.post(f"/organisations/{company.org_id}/api-keys",
                          data={"name": "", "mode": "live", "scope": "write"})
    assert invalid.status_code == 200 and "new-key" not in invalid.get_data(as_text=True)


def test_admin_pages_hide_from_non_members_and_refuse_members(app: Flask,
                                                              client: FlaskClient) -> None:
    mine, theirs = make_company(app, "Mine"), make_company(app, "Theirs")
    member = add_member(app, mine.org_id)
    with transaction(app) as session:
        their_key = session.scalars(select(ApiKey.id).where(
            ApiKey.organisation_id == theirs.org_id)).first()
    login(client, mine.email)
    for path in (f"/organisations/{theirs.org_id}/api-keys",
                 f"/organisations/{theirs.org_id}/webhooks", "/organisations/999999/api-keys"):
        assert client.get(path).status_code == 404
        assert client.post(path, data={"name": "x"}).status_code == 404
    assert client.post(f"/organisations/{theirs.org_id}/api-keys/{their_key}/revoke"
                       ).status_code == 404
    assert client.post(f"/organisations/{mine.org_id}/api-keys/{their_key}/revoke"
                       ).status_code == 404
    assert client.post(f"/organisations/{theirs.org_id}/webhooks/1/disable").status_code == 404
    client.post("/logout")
    login(client, member)
    for path in (f"/organisations/{mine.org_id}/api-keys", f"/organisations/{mine.org_id}/webhooks"):
        assert client.get(path).status_code == 403
        assert client.post(path, data={"name": "x", "mode": "live", "scope": "write"}
                           ).status_code == 403
    assert client.get("/api/v1/projects", headers=theirs.headers).status_code == 200


def test_admin_forms_need_a_csrf_token_but_the_api_does_not(app: Flask, client: FlaskClient,
                                                            company: Company) -> None:
    login(client, company.email)
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        refused = client.post(f"/organisations/{company.org_id}/api-keys",
                              data={"name": "No token", "mode": "test", "scope": "write"})
        assert refused.status_code == 400
        page = client.get(f"/organisations/{company.org_id}/api-keys").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
        assert token, page[:1500]
        made = client.post(f"/organisations/{company.org_id}/api-keys",
                           data={"name": "With token", "mode": "test", "scope": "write",
                                 "csrf_token": token.group(1)})
        assert made.status_code == 201
        api = client.post("/api/v1/quotes", json={"project": 1, "quantity": 1},
                          headers=company.test_headers)
        assert api.status_code == 201, api.get_data(as_text=True)
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_cli_creates_an_organisation_and_keys(app: Flask, client: FlaskClient) -> None:
    runner = app.test_cli_runner()
    made = runner.invoke(args=["api", "create-org", "Cli Co", "--admin", "cli-admin@example.org"])
    assert made.exit_code == 0, made.output
    org_id = int(re.search(r"organisation (\d+)", made.output).group(1))  # type: ignore[union-attr]
    assert "password" in made.output
    test_key = runner.invoke(args=["api", "create-key", "--org", str(org_id)])
    assert test_key.exit_code == 0 and test_key.output.startswith("sk_test_")
    live_key = runner.invoke(args=["api", "create-key", "--org", str(org_id), "--live",
                                   "--read-only", "--name", "Auditor"])
    secret = live_key.output.strip()
    assert secret.startswith("sk_live_")
    assert client.get("/api/v1/orders", headers=bearer(secret)).status_code == 200
    assert runner.invoke(args=["api", "create-key", "--org", "999999"]).exit_code == 1
    revoked = runner.invoke(args=["api", "revoke-key", secret[:16]])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert_problem(client.get("/api/v1/orders", headers=bearer(secret)), 401)
    again = runner.invoke(args=["api", "revoke-key", secret[:16]])
    assert "already" in again.output
    assert runner.invoke(args=["api", "revoke-key", "sk_live_nothing"]).exit_code == 1
