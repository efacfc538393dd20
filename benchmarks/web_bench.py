"""Web benchmarks (DESIGN.md, "Speed"), measured through a real gunicorn server on PostgreSQL:

1. page rate: requests per second for the home page ``/``, the catalogue ``/projects``, a
   project page ``/projects/<slug>``, the registry overview ``/registry`` and a certificate
   page ``/registry/certificates/<seq>``, each against a bare Flask route (``/__bare``, added
   to the same app, so the same server, workers, middleware and client) in the same run.
   Rounds rotate the targets; each figure is the median of per-round ratios. Target >= 0.3
   for each page. Reported beside them: a repeat visit of the catalogue that sends the ETag
   it was given (``304 Not Modified``). Clients keep no cookies: every request is a first
   visit (a new session and CSRF token on pages with forms).
2. contention: 100 buyers check out 1 t each at the same moment from a listing with 50 t
   left, then pay through the demo gateway. Tonnes sold must be exactly 50, none oversold,
   and no response may be a 5xx.

The server is ``gunicorn`` running ``wsgi:app`` (via :func:`bench_app`, which adds the bare
route) as a subprocess on 127.0.0.1, configured by ``CARBON_*`` environment variables like any
deployment, on a fresh database migrated to head with the demo data and its listings. CSRF
protection and the login rate limit stay on: the clients scrape ``csrf_token`` from the forms
as a browser would, and each buyer connects from its own loopback address (127.0.1.x), so the
per-address login limit sees 100 different visitors. The load comes from this process:
threads, one keep-alive HTTP/1.1 connection each, a bounded number of requests and seconds.

Run with ``python -m benchmarks web`` (``--quick``, ``--backend``, ``--only``, ``--workers``,
``--threads``, ``--clients``).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from .common import (
    BenchmarkError,
    Report,
    Result,
    add_common_arguments,
    at_least,
    bench_tmpdir,
    fresh_database,
    resolve_backends,
    stopwatch,
)

ROOT = Path(__file__).resolve().parent.parent
BARE_PATH = "/__bare"
CERTIFICATE_PAGE = "/registry/certificates/{seq}"
PAGES = {"/": "Home page", "/projects": "Catalogue", "/projects/alto-mayo": "Project page",
         "/registry": "Registry overview", CERTIFICATE_PAGE: "Certificate page"}
PAGE_MARKERS = {"/": b"Alto Mayo", "/projects": b"/projects/alto-mayo",
                "/projects/alto-mayo": b'name="csrf_token"', "/registry": b"Public registry",
                CERTIFICATE_PAGE: b"ledger.verify --certificate"}
"""Something each page must contain, so a fast error page cannot pass for a page."""
CONTENTION_SLUG = "bench-contention"
PASSWORD = "bench password 123"

PAGE_RATE = "page requests / s vs bare route"
CONTENTION = "100 checkouts for 50 t"


@dataclass(frozen=True)
class Sizes:
    rounds: int
    seconds: float
    """Each round runs at most this long per target..."""
    max_requests: int
    """...and at most this many requests per client."""
    warmup_seconds: float
    buyers: int
    stock: int


FULL = Sizes(rounds=5, seconds=2.0, max_requests=20_000, warmup_seconds=1.0,
             buyers=100, stock=50)
QUICK = Sizes(rounds=3, seconds=1.0, max_requests=5_000, warmup_seconds=0.5,
              buyers=100, stock=50)


# -- the WSGI app gunicorn serves -------------------------------------------------------------


def bench_app() -> Any:
    """``gunicorn 'benchmarks.web_bench:bench_app()'``: the deployment's ``wsgi:app`` plus a
    bare route that does no work, the baseline for the page rates."""
    import wsgi

    app = wsgi.app

    @app.get(BARE_PATH)
    def bench_bare() -> tuple[str, int, dict[str, str]]:
        return "ok", 200, {"Content-Type": "text/plain"}

    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    workers: int
    threads: int

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextmanager
def gunicorn(url: str, tmp: Path, *, workers: int, threads: int, secret: str,
             app_spec: str = "benchmarks.web_bench:bench_app()") -> Iterator[Server]:
    """Run gunicorn (gthread workers) serving ``app_spec`` on a free port of 127.0.0.1 until
    the block ends."""
    port = _free_port()
    log = tmp / f"gunicorn_{port}.log"
    env = {
        **os.environ,
        "CARBON_DATABASE_URL": url,
        "CARBON_SECRET_KEY": secret,
        "CARBON_STRIPE_WEBHOOK_SECRET": "whsec_" + secret,
        "CARBON_PAYMENT_GATEWAY": "demo",
        "CARBON_CHECKPOINT_KEY": str(checkpoint_key(tmp)),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    gunicorn_bin = Path(sys.executable).with_name("gunicorn")
    command = [str(gunicorn_bin) if gunicorn_bin.exists() else "gunicorn",
               "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
               "--worker-class", "gthread", "--threads", str(threads),
               "--keep-alive", "300", "--backlog", "512", "--timeout", "120",
               "--log-level", "warning", "--chdir", str(ROOT), app_spec]
    with log.open("wb") as log_file:
        try:
            process = subprocess.Popen(command, env=env, stdout=log_file, stderr=log_file,
                                       cwd=ROOT, start_new_session=True)
        except OSError as exc:
            raise BenchmarkError(f"cannot start gunicorn: {exc}") from exc
    server = Server(port, process, log, workers, threads)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise BenchmarkError(f"gunicorn exited with status {process.returncode}:\n"
                                     f"{server.log_tail()}")
            try:
                with Client(port) as client:
                    if client.get(BARE_PATH).status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchmarkError(f"gunicorn did not answer within 60 s:\n{server.log_tail()}")
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # only the process this block started
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


# -- a small HTTP/1.1 keep-alive client ---------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    cookies: list[str]
    body: bytes

    @property
    def location(self) -> str:
        return self.headers.get("location", "")

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class Client:
    """One browser-like visitor: one keep-alive connection to 127.0.0.1 (from ``source``, a
    loopback address, if given) and a cookie jar. Lean on purpose: the load generator shares
    the machine with the server, and its cost per request counts against both sides alike."""

    def __init__(self, port: int, source: str | None = None, timeout: float = 60.0) -> None:
        self.port = port
        self.source = source
        self.timeout = timeout
        self.host = f"127.0.0.1:{port}"
        self.cookies: dict[str, str] = {}
        self.sock: socket.socket | None = None
        self.buffer = b""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.buffer = b""

    def _connect(self) -> socket.socket:
        if self.sock is None:
            sock = socket.create_connection(
                ("127.0.0.1", self.port), timeout=self.timeout,
                source_address=(self.source, 0) if self.source else None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = sock
            self.buffer = b""
        return self.sock

    def raw(self, request: bytes) -> tuple[int, bytes]:
        """Send a pre-built request; return (status, body). The fast path for load rounds."""
        sock = self._connect()
        sock.sendall(request)
        response = self._read()
        return response.status, response.body

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                referer: str | None = None) -> Response:
        body = urlencode(form).encode() if form is not None else b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}",
                 "User-Agent: selva-bench/1", "Accept: text/html"]
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if referer:
            lines.append(f"Referer: http://{self.host}{referer}")
        if form is not None:
            lines.append("Content-Type: application/x-www-form-urlencoded")
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        for attempt in (1, 2):
            fresh = self.sock is None
            try:
                self._connect().sendall(data)
                response = self._read()
                break
            except (ConnectionError, EOFError):
                # A keep-alive connection the server closed while idle: retry once on a new
                # one (like a browser), but never a request already sent on a fresh one.
                self.close()
                if fresh or attempt == 2:
                    raise
        for cookie in response.cookies:
            pair = cookie.split(";", 1)[0]
            name, _, value = pair.partition("=")
            attrs = cookie.lower()
            if "max-age=0" in attrs or "expires=thu, 01 jan 1970" in attrs:
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value.strip()
        if response.headers.get("connection", "").lower() == "close":
            self.close()
        return response

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str], referer: str | None = None) -> Response:
        return self.request("POST", path, form, referer)

    def _read(self) -> Response:
        sock = self.sock
        assert sock is not None
        buffer = self.buffer
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end >= 0:
                break
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            buffer += chunk
        head = buffer[:end].decode("latin-1").split("\r\n")
        buffer = buffer[end + 4:]
        status = int(head[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            if name == "set-cookie":
                cookies.append(value)
            headers[name] = value
        if status in (204, 304) or 100 <= status < 200:
            body, self.buffer = b"", buffer  # no body, whatever the headers say (RFC 9110)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            while len(buffer) < length:
                chunk = sock.recv(max(65536, length - len(buffer)))
                if not chunk:
                    raise EOFError("the server closed the connection mid-body")
                buffer += chunk
            body, self.buffer = buffer[:length], buffer[length:]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body, self.buffer = self._chunked(buffer)
        else:  # body until close
            parts = [buffer]
            while chunk := sock.recv(65536):
                parts.append(chunk)
            body = b"".join(parts)
            self.close()
        return Response(status, headers, cookies, body)

    def _chunked(self, buffer: bytes) -> tuple[bytes, bytes]:
        sock = self.sock
        assert sock is not None
        parts: list[bytes] = []

        def need(n: int) -> None:
            nonlocal buffer
            while len(buffer) < n:
                chunk = sock.recv(65536)
                if not chunk:
                    raise EOFError("the server closed the connection mid-chunk")
                buffer += chunk

        while True:
            while b"\r\n" not in buffer:
                need(len(buffer) + 1)
            line, _, buffer = buffer.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            need(size + 2)
            if size == 0:
                return b"".join(parts), buffer[2:]
            parts.append(buffer[:size])
            buffer = buffer[size + 2:]


_CSRF = re.compile(r'name="csrf_token"[^>]*?value="([^"]+)"')


def csrf_token(page: Response) -> str:
    match = _CSRF.search(page.text())
    if not match:
        raise BenchmarkError(f"no csrf_token in the page (status {page.status}): "
                             f"{page.text()[:200]!r}")
    return match.group(1)


# -- 1. page rates against the bare route ---------------------------------------------------


@dataclass
class Round:
    path: str
    requests: int
    seconds: float
    errors: int
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def load_round(port: int, path: str, clients: int, seconds: float, max_requests: int,
               headers: str = "", expect: int = 200) -> Round:
    """``clients`` threads, each on its own keep-alive connection, GET ``path`` back to back
    until ``seconds`` have passed or each has made ``max_requests``. ``headers``: extra header
    lines (each ending in CRLF); an answer other than ``expect`` counts as an error."""
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"User-Agent: selva-bench/1\r\nAccept: text/html\r\n{headers}\r\n").encode()
    start_gate = threading.Barrier(clients + 1)
    counts = [0] * clients
    errors = [0] * clients
    statuses: list[dict[int, int]] = [{} for _ in range(clients)]
    failures: list[BaseException] = []
    stop_at = [0.0]

    def worker(i: int) -> None:
        try:
            with Client(port) as client:
                client.raw(request)  # connect (and warm this connection) before the start
                start_gate.wait()
                deadline = stop_at[0]
                done = 0
                clock = time.perf_counter
                while done < max_requests and clock() < deadline:
                    status, _ = client.raw(request)
                    done += 1
                    if status != expect:
                        errors[i] += 1
                        statuses[i][status] = statuses[i].get(status, 0) + 1
                counts[i] = done
        except BaseException as exc:  # noqa: BLE001 - reported after the round
            failures.append(exc)
            start_gate.abort()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    stop_at[0] = start + seconds  # read by the clients once the gate opens
    try:
        start_gate.wait()
    except threading.BrokenBarrierError:
        pass
    for t in threads:
        t.join(timeout=seconds + 120)
    elapsed = time.perf_counter() - start
    if failures:
        raise BenchmarkError(f"a client failed on {path}: {type(failures[0]).__name__}: "
                             f"{failures[0]}")
    merged: dict[int, int] = {}
    for s in statuses:
        for k, v in s.items():
            merged[k] = merged.get(k, 0) + v
    return Round(path, sum(counts), elapsed, sum(errors), merged)


REPEAT = "repeat visit (If-None-Match)"


def bench_pages(report: Report, backend: str, server: Server, sizes: Sizes,
                clients: int, certificate: int) -> None:
    """Each page against the bare route, rotated within each round; and a repeat visit of the
    catalogue that sends the ETag it was given (a 304 with no body), reported."""
    port = server.port
    pages = {path.format(seq=certificate): label for path, label in PAGES.items()}
    markers = {path.format(seq=certificate): marker for path, marker in PAGE_MARKERS.items()}
    with Client(port) as client:
        for path in [BARE_PATH, *pages]:
            response = client.get(path)
            marker = markers.get(path, b"ok")
            if response.status != 200 or marker not in response.body:
                raise BenchmarkError(f"GET {path} answered {response.status} without "
                                     f"{marker!r}: {response.text()[:300]!r}")
    with Client(port) as client:
        sizes_of = {path: len(client.get(path).body) for path in [BARE_PATH, *pages]}
        etag = client.get("/projects").headers.get("etag", "")
    if not etag:
        raise BenchmarkError("GET /projects answered without an ETag")
    conditional = f"If-None-Match: {etag}\r\n"
    targets = [BARE_PATH, *pages, REPEAT]

    def run(target: str, seconds: float) -> Round:
        if target == REPEAT:
            return load_round(port, "/projects", clients, seconds, sizes.max_requests,
                              headers=conditional, expect=304)
        return load_round(port, target, clients, seconds, sizes.max_requests)

    report.progress(f"{backend}: warming up ({sizes.warmup_seconds:g} s per target)")
    for target in targets:
        run(target, sizes.warmup_seconds)
    report.progress(f"{backend}: {sizes.rounds} rounds x {len(targets)} targets x "
                    f"{sizes.seconds:g} s, {clients} keep-alive clients")
    # Each round: the bare route, then each page (rotated) with the bare route again after it
    # (B P1 B P2 B ...); a page's ratio in a round is against the bare runs either side of it.
    rounds: dict[str, list[Round]] = {target: [] for target in targets}
    ratios: dict[str, list[float]] = {target: [] for target in targets}
    others = targets[1:]

    def checked(target: str) -> Round:
        measured = run(target, sizes.seconds)
        if measured.errors:
            raise BenchmarkError(f"GET {target}: {measured.errors} of {measured.requests} "
                                 f"responses were not as expected ({measured.statuses}):\n"
                                 f"{server.log_tail()}")
        rounds[target].append(measured)
        return measured

    for r in range(sizes.rounds):
        before = checked(BARE_PATH)
        for target in others[r % len(others):] + others[:r % len(others)]:
            page = checked(target)
            after = checked(BARE_PATH)
            base = (before.rate + after.rate) / 2
            ratios[target].append(page.rate / base if base else math.inf)
            before = after
    bare = statistics.median(r.rate for r in rounds[BARE_PATH])
    bare_rates = ", ".join(f"{r.rate:,.0f}" for r in rounds[BARE_PATH])
    sizes_of[REPEAT] = 0
    for path, label in [*pages.items(), (REPEAT, "GET /projects with the ETag it was given: "
                                                  "304 Not Modified")]:
        rate = statistics.median(r.rate for r in rounds[path])
        result = report.add(Result(
            f"{PAGE_RATE}: {path}", backend, rate, bare, "req/s",
            None if path == REPEAT else at_least(0.3),
            measured_label=f"GET {path} ({label}, {sizes_of[path]:,} B)",
            baseline_label=f"GET {BARE_PATH} on the same server ({sizes_of[BARE_PATH]} B)",
            round_ratios=ratios[path],
        ))
        result.notes.append(
            f"gunicorn gthread {server.workers} workers x {server.threads} threads, {clients} "
            f"keep-alive clients in this process; {sizes.rounds} rounds, {sizes.seconds:g} s a "
            f"run, each page between two bare runs; req/s {path}: "
            f"[{', '.join(f'{r.rate:,.0f}' for r in rounds[path])}], bare: [{bare_rates}]; "
            f"every response {304 if path == REPEAT else 200}")


# -- 2. 100 concurrent checkouts for 50 t -----------------------------------------------------


def checkpoint_key(tmp: Path) -> Path:
    """The run's checkpoint signer key (made once, in the run's temporary folder)."""
    from ledger.checkpoint import write_keypair

    folder = tmp / "keys"
    key = folder / "selva.example_ledger.key"
    if not key.exists():
        folder.mkdir(exist_ok=True)
        write_keypair(folder, "selva.example/ledger")
    return key


def _make_app(url: str, secret: str, tmp: Path) -> Any:
    from marketplace import create_app

    return create_app({"DATABASE_URL": url, "SECRET_KEY": secret,
                       "STRIPE_WEBHOOK_SECRET": "whsec_" + secret,
                       "CHECKPOINT_KEY": str(checkpoint_key(tmp)),
                       "PAYMENT_GATEWAY": "demo", "RATELIMIT_ENABLED": False})


def load_demo(app: Any) -> dict[str, int]:
    """The demo data, and a checkpoint signed over it (as the worker would) so that its
    certificates are served. Returns what was added, the listings and the first retirement."""
    from ledger.schema import Entry
    from marketplace import demo, signing
    from marketplace.database import db
    from marketplace.models import Listing

    with app.app_context():
        with db.session.begin():
            added = demo.load(db.session)
        from sqlalchemy import func, select

        with db.session.begin():
            listed = db.session.scalar(select(func.count(Listing.id))
                                       .where(Listing.status == "listed"))
            retirement = db.session.scalar(select(func.min(Entry.seq))
                                           .where(Entry.kind == "retire"))
            signing.current_checkpoint(db.session)
    if not listed or not retirement:
        raise BenchmarkError("the demo data loaded no listings or no retirement")
    return {**added, "listed": int(listed), "retirement": int(retirement)}


def add_contention_listing(app: Any, stock: int) -> tuple[int, int]:
    """A project whose whole stock is ``stock`` t in the inventory, listed; returns
    (listing id, batch id)."""
    import datetime as dt

    from ledger import operations
    from marketplace.checkout import inventory_account
    from marketplace.database import db
    from marketplace.models import Listing

    with app.app_context(), db.session.begin():
        session = db.session
        project = operations.register_project(
            session, registry="SLV", registry_id="BENCH1", name="Contention test forest",
            country="PE", standards="VCS", sector="Forestry and land use")
        receipt = operations.issue(
            session, project_id=project.id, account_id=inventory_account(session).id,
            vintage_start=dt.date(2021, 1, 1), vintage_end=dt.date(2021, 12, 31),
            quantity=stock, origin="SLV:BENCH1:2021")
        listing = Listing(project_id=project.id, slug=CONTENTION_SLUG, status="listed",
                          price_minor=2000, currency="USD", headline="Contention test",
                          project_type="REDD+")
        session.add(listing)
        session.flush()
        batch_id = receipt.batch_id
        assert batch_id is not None
        return int(listing.id), int(batch_id)


def add_buyers(app: Any, count: int) -> list[str]:
    """``count`` customers made by the app's own ``create_user`` (user and ledger account),
    with a cheap password hash instead of scrypt so that setting up is quick; the login
    itself runs the real check over HTTP."""
    from unittest import mock

    from werkzeug.security import generate_password_hash

    from marketplace import auth
    from marketplace.database import db

    cheap = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    run = secrets.token_hex(3)
    emails = [f"buyer{i}-{run}@bench.example" for i in range(count)]
    with app.app_context(), db.session.begin(), \
            mock.patch.object(auth, "generate_password_hash", lambda _password: cheap):
        for i, email in enumerate(emails):
            auth.create_user(f"Bench Buyer {i}", email, PASSWORD)
    return emails


@dataclass
class Buyer:
    email: str
    client: Client
    checkout_form: dict[str, str] = field(default_factory=dict)
    checkout_status: int = 0
    outcome: str = ""
    paid: bool = False
    statuses: list[int] = field(default_factory=list)
    error: str = ""


def prepare_buyer(buyer: Buyer, listing_id: int) -> None:
    """Log in, put 1 t of the contention listing in the cart, and open the checkout form:
    everything but the final POST, as a browser would (CSRF tokens scraped from each form)."""
    c = buyer.client

    def check(response: Response, expected: int, what: str) -> Response:
        buyer.statuses.append(response.status)
        if response.status != expected:
            raise BenchmarkError(f"{what}: expected {expected}, got {response.status} "
                                 f"({response.text()[:200]!r})")
        return response

    page = check(c.get("/login"), 200, "GET /login")
    check(c.post("/login", {"csrf_token": csrf_token(page), "email": buyer.email,
                            "password": PASSWORD}, "/login"), 302, "POST /login")
    page = check(c.get(f"/projects/{CONTENTION_SLUG}"), 200, "GET the listing")
    check(c.post("/cart/add", {"csrf_token": csrf_token(page), "listing_id": str(listing_id),
                               "batch_id": "", "quantity": "1"}, f"/projects/{CONTENTION_SLUG}"),
          302, "POST /cart/add")
    page = check(c.get("/checkout"), 200, "GET /checkout")
    buyer.checkout_form = {
        "csrf_token": csrf_token(page), "buy_for": "self", "beneficiary": buyer.email,
        "purpose": "voluntary", "note": "", "country": "GB", "period_start": "2025-01-01",
        "period_end": "2025-12-31", "action": "retire",
    }


def checkout_and_pay(buyer: Buyer, gate: threading.Barrier) -> None:
    c = buyer.client
    try:
        gate.wait()
        response = c.post("/checkout", buyer.checkout_form, "/checkout")
        buyer.checkout_status = response.status
        buyer.statuses.append(response.status)
        if response.status == 302 and "/demo-checkout/" in response.location:
            path = "/" + response.location.split("://", 1)[-1].split("/", 1)[1] \
                if "://" in response.location else response.location
            page = c.get(path)
            buyer.statuses.append(page.status)
            if page.status != 200:
                buyer.outcome = f"payment page {page.status}"
                return
            paid = c.post(path.rstrip("/") + "/pay", {"csrf_token": csrf_token(page)}, path)
            buyer.statuses.append(paid.status)
            buyer.paid = paid.status == 302 and "/success" in paid.location
            buyer.outcome = "paid" if buyer.paid else f"pay answered {paid.status}"
        elif response.status == 200:
            text = response.text()
            buyer.outcome = ("refused: out of stock" if "left for sale" in text
                             else "refused: other form error")
        else:
            buyer.outcome = f"checkout answered {response.status}"
    except Exception as exc:  # noqa: BLE001 - counted and reported
        buyer.error = f"{type(exc).__name__}: {exc}"


def _run_threads(targets: list[Callable[[], None]], limit: int) -> None:
    """Run callables on at most ``limit`` threads at a time."""
    pending = list(targets)
    lock = threading.Lock()

    def drain() -> None:
        while True:
            with lock:
                if not pending:
                    return
                job = pending.pop()
            job()

    threads = [threading.Thread(target=drain, daemon=True) for _ in range(min(limit, len(targets)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)


def bench_contention(report: Report, backend: str, url: str, server: Server, app: Any,
                     sizes: Sizes) -> None:
    from sqlalchemy import func, select

    from ledger import audit, queries
    from marketplace.checkout import inventory_account
    from marketplace.database import db
    from marketplace.models import Order, OrderLine

    listing_id, batch_id = add_contention_listing(app, sizes.stock)
    emails = add_buyers(app, sizes.buyers)
    buyers = [Buyer(email, Client(server.port, source=f"127.0.{1 + i // 250}.{1 + i % 250}"))
              for i, email in enumerate(emails)]
    try:
        report.progress(f"{backend}: {len(buyers)} buyers log in and fill their carts "
                        "(over HTTP, CSRF tokens scraped)")
        setup_errors: list[str] = []

        def setup(b: Buyer) -> Callable[[], None]:
            def run() -> None:
                try:
                    prepare_buyer(b, listing_id)
                except Exception as exc:  # noqa: BLE001
                    setup_errors.append(f"{b.email}: {type(exc).__name__}: {exc}")
            return run

        _run_threads([setup(b) for b in buyers], limit=8)
        if setup_errors:
            raise BenchmarkError(f"{len(setup_errors)} buyers could not get to the checkout: "
                                 f"{setup_errors[0]}\n{server.log_tail()}")
        report.progress(f"{backend}: releasing {len(buyers)} checkouts at once, then paying")
        gate = threading.Barrier(len(buyers))
        threads = [threading.Thread(target=checkout_and_pay, args=(b, gate), daemon=True)
                   for b in buyers]
        with stopwatch() as burst:
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=300)
        hung = sum(t.is_alive() for t in threads)
    finally:
        for b in buyers:
            b.client.close()

    with app.app_context(), db.session.begin():
        session = db.session
        rows = session.execute(
            select(Order.status, func.count(Order.id.distinct()), func.sum(OrderLine.quantity))
            .join(OrderLine, OrderLine.order_id == Order.id)
            .where(OrderLine.listing_id == listing_id).group_by(Order.status)).all()
        by_status = {status: (int(n), int(q or 0)) for status, n, q in rows}
        left = queries.available_by_batch(session, inventory_account(session).id).get(batch_id, 0)
        totals = queries.batch_totals(session).get(batch_id)
        retired = totals.retired if totals else 0
        tradable = totals.tradable if totals else 0
        ledger_report = audit.verify(session)

    sold = by_status.get("fulfilled", (0, 0))[1]
    statuses = [s for b in buyers for s in b.statuses]
    server_errors = sum(1 for s in statuses if s >= 500)
    errors = [b.error for b in buyers if b.error]
    outcomes: dict[str, int] = {}
    for b in buyers:
        key = b.outcome or ("client error" if b.error else "no answer")
        outcomes[key] = outcomes.get(key, 0) + 1
    promised = sum(q for status, (_, q) in by_status.items()
                   if status in ("fulfilled", "paid", "awaiting_payment", "pending"))
    oversold = max(0, promised - sizes.stock)

    describe = (f"{len(buyers)} buyers, 1 t each, checkouts released together by a barrier "
                f"through gunicorn ({server.workers} workers x {server.threads} threads), then "
                f"each paid on the demo gateway; burst took {burst():.1f} s")
    detail = (f"orders by status (orders, t): {dict(sorted(by_status.items()))}; buyers' "
              f"outcomes: {dict(sorted(outcomes.items()))}; ledger after: {retired} t retired, "
              f"{left} t still for sale in the inventory; ledger.audit.verify OK "
              f"({ledger_report.entries} entries)")
    told_paid = sum(1 for b in buyers if b.paid)
    if told_paid != by_status.get("fulfilled", (0, 0))[0]:
        detail += (f"; {told_paid} buyers were sent to the order's success page after paying, "
                   f"but {by_status.get('fulfilled', (0, 0))[0]} orders are fulfilled (the demo "
                   "gateway does not check its webhook's outcome)")
    if hung or errors:
        detail += f"; {hung} client threads hung, {len(errors)} client errors " \
                  f"(first: {errors[0] if errors else '-'})"
    # The ledger must agree with the orders: what was sold is retired, the rest still for sale.
    complete = (not hung and not errors and retired == sold and left == sizes.stock - sold
                and tradable == left)
    rows_out = [
        (f"{CONTENTION}: tonnes sold", sold, sizes.stock, "t",
         "PASS" if sold == sizes.stock and complete else "MISS",
         f"sold = fulfilled orders' tonnes; must be exactly the {sizes.stock} t on sale"),
        (f"{CONTENTION}: oversold", oversold, sizes.stock, "t",
         "PASS" if oversold == 0 else "MISS",
         "tonnes promised to buyers (orders fulfilled, paid or awaiting payment) beyond the "
         "stock; must be 0"),
        (f"{CONTENTION}: 5xx responses", server_errors, len(statuses), "responses",
         "PASS" if server_errors == 0 else "MISS",
         f"of all {len(statuses)} responses to the buyers (setup, checkout, payment); must "
         "be 0"),
    ]
    for number, (name, measured, baseline, unit, verdict, what) in enumerate(rows_out):
        result = report.add(Result(name, backend, measured, baseline, unit, None,
                                   measured_label=what,
                                   baseline_label="tonnes on sale" if unit == "t"
                                   else "responses in all", flag=verdict))
        if number == 0:
            result.notes.append(describe)
            result.notes.append(detail)
        else:
            result.notes.append("the same run as the tonnes-sold row above")
    if server_errors:
        report.note(f"gunicorn's log tail:\n{server.log_tail()}")


# -- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks web",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_common_arguments(parser)
    parser.add_argument("--only", choices=("pages", "contention"), action="append",
                        help="run only these benchmarks (repeatable)")
    parser.add_argument("--workers", type=int, default=2,
                        help="gunicorn workers for the page rates (default 2: one per core)")
    parser.add_argument("--threads", type=int, default=4,
                        help="threads per gunicorn worker for the page rates (default 4)")
    parser.add_argument("--clients", type=int, default=8,
                        help="concurrent keep-alive clients for the page rates (default 8)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    only = set(args.only or ("pages", "contention"))
    report = Report(f"Web benchmarks ({'quick' if args.quick else 'full'} run): ratios "
                    "measured side by side in this run")
    try:
        resolved = resolve_backends(args.backend, args.postgres_url)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in resolved.notes:
        report.note(note)
    # DESIGN's figures are for PostgreSQL; SQLite only when asked for or when it is all there is.
    backends = ("postgres",) if "postgres" in resolved.run else resolved.run
    if args.backend == "sqlite":
        backends = ("sqlite",)
    secret = "bench-" + secrets.token_hex(16)  # not JSON: CARBON_* values are parsed as JSON
    with stopwatch() as total, bench_tmpdir() as tmp:
        for backend in backends:
            app = None
            ready = False
            try:
                with fresh_database(backend, tmp, admin_url=args.postgres_url,
                                    label="web") as url:
                    with report.guard(PAGE_RATE, backend):
                        app = _make_app(url, secret, tmp)
                        loaded = load_demo(app)
                        report.progress(f"{backend}: demo data loaded ({loaded})")
                        ready = True
                    if not ready:
                        continue
                    if "pages" in only:
                        with report.guard(PAGE_RATE, backend):
                            with gunicorn(url, tmp, workers=args.workers, threads=args.threads,
                                          secret=secret) as server:
                                bench_pages(report, backend, server, sizes, args.clients,
                                            loaded["retirement"])
                    if "contention" in only:
                        with report.guard(CONTENTION, backend):
                            # More threads than for the page rates: 32 requests in flight at
                            # once, all after the same 50 t.
                            with gunicorn(url, tmp, workers=4, threads=8,
                                          secret=secret) as server:
                                bench_contention(report, backend, url, server, app, sizes)
            finally:
                if app is not None:
                    from marketplace.database import db

                    db.dispose_all()
    report.note(f"total time {total():.0f} s")
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
