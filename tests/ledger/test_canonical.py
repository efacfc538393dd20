"""Canonical JSON: the bytes every entry hash covers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import canonical
from ledger.errors import CanonicalFormError

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


def test_sorted_keys_no_whitespace_utf8() -> None:
    assert canonical.dumps({"b": 1, "a": [1, "é\n", None]}) == '{"a":[1,"é\\n",null],"b":1}'.encode()


def test_rfc8785_escapes() -> None:
    assert canonical.dumps("\u0001\b\t\n\f\r\"\\\u007f\u2028") == b'"\\u0001\\b\\t\\n\\f\\r\\"\\\\\x7f\xe2\x80\xa8"'


def test_keys_sort_by_utf16_code_units() -> None:
    # U+1F600 is D83D DE00 in UTF-16, which sorts before U+FB01 although its code point is larger.
    data = canonical.dumps({"\ufb01": 1, "\U0001f600": 2})
    assert data == '{"\U0001f600":2,"\ufb01":1}'.encode()


@pytest.mark.parametrize("bad", [1.5, float("nan"), 2**53, -(2**53), {1: "x"}, {"a": {1}}, "\ud800"])
def test_refuses_what_a_record_may_not_hold(bad: object) -> None:
    with pytest.raises(CanonicalFormError):
        canonical.dumps(bad)


@pytest.mark.parametrize("data", [b'{"a": 1}', b'{"b":1,"a":2}', b'{"a":1.0}', b'{"a":1,"a":1}',
                                  b"\xff", b'"\\u00e9"', b"[1,]"])
def test_loads_refuses_non_canonical_bytes(data: bytes) -> None:
    with pytest.raises(CanonicalFormError):
        canonical.loads(data)


@given(values)
def test_round_trip_and_agreement_with_the_reference_writer(value: object) -> None:
    data = canonical.dumps(value)
    assert canonical.loads(data) == value
    out: list[str] = []
    canonical._write(value, out)
    assert "".join(out).encode() == data
    assert json.loads(data) == value
