"""Serial strings: worked examples, every malformed case, and round-trip properties."""

from __future__ import annotations

import dataclasses
import datetime
import string
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import InvalidQuantityError, SerialFormatError
from ledger.serials import (
    MAX_SERIAL,
    NativeSerial,
    VerraSerial,
    contains,
    format_serial,
    parse_serial,
    split,
)

VERRA = "9660-115597313-115618057-VCS-VCU-261-VER-US-14-1060-01012019-31122019-0"
NATIVE = "SLV-7-VCS-944-PE-20150101-20151231-1-250000"


def verra(**changes: object) -> VerraSerial:
    """The worked Verra example with some fields changed."""
    base = parse_serial(VERRA)
    assert isinstance(base, VerraSerial)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def native(**changes: object) -> NativeSerial:
    """The worked Selva example with some fields changed."""
    base = parse_serial(NATIVE)
    assert isinstance(base, NativeSerial)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# --- worked examples ---------------------------------------------------------------------


def test_verra_example_fields() -> None:
    assert parse_serial(VERRA) == VerraSerial(
        issuance=9660,
        first=115597313,
        last=115618057,
        code=261,
        country="US",
        scope=14,
        project=1060,
        start=datetime.date(2019, 1, 1),
        end=datetime.date(2019, 12, 31),
        flag=0,
    )
    assert parse_serial(VERRA).quantity == 20745
    assert str(parse_serial(VERRA)) == format_serial(parse_serial(VERRA)) == VERRA


def test_native_example_fields() -> None:
    serial = parse_serial(NATIVE)
    assert serial == NativeSerial(
        batch=7,
        registry="VCS",
        project="944",
        country="PE",
        start=datetime.date(2015, 1, 1),
        end=datetime.date(2015, 12, 31),
        first=1,
        last=250000,
    )
    assert serial.quantity == 250000
    assert format_serial(serial) == NATIVE


def test_split_verra_one_and_rest() -> None:
    head, tail = split(verra(), 1)
    assert str(head) == "9660-115597313-115597313-VCS-VCU-261-VER-US-14-1060-01012019-31122019-0"
    assert tail is not None
    assert str(tail) == "9660-115597314-115618057-VCS-VCU-261-VER-US-14-1060-01012019-31122019-0"
    assert (head.quantity, tail.quantity) == (1, 20744)


def test_split_native_all_and_part() -> None:
    whole, nothing = split(native(), 250000)
    assert whole == native() and nothing is None
    head, tail = split(native(), 100)
    assert str(head) == "SLV-7-VCS-944-PE-20150101-20151231-1-100"
    assert str(tail) == "SLV-7-VCS-944-PE-20150101-20151231-101-250000"


@pytest.mark.parametrize("quantity", [0, -1, 20746, True, 1.0, "1", None])
def test_split_refuses_bad_quantity(quantity: object) -> None:
    with pytest.raises(InvalidQuantityError, match="quantity must be"):
        split(verra(), quantity)  # type: ignore[arg-type]


def test_split_refuses_huge_quantity_without_printing_it() -> None:
    with pytest.raises(InvalidQuantityError, match="bit number"):
        split(verra(), 10**5000)


def test_with_range_keeps_batch_and_validates() -> None:
    moved = verra().with_range(5, 9)
    assert moved == verra(first=5, last=9) and moved.quantity == 5
    assert native().with_range(7, 7).quantity == 1
    with pytest.raises(SerialFormatError, match=r"last \(4\) must not be less than first \(5\)"):
        native().with_range(5, 4)


def test_contains() -> None:
    serial = verra()
    assert contains(serial, 115597313) and contains(serial, 115618057)
    assert not contains(serial, 115597312) and not contains(serial, 115618058)
    assert not contains(native(), True)  # a bool is not a serial number
    assert contains(native(), 1)


def test_surrounding_whitespace_is_forgiven() -> None:
    assert parse_serial(f" \t{VERRA}\n") == parse_serial(VERRA)
    assert parse_serial(f"\n{NATIVE}  ") == parse_serial(NATIVE)


