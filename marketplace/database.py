"""The database extension: one engine per mode per app, one session per mode per request or
command.

Views and commands own the transaction (``with db.session.begin(): ...``); ledger and service
code only flush. ``db.session`` is the session of the current mode (``marketplace.modes``): live
unless the request runs in test mode (a test-mode API key, a page of the test registry), set
with :meth:`Database.use`.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, g, has_app_context
from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker
from sqlalchemy.orm.session import SessionTransactionOrigin

from ledger.db import make_engine

from . import modes


class WebSession(Session):
    """A session whose ``begin()`` first ends a transaction that began by itself.

    Reads outside a ``with session.begin():`` block (flask-login loading the user, a lazy
    relationship in a template) autobegin a transaction; views then open their own. Such an
    implicit transaction only ever read, so it is committed (nothing to write, nothing
    expired) before the explicit one starts.
    """

    def begin(self, nested: bool = False) -> SessionTransaction:
        current = self.get_transaction()
        if not nested and current is not None and current.origin is SessionTransactionOrigin.AUTOBEGIN:
            if self.new or self.dirty or self.deleted:
                raise RuntimeError("changes were made outside a transaction block")
            self.commit()
        return super().begin(nested=nested)


# Within a transaction, every object the session loads or writes is held, not only weakly
# referenced by its identity map. Otherwise an object nothing else holds any more (a listing
# read to check a quote's line, then dropped) is gone by the time the same transaction asks for
# it again, and ``session.get`` or a lazy relationship reads it again: an API quote made
# 20 statements, four of them such reads. Held only until the transaction ends, so a session
# that lives long (the worker's) does not grow, and a later transaction reads afresh as before.


@event.listens_for(WebSession, "loaded_as_persistent")
@event.listens_for(WebSession, "pending_to_persistent")
def _hold(session: Session, instance: object) -> None:
    session.info.setdefault("selva_held", []).append(instance)


@event.listens_for(WebSession, "after_transaction_end")
def _let_go(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop("selva_held", None)


class ModeUnavailable(RuntimeError):
    """Test mode needs a database file or a PostgreSQL schema; this database has neither."""


class Database:
    def __init__(self) -> None:
        self.engines: weakref.WeakSet[Engine] = weakref.WeakSet()

    def init_app(self, app: Flask) -> None:
        bind: Connection | None = app.config.get("DATABASE_BIND")
        if bind is not None:
            # Tests: every session joins the caller's connection, inside a transaction the
            # test rolls back (a view's commit releases a savepoint). Live mode only.
            factory = sessionmaker(bind=bind, class_=WebSession, expire_on_commit=False,
                                   autobegin=True, join_transaction_mode="create_savepoint")
            app.extensions["selva_engine"] = bind.engine
            app.extensions["selva_db"] = factory
            app.extensions["selva_sessions"] = {modes.LIVE: factory}
            app.teardown_appcontext(self._close)
            return
        url = app.config["DATABASE_URL"]
        live = make_engine(url)
        self.engines.add(live)
        app.extensions["selva_engine"] = live
        factories = {modes.LIVE: sessionmaker(bind=live, class_=WebSession,
                                              expire_on_commit=False, autobegin=True)}
        try:
            test = modes.make_test_engine(url, app.config["TEST_SCHEMA"])
        except ValueError:
            pass  # an in-memory database: live mode only
        else:
            self.engines.add(test)
            app.extensions["selva_test_engine"] = test
            factories[modes.TEST] = sessionmaker(bind=test, class_=WebSession,
                                                 expire_on_commit=False, autobegin=True)
        app.extensions["selva_db"] = factories[modes.LIVE]
        app.extensions["selva_sessions"] = factories
        app.teardown_appcontext(self._close)

    # -- modes ------------------------------------------------------------------------------

    @staticmethod
    def mode() -> str:
        """The current mode: ``live`` unless :meth:`use` said otherwise."""
        if not has_app_context():
            return modes.LIVE
        return str(g.get("_selva_mode", modes.LIVE))

    @contextmanager
    def use(self, mode: str) -> Iterator[None]:
        """Run the block in ``mode``: ``db.session`` is that mode's session."""
        previous = g.get("_selva_mode", modes.LIVE)
        self.set_mode(mode)
        try:
            yield
        finally:
            g._selva_mode = previous

    @property
    def livemode(self) -> bool:
        """What the API calls ``livemode``: whether this runs on the live data."""
        return self.mode() == modes.LIVE

    def set_mode(self, mode: str) -> None:
        """The rest of this request runs in ``mode`` (set once, by the request's entry point)."""
        if mode not in modes.MODES:
            raise ValueError(f"unknown mode {mode!r}")
        g._selva_mode = mode

    # -- sessions -----------------------------------------------------------------------------

    @property
    def session(self) -> Session:
        return self.session_for(self.mode())

    def session_for(self, mode: str) -> Session:
        sessions: dict[str, Session] = g.setdefault("_selva_sessions", {})
        session = sessions.get(mode)
        if session is None:
            session = sessions[mode] = self._factory(mode)()
        return session

    def new_session(self, mode: str | None = None) -> Session:
        """A session of its own (threads, background work); the caller closes it."""
        return self._factory(mode or self.mode())()

    @staticmethod
    def _factory(mode: str) -> sessionmaker[Session]:
        factories: dict[str, sessionmaker[Session]] = current_app.extensions["selva_sessions"]
        if mode not in factories:
            raise ModeUnavailable("test mode needs a database file or PostgreSQL")
        return factories[mode]

    def engine(self, mode: str = modes.LIVE, app: Flask | None = None) -> Engine:
        extensions = (app or current_app).extensions
        engine: Engine = extensions["selva_engine" if mode == modes.LIVE else "selva_test_engine"]
        return engine

    def dispose_all(self) -> None:
        """Close every pooled connection of the apps' engines (tests, forked workers), once
        the kilogram sealer threads using them have stopped."""
        from .kilograms import stop_sealers

        stop_sealers()
        for engine in list(self.engines):
            engine.dispose()

    @staticmethod
    def _close(_exc: BaseException | None) -> None:
        sessions: dict[str, Session] = g.pop("_selva_sessions", {})
        for session in sessions.values():
            session.close()


db = Database()


def all_modes() -> tuple[str, ...]:
    """The modes this app has data for (both, unless the database is in memory)."""
    factories: dict[str, Any] = current_app.extensions["selva_sessions"]
    return tuple(mode for mode in modes.MODES if mode in factories)
