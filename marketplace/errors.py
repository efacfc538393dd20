"""Error pages and the one place ledger errors become HTTP responses."""

from __future__ import annotations

import logging

from flask import Flask, g, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from ledger.errors import (
    InsufficientCreditsError,
    LedgerError,
    NotHolderError,
    UnknownAccountError,
    UnknownBatchError,
    UnknownEntryError,
    UnknownProjectError,
)

log = logging.getLogger(__name__)

NOT_FOUND = (UnknownAccountError, UnknownBatchError, UnknownProjectError, UnknownEntryError,
             NotHolderError)


def status_for(error: LedgerError) -> int:
    """404 for what does not exist (or is not yours), 409 for a conflict, 422 for bad input."""
    if isinstance(error, NOT_FOUND):
        return 404
    if isinstance(error, InsufficientCreditsError):
        return 409
    return 422


def database_lost(error: DBAPIError) -> ResponseReturnValue:
    """A connection lost mid-request (a database restart, a failover, a killed backend):
    the transaction was rolled back whole and the pool replaces the connection, so the
    answer is "nothing was saved, try again", not a crash. Any other database error is a
    bug, and stays a 500."""
    if not error.connection_invalidated:
        raise error

    for session in g.get("_selva_sessions", {}).values():
        session.rollback()
    log.warning("database connection lost during %s %s", request.method, request.path)
    message = ("The connection to the database was lost: nothing was saved. Please try "
               "again.")
    if request.blueprint == "api":
        from .api.problems import Problem, problem_response

        return problem_response(Problem(503, "Service Unavailable", message,
                                        headers={"Retry-After": "1"}))
    return render_template("error.html", code=503, title="Please try again",
                           message=message), 503


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):  # type: ignore[no-untyped-def]
        return render_template("error.html", code=error.code, title=error.name,
                               message=error.description), error.code or 500

    app.register_error_handler(DBAPIError, database_lost)

    @app.errorhandler(LedgerError)
    def ledger_error(error: LedgerError):  # type: ignore[no-untyped-def]
        code = status_for(error)
        return render_template("error.html", code=code, title="That could not be done",
                               message=str(error)), code
