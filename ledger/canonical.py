"""Canonical JSON (RFC 8785) for the values a ledger record holds.

Records hold objects, arrays, strings, integers and null only. Floats are refused: a tonne or
a price is never fractional, and a float would make the bytes, and so the hash, depend on how a
language prints numbers. Integers must lie within +/-(2**53 - 1) so that every JSON reader,
JavaScript's included, reads the same number back (I-JSON, RFC 7493).

With those limits RFC 8785 reduces to: keys sorted by their UTF-16 code units, no whitespace,
strings escaped as ECMAScript's JSON.stringify escapes them, UTF-8 bytes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import CanonicalFormError

import msgspec as _msgspec
import orjson as _orjson

MAX_SAFE_INTEGER = 2**53 - 1

_SHORT_ESCAPES = {
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
    '"': '\\"',
    "\\": "\\\\",
}


def _string(value: str) -> str:
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif code < 0x20:
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            raise CanonicalFormError("a string holds a lone surrogate")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise CanonicalFormError(f"integer {value} is outside the I-JSON safe range")
        out.append(str(value))
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise CanonicalFormError("object keys must be strings")
        out.append("{")
        for i, key in enumerate(sorted(value, key=_utf16_key)):
            if i:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise CanonicalFormError(f"{type(value).__name__} values are not allowed in a record")


def _check(value: Any) -> bool:
    """Refuse what a record may not hold; return True if some key lies outside the BMP
    (the one case where UTF-16 order differs from Python's code-point order)."""
    if value is None or isinstance(value, (bool, str)):
        return False
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise CanonicalFormError(f"integer {value} is outside the I-JSON safe range")
        return False
    if isinstance(value, dict):
        astral = False
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalFormError("object keys must be strings")
            astral = astral or (not key.isascii() and any(ord(ch) > 0xFFFF for ch in key))
            astral = _check(item) or astral
        return astral
    if isinstance(value, (list, tuple)):
        astral = False
        for item in value:
            astral = _check(item) or astral
        return astral
    raise CanonicalFormError(f"{type(value).__name__} values are not allowed in a record")


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                            allow_nan=False, check_circular=True)


def dumps(value: Any) -> bytes:
    """Return the canonical UTF-8 bytes of ``value``.

    The standard library's encoder with ``ensure_ascii=False`` escapes strings exactly as
    RFC 8785 asks (the two-character escapes, other controls as lower-case ``\\u00xx``, all
    else literal), so it does the work in C once the walk above has checked the types. Keys
    outside the BMP, where code-point and UTF-16 order differ, take the slow path.
    """
    if _check(value):
        out: list[str] = []
        _write(value, out)
        text = "".join(out)
    else:
        text = _ENCODER.encode(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise CanonicalFormError("a string holds a lone surrogate") from None


def _no_floats(text: str) -> Any:
    raise CanonicalFormError(f"a record may not hold the number {text}")


_ASTRAL = re.compile(rb"[\xf0-\xf4]")
"""The lead byte of a character outside the BMP, in UTF-8."""


def _refuse_float(text: str) -> Any:
    raise ValueError(text)


_read_without_floats = _msgspec.json.Decoder(float_hook=_refuse_float).decode
"""JSON to Python values, refusing any number with a fraction or an exponent (msgspec)."""
_STRICT_OPTIONS = _orjson.OPT_SORT_KEYS | _orjson.OPT_STRICT_INTEGER


def loads(data: bytes) -> Any:
    """Parse record bytes, refusing anything that is not already in canonical form.

    A record whose bytes differ from the canonical encoding of what they hold could be
    re-encoded into other bytes with another hash, so it is rejected outright.

    Most records take a fast path (``_fast_loads``); whatever it does not accept is decided
    by the strict path, which gives the reasons.
    """
    fast = _fast_loads(data)
    return fast if fast is not None else _strict_loads(data)


def _fast_loads(data: bytes) -> Any:
    """The value of ``data`` if it is, provably, canonical; None if that takes the strict path.

    The case: an object with no backslash at all (so no escapes, and every string written
    literally), no character outside the BMP (so sorting keys by code point is sorting them by
    UTF-16 code units), and no float (msgspec's parser hands every number with a fraction or
    an exponent to a hook, which refuses it). For such a value orjson (sorted keys, integers
    within 2**53) writes what RFC 8785 writes, so bytes that parse so and that orjson writes
    back unchanged are canonical.
    """
    if data[:1] != b"{" or b"\\" in data:
        return None
    if not data.isascii() and _ASTRAL.search(data):
        return None
    try:
        value = _read_without_floats(data)
        again = _orjson.dumps(value, option=_STRICT_OPTIONS)
    except (_msgspec.MsgspecError, ValueError, TypeError, RecursionError):
        return None
    return value if again == data else None


def _strict_loads(data: bytes) -> Any:
    try:
        value = json.loads(data.decode("utf-8"), parse_float=_no_floats, parse_constant=_no_floats)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CanonicalFormError(f"not valid JSON: {exc}") from None
    if dumps(value) != data:
        raise CanonicalFormError("the bytes are not in canonical form")
    return value
