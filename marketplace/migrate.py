"""Running Alembic from the app and from tests, with no alembic.ini needed.

Every database has two targets, migrated by the same revisions: the live one and the test-mode
one (``marketplace.modes``). A revision creates the shared tables (users, organisations, keys...)
in the live target only: it asks :func:`shared_here`.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, text

from ledger.db import make_engine

from . import modes

MIGRATIONS = Path(__file__).parent / "migrations"
"""The Alembic scripts: the repository's ``migrations/``, shipped inside the package."""


def alembic_config(url: str | None = None, connection: Connection | None = None,
                   mode: str = modes.LIVE, test_schema: str = modes.DEFAULT_TEST_SCHEMA) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    config.attributes["mode"] = mode
    config.attributes["test_schema"] = test_schema
    return config


def shared_here() -> bool:
    """Inside a revision: whether this target holds the shared tables (the live one does)."""
    return bool(context.config.attributes.get("mode", modes.LIVE) == modes.LIVE)


def _prepare_test_schema(url: str, schema: str) -> None:
    if modes.is_sqlite(url):
        return
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "heads", *,
            test_schema: str = modes.DEFAULT_TEST_SCHEMA) -> None:
    """Migrate the live target, then the test-mode target, to ``revision``."""
    command.upgrade(alembic_config(url), revision)
    _prepare_test_schema(url, test_schema)
    command.upgrade(alembic_config(url, mode=modes.TEST, test_schema=test_schema), revision)


def downgrade(url: str, revision: str, *,
              test_schema: str = modes.DEFAULT_TEST_SCHEMA) -> None:
    """Downgrade the test-mode target, then the live one, to ``revision``."""
    _prepare_test_schema(url, test_schema)
    command.downgrade(alembic_config(url, mode=modes.TEST, test_schema=test_schema), revision)
    command.downgrade(alembic_config(url), revision)
