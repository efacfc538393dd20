"""Cursor pagination: ``?limit=N`` and ``?cursor=<next_cursor of the previous page>``.

A cursor is opaque to clients: URL-safe base64 of a small JSON document naming the list and
the sort key of the last item returned. Pages are keyset pages (``WHERE key > last``), so an
item added or removed meanwhile never shifts the others between pages. A cursor made for one
list is refused by another; a mangled one is a 422 naming the parameter.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .problems import Problem, invalid_field

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None

    def envelope(self, data: list[Any]) -> dict[str, Any]:
        return {"object": "list", "data": data, "has_more": self.has_more,
                "next_cursor": self.next_cursor}


def encode(kind: str, key: Sequence[Any]) -> str:
    raw = json.dumps({"l": kind, "k": list(key)}, separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(raw.encode("ascii")).decode("ascii").rstrip("=")


def bad_cursor() -> Problem:
    return invalid_field("cursor", "Not a cursor this list gave out.", "query")


def decode(kind: str, cursor: str | None, shape: Sequence[type] | None = None) -> list[Any] | None:
    """The key a cursor holds, or None for the first page; a 422 problem if it is not one of
    ours for this list (``shape``: the expected type of each part of the key)."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found = json.loads(raw.decode("ascii"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad_cursor() from None
    if not isinstance(found, dict) or found.get("l") != kind or not isinstance(found.get("k"), list):
        raise bad_cursor()
    key: list[Any] = found["k"]
    if shape is not None:
        if len(key) != len(shape) or not all(
                isinstance(part, expected) and not isinstance(part, bool)
                for part, expected in zip(key, shape, strict=True)):
            raise bad_cursor()
    return key


def page_of(rows: list[T], limit: int, kind: str, key: Callable[[T], Sequence[Any]]) -> Page[T]:
    """``rows`` holds up to ``limit + 1`` items after the cursor; the extra one only says there
    is more."""
    if len(rows) > limit:
        shown = rows[:limit]
        return Page(shown, encode(kind, key(shown[-1])))
    return Page(rows, None)
