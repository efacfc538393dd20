"""A small local fake of the Stripe API, for the official library to talk plain HTTP to.

It implements just what the shop uses: ``POST /v1/checkout/sessions`` (form-encoded like the
real API, with its ``expires_at`` window), ``GET /v1/checkout/sessions/{id}`` and
``POST /v1/refunds``, behind Stripe's idempotency rules (same ``Idempotency-Key`` and same
parameters: the first response again, marked ``Idempotent-Replayed``; same key, different
parameters: a 400 ``idempotency_error``). Every request is recorded for assertions.

It also builds webhook events about its sessions, signed the way Stripe signs them
(``Stripe-Signature: t=...,v1=HMAC-SHA256("t.payload")``), with unique event ids.

Use the ``fake_stripe`` fixture (import it into a test module), or ``with FakeStripe() as
fake``: the server is bound to 127.0.0.1 on a free port and shut down afterwards.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from marketplace.payments.signature import sign_payload

API_VERSION = "2025-01-27.acacia"
WEBHOOK_SECRET = "whsec_test"
API_KEY = "sk_test_fake"
MIN_EXPIRY = 30 * 60
MAX_EXPIRY = 24 * 60 * 60


# -- form decoding --------------------------------------------------------------------------

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def decode_form(body: str) -> dict[str, Any]:
    """Stripe's form encoding (``a[b][0][c]=v``) back into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True, strict_parsing=False):
        match = _KEY.match(key)
        if not match:
            raise ValueError(f"bad parameter name {key!r}")
        parts = [match.group(1)] + re.findall(r"\[([^\[\]]*)\]", match.group(2))
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"parameter {key!r} conflicts with another")
        node[parts[-1]] = value
    result: dict[str, Any] = _listify(root)
    return result


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


# -- records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    form: dict[str, Any]
    body: str
    status: int = 0

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


@dataclass(frozen=True)
class SignedEvent:
    """One webhook delivery: the exact bytes Stripe would POST and its signature header."""

    id: str
    type: str
    payload: bytes
    signature: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Stripe-Signature": self.signature, "Content-Type": "application/json"}

    @property
    def data(self) -> dict[str, Any]:
        return dict(json.loads(self.payload))


