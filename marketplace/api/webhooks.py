"""Outbound webhooks: ``order.fulfilled`` and ``retirement.created``, to the endpoints an
organisation registered, signed, retried with backoff, every attempt logged.

*Events are written in the transaction that causes them* (a transactional outbox): an event
and one delivery row per subscribed endpoint are added to the session before it commits, so an
event exists if and only if what it reports was committed. Live orders are fulfilled by the
storefront's code (the payment webhook, an invoice payment) and retirements are made by the
API, the holdings page or a fulfilment: each of them records its event explicitly
(``marketplace.events.record``). A test-mode key's requests run the same code against the
test-mode data, so its events land in the test-mode outbox.

*Delivery* happens outside any request: ``flask --app wsgi api deliver-webhooks`` (or
:func:`deliver_due`) claims the due deliveries, POSTs each event's stored bytes with urllib,
and records the attempt. A 2xx answer is success; anything else (or no answer within
``API_WEBHOOK_TIMEOUT`` seconds) is retried after 1 min, 5 min, 30 min, 2 h, 6 h, 12 h and
24 h, then given up (8 attempts over about 45 hours). Redirects are not followed.

*Signature*, as Stripe signs its webhooks: ``Selva-Signature: t=<unix time>,v1=<hex>`` where
v1 = HMAC-SHA256(endpoint secret, ``"<t>.<body>"``). Receivers check it and the time (e.g.
within 5 minutes) to refuse forgeries and replays; ``stripe.WebhookSignature.verify_header``
accepts it as it is.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import secrets
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger import canonical
from ledger.schema import Entry, utcnow

from ..accounts import organisation_of_account
from ..database import all_modes, db
from ..models import Order
from ..models.api import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from ..payments.signature import sign_payload

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Selva-Signature"
BACKOFF = (60, 300, 1800, 7200, 21600, 43200, 86400)
"""Seconds to wait after the 1st, 2nd, ... failed attempt."""
MAX_ATTEMPTS = len(BACKOFF) + 1
LEASE = dt.timedelta(minutes=5)
"""A claimed delivery is not claimed again by another worker for this long."""
USER_AGENT = "Selva-Webhooks/1.0"



# -- endpoints ------------------------------------------------------------------------------


class EndpointURLError(ValueError):
    """The URL cannot receive webhooks."""


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def allow_private(app: Flask | None = None) -> bool:
    config = (app or current_app).config
    value = config.get("API_WEBHOOK_ALLOW_PRIVATE")
    if value is None:
        return bool(config.get("ENV") != "production")
    return bool(value)


def check_url(url: str, *, private_ok: bool) -> str:
    """An http(s) URL with a host; https only (and no private address) unless ``private_ok``
    (development and tests post to 127.0.0.1)."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointURLError("The URL must start with https:// and name a host.")
    if parts.username or parts.password:
        raise EndpointURLError("The URL may not carry a user name or password.")
    if not private_ok:
        if parts.scheme != "https":
            raise EndpointURLError("The URL must use https.")
        _check_public(parts.hostname)
    return url