def test_extreme_values() -> None:
    top = f"1-{MAX_SERIAL}-{MAX_SERIAL}-VCS-VCU-0-VER-ZZ-0-1-01010001-31129999-1"
    assert format_serial(parse_serial(top)) == top
    assert parse_serial(top).quantity == 1
    low = "SLV-1-AB-0-AA-00010101-00010101-1-1"
    assert format_serial(parse_serial(low)) == low


# --- malformed input ---------------------------------------------------------------------


def _verra_with(index: int, token: str) -> str:
    tokens = VERRA.split("-")
    tokens[index] = token
    return "-".join(tokens)


def _native_with(index: int, token: str) -> str:
    tokens = NATIVE.split("-")
    tokens[index] = token
    return "-".join(tokens)


MALFORMED = [
    ("", "empty"),
    ("  \n", "empty"),
    ("-", "starts with 'SLV'"),
    ("hello", "starts with 'SLV'"),
    ("slv-7-VCS-944-PE-20150101-20151231-1-250000", "starts with 'SLV'"),
    ("+9660" + VERRA[4:], "starts with 'SLV'"),
    ("\u0669660" + VERRA[4:], "starts with 'SLV'"),  # Arabic-Indic digit nine
    (VERRA.rsplit("-", 1)[0], "Verra serial has 13 fields.*got 12"),
    (VERRA + "-0", "Verra serial has 13 fields.*got 14"),
    (VERRA.replace("-", "--", 1), "Verra serial has 13 fields"),
    ("SLV", "Selva serial has 9 fields.*got 1"),
    (NATIVE + "-1", "Selva serial has 9 fields.*got 10"),
    (_native_with(3, "94-4"), "Selva serial has 9 fields"),
    (_verra_with(3, "VCX"), "field 4 must be 'VCS'"),
    (_verra_with(4, "vcu"), "field 5 must be 'VCU'"),
    (_verra_with(6, "VERRA"), "field 7 must be 'VER'"),
    (_verra_with(0, "09660"), "issuance must be decimal digits without leading zeros"),
    (_verra_with(0, "0"), "issuance must be between 1"),
    (_verra_with(1, "0"), "first must be between 1"),
    (_verra_with(1, "00"), "first must be decimal digits without leading zeros"),
    (_verra_with(1, ""), "first must be decimal digits"),
    (_verra_with(2, "115597312"), r"last \(115597312\) must not be less than first"),
    (_verra_with(2, str(MAX_SERIAL + 1)), "last must be between 1 and 9007199254740991"),
    (_verra_with(2, "1" * 17), "last must be at most 9007199254740991"),
    (_verra_with(2, "9" * 5000), "last must be at most"),
    (_verra_with(5, "2a1"), "code must be decimal digits"),
    (_verra_with(7, "us"), "country must be two upper-case letters"),
    (_verra_with(7, "USA"), "country must be two upper-case letters"),
    (_verra_with(7, ""), "country must be two upper-case letters"),
    (_verra_with(7, "\u00c9S"), "country must be two upper-case letters"),
    (_verra_with(8, "\u0661\u0664"), "scope must be decimal digits"),  # Arabic-Indic 14
    (_verra_with(8, " 14"), "scope must be decimal digits"),
    (_verra_with(9, "-1"), "Verra serial has 13 fields"),
    (_verra_with(9, "0"), "project must be between 1"),
    (_verra_with(10, "31022019"), "start 31022019 is not a calendar date"),
    (_verra_with(10, "01010000"), "start 01010000 is not a calendar date"),
    (_verra_with(10, "1012019"), "start must be 8 digits DDMMYYYY"),
    (_verra_with(10, "2019-01-01"), "Verra serial has 13 fields"),
    (_verra_with(11, "20191231"), "end 20191231 is not a calendar date"),
    (_verra_with(11, "31122018"), r"start \(2019-01-01\) must not be after end \(2018-12-31\)"),
    (_verra_with(12, "2"), "flag must be between 0 and 1"),
    (_verra_with(12, "00"), "flag must be decimal digits without leading zeros"),
    (_native_with(1, "0"), "batch must be between 1"),
    (_native_with(1, "07"), "batch must be decimal digits without leading zeros"),
    (_native_with(2, "vcs"), "registry must be 2 to 10 upper-case letters"),
    (_native_with(2, "V"), "registry must be 2 to 10 upper-case letters"),
    (_native_with(2, "ABCDEFGHIJK"), "registry must be 2 to 10 upper-case letters"),
    (_native_with(3, ""), "project must be 1 to 20 ASCII letters or digits"),
    (_native_with(3, "9_4"), "project must be 1 to 20 ASCII letters or digits"),
    (_native_with(3, "x" * 21), "project must be 1 to 20 ASCII letters or digits"),
    (_native_with(4, "P3"), "country must be two upper-case letters"),
    (_native_with(5, "01012015"), "start 01012015 is not a calendar date"),
    (_native_with(5, "2015011"), "start must be 8 digits YYYYMMDD"),
    (_native_with(6, "20150231"), "end 20150231 is not a calendar date"),
    (_native_with(6, "20141231"), "start .* must not be after end"),
    (_native_with(7, "0"), "first must be between 1"),
    (_native_with(8, "0250000"), "last must be decimal digits without leading zeros"),
    (_native_with(8, "x"), "last must be decimal digits"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed_serials_are_refused(text: str, message: str) -> None:
    with pytest.raises(SerialFormatError, match=message) as caught:
        parse_serial(text)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("value", [None, 9660, b"SLV-7-VCS-944-PE-20150101-20151231-1-2", [VERRA]])
def test_non_str_is_refused(value: object) -> None:
    with pytest.raises(SerialFormatError, match="serial must be a str"):
        parse_serial(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: verra(flag=True), "flag must be an int, got bool"),
        (lambda: verra(first=1.0), "first must be an int, got float"),
        (lambda: verra(last=10**5000), "last must be between 1 and 9007199254740991, got a"),
        (lambda: verra(issuance="9660"), "issuance must be an int, got str"),
        (lambda: verra(scope=-1), "scope must be between 0 and"),
        (lambda: verra(country=None), "country must be two upper-case letters"),
        (lambda: verra(start=datetime.datetime(2019, 1, 1)), "start must be a datetime.date"),
        (lambda: native(end="20151231"), "end must be a datetime.date, got str"),
        (lambda: native(registry="VC-S"), "registry must be 2 to 10 upper-case letters"),
        (lambda: native(first=3, last=2), r"last \(2\) must not be less than first \(3\)"),
    ],
)
def test_constructor_validates(make: Callable[[], object], message: str) -> None:
    with pytest.raises(SerialFormatError, match=message) as caught:
        make()
    assert "\n" not in str(caught.value)


