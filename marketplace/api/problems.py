"""Errors as RFC 9457 problem details (``application/problem+json``), never HTML or a trace.

A view raises :class:`Problem`; validation errors become one problem listing every field,
each with a JSON Pointer into the body (``pointer``), or the query ``parameter`` or ``header``
it concerns. Anything else that goes wrong under ``/api/`` (an unknown address, a wrong method,
a rate limit, an unexpected exception) is answered the same way, by the handlers registered in
:func:`register`, which leave the site's HTML error pages alone everywhere else.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask, Response, request, url_for
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.routing import BuildError

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
API_PREFIX = "/api/"


class Problem(Exception):
    """An error to answer with a problem document.

    ``slug`` names the kind of problem (documented at ``/developers#problem-<slug>``); without
    one the type is ``about:blank`` and the title is the HTTP status phrase.
    """

    def __init__(self, status: int, title: str, detail: str | None = None, *,
                 slug: str | None = None, errors: list[dict[str, str]] | None = None,
                 headers: Mapping[str, str] | None = None,
                 extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.slug = slug
        self.errors = errors or []
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def type_uri(slug: str | None) -> str:
    if slug is None:
        return "about:blank"
    try:
        return url_for("developers.index", _anchor=f"problem-{slug}", _external=True)
    except (BuildError, RuntimeError):
        return f"/developers#problem-{slug}"


def problem_response(problem: Problem) -> Response:
    body: dict[str, Any] = {
        "type": type_uri(problem.slug),
        "title": problem.title,
        "status": problem.status,
    }
    if problem.detail:
        body["detail"] = problem.detail
    try:
        body["instance"] = request.path
    except RuntimeError:
        pass
    if problem.errors:
        body["errors"] = problem.errors
    body.update(problem.extra)
    response = Response(json.dumps(body, ensure_ascii=False), status=problem.status,
                        mimetype=MEDIA_TYPE)
    response.headers["Cache-Control"] = "no-store"
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


# -- validation errors ----------------------------------------------------------------------


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _walk(messages: Any, path: tuple[str, ...]) -> Iterable[tuple[tuple[str, ...], str]]:
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            step = () if key == "_schema" else (str(key),)
            yield from _walk(value, path + step)
    elif isinstance(messages, list | tuple):
        for item in messages:
            yield from _walk(item, path)
    else:
        yield path, str(messages)


def field_errors(messages: Any, where: str = "body") -> list[dict[str, str]]:
    """marshmallow's nested messages as a flat list: ``{"pointer": "#/lines/0/quantity",
    "detail": "..."}`` for the body, ``{"parameter": "limit", ...}`` for the query string,
    ``{"header": "Idempotency-Key", ...}`` for a header."""
    found = []
    for path, message in _walk(messages, ()):
        if where == "body":
            found.append({"pointer": "#" + "".join(f"/{_escape(p)}" for p in path),
                          "detail": message})
        elif where == "query":
            found.append({"parameter": ".".join(path) or "(query)", "detail": message})
        else:
            found.append({"header": ".".join(path) or where, "detail": message})
    return found


def invalid(errors: list[dict[str, str]], detail: str | None = None) -> Problem:
    count = len(errors)
    return Problem(422, "Your request is not valid",
                   detail or (f"{count} field{'s are' if count != 1 else ' is'} not valid: "
                              "see errors."),
                   slug="validation", errors=errors)


def invalid_field(pointer: str, message: str, where: str = "body") -> Problem:
    key = {"body": "pointer", "query": "parameter", "header": "header"}[where]
    return invalid([{key: pointer, "detail": message}], message)


# -- handlers -------------------------------------------------------------------------------


def is_api_request() -> bool:
    try:
        return request.path.startswith(API_PREFIX)
    except RuntimeError:
        return False


def from_http_exception(error: HTTPException) -> Problem:
    from ..inputs import BadField

    if isinstance(error, BadField):
        where = "query" if error.where == "parameter" else "body"
        return invalid_field(error.field if where == "query" else f"#/{error.field}",
                             str(error.description), where)
    status = error.code or 500
    headers: dict[str, str] = {}
    if status == 405:
        allowed = getattr(error, "valid_methods", None) or []
        if allowed:
            headers["Allow"] = ", ".join(sorted(allowed))
    if status == 429:
        return Problem(429, "Too many requests", "Slow down and retry after the time given in "
                       "the Retry-After header.", slug="rate-limited", headers=headers)
    detail = None
    if status == 404:
        detail = "There is nothing at this address."
    elif status == 405:
        detail = f"{request.method} is not allowed here."
    elif status >= 500:
        detail = "Something went wrong on our side; it has been logged."
    elif error.description and status < 500:
        detail = error.description
    return Problem(status, error.name, detail, headers=headers)


def handle_unexpected(error: Exception) -> Response:
    """Any exception a view did not expect: logged with its trace, answered with none."""
    log.error("unexpected error in %s %s", request.method, request.path, exc_info=error)
    return problem_response(from_http_exception(InternalServerError()))


def register(app: Flask) -> None:
    """Answer HTTP errors under /api/ with problem details; the site's handler (HTML error
    pages) keeps answering everywhere else."""
    handlers = app.error_handler_spec.setdefault(None, {}).setdefault(None, {})
    previous = handlers.get(HTTPException)
    if getattr(previous, "_selva_api", False):
        return

    def http_error(error: HTTPException) -> Any:
        if is_api_request():
            response = problem_response(from_http_exception(error))
            if error.code == 429 and error.response is not None:
                retry = error.response.headers.get("Retry-After")
                if retry:
                    response.headers["Retry-After"] = retry
            return response
        if previous is not None:
            return previous(error)
        return error

    http_error._selva_api = True  # type: ignore[attr-defined]
    app.register_error_handler(HTTPException, http_error)