def _check_public(host: str) -> None:
    """Refuse hosts that resolve to loopback, private, link-local or other reserved addresses
    (the cloud metadata service, the database...): we would be posting into our own network."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        raise EndpointURLError(f"The host {host} cannot be resolved.") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise EndpointURLError(f"The host {host} is not a public address.")


def active_endpoints(session: Session, organisation_id: int, livemode: bool,
                     event_type: str) -> list[WebhookEndpoint]:
    return [e for e in session.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.organisation_id == organisation_id,
        WebhookEndpoint.livemode.is_(livemode), WebhookEndpoint.disabled_at.is_(None)))
        if event_type in e.event_types]


# -- events -----------------------------------------------------------------------------------


def emit(session: Session, organisation_id: int, event_type: str, livemode: bool,
         obj: dict[str, Any], endpoints: list[WebhookEndpoint] | None = None) -> WebhookEvent | None:
    """Record an event and its deliveries in the caller's transaction; None if no endpoint of
    the organisation wants it."""
    if endpoints is None:
        endpoints = active_endpoints(session, organisation_id, livemode, event_type)
    if not endpoints:
        return None
    now = utcnow()
    public_id = f"evt_{secrets.token_hex(12)}"
    payload = json.dumps({"id": public_id, "object": "event", "type": event_type,
                          "created": int(now.timestamp()), "livemode": livemode,
                          "data": {"object": obj}},
                         separators=(",", ":"), ensure_ascii=False, default=_json_default)
    stored = WebhookEvent(public_id=public_id, organisation_id=organisation_id,
                          type=event_type, livemode=livemode, payload=payload, created_at=now)
    session.add(stored)
    session.flush()
    for endpoint in endpoints:
        session.add(WebhookDelivery(event_id=stored.id, endpoint_id=endpoint.id,
                                    status="pending", next_attempt_at=now, created_at=now))
    session.flush()
    return stored


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


# -- the outbox: events recorded by the code that causes them (marketplace.events) ------------


def emit_order_event(session: Session, order_id: int, event_type: str) -> None:
    """``event_type`` about an organisation's order, in the caller's transaction."""
    from . import trading

    order = session.get(Order, order_id)
    if order is None or order.organisation_id is None:
        return
    endpoints = active_endpoints(session, order.organisation_id, db.livemode, event_type)
    if endpoints:
        emit(session, order.organisation_id, event_type, db.livemode,
             trading.order_dict(session, order), endpoints)


def emit_retirement_event(session: Session, seq: int, event_type: str) -> None:
    """``event_type`` about the retirement at ``seq``, to the organisation that retired it (if
    an organisation did and one of its endpoints wants it), in the caller's transaction."""
    from . import credits

    entry = session.get(Entry, seq)
    if entry is None or entry.kind != "retire":
        return
    account = canonical.loads(bytes(entry.record))["data"].get("account")
    organisation = organisation_of_account(session, account) if isinstance(account, int) else None
    if organisation is None:
        return
    org_id = organisation.id
    endpoints = active_endpoints(session, org_id, db.livemode, event_type)
    if endpoints:
        emit(session, org_id, event_type, db.livemode, credits.retirement_dict(session, seq),
             endpoints)


def emit_kilogram_events(session: Session, allocation_ids: tuple[int, ...],
                         event_type: str) -> None:
    """``event_type`` about each kilogram allocation, to its order's organisation when one of
    its endpoints wants it (one lookup of endpoints per organisation), in the caller's
    transaction."""
    from ..models.pools import KgAllocation
    from . import credits

    allocations = list(session.scalars(select(KgAllocation).where(
        KgAllocation.id.in_(allocation_ids)).order_by(KgAllocation.id)
        .execution_options(populate_existing=True)))
    orders = {o.id: o for o in session.scalars(select(Order).where(
        Order.id.in_({a.order_id for a in allocations})))}
    wanted: dict[int, list[WebhookEndpoint]] = {}
    for allocation in allocations:
        organisation_id = orders[allocation.order_id].organisation_id
        if organisation_id is None:
            continue
        if organisation_id not in wanted:
            wanted[organisation_id] = active_endpoints(session, organisation_id, db.livemode,
                                                       event_type)
        if wanted[organisation_id]:
            emit(session, organisation_id, event_type, db.livemode,
                 credits.kg_retirement_dict(session, allocation), wanted[organisation_id])


# -- delivery ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    event: str
    url: str
    status_code: int | None
    error: str | None
    delivered: bool
    gave_up: bool


