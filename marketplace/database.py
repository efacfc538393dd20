"""The database extension: one engine per app, one session per request or command.

Views and commands own the transaction (``with db.session.begin(): ...``); ledger and service
code only flush. Tests bind the app to a connection inside a transaction that is rolled back.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from ledger.db import make_engine


class Database:
    def init_app(self, app: Flask) -> None:
        bind: Engine | Connection | None = app.config.get("DATABASE_BIND")
        if bind is None:
            bind = make_engine(app.config["DATABASE_URL"])
            options: dict[str, Any] = {}
        else:
            options = {"join_transaction_mode": "create_savepoint"}
        app.extensions["selva_db"] = sessionmaker(bind=bind, expire_on_commit=False,
                                                  autobegin=True, **options)
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

    @staticmethod
    def _close(_exc: BaseException | None) -> None:
        session: Session | None = g.pop("_selva_session", None)
        if session is not None:
            session.close()


db = Database()