class StripeHTTPError(Exception):
    def __init__(self, status: int, type_: str, message: str, *, code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": {"type": type_, "message": message}}
        if code:
            self.body["error"]["code"] = code
        if param:
            self.body["error"]["param"] = param


@dataclass
class _Stored:
    method: str
    path: str
    form: dict[str, Any]
    status: int
    body: dict[str, Any]


@dataclass
class FakeStripe:
    api_key: str = API_KEY
    webhook_secret: str = WEBHOOK_SECRET
    requests: list[Request] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    clock_offset: int = 0
    """Seconds added to the fake's clock: simulates time passing at Stripe."""
    failures: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """Queued responses (status, body) returned before anything else, one per request."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._idempotent: dict[str, _Stored] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> FakeStripe:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: nothing left open

            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

            def do_DELETE(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake is not running"
        return f"http://127.0.0.1:{self._server.server_port}"

    def now(self) -> int:
        return int(time.time()) + self.clock_offset

    def calls(self, method: str, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    # -- HTTP -----------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        path = urlsplit(handler.path).path
        headers = {k.lower(): v for k, v in handler.headers.items()}
        extra: dict[str, str] = {}
        form: dict[str, Any] = {}
        try:
            form = decode_form(body) if body else {}
            status, response, extra = self._route(handler.command, path, headers, form)
        except StripeHTTPError as exc:
            status, response = exc.status, exc.body
        except ValueError as exc:
            status = 400
            response = {"error": {"type": "invalid_request_error", "message": str(exc)}}
        with self._lock:
            self.requests.append(Request(handler.command, path, headers, form, body, status))
        data = json.dumps(response).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Request-Id", f"req_{secrets.token_hex(7)}")
        if status >= 400 and status != 409:
            handler.send_header("Stripe-Should-Retry", "false")
        for name, value in extra.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _route(self, method: str, path: str, headers: dict[str, str],
               form: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            if self.failures:
                status, failure = self.failures.pop(0)
                return status, failure, {}
        if headers.get("authorization") != f"Bearer {self.api_key}":
            # Stripe redacts the key it echoes; this fake deliberately does not, so that tests
            # can check the app never passes a provider message through.
            given = headers.get("authorization", "").removeprefix("Bearer ")
            raise StripeHTTPError(401, "invalid_request_error",
                                  f"Invalid API Key provided: {given}")
        key = headers.get("idempotency-key")
        if method == "POST" and key:
            with self._lock:
                stored = self._idempotent.get(key)
                if stored is not None:
                    if (stored.method, stored.path, stored.form) != (method, path, form):
                        raise StripeHTTPError(
                            400, "idempotency_error",
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with. Try using a key other than "
                            f"'{key}' if you meant to execute a different request.")
                    return stored.status, stored.body, {"Idempotent-Replayed": "true"}
        try:
            status, response = self._dispatch(method, path, form)
        except StripeHTTPError as exc:
            status, response = exc.status, exc.body
        if method == "POST" and key and status < 500:
            with self._lock:
                self._idempotent[key] = _Stored(method, path, form, status, response)
        return status, response, {}

    def _dispatch(self, method: str, path: str,
                  form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method == "POST" and path == "/v1/checkout/sessions":
            return 200, self._create_session(form)
        match = re.fullmatch(r"/v1/checkout/sessions/([A-Za-z0-9_]+)", path)
        if method == "GET" and match:
            with self._lock:
                found = self.sessions.get(match.group(1))
            if found is None:
                raise StripeHTTPError(404, "invalid_request_error",
                                      f"No such checkout.session: '{match.group(1)}'",
                                      code="resource_missing", param="session")
            return 200, dict(found)
        if method == "POST" and path == "/v1/refunds":
            return 200, self._create_refund(form)
        raise StripeHTTPError(404, "invalid_request_error",
                              f"Unrecognized request URL ({method}: {path}).")

    def _create_session(self, form: dict[str, Any]) -> dict[str, Any]:
        if form.get("mode") != "payment":
            raise StripeHTTPError(400, "invalid_request_error", "Invalid mode.", param="mode")
        if not form.get("success_url"):
            raise StripeHTTPError(400, "invalid_request_error", "Missing success_url.",
                                  param="success_url")
        items = form.get("line_items")
        if not isinstance(items, list) or not items:
            raise StripeHTTPError(400, "invalid_request_error", "Missing line_items.",
                                  param="line_items")
        currencies = set()
        total = 0
        for i, item in enumerate(items):
            try:
                price = item["price_data"]
                unit = int(price["unit_amount"])
                quantity = int(item["quantity"])
                name = price["product_data"]["name"]
                currency = price["currency"]
            except (KeyError, TypeError, ValueError):
                raise StripeHTTPError(400, "invalid_request_error", "Invalid line item.",
                                      param=f"line_items[{i}]") from None
            if unit < 1 or quantity < 1 or not name or currency != currency.lower():
                raise StripeHTTPError(400, "invalid_request_error", "Invalid line item.",
                                      param=f"line_items[{i}]")
            currencies.add(currency)
            total += unit * quantity
        if len(currencies) != 1:
            raise StripeHTTPError(400, "invalid_request_error",
                                  "All line items must share a currency.", param="line_items")
        now = self.now()
        expires_at = int(form.get("expires_at") or now + MAX_EXPIRY)
        if not now + MIN_EXPIRY <= expires_at <= now + MAX_EXPIRY:
            raise StripeHTTPError(400, "invalid_request_error",
                                  "The `expires_at` timestamp must be between 30 minutes and "
                                  "24 hours from Checkout Session creation.",
                                  param="expires_at")
        session_id = f"cs_test_{secrets.token_hex(12)}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "amount_subtotal": total,
            "amount_total": total,
            "currency": currencies.pop(),
            "client_reference_id": form.get("client_reference_id"),
            "customer_email": form.get("customer_email"),
            "metadata": form.get("metadata") or {},
            "created": now,
            "expires_at": expires_at,
            "livemode": False,
            "payment_intent": None,
            "success_url": form.get("success_url"),
            "cancel_url": form.get("cancel_url"),
            "url": f"{self.url}/c/pay/{session_id}",
        }
        with self._lock:
            self.sessions[session_id] = session
        return dict(session)

    def _create_refund(self, form: dict[str, Any]) -> dict[str, Any]:
        intent = form.get("payment_intent")
        with self._lock:
            session = next((s for s in self.sessions.values()
                            if intent and s.get("payment_intent") == intent), None)
        if session is None:
            raise StripeHTTPError(400, "invalid_request_error",
                                  f"No such payment_intent: '{intent}'",
                                  code="resource_missing", param="payment_intent")
        amount = int(form.get("amount") or session["amount_total"])
        with self._lock:
            refunded = sum(r["amount"] for r in self.refunds.values()
                           if r["payment_intent"] == intent)
            if refunded + amount > session["amount_total"]:
                raise StripeHTTPError(400, "invalid_request_error",
                                      f"Charge for {intent} has already been refunded.",
                                      code="charge_already_refunded")
            refund = {"id": f"re_{secrets.token_hex(12)}", "object": "refund", "amount": amount,
                      "currency": session["currency"], "payment_intent": intent,
                      "status": "succeeded", "metadata": form.get("metadata") or {},
                      "created": self.now()}
            self.refunds[refund["id"]] = refund
        return dict(refund)

    # -- webhook events -------------------------------------------------------------------

    def session(self, session: Any) -> dict[str, Any]:
        """The stored session for an id, a ``CheckoutSession`` or a session dict."""
        session_id = session if isinstance(session, str) else (
            session["id"] if isinstance(session, dict) else session.id)
        with self._lock:
            return self.sessions[session_id]

    def event(self, type_: str, session: Any, *, changes: dict[str, Any] | None = None,
              signed_at: int | None = None, secret: str | None = None,
              event_id: str | None = None) -> SignedEvent:
        """A signed event about ``session``: the stored session's state, after applying
        ``changes`` to it."""
        stored = self.session(session)
        with self._lock:
            stored.update(changes or {})
            obj = json.loads(json.dumps(stored))
        return self.sign({
            "id": event_id or f"evt_{secrets.token_hex(12)}",
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type_,
        }, signed_at=signed_at, secret=secret)

    def sign(self, event: dict[str, Any], *, signed_at: int | None = None,
             secret: str | None = None) -> SignedEvent:
        payload = json.dumps(event, indent=2).encode()  # Stripe sends pretty-printed JSON
        signature = sign_payload(payload, secret or self.webhook_secret,
                                 timestamp=self.now() if signed_at is None else signed_at)
        return SignedEvent(event["id"], event["type"], payload, signature)

    def _paid(self, session: Any) -> dict[str, Any]:
        stored = self.session(session)
        intent = stored.get("payment_intent") or f"pi_test_{secrets.token_hex(12)}"
        return {"status": "complete", "payment_intent": intent}

    def _override(self, event: SignedEvent, amount: int | None, currency: str | None,
                  signed_at: int | None = None, secret: str | None = None,
                  **_: Any) -> SignedEvent:
        if amount is None and currency is None:
            return event
        data = event.data
        if amount is not None:
            data["data"]["object"]["amount_total"] = amount
        if currency is not None:
            data["data"]["object"]["currency"] = currency
        return self.sign(data, signed_at=signed_at, secret=secret)

    def completed(self, session: Any, amount: int | None = None, currency: str | None = None,
                  *, payment_status: str = "paid", **kwargs: Any) -> SignedEvent:
        """``checkout.session.completed``: paid by card, or ``payment_status="unpaid"`` for a
        delayed payment method whose outcome comes later. ``amount``/``currency`` override
        what this one event says was paid (the stored session keeps the real figures)."""
        changes = {**self._paid(session), "payment_status": payment_status}
        event = self.event("checkout.session.completed", session, changes=changes, **kwargs)
        return self._override(event, amount, currency, **kwargs)

    def async_succeeded(self, session: Any, **kwargs: Any) -> SignedEvent:
        changes = {**self._paid(session), "payment_status": "paid"}
        return self.event("checkout.session.async_payment_succeeded", session, changes=changes,
                          **kwargs)

    def async_failed(self, session: Any, **kwargs: Any) -> SignedEvent:
        changes = {**self._paid(session), "payment_status": "unpaid"}
        return self.event("checkout.session.async_payment_failed", session, changes=changes,
                          **kwargs)

    def expired(self, session: Any, **kwargs: Any) -> SignedEvent:
        return self.event("checkout.session.expired", session,
                          changes={"status": "expired", "payment_status": "unpaid"}, **kwargs)


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    """A running fake Stripe API on 127.0.0.1, shut down after the test."""
    with FakeStripe() as fake:
        yield fake