@dataclass(frozen=True)
class _Claimed:
    delivery_id: int
    event: str
    url: str
    secret: str
    payload: bytes


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def post(url: str, payload: bytes, secret: str, event_id: str, *, timeout: float,
         timestamp: int | None = None) -> tuple[int | None, str | None, str]:
    """POST one signed event; (status code, error, start of the answer)."""
    request = urllib.request.Request(url, data=payload, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign_payload(payload, secret, timestamp),
        "Selva-Event-Id": event_id,
    })
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, None, response.read(500).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        with exc:
            body = exc.read(500).decode("utf-8", "replace") if exc.fp is not None else ""
        return exc.code, f"HTTP {exc.code}", body
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"{type(exc).__name__}: {reason}"[:300], ""


def _claim(session: Session, now: dt.datetime, limit: int) -> list[_Claimed]:
    stmt = (select(WebhookDelivery).where(WebhookDelivery.status == "pending",
                                          WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit))
    if session.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update(skip_locked=True)
    claimed = []
    for delivery in session.scalars(stmt):
        endpoint = delivery.endpoint
        if endpoint.disabled_at is not None:
            delivery.status = "failed"
            delivery.last_error = "endpoint disabled"
            continue
        delivery.next_attempt_at = now + LEASE
        claimed.append(_Claimed(delivery.id, delivery.event.public_id, endpoint.url,
                                endpoint.secret, delivery.event.payload.encode("utf-8")))
    return claimed


def _record(session: Session, claimed: _Claimed, now: dt.datetime, took_ms: int,
            status: int | None, error: str | None, excerpt: str) -> Outcome:
    delivery = session.get(WebhookDelivery, claimed.delivery_id)
    assert delivery is not None
    ok = status is not None and 200 <= status < 300
    session.add(WebhookAttempt(delivery_id=delivery.id, attempted_at=now, duration_ms=took_ms,
                               status_code=status, error=None if ok else (error or "failed"),
                               response_excerpt=excerpt[:500]))
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.last_status_code = status
    delivery.last_error = None if ok else (error or f"HTTP {status}")[:300]
    gave_up = False
    if ok:
        delivery.status = "succeeded"
        delivery.delivered_at = now
        delivery.next_attempt_at = None
    elif delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = "failed"
        delivery.next_attempt_at = None
        gave_up = True
    else:
        delivery.next_attempt_at = now + dt.timedelta(seconds=BACKOFF[delivery.attempts - 1])
    return Outcome(delivery.id, claimed.event, claimed.url, status, delivery.last_error, ok,
                   gave_up)


def deliver_due(*, now: dt.datetime | None = None, limit: int = 100,
                timeout: float | None = None) -> list[Outcome]:
    """Deliver every delivery due at ``now`` (default: the present), in the app context, in
    each mode's outbox. Safe to run in several workers at once (PostgreSQL:
    ``FOR UPDATE SKIP LOCKED``)."""
    outcomes: list[Outcome] = []
    for mode in all_modes():
        with db.use(mode):
            outcomes.extend(_deliver_due(now or utcnow(), limit, timeout))
    return outcomes


def _deliver_due(now: dt.datetime, limit: int, timeout: float | None) -> list[Outcome]:
    timeout = float(timeout if timeout is not None else current_app.config["API_WEBHOOK_TIMEOUT"])
    private_ok = allow_private()
    session = db.new_session()
    outcomes = []
    try:
        with session.begin():
            claimed = _claim(session, now, limit)
        for item in claimed:
            start = time.perf_counter()
            status: int | None
            error: str | None
            try:
                check_url(item.url, private_ok=private_ok)
            except EndpointURLError as exc:
                status, error, excerpt = None, str(exc), ""
            else:
                status, error, excerpt = post(item.url, item.payload, item.secret, item.event,
                                              timeout=timeout,
                                              timestamp=int(utcnow().timestamp()))
            took = int((time.perf_counter() - start) * 1000)
            with session.begin():
                outcomes.append(_record(session, item, now, took, status, error, excerpt))
    finally:
        session.close()
    for outcome in outcomes:
        if not outcome.delivered:
            log.info("webhook %s to %s failed: %s", outcome.event, outcome.url, outcome.error)
    return outcomes
