"""Rendered pages, cached by what they show, with ETags for repeat visits.

The catalogue, the home page, project pages, the registry overview and certificate pages are
the same for every visitor between two changes of what they show. Each such view names what it
depends on as SQL scalar expressions (the chain head's seq, the listings' latest change, a
beneficiary's erasure, the newest signed checkpoint...); one query reads them all (the
*state*), and the page rendered for that state is kept under a key made of the state, the
address and the visitor's variant (signed in as whom, operator or not, cart size, mode). A
request whose state has not moved is served the stored HTML without any other query.

- Stock shown on a page also depends on reservations, which change without a ledger entry and
  lapse with time: pages showing stock are kept at most ``PAGE_STOCK_SECONDS`` (default 5).
  Checkout checks stock under lock, as always; this only bounds how old the number shown is.
- Forms carry a CSRF token per session: pages are rendered with a placeholder in its place and
  each response gets the visitor's own token.
- A flashed message makes a page personal: such a request is rendered and not stored.
- ``ETag`` (weak: the CSRF token's signature differs between two renders that mean the same)
  is a digest of the stored page and the visitor's CSRF secret, so it changes exactly when the
  page does; a matching ``If-None-Match`` answers ``304 Not Modified`` with no body.
  ``Cache-Control: private, no-cache`` makes browsers ask each time, and keeps shared caches
  (a page can name the visitor) from storing it.

Storage: Redis when ``CARBON_CACHE_URL`` is set (several workers, several hosts share one
cache; an unreachable Redis is a miss, never an error page), otherwise ``cachetools.TTLCache``
in each process (``PAGE_CACHE_ENTRIES``, default 2,048 pages). ``PAGE_CACHE`` false turns it
off.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from cachetools import TTLCache
from flask import Flask, Response, current_app, request, session
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from sqlalchemy import ColumnElement, Engine, Select, func, select
from sqlalchemy.exc import DBAPIError

from ledger.schema import Allocation, Beneficiary, ChainHead, OriginRecord, SignedCheckpoint

from .database import db

log = logging.getLogger(__name__)

CSRF_PLACEHOLDER = "csrf-b9d1f0c4e7a3"
"""Stands in for the CSRF token in stored pages; never a valid token itself. Only its
occurrences as a form field's value are filled (``_CSRF_FIELD``): text a visitor wrote (a
beneficiary's name) that happens to hold it is escaped, its quotes included, so it never
matches."""
_CSRF_FIELD = f'value="{CSRF_PLACEHOLDER}"'


DEFAULT_STOCK_SECONDS = 5.0
DEFAULT_SECONDS = 300.0
"""How long a page whose state is exact is kept at most (memory, not correctness)."""


def _with_token(html: str, token: str) -> str:
    return html.replace(_CSRF_FIELD, f'value="{token}"')


class Store(Protocol):
    def get(self, key: str) -> str | None: ...

    def set(self, key: str, html: str, seconds: float) -> None: ...


class ProcessStore:
    """An in-process cache: a TTL cache per lifetime, behind a lock (threads share it)."""

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._caches: dict[float, TTLCache[str, str]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            for cache in self._caches.values():
                found = cache.get(key)
                if found is not None:
                    return found
        return None

    def set(self, key: str, html: str, seconds: float) -> None:
        with self._lock:
            cache = self._caches.get(seconds)
            if cache is None:
                cache = self._caches[seconds] = TTLCache(self.entries, ttl=seconds,
                                                         timer=time.monotonic)
            cache[key] = html


class RedisStore:
    """Redis (``CARBON_CACHE_URL``): one cache for every worker on every host."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._warned = False

    def get(self, key: str) -> str | None:
        try:
            found = self.client.get(f"selva:page:{key}")
        except Exception as exc:  # noqa: BLE001 - a cache that is down is a miss
            self._warn(exc)
            return None
        return None if found is None else bytes(found).decode("utf-8")  # type: ignore[arg-type]

    def set(self, key: str, html: str, seconds: float) -> None:
        try:
            self.client.set(f"selva:page:{key}", html.encode("utf-8"),
                            px=max(1, int(seconds * 1000)))
        except Exception as exc:  # noqa: BLE001
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            log.warning("page cache: Redis unavailable, rendering every page (%s)",
                        type(exc).__name__)
            self._warned = True


