"""Email through a real SMTP server started by the test (aiosmtpd, in a thread): a receipt
with the certificate PDF after a paid checkout; a password reset end to end, an expired or
used link refused, the same answer for an unknown address; the SMTP server down, then back:
the message waits in the outbox and is sent once."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from marketplace import mail
from marketplace.models import Order
from marketplace.models.mail import OutboxEmail
from marketplace.worker import Worker

from .shop import (PASSWORD, add_user, checkout_form, load_demo, login, make_app,
                   ticks_at_once, transaction)


class Inbox:
    """An SMTP server on 127.0.0.1 that keeps every message it is sent."""

    def __init__(self, port: int | None = None) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[EmailMessage] = []
        inbox = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                inbox.messages.append(message_from_bytes(envelope.content,  # type: ignore[arg-type]
                                                         policy=policy.default))
                return "250 OK"

        self.port = port or _free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller._thread is not None:  # stopped once already: nothing to do
            self.controller.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    found = Inbox()
    yield found
    found.stop()


@pytest.fixture
def site(fresh_url: str, inbox: Inbox, tmp_path: Any) -> Flask:
    from ledger.checkpoint import write_keypair

    signer, _ = write_keypair(tmp_path, "selva.example/ledger")
    app = make_app(fresh_url, SMTP_URL=f"smtp://127.0.0.1:{inbox.port}?plain=1",
                   CHECKPOINT_KEY=str(signer), SITE_URL="http://shop.example")
    load_demo(app)
    return app


def test_a_paid_checkout_sends_a_receipt_with_the_certificate_pdf(site: Flask,
                                                                   inbox: Inbox) -> None:
    add_user(site, "buyer@example.org", name="Bea Buyer")
    client = site.test_client()
    login(client, "buyer@example.org")
    client.post("/cart/add", data={"listing_id": "1", "quantity": "2"})
    response = client.post("/checkout", data=checkout_form(beneficiary="Bea Buyer"))
    assert response.status_code == 302
    paid = client.post(response.headers["Location"] + "/pay")
    assert paid.status_code == 302
    with transaction(site) as session:
        order = session.scalars(select(Order)).one()
        assert order.status == "fulfilled"
        queued = session.scalars(select(OutboxEmail)).one()
        assert (queued.status, queued.to_address, queued.kind) == (
            "queued", "buyer@example.org", "receipt")
    assert inbox.messages == []  # nothing is sent inside the request
    assert Worker(site).tick().emailed == 1
    [message] = inbox.messages
    assert message["To"] == "buyer@example.org"
    assert order.reference in message["Subject"]
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "2 t" in text and "Bea Buyer" in text
    assert re.search(r"http://shop\.example/registry/certificates/\d+", text)
    [pdf] = list(message.iter_attachments())
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_content().startswith(b"%PDF")
    assert Worker(site).tick().emailed == 0  # sent once
    with transaction(site) as session:
        assert session.scalars(select(OutboxEmail.status)).one() == "sent"


def _reset_link(inbox: Inbox) -> str:
    text = inbox.messages[-1].get_body(preferencelist=("plain",)).get_content()
    found = re.search(r"http://shop\.example(/password/reset/\S+)", text)
    assert found is not None, text
    return found.group(1)


def test_a_password_reset_end_to_end(site: Flask, inbox: Inbox) -> None:
    add_user(site, "forgetful@example.org", name="Fay Forgetful")
    client = site.test_client()
    answer = client.post("/password/forgot", data={"email": "forgetful@example.org"})
    unknown = client.post("/password/forgot", data={"email": "nobody@example.org"})
    assert answer.status_code == unknown.status_code == 302  # the same answer either way
    Worker(site).tick()
    assert [m["To"] for m in inbox.messages] == ["forgetful@example.org"]
    link = _reset_link(inbox)
    assert client.get(link).status_code == 200
    changed = client.post(link, data={"password": "a brand new password",
                                      "confirm": "a brand new password"})
    assert changed.status_code == 302
    assert client.post("/login", data={"email": "forgetful@example.org",
                                       "password": PASSWORD}).status_code == 200  # old: no
    assert client.post("/login", data={"email": "forgetful@example.org",
                                       "password": "a brand new password"}).status_code == 302
    # The link worked once.
    again = client.post(link, data={"password": "another new password",
                                    "confirm": "another new password"})
    assert again.status_code == 400 and "no longer works" in again.get_data(as_text=True)
    assert client.get("/password/reset/not-a-token").status_code == 400


def test_an_expired_reset_link_is_refused(site: Flask, inbox: Inbox) -> None:
    add_user(site, "late@example.org")
    site.config["PASSWORD_RESET_SECONDS"] = 1
    client = site.test_client()
    client.post("/password/forgot", data={"email": "late@example.org"})
    Worker(site).tick()
    link = _reset_link(inbox)
    time.sleep(2.1)
    refused = client.get(link)
    assert refused.status_code == 400 and "no longer works" in refused.get_data(as_text=True)


def test_the_smtp_server_down_then_back_sends_once(site: Flask, inbox: Inbox) -> None:
    add_user(site, "patient@example.org")
    inbox.stop()
    site.test_client().post("/password/forgot", data={"email": "patient@example.org"})
    done = Worker(site).tick()
    assert done.emailed == 0 and not done.errors  # a refused connection is a retry, not a crash
    with transaction(site) as session:
        queued = session.scalars(select(OutboxEmail)).one()
        assert queued.status == "queued" and queued.attempts == 1
        assert queued.last_error and "Connection" in queued.last_error
        queued.next_attempt_at = queued.created_at  # due again now
    back = Inbox(port=inbox.port)
    try:
        assert Worker(site).tick().emailed == 1
        assert Worker(site).tick().emailed == 0
        assert [m["To"] for m in back.messages] == ["patient@example.org"]
    finally:
        back.stop()


def test_in_development_mail_is_written_and_listed(fresh_url: str, tmp_path: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBON_INSTANCE_PATH", str(tmp_path / "instance"))
    app = make_app(fresh_url)
    add_user(app, "dev@example.org")
    client = app.test_client()
    client.post("/password/forgot", data={"email": "dev@example.org"})
    assert Worker(app).tick().emailed == 1
    written = list((tmp_path / "instance" / "mail").glob("*.eml"))
    assert len(written) == 1
    page = client.get("/dev/mail").get_data(as_text=True)
    assert "Reset your Selva password" in page and "dev@example.org" in page
    shown = client.get(f"/dev/mail/{written[0].name}")
    assert shown.status_code == 200 and "/password/reset/" in shown.get_data(as_text=True)
    assert client.get("/dev/mail/..%2Fsecret_key").status_code == 404
    with app.app_context():
        assert mail.mail_folder() == tmp_path / "instance" / "mail"


def test_signing_up_sends_a_confirmation_needed_for_live_api_keys(site: Flask,
                                                                   inbox: Inbox) -> None:
    from marketplace.models import User

    client = site.test_client()
    signed = client.post("/signup", data={"name": "Cy Confirm", "email": "cy@example.org",
                                          "password": "a long enough password",
                                          "confirm": "a long enough password"})
    assert signed.status_code == 302
    created = client.post("/organisations", data={"name": "Cy Shipping Ltd"},
                          follow_redirects=True)
    assert created.status_code == 200
    with transaction(site) as session:
        user = session.scalars(select(User).where(User.email == "cy@example.org")).one()
        assert user.email_confirmed_at is None
        org_id = user.memberships[0].organisation_id
    keys_page = f"/organisations/{org_id}/api-keys"
    refused = client.post(keys_page, data={"name": "live", "mode": "live", "scope": "write"})
    assert refused.status_code == 200 and "Confirm your email address first" in \
        refused.get_data(as_text=True)
    assert client.post(keys_page, data={"name": "t", "mode": "test",
                                        "scope": "write"}).status_code == 201
    account = client.get("/account").get_data(as_text=True)
    assert "not confirmed yet" in account
    Worker(site).tick()
    [message] = [m for m in inbox.messages if m["To"] == "cy@example.org"]
    text = message.get_body(preferencelist=("plain",)).get_content()
    found = re.search(r"http://shop\.example(/account/confirm/\S+)", text)
    assert found is not None
    assert client.get(found.group(1)).status_code == 302
    assert client.get(found.group(1)).status_code == 302  # twice is harmless
    assert client.get("/account/confirm/forged").status_code == 400
    allowed = client.post(keys_page, data={"name": "live", "mode": "live", "scope": "write"})
    assert allowed.status_code == 201 and "sk_live_" in allowed.get_data(as_text=True)
    assert "Email address confirmed" in client.get("/account").get_data(as_text=True)


def test_an_invitation_by_email_is_accepted(site: Flask, inbox: Inbox) -> None:
    from marketplace.models import Membership, User

    add_user(site, "boss@example.org", name="Bo Boss")
    admin = site.test_client()
    login(admin, "boss@example.org")
    admin.post("/organisations", data={"name": "Boss Freight Ltd"})
    with transaction(site) as session:
        boss = session.scalars(select(User).where(User.email == "boss@example.org")).one()
        org_id = boss.memberships[0].organisation_id
    invited = admin.post(f"/organisations/{org_id}",
                         data={"email": "New.Hire@example.org", "role": "member"},
                         follow_redirects=True)
    assert "we emailed them an invitation" in invited.get_data(as_text=True)
    Worker(site).tick()
    [message] = [m for m in inbox.messages if m["To"] == "new.hire@example.org"]
    assert "Boss Freight Ltd" in message["Subject"]
    text = message.get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"http://shop\.example(/organisations/join/\S+)", text)
    assert link is not None
    path = link.group(1)

    # Someone else logged in cannot use it.
    add_user(site, "other@example.org")
    other = site.test_client()
    login(other, "other@example.org")
    assert other.get(path).status_code == 302
    # The invited person: not logged in, sent to log in; signs up with that address; joins.
    newcomer = site.test_client()
    first = newcomer.get(path)
    assert first.status_code == 302 and "/login" in first.headers["Location"]
    signed = newcomer.post(f"/signup?next={path}", data={
        "name": "Nia Hire", "email": "new.hire@example.org",
        "password": "a long enough password", "confirm": "a long enough password"})
    assert signed.status_code == 302 and signed.headers["Location"].endswith(path)
    joined = newcomer.get(path)
    assert joined.status_code == 302 and joined.headers["Location"].endswith(f"/{org_id}")
    assert newcomer.get(path).status_code == 302  # a second visit changes nothing
    with transaction(site) as session:
        members = {(m.user.email, m.role) for m in session.scalars(
            select(Membership).where(Membership.organisation_id == org_id))}
        assert members == {("boss@example.org", "admin"), ("new.hire@example.org", "member")}
    assert newcomer.get("/organisations/join/forged").status_code == 400


@pytest.mark.postgres
def test_two_workers_send_each_email_once(pg_url: str, inbox: Inbox) -> None:
    app = make_app(pg_url, SMTP_URL=f"smtp://127.0.0.1:{inbox.port}?plain=1")
    with transaction(app) as session:
        for n in range(24):
            mail.enqueue(session, f"person{n}@example.org", f"Message {n}", "Hello.\n", "test")
    ticks_at_once(app)
    assert sorted(m["Subject"] for m in inbox.messages) == sorted(
        f"Message {n}" for n in range(24))
    with transaction(app) as session:
        assert set(session.scalars(select(OutboxEmail.status))) == {"sent"}
