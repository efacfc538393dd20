"""Email: queued in the caller's transaction (the outbox, ``models.mail``), sent by the worker.

Messages are built with the standard library's ``email.message.EmailMessage`` and sent with
``smtplib`` to ``CARBON_SMTP_URL`` (``smtp://user:password@host:587`` with STARTTLS,
``smtps://...:465`` with TLS, ``smtp://host:25?plain=1`` with neither, e.g. a local relay).
Without it, outside production, each message is written to ``instance/mail/`` as an ``.eml``
file and listed at ``/dev/mail``; in production the app refuses to start without it.

Sending: the worker claims due messages with ``SELECT ... FOR UPDATE SKIP LOCKED`` and a
lease, sends them outside any transaction, and marks each sent; a failure keeps the message
queued with its error and retries it with backoff (10 attempts, then ``failed``). Each message
carries a Message-ID made from its outbox id, so a retry after a lost acknowledgement is
recognisably the same message. Attachments (certificate PDFs) are rendered at send time.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from flask import current_app, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.schema import utcnow

from .models.mail import OutboxEmail

log = logging.getLogger(__name__)

LEASE = dt.timedelta(minutes=2)
MAX_ATTEMPTS = 10
FROM_DEFAULT = "Selva <no-reply@selva.example>"


def enqueue(session: Session, to: str, subject: str, body: str, kind: str,
            attachments: list[dict[str, Any]] | None = None) -> OutboxEmail:
    """Queue a message in the caller's transaction (it is sent only if that commits)."""
    message = OutboxEmail(to_address=to, subject=subject[:200], body=body, kind=kind,
                          attachments=json.dumps(attachments or []), status="queued",
                          attempts=0, next_attempt_at=utcnow(), created_at=utcnow())
    session.add(message)
    session.flush()
    return message


# -- what we send ------------------------------------------------------------------------------


def order_receipt(session: Session, order: Any) -> OutboxEmail | None:
    """The receipt of a fulfilled order, to its buyer: what was bought and retired, the total,
    the certificate links; each tonne retirement's certificate PDF attached. Live orders only:
    a test-mode order emails no one."""
    from . import kilograms
    from .checkout import mass_label
    from .database import db
    from .formatting import money
    from .models import User
    from .urls import site_link as external_url

    if not db.livemode:
        return None
    user = session.get(User, order.user_id)
    if user is None:
        return None
    lines = [f"Hello {user.name},", "",
             f"Thank you: order {order.reference} is paid and complete.", "",
             f"  {mass_label(order)}, {money(order.total_minor, order.currency)}"]
    attachments = []
    retired = [r.retire_seq for r in order.reservations if r.retire_seq is not None]
    kilos = [a for a in kilograms.allocations_of(session, order.id)
             if a.state in ("allocated", "sealed")]
    if retired or kilos:
        lines += ["", f"Retired on the ledger in the name of {order.beneficiary}. The "
                      "certificates:"]
        for seq in retired:
            lines.append(f"  {external_url('registry.certificate', seq=seq)}")
            attachments.append({"certificate": seq})
        for allocation in kilos:
            lines.append(f"  {kilograms.format_mass(allocation.grams)}: "
                         f"{external_url('registry.kg_certificate', reference=allocation.reference)}")
    elif order.action == "hold":
        lines += ["", "The credits are in your account's holdings: retire them whenever you "
                      "are ready."]
    lines += ["", f"Your order: {external_url('orders.detail', reference=order.reference)}", "",
              "Selva"]
    return enqueue(session, user.email, f"Your Selva order {order.reference}",
                   "\n".join(lines) + "\n", "receipt", attachments)