def init_app(app: Flask) -> None:
    url = app.config.get("CACHE_URL")
    store: Store = RedisStore(str(url)) if url else ProcessStore(
        int(app.config.get("PAGE_CACHE_ENTRIES", 2048)))
    app.extensions["selva_page_cache"] = store


def store() -> Store:
    found: Store = current_app.extensions["selva_page_cache"]
    return found


# -- what pages depend on -----------------------------------------------------------------------


# The parameterless ones are built once: SQL expressions never change, and building them again
# for every request cost more than a tenth of a cached page. They are shared by every thread:
# put them in a new statement as they are, but never build on them (``.where``, ``.options``):
# SQLAlchemy notes what it has memoized on an object without a lock, and a statement derived
# from one being compiled for the first time in another thread could take a wrong cache key.


@functools.cache
def head_seq() -> ColumnElement[Any]:
    """The chain head's seq: every ledger entry moves it."""
    return select(ChainHead.seq).where(ChainHead.id == 1).scalar_subquery()


@functools.cache
def signed_size() -> ColumnElement[Any]:
    """The newest signed checkpoint's size (registry pages show it, certificates need one)."""
    return select(func.coalesce(func.max(SignedCheckpoint.size), 0)).scalar_subquery()


@functools.cache
def origin_head() -> ColumnElement[Any]:
    """The newest origin record's seq (certificates cite origin evidence)."""
    return select(func.coalesce(func.max(OriginRecord.seq), 0)).scalar_subquery()


@functools.cache
def listings_changed() -> tuple[ColumnElement[Any], ...]:
    """How many listings there are and when one last changed (a new listing, a price)."""
    from .models import Listing

    return (select(func.count(Listing.id)).scalar_subquery(),
            select(func.max(Listing.updated_at)).scalar_subquery())


def retirement_erased(seq: int) -> ColumnElement[Any]:
    """Whether retirement ``seq``'s beneficiary name is erased (NULL: no such retirement)."""
    return (select(Beneficiary.name.is_(None)).where(Beneficiary.seq == seq)
            .scalar_subquery())


def allocation_erased(reference: str) -> ColumnElement[Any]:
    """Whether kilogram allocation ``reference``'s beneficiary name is erased (NULL: not
    sealed, or no such allocation)."""
    from .models.pools import KgAllocation

    return (select(Allocation.name.is_(None))
            .join(KgAllocation, (KgAllocation.seq == Allocation.seq)
                  & (KgAllocation.idx == Allocation.idx))
            .where(KgAllocation.reference == reference).scalar_subquery())


def stock_seconds() -> float:
    return max(0.0, float(current_app.config.get("PAGE_STOCK_SECONDS", DEFAULT_STOCK_SECONDS)))


# -- serving --------------------------------------------------------------------------------------


Depends = Select[Any] | Sequence[ColumnElement[Any]]
"""What a page depends on: the columns of one query, or that query (built once, for a page
whose dependencies take no argument: SQLAlchemy keeps a statement's cache key, so running the
same statement object again costs about a third less than building it anew)."""


def _state(depends: Depends) -> tuple[Any, ...]:
    """One query. On PostgreSQL it runs outside a transaction (autocommit: one round trip, no
    BEGIN or COMMIT; a single statement sees one snapshot either way), on an engine of its own
    that does not ping each connection it checks out: a connection the server dropped fails
    the query, the pool is renewed, and the query is tried once more."""
    statement = depends if isinstance(depends, Select) else select(*depends)
    if not current_app.config.get("DATABASE_BIND"):
        engine = _state_engine(db.mode())
        if engine is not None:
            for attempt in (1, 2):
                try:
                    with engine.connect() as conn:
                        return tuple(conn.execute(statement).one())
                except DBAPIError as exc:
                    if attempt == 2 or not exc.connection_invalidated:
                        raise
    with db.session.begin():
        return tuple(db.session.execute(statement).one())


