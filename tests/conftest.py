"""Shared fixtures: one database per backend per test session, migrated with Alembic once;
every test runs in a transaction that is rolled back.

PostgreSQL tests run when the server answers (``CARBON_TEST_POSTGRES_URL``, default the local
``test`` database). With ``CARBON_REQUIRE_POSTGRES=1`` (as in CI) an absent server fails the
run instead of skipping those tests.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ledger.db import make_engine
from marketplace.migrate import upgrade
from marketplace.modes import test_sqlite_path

ADMIN_URL = os.environ.get("CARBON_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("CARBON_REQUIRE_POSTGRES") == "1"


def _postgres_available() -> str | None:
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


_PG_PROBLEM = _postgres_available()


def _admin_execute(sql: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def _pg_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


class Databases:
    """Migrated template databases, and fresh copies of them for tests that must commit."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.created: list[str] = []
        self._templates: dict[str, str] = {}

    def template(self, backend: str) -> str:
        if backend not in self._templates:
            if backend == "sqlite":
                path = self.tmp / "template.db"
                url = f"sqlite:///{path}"
            else:
                self._require_postgres()
                name = f"selva_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
                _admin_execute(f'CREATE DATABASE "{name}"')
                self.created.append(name)
                url = _pg_url(name)
            upgrade(url)
            self._templates[backend] = url
        return self._templates[backend]

    def fresh(self, backend: str) -> str:
        """A new database with the migrated schema, for tests that commit."""
        template = self.template(backend)
        if backend == "sqlite":
            path = self.tmp / f"fresh_{uuid.uuid4().hex[:8]}.db"
            shutil.copy(template.removeprefix("sqlite:///"), path)
            # test mode's data lives in a second file beside the main one (marketplace.modes)
            shutil.copy(test_sqlite_path(template).removeprefix("sqlite:///"),
                        test_sqlite_path(f"sqlite:///{path}").removeprefix("sqlite:///"))
            return f"sqlite:///{path}"
        name = f"selva_fresh_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        template_name = template.rpartition("/")[2]
        _admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
        self.created.append(name)
        return _pg_url(name)

    @staticmethod
    def _require_postgres() -> None:
        if _PG_PROBLEM is not None:
            if REQUIRE_POSTGRES:
                pytest.fail(f"PostgreSQL is required but unreachable: {_PG_PROBLEM}")
            pytest.skip(f"PostgreSQL unreachable: {_PG_PROBLEM}")

    def drop_all(self) -> None:
        for name in reversed(self.created):
            try:
                _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.Error:
                pass


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    dbs = Databases(tmp_path_factory.mktemp("databases"))
    yield dbs
    dbs.drop_all()


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def engine(databases: Databases, backend: str) -> Iterator[Engine]:
    # A copy, not the template itself: PostgreSQL copies a template only while no one is
    # connected to it, and this engine keeps pooled connections for the whole session.
    eng = make_engine(databases.fresh(backend))
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test.

    ``session.begin()`` in the code under test becomes a SAVEPOINT, so a refused operation
    rolls back exactly what it wrote and the test can check that nothing remains.
    """
    connection = engine.connect()
    outer = connection.begin()
    db_session = Session(bind=connection, join_transaction_mode="create_savepoint",
                         expire_on_commit=False)
    try:
        yield db_session
    finally:
        db_session.close()
        outer.rollback()
        connection.close()


@pytest.fixture(autouse=True)
def _dispose_app_engines() -> Iterator[None]:
    """Apps made in a test close their database connections when it ends."""
    yield
    from marketplace.database import db

    db.dispose_all()


@pytest.fixture
def pg_url(databases: Databases) -> str:
    """A fresh, migrated PostgreSQL database for tests that commit from many threads."""
    return databases.fresh("postgres")


@pytest.fixture
def fresh_url(databases: Databases, backend: str) -> str:
    """A fresh, migrated database of the current backend, for tests that commit."""
    return databases.fresh(backend)


from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci", derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
