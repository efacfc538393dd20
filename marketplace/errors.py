"""Error pages and the one place ledger errors become HTTP responses."""

from __future__ import annotations

from flask import Flask, render_template
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

NOT_FOUND = (UnknownAccountError, UnknownBatchError, UnknownProjectError, UnknownEntryError,
             NotHolderError)


def status_for(error: LedgerError) -> int:
    """404 for what does not exist (or is not yours), 409 for a conflict, 422 for bad input."""
    if isinstance(error, NOT_FOUND):
        return 404
    if isinstance(error, InsufficientCreditsError):
        return 409
    return 422


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):  # type: ignore[no-untyped-def]
        return render_template("error.html", code=error.code, title=error.name,
                               message=error.description), error.code or 500

    @app.errorhandler(LedgerError)
    def ledger_error(error: LedgerError):  # type: ignore[no-untyped-def]
        code = status_for(error)
        return render_template("error.html", code=code, title="That could not be done",
                               message=str(error)), code
