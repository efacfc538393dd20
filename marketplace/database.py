"""The database extension: one engine per app, one session per request or command.

Views and commands own the transaction (``with db.session.begin(): ...``); ledger and service
code only flush. Tests bind the app to a connection inside a transaction that is rolled back.
"""

from __future__ import annotations

import weakref
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker
from sqlalchemy.orm.session import SessionTransactionOrigin

from ledger.db import make_engine


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


class Database:
    def __init__(self) -> None:
        self.engines: weakref.WeakSet[Engine] = weakref.WeakSet()

    def init_app(self, app: Flask) -> None:
        bind: Engine | Connection | None = app.config.get("DATABASE_BIND")
        if bind is None:
            bind = make_engine(app.config["DATABASE_URL"])
            self.engines.add(bind)
            app.extensions["selva_engine"] = bind
            options: dict[str, Any] = {}
        else:
            options = {"join_transaction_mode": "create_savepoint"}
        app.extensions["selva_db"] = sessionmaker(bind=bind, class_=WebSession,
                                                  expire_on_commit=False, autobegin=True,
                                                  **options)
        app.teardown_appcontext(self._close)

    @property
    def session(self) -> Session:
        session: Session | None = g.get("_selva_session")
        if session is None:
            session = current_app.extensions["selva_db"]()
            g._selva_session = session
        return session

    def new_session(self) -> Session:
        """A session of its own (threads, background work); the caller closes it."""
        factory: sessionmaker[Session] = current_app.extensions["selva_db"]
        return factory()

    def dispose_all(self) -> None:
        """Close every pooled connection of the apps' engines (tests, forked workers)."""
        for engine in list(self.engines):
            engine.dispose()

    @staticmethod
    def _close(_exc: BaseException | None) -> None:
        session: Session | None = g.pop("_selva_session", None)
        if session is not None:
            session.close()


db = Database()