def covered_at_origin(session: Session, seq: int) -> list[OutboxEmail]:
    """Tell whoever made the retirement at ``seq`` that the origin registry now shows its
    credits retired into this marketplace's name: the buyer of the order that retired them,
    or, for credits retired from holdings, the person (or the organisation's admins) holding
    them. Live mode only."""
    from ledger import canonical
    from ledger.schema import Account, Entry

    from .database import db
    from .models import Membership, Order, Reservation, User
    from .urls import site_link

    if not db.livemode:
        return []
    entry = session.get(Entry, seq)
    if entry is None or entry.kind != "retire":
        return []
    data = canonical.loads(bytes(entry.record))["data"]
    people: list[User] = []
    order = session.scalar(select(Order).join(Reservation, Reservation.order_id == Order.id)
                           .where(Reservation.retire_seq == seq).limit(1))
    if order is not None:
        user = session.get(User, order.user_id)
        people = [user] if user is not None else []
    else:
        account = session.get(Account, data.get("account"))
        name = account.name if account is not None else ""
        if name.startswith("user:") and name[5:].isdigit():
            user = session.get(User, int(name[5:]))
            people = [user] if user is not None else []
        elif name.startswith("org:") and name[4:].isdigit():
            people = list(session.scalars(
                select(User).join(Membership, Membership.user_id == User.id)
                .where(Membership.organisation_id == int(name[4:]),
                       Membership.role == "admin")))
    link = site_link("registry.certificate", seq=seq)
    quantity = int(data.get("quantity", 0))
    return [enqueue(session, person.email,
                    f"Your {quantity:,} t retired on Selva are now covered at the origin registry",
                    "\n".join([
                        f"Hello {person.name},", "",
                        f"The origin registry now shows the {quantity:,} t retired at ledger entry "
                        f"{seq} (for {data.get('date')}) retired into Selva's name, so they are",
                        "counted there too, once. The certificate says so, with the origin "
                        "registry's record:", "", f"  {link}", "", "Selva"]) + "\n",
                    "covered_at_origin")
            for person in people]


def origin_reminder(session: Session) -> list[OutboxEmail]:
    """Remind the operators, at most once every ``ORIGIN_REMINDER_HOURS`` (24), of tonnes
    retired here and still pending at the origin registry for more than
    ``ORIGIN_REMINDER_DAYS`` (7): the retirements to make there next. Safe with several
    workers (one holds a transaction-scoped advisory lock while it decides)."""
    from sqlalchemy import text

    from ledger import origin as ledger_origin

    from .models import User
    from .urls import site_link

    if session.get_bind().dialect.name != "sqlite" and not session.execute(
            text("SELECT pg_try_advisory_xact_lock(hashtext('selva-origin-reminder'))")
    ).scalar_one():
        return []
    config = current_app.config
    now = utcnow()
    every = dt.timedelta(hours=float(config.get("ORIGIN_REMINDER_HOURS", 24)))
    recent = session.scalar(select(OutboxEmail.id).where(
        OutboxEmail.kind == "origin_reminder", OutboxEmail.created_at > now - every).limit(1))
    if recent is not None:
        return []
    age = dt.timedelta(days=float(config.get("ORIGIN_REMINDER_DAYS", 7)))
    late = []
    for work in ledger_origin.worklist(session):
        oldest = work.oldest
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=dt.UTC)
        if oldest is not None and oldest <= now - age:
            late.append((work, oldest))
    if not late:
        return []
    operators = list(session.scalars(select(User).where(User.role == "operator")))
    lines = [f"  {work.batch.project.ref} batch {work.batch.id}: {work.quantity:,} t "
             f"(the oldest retired here on {oldest:%Y-%m-%d})" for work, oldest in late]
    link = site_link("origin_ops.reconciliation")
    return [enqueue(session, person.email,
                    f"{sum(w.quantity for w, _ in late):,} t retired on Selva are still "
                    "pending at the origin registry", "\n".join([
                        f"Hello {person.name},", "",
                        "These tonnes were retired here and the origin registry does not show "
                        "them retired into Selva's name yet:", "", *lines, "",
                        "Retire them at the origin registry, then import its export (Operator "
                        "-> Origin registry):", "", f"  {link}", "", "Selva"]) + "\n",
                    "origin_reminder")
            for person in operators]


# -- sending -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claimed:
    id: int
    to: str
    subject: str
    body: str
    attachments: list[dict[str, Any]]


def deliver_due(limit: int = 50) -> int:
    """Send the messages that are due; the number sent. Several workers may run it at once."""
    from .database import db
    from .modes import LIVE

    session = db.session_for(LIVE)
    now = utcnow()
    with session.begin():
        stmt = (select(OutboxEmail).where(OutboxEmail.status == "queued",
                                          OutboxEmail.next_attempt_at <= now)
                .order_by(OutboxEmail.id).limit(limit))
        if session.get_bind().dialect.name != "sqlite":
            stmt = stmt.with_for_update(skip_locked=True)
        claimed = []
        for due in session.scalars(stmt):
            due.next_attempt_at = now + LEASE  # ours while we send it
            claimed.append(_Claimed(due.id, due.to_address, due.subject, due.body,
                                    json.loads(due.attachments)))
    sent = 0
    for item in claimed:
        try:
            _send(build(item))
        except Exception as exc:  # noqa: BLE001  (any failure: keep it queued, try later)
            log.warning("email %s to the outbox's recipient not sent: %s", item.id,
                        type(exc).__name__)
            with session.begin():
                message = session.get(OutboxEmail, item.id)
                if message is not None:
                    message.attempts += 1
                    message.last_error = f"{type(exc).__name__}: {exc}"[:300]
                    message.next_attempt_at = utcnow() + dt.timedelta(
                        seconds=min(3600, 30 * 2 ** message.attempts))
                    if message.attempts >= MAX_ATTEMPTS:
                        message.status = "failed"
            continue
        with session.begin():
            message = session.get(OutboxEmail, item.id)
            if message is not None:
                message.status = "sent"
                message.sent_at = utcnow()
                message.attempts += 1
                message.last_error = None
        sent += 1
    return sent


