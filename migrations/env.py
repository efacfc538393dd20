"""Alembic environment: the only way any schema is created, tests included.

Two targets share the revisions (``marketplace.modes``): the live one, and the test-mode one
(PostgreSQL: the schema ``selva_test``, its own ``alembic_version`` inside it; SQLite: the file
beside the main one). ``config.attributes["mode"]`` says which; revisions create shared tables in
the live target only (``marketplace.migrate.shared_here``).

On SQLite, foreign keys are off while migrating (set before the migration's transaction begins,
the only time SQLite accepts it), as Alembic's batch mode needs to rebuild a table that others
reference; ``PRAGMA foreign_key_check`` must find nothing before the transaction commits.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import pool, text

from ledger.db import make_engine, normalize_url
from ledger.schema import Base
from marketplace import modes

import marketplace.models  # noqa: F401  (registers the marketplace tables on Base.metadata)

config = context.config
target_metadata = Base.metadata
MODE = config.attributes.get("mode", modes.LIVE)
TEST_SCHEMA = config.attributes.get("test_schema", modes.DEFAULT_TEST_SCHEMA)


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("CARBON_DATABASE_URL")
    if not url:
        raise SystemExit("no database URL: set CARBON_DATABASE_URL")
    return normalize_url(url)


def _engine():  # type: ignore[no-untyped-def]
    if MODE == modes.TEST:
        return modes.make_test_engine(_url(), TEST_SCHEMA, poolclass=pool.NullPool)
    return make_engine(_url(), poolclass=pool.NullPool)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = _engine()
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.connection.driver_connection.execute(  # type: ignore[union-attr]
                "PRAGMA foreign_keys = OFF")
        _run(connection)
    engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    options = {}
    if MODE == modes.TEST and connection.dialect.name != "sqlite":
        options["version_table_schema"] = TEST_SCHEMA
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True, compare_type=True, **options)
    with context.begin_transaction():
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            problems = connection.execute(text("PRAGMA foreign_key_check")).all()
            if problems and MODE == modes.LIVE:
                raise RuntimeError(f"foreign keys broken by the migration: {problems[:5]}")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