def test_format_refuses_non_serial() -> None:
    with pytest.raises(SerialFormatError, match="cannot format a str"):
        format_serial(VERRA)  # type: ignore[arg-type]


# --- properties --------------------------------------------------------------------------

serial_numbers = st.integers(1, MAX_SERIAL)
ids = st.integers(1, MAX_SERIAL)
countries = st.text(string.ascii_uppercase, min_size=2, max_size=2)
registries = st.text(string.ascii_uppercase, min_size=2, max_size=10)
projects = st.text(string.ascii_letters + string.digits, min_size=1, max_size=20)


@st.composite
def ranges(draw: st.DrawFn) -> tuple[int, int]:
    a, b = draw(serial_numbers), draw(serial_numbers)
    return min(a, b), max(a, b)


@st.composite
def periods(draw: st.DrawFn) -> tuple[datetime.date, datetime.date]:
    a, b = draw(st.dates()), draw(st.dates())
    return min(a, b), max(a, b)


@st.composite
def verra_serials(draw: st.DrawFn) -> VerraSerial:
    first, last = draw(ranges())
    start, end = draw(periods())
    return VerraSerial(
        issuance=draw(ids),
        first=first,
        last=last,
        code=draw(st.integers(0, MAX_SERIAL)),
        country=draw(countries),
        scope=draw(st.integers(0, MAX_SERIAL)),
        project=draw(ids),
        start=start,
        end=end,
        flag=draw(st.integers(0, 1)),
    )


