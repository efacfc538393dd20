"""Engines for the two databases the ledger runs on.

SQLite: WAL mode, foreign keys on, and every transaction begun with ``BEGIN IMMEDIATE`` so a
writer holds the database's write lock from its first statement (invariant 8 on SQLite; a
deferred transaction that reads first and writes later can fail to upgrade its lock).
PostgreSQL: psycopg 3; appends lock the chain-head row with ``SELECT ... FOR UPDATE``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session


def normalize_url(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` and use the psycopg 3 driver for both."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine configured for the ledger's locking rules."""
    url = normalize_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA busy_timeout = 30000")
            if make_url(url).database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # Pre-ping: a connection the server dropped (a restart, a failover) is replaced at checkout
    # instead of failing a request. The page cache's one hot read uses an engine without it
    # and retries once instead (``marketplace.pagecache``).
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_recycle", 1800)
    return create_engine(url, **kwargs)


def dialect_of(session: Session) -> str:
    """``sqlite`` or ``postgresql``: the few places where the SQL differs ask this."""
    return session.get_bind().dialect.name
