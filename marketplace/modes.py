"""Live and test mode: one code path, two sets of data.

Like Stripe's test mode, a test-mode API key runs exactly the code a live key runs, against a
ledger, inventory, orders, quotes, idempotency records and webhook events of its own. What is
shared is who people are: users, organisations, memberships, API keys, webhook endpoints, saved
payment methods and footprints.

Where the test data lives:

- PostgreSQL: the schema ``selva_test`` (``CARBON_TEST_SCHEMA``) in the same database. A
  test-mode connection's ``search_path`` is ``selva_test, public``: the per-mode tables are
  found in the test schema, the shared ones (which exist only in ``public``) behind it. Foreign
  keys from test tables to shared tables cross schemas as PostgreSQL allows.
- SQLite: a second file beside the main one (``selva.db`` -> ``selva-test.db``), opened as the
  connection's main database with the live file attached as ``live``: unqualified names find
  the test tables first and the shared tables in the live file. SQLite cannot check a foreign
  key across two files, so test-mode connections on SQLite run with foreign keys off (the
  ledger's own triggers, rules and ``verify`` still hold there; PostgreSQL checks everything).

Both are migrated by Alembic (``marketplace.migrate.upgrade`` migrates the two targets); the
shared tables are created in the live target only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

from ledger.db import make_engine, normalize_url

LIVE = "live"
TEST = "test"
MODES = (LIVE, TEST)
DEFAULT_TEST_SCHEMA = "selva_test"

SHARED_TABLES = frozenset({
    "users", "organisations", "memberships", "api_keys", "api_saved_payment_methods",
    "api_webhook_endpoints", "saved_footprints", "footprint_profiles", "offset_subscriptions",
    "offset_invoices", "mail_outbox",
})
"""Tables that exist once, in the live target, whatever the mode."""


def is_sqlite(url: str) -> bool:
    return make_url(normalize_url(url)).get_backend_name() == "sqlite"


def test_sqlite_path(url: str) -> str:
    """``sqlite:///dir/selva.db`` -> ``sqlite:///dir/selva-test.db``."""
    parsed = make_url(normalize_url(url))
    database = parsed.database or ""
    if database in ("", ":memory:"):
        raise ValueError("test mode needs a database file, not an in-memory SQLite database")
    stem, dot, suffix = database.rpartition(".")
    test_file = f"{stem}-test.{suffix}" if dot and "/" not in suffix else f"{database}-test"
    return str(parsed.set(database=test_file))


def test_target(url: str, schema: str = DEFAULT_TEST_SCHEMA) -> tuple[str, dict[str, Any]]:
    """The URL and engine options of the test-mode data for the live database ``url``."""
    if is_sqlite(url):
        live_file = make_url(normalize_url(url)).database or ""
        return test_sqlite_path(url), {"attach": {"live": live_file}, "foreign_keys": False}
    _check_schema(schema)
    return normalize_url(url), {"connect_args": {"options": f"-c search_path={schema},public"}}


def make_test_engine(url: str, schema: str = DEFAULT_TEST_SCHEMA, **kwargs: Any) -> Engine:
    """An engine whose connections see the test-mode tables (and the shared ones behind them)."""
    target, options = test_target(url, schema)
    attach: dict[str, str] = options.pop("attach", {})
    foreign_keys = options.pop("foreign_keys", True)
    for key, value in options.items():
        if isinstance(value, dict):
            kwargs.setdefault(key, {}).update(value)
        else:
            kwargs.setdefault(key, value)
    engine = make_engine(target, **kwargs)
    if attach or not foreign_keys:
        @event.listens_for(engine, "connect")
        def _attach(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
            for name, path in attach.items():
                cursor.execute("ATTACH DATABASE ? AS " + _identifier(name), (path,))
            cursor.close()
    return engine


def _identifier(name: str) -> str:
    if not name.isidentifier() or not name.isascii():
        raise ValueError(f"not a plain name: {name!r}")
    return name


def _check_schema(schema: str) -> None:
    if not (schema.isidentifier() and schema.isascii() and schema.islower()):
        raise ValueError(f"the test schema must be a plain lower-case name, not {schema!r}")
