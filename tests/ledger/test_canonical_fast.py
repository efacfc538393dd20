"""canonical.loads takes a fast path (orjson) for most records: it must never accept what the
strict path refuses, and must read the same values. Compared on random JSON, canonical or
not: floats, big integers, escapes, characters outside the BMP, whitespace, key orders."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import canonical
from ledger.errors import CanonicalFormError

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12) | \
    st.sampled_from(["true", "null", "1.5", "e", "E", ".", '"', "\\", "\n", "\x7f", "\ue000",
                     "\U0001F600", "\u2028"])
scalars = st.none() | st.booleans() | st.integers(-(2**60), 2**60) | \
    st.floats(allow_nan=False, allow_infinity=False) | text
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(text, inner, max_size=4), max_leaves=12)


def _strict(data: bytes) -> tuple[bool, Any]:
    try:
        return True, canonical._strict_loads(data)
    except CanonicalFormError:
        return False, None


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(text, values, max_size=5),
       st.sampled_from(["canonical", "orjson", "sorted", "compact", "spaced"]))
def test_the_fast_path_accepts_only_what_the_strict_path_accepts(
        value: dict[str, Any], form: str) -> None:
    if form == "canonical":
        try:
            data = canonical.dumps(value)
        except CanonicalFormError:
            data = json.dumps(value, sort_keys=True, separators=(",", ":"),
                              ensure_ascii=False).encode("utf-8", "surrogatepass")
    elif form == "orjson":
        import orjson

        try:
            data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return
    else:
        data = json.dumps(value, sort_keys=form != "compact", ensure_ascii=False,
                          separators=(", ", ": ") if form == "spaced" else (",", ":")
                          ).encode("utf-8", "surrogatepass")
    fast = canonical._fast_loads(data)
    accepted, strict = _strict(data)
    if fast is not None:
        assert accepted, data
        assert fast == strict and json.dumps(fast, sort_keys=True) == \
            json.dumps(strict, sort_keys=True)
    loaded = None
    try:
        loaded = canonical.loads(data)
    except CanonicalFormError:
        assert not accepted
    else:
        assert accepted and loaded == strict


def test_the_fast_path_is_taken_for_ordinary_records() -> None:
    record = canonical.dumps({"v": 1, "seq": 7, "kind": "retire", "prev": "ab" * 32,
                              "time": "2026-01-05T09:00:00Z",
                              "data": {"quantity": 3, "note": "Café de Lima, S.A.",
                                       "flags": [True, False, None]}})
    assert canonical._fast_loads(record) == canonical._strict_loads(record)

