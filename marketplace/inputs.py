"""The input boundary: what a request may carry before any of it reaches SQL.

SQLite forgives what PostgreSQL refuses (a NUL byte in text, an integer past the column's
range, text longer than its column), so the rules are checked here, once, for every page, the
API and the webhooks alike:

- *Path ids* (``<int:...>``): ASCII digits only, 1 to 2,147,483,647 (the range of the
  smallest id column; no table here comes near it). Anything else matches no route: a 404,
  as for an id that does not exist.
- *Path text* (``<name>``, ``<string:name>``): at most 200 characters, no control character
  (NUL included): otherwise a 404.
- *Query parameters and form fields*, names and values: no control character, except line
  breaks and tabs in form values (a note may hold them); a query value is at most
  2,000 characters. Otherwise a 400 naming the field (the API answers with its RFC 9457
  problem, naming the parameter).
- *JSON bodies* (the API): the same rule for every string, checked in ``api.views.load_body``
  with :func:`bad_text`, then the schemas check ranges and lengths against the columns.

Views still validate what their fields mean (forms, schemas); this module makes sure that what
they see is text a database column can hold.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter, Map, UnicodeConverter

MAX_ID = 2**31 - 1
MAX_PATH_TEXT = 200
MAX_QUERY_VALUE = 2000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_EXCEPT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class IdConverter(IntegerConverter):
    """``<int:...>``: a positive id within the id columns' range, in ASCII digits."""

    regex = r"[0-9]{1,10}"

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = 1,
                 max: int | None = MAX_ID, signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


class TextConverter(UnicodeConverter):
    """``<name>`` and ``<string:name>``: one path segment of printable text."""

    def __init__(self, map: Map, minlength: int = 1, maxlength: int | None = MAX_PATH_TEXT,
                 length: int | None = None) -> None:
        super().__init__(map, minlength=minlength, maxlength=maxlength, length=length)
        low = minlength if length is None else length
        high = (maxlength or MAX_PATH_TEXT) if length is None else length
        self.regex = f"[^/\\x00-\\x1f\\x7f-\\x9f]{{{low},{high}}}"


_DIGITS = re.compile(r"[0-9]{1,19}")
MAX_BIGINT = 2**63 - 1


def plain_int(text: str | None, low: int = 1, high: int = MAX_ID) -> int | None:
    """``text`` as a whole number in [low, high] if it is written in plain ASCII digits, else
    None (``str.isdigit`` would take "²" and "١٢٣", which ``int`` refuses or misreads)."""
    if text is None or not _DIGITS.fullmatch(text):
        return None
    number = int(text)
    return number if low <= number <= high else None


def bad_text(value: str, *, lines: bool = False) -> str | None:
    """Why ``value`` cannot be stored as text, or None if it can."""
    pattern = _CONTROL_EXCEPT_LINES if lines else _CONTROL
    if pattern.search(value):
        return "holds a control character (such as NUL), which is not allowed"
    return None


class BadField(BadRequest):
    """A query parameter or form field that no column could hold."""

    def __init__(self, where: str, name: str, why: str) -> None:
        super().__init__(description=f"The {where} {name!r} {why}.")
        self.where = where
        self.field = name


def check_request() -> None:
    """Refuse a request whose query or form carries text no column can hold."""
    for name, value in request.args.items(multi=True):
        why = bad_text(name) or bad_text(value)
        if why is None and len(value) > MAX_QUERY_VALUE:
            why = f"is longer than {MAX_QUERY_VALUE} characters"
        if why is not None:
            raise BadField("parameter", _shown(name), why)
    if request.method in ("POST", "PUT", "PATCH") and request.mimetype in (
            "application/x-www-form-urlencoded", "multipart/form-data"):
        for name, value in request.form.items(multi=True):
            why = bad_text(name) or bad_text(value, lines=True)
            if why is not None:
                raise BadField("field", _shown(name), why)


def _shown(name: str) -> str:
    return _CONTROL.sub("?", name)[:60]


def register_converters(app: Flask) -> None:
    """Before any blueprint adds its rules: rules bind their converters when added."""
    app.url_map.converters["int"] = IdConverter
    app.url_map.converters["default"] = TextConverter
    app.url_map.converters["string"] = TextConverter


def register(app: Flask) -> None:
    app.before_request(check_request)


def walk_strings(value: Any, pointer: str = "#") -> list[tuple[str, str]]:
    """Every string in a JSON document (keys included), with its JSON pointer."""
    found: list[tuple[str, str]] = []
    if isinstance(value, str):
        found.append((pointer, value))
    elif isinstance(value, dict):
        for key, item in value.items():
            found.append((pointer, str(key)))
            found.extend(walk_strings(item, f"{pointer}/{key}"))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(walk_strings(item, f"{pointer}/{index}"))
    return found