@st.composite
def native_serials(draw: st.DrawFn) -> NativeSerial:
    first, last = draw(ranges())
    start, end = draw(periods())
    return NativeSerial(
        batch=draw(ids),
        registry=draw(registries),
        project=draw(projects),
        country=draw(countries),
        start=start,
        end=end,
        first=first,
        last=last,
    )


serials = st.one_of(verra_serials(), native_serials())


def _dmy(day: datetime.date) -> str:
    return f"{day.day:02d}{day.month:02d}{day.year:04d}"


def _ymd(day: datetime.date) -> str:
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


@st.composite
def valid_texts(draw: st.DrawFn) -> str:
    """Valid serial strings assembled token by token, independently of the formatter."""
    first, last = draw(ranges())
    start, end = draw(periods())
    country = draw(countries)
    if draw(st.booleans()):
        tokens = [
            str(draw(ids)), str(first), str(last), "VCS", "VCU", str(draw(st.integers(0, 999))),
            "VER", country, str(draw(st.integers(0, 16))), str(draw(ids)),
            _dmy(start), _dmy(end), draw(st.sampled_from(["0", "1"])),
        ]  # fmt: skip
    else:
        tokens = [
            "SLV", str(draw(ids)), draw(registries),
            draw(projects), country,
            _ymd(start), _ymd(end), str(first), str(last),
        ]  # fmt: skip
    return "-".join(tokens)


@given(serials)
def test_value_round_trip(serial: VerraSerial | NativeSerial) -> None:
    assert parse_serial(format_serial(serial)) == serial


@given(valid_texts())
def test_text_round_trip(text: str) -> None:
    assert format_serial(parse_serial(text)) == text


@given(serials, st.data())
def test_split_partitions_the_block(
    serial: VerraSerial | NativeSerial, data: st.DataObject
) -> None:
    quantity = data.draw(st.integers(1, min(serial.quantity, 10**6)))
    head, tail = split(serial, quantity)
    assert type(head) is type(serial) and head.quantity == quantity
    assert head.first == serial.first and contains(head, serial.first)
    if tail is None:
        assert head == serial
    else:
        assert head.with_range(serial.first, serial.last) == serial
        assert (tail.first, tail.last) == (head.last + 1, serial.last)
        assert not contains(head, tail.first) and contains(tail, tail.first)


def _parses_back_or_refuses(text: str) -> None:
    try:
        parsed = parse_serial(text)
    except SerialFormatError:
        return
    assert format_serial(parsed) == text.strip()


@given(st.text())
def test_junk_text(text: str) -> None:
    _parses_back_or_refuses(text)


@given(st.text(alphabet="0123456789-SLVCUERABZ \n\u0660", max_size=90))
def test_junk_from_serial_alphabet(text: str) -> None:
    _parses_back_or_refuses(text)


@given(valid_texts(), st.data())
def test_mutated_serials(text: str, data: st.DataObject) -> None:
    """One edit to a valid serial: still exact if it parses, else a SerialFormatError."""
    at = data.draw(st.integers(0, len(text)))
    char = data.draw(st.sampled_from("0123456789-SLVCUERAZaz _\u0661"))
    edit = data.draw(st.sampled_from(["insert", "delete", "replace"]))
    if edit == "insert":
        text = text[:at] + char + text[at:]
    elif edit == "delete":
        text = text[:at] + text[at + 1 :]
    else:
        text = text[:at] + char + text[at + 1 :]
    _parses_back_or_refuses(text)