_engines_lock = threading.Lock()


def _state_engine(mode: str) -> Engine | None:
    """The PostgreSQL engine the page cache reads its state with (none on SQLite)."""
    key = f"selva_page_state_engine_{mode}"
    found: Engine | None = current_app.extensions.get(key)
    if found is not None or key in current_app.extensions:
        return found
    with _engines_lock:
        if key in current_app.extensions:
            return current_app.extensions[key]  # type: ignore[no-any-return]
        engine: Engine | None = None
        if db.engine(mode).dialect.name == "postgresql":
            from ledger.db import make_engine

            from . import modes

            url = str(current_app.config["DATABASE_URL"])
            # Autocommit for good, not per checkout: switching a connection in and out of it
            # cost more than the query itself.
            options = {"pool_pre_ping": False, "pool_size": 4, "max_overflow": 8,
                       "isolation_level": "AUTOCOMMIT"}
            engine = make_engine(url, **options) if mode == modes.LIVE else \
                modes.make_test_engine(url, current_app.config["TEST_SCHEMA"], **options)
            db.engines.add(engine)
        current_app.extensions[key] = engine
        return engine


def _variant() -> tuple[Any, ...]:
    user = current_user
    signed_in = bool(getattr(user, "is_authenticated", False))
    return (db.mode(), request.url_root,
            user.get_id() if signed_in else None,
            bool(getattr(user, "is_operator", False)) if signed_in else False,
            bool(getattr(user, "is_auditor", False)) if signed_in else False,
            getattr(user, "name", None) if signed_in else None,
            len(session.get("cart") or ()))


def page(depends: Depends, render: Callable[[], str | Response], *,
         stock: bool = False) -> str | Response:
    """Serve the page ``render`` makes, from the cache while ``depends`` reads the same.

    ``render`` runs only on a miss, and must draw its forms' CSRF tokens from the template's
    ``csrf_token`` (``pagecache.render_template`` sees to that). A ``Response`` it returns (a
    redirect, a page that says "pending") is passed through and never stored. ``stock``: the
    page shows tonnes for sale, so it is kept at most ``PAGE_STOCK_SECONDS``."""
    seconds = stock_seconds() if stock else DEFAULT_SECONDS
    if not current_app.config.get("PAGE_CACHE", True) or seconds <= 0 \
            or session.get("_flashes"):
        made = render()
        if isinstance(made, str) and _CSRF_FIELD in made:
            return _with_token(made, generate_csrf())
        return made
    state = _state(depends)
    key = hashlib.sha256(repr((request.path, sorted(request.args.items(multi=True)), state,
                               _variant())).encode()).hexdigest()
    cache = store()
    stored = cache.get(key)
    if stored is None:
        made = render()
        if isinstance(made, Response):
            return made
        # The page's own digest goes with it: the ETag follows the page, not the key (a page
        # kept for its stock seconds can be rendered anew, differently, under the same key).
        stored = f"{hashlib.sha256(made.encode()).hexdigest()[:32]}:{made}"
        cache.set(key, stored, seconds)
    digest, _, html = stored.partition(":")
    secret = ""
    if _CSRF_FIELD in html:
        token = generate_csrf()
        secret = str(session.get(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"),
                                 ""))
        html = _with_token(html, token)
    etag = hashlib.sha256(f"{digest}:{secret}".encode()).hexdigest()[:40]
    if request.if_none_match.contains_weak(etag):
        response = Response(status=304)
    else:
        response = Response(html, mimetype="text/html")
    response.set_etag(etag, weak=True)
    response.headers["Cache-Control"] = "private, no-cache"
    response.vary.add("Cookie")
    return response


def render_template(name: str, **context: Any) -> str:
    """``flask.render_template`` with the CSRF token left as a placeholder (filled per visitor
    by ``page``)."""
    from flask import render_template as flask_render

    return flask_render(name, csrf_token=lambda: CSRF_PLACEHOLDER, **context)