def build(item: _Claimed) -> EmailMessage:
    message = EmailMessage()
    message["From"] = str(current_app.config.get("MAIL_FROM") or FROM_DEFAULT)
    message["To"] = item.to
    message["Subject"] = item.subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(idstring=f"outbox-{item.id}", domain="selva.example")
    message.set_content(item.body)
    for attachment in item.attachments:
        seq = attachment.get("certificate")
        if isinstance(seq, int):
            message.add_attachment(_certificate_pdf(seq), maintype="application",
                                   subtype="pdf", filename=f"selva-certificate-{seq}.pdf")
    return message


def _certificate_pdf(seq: int) -> bytes:
    """The certificate's PDF, as the registry serves it (rendered on the site's address)."""
    from . import certificates, pagecache, pdfstore
    from .database import db
    from .modes import LIVE
    from .registry import pdf_from_html, render_certificate_print
    from .urls import site_url

    with current_app.test_request_context(base_url=site_url()), db.use(LIVE):
        return pdfstore.pdf_for(
            "retirement", str(seq), request.url_root, pagecache.retirement_erased(seq),
            lambda: certificates.certificate(db.session, seq, sign=True),
            lambda cert: pdf_from_html(render_certificate_print(cert))).pdf


def _send(message: EmailMessage) -> None:
    url = current_app.config.get("SMTP_URL")
    if not url:
        _write_eml(message)
        return
    parts = urlsplit(str(url))
    query = parse_qs(parts.query)
    host = parts.hostname or "localhost"
    timeout = float(current_app.config.get("SMTP_TIMEOUT", 20))
    if parts.scheme == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(host, parts.port or 465, timeout=timeout,
                                                context=ssl.create_default_context())
    elif parts.scheme == "smtp":
        client = smtplib.SMTP(host, parts.port or 587, timeout=timeout)
    else:
        raise ValueError("CARBON_SMTP_URL must start with smtp:// or smtps://")
    with client:
        if parts.scheme == "smtp" and query.get("plain") != ["1"]:
            client.starttls(context=ssl.create_default_context())
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(message)


def mail_folder() -> Path:
    return Path(current_app.instance_path) / "mail"


def _write_eml(message: EmailMessage) -> None:
    if current_app.config.get("ENV") == "production":
        raise RuntimeError("no CARBON_SMTP_URL in production")
    folder = mail_folder()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
    ident = str(message["Message-ID"]).strip("<>").split("@")[0]
    (folder / f"{stamp}-{ident}.eml").write_bytes(bytes(message))


# -- development: the messages written to instance/mail/ -----------------------------------------

from flask import Blueprint, abort, render_template  # noqa: E402

dev_bp = Blueprint("dev_mail", __name__)
_EML_NAME = __import__("re").compile(r"[0-9A-Za-z_-][0-9A-Za-z._-]{0,160}\.eml")


@dev_bp.get("/dev/mail")
def dev_mailbox() -> str:
    """Development only: the messages the app would have sent, newest first."""
    from email import policy
    from email.parser import BytesParser

    folder = mail_folder()
    found = []
    for path in sorted(folder.glob("*.eml"), reverse=True)[:200] if folder.is_dir() else []:
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        found.append({"name": path.name, "to": message["To"], "subject": message["Subject"],
                      "date": message["Date"],
                      "attachments": [part.get_filename() for part in message.iter_attachments()]})
    return render_template("dev/mail.html", messages=found)


@dev_bp.get("/dev/mail/<name>")
def dev_message(name: str) -> str:
    from email import policy
    from email.parser import BytesParser

    path = mail_folder() / name
    if not _EML_NAME.fullmatch(name) or not path.is_file():
        abort(404)
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    body = message.get_body(preferencelist=("plain",))
    return render_template("dev/message.html", message=message,
                           body=body.get_content() if body is not None else "",
                           attachments=[p.get_filename() for p in message.iter_attachments()])
