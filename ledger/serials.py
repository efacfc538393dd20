"""Serial numbers: one per tonne, written as one string per contiguous block.

A block of credits is the range ``[first, last]`` of one batch, so a block is named by its
batch's fixed fields plus that range. Two formats exist, both hyphen-separated and split on
``-`` alone (no field may contain a hyphen, so splitting is unambiguous):

Verra (batches that mirror a Verra issuance), 13 fields, exactly as Verra prints them::

    {issuance}-{first}-{last}-VCS-VCU-{code}-VER-{country}-{scope}-{project}-{DDMMYYYY}-{DDMMYYYY}-{flag}
    9660-115597313-115618057-VCS-VCU-261-VER-US-14-1060-01012019-31122019-0

Selva (batches Selva issues itself), 9 fields::

    SLV-{batch}-{registry}-{project}-{country}-{YYYYMMDD}-{YYYYMMDD}-{first}-{last}
    SLV-7-VCS-944-PE-20150101-20151231-1-250000

The native format leads with the literal ``SLV`` so that a parser tells the two apart by the
first field (a Verra serial starts with a number). It puts the batch's fixed fields first and
the range last, so every block of one batch shares a prefix. Its dates are ``YYYYMMDD`` so
they sort as text; ``registry`` is ``[A-Z]{2,10}``, ``project`` is ``[A-Za-z0-9]{1,20}``.

Parsing is strict so that each block has exactly one spelling, and ``format_serial`` and
``parse_serial`` are exact inverses: integers are ASCII decimal with no sign and no leading
zeros ("0" itself is allowed where zero is), dates are fixed width, countries are two upper-case
ASCII letters (the shape of ISO 3166-1 alpha-2; whether the code is assigned is not checked
here). Only surrounding whitespace is forgiven. Serials and other numbers are capped at
``MAX_SERIAL = 2**53 - 1`` so that they survive canonical JSON (see ``ledger.canonical``).
Every failure is a one-line :class:`SerialFormatError` naming the field and what was expected.

This module is pure: standard library and ``ledger.errors`` only.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from dataclasses import dataclass
from typing import TypeVar

from .errors import InvalidQuantityError, SerialFormatError

MAX_SERIAL = 2**53 - 1

_INT = re.compile(r"0|[1-9][0-9]*")
_DATE = re.compile(r"[0-9]{8}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_REGISTRY = re.compile(r"[A-Z]{2,10}")
_PROJECT = re.compile(r"[A-Za-z0-9]{1,20}")
_MAX_DIGITS = len(str(MAX_SERIAL))
_VERRA_FIELDS = 13
_NATIVE_FIELDS = 9


def _show(value: object) -> str:
    """A short, single-line rendering of a bad value, so messages stay one line."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _num(value: int) -> str:
    """An int for a message; str() of one over 4300 digits raises ValueError, so summarise."""
    return str(value) if abs(value) <= 10**30 else f"a {value.bit_length()}-bit number"


def _check_int(name: str, value: object, low: int, high: int = MAX_SERIAL) -> int:
    # Exactly int: True is an int too, but it would format as "True".
    if type(value) is not int:
        raise SerialFormatError(f"{name} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise SerialFormatError(f"{name} must be between {low} and {high}, got {_num(value)}")
    return value


def _check_text(name: str, value: object, pattern: re.Pattern[str], expected: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise SerialFormatError(f"{name} must be {expected}, got {_show(value)}")


def _check_range(first: object, last: object) -> None:
    if _check_int("first", first, 1) > _check_int("last", last, 1):
        raise SerialFormatError(f"last ({last}) must not be less than first ({first})")


def _check_date(name: str, value: object) -> datetime.date:
    # A datetime is a date, but it would never compare equal to its parsed-back date.
    if not isinstance(value, datetime.date) or isinstance(value, datetime.datetime):
        raise SerialFormatError(f"{name} must be a datetime.date, got {type(value).__name__}")
    return value


def _check_period(start: object, end: object) -> None:
    if _check_date("start", start) > _check_date("end", end):
        raise SerialFormatError(f"start ({start}) must not be after end ({end})")


def _check_country(country: object) -> None:
    _check_text("country", country, _COUNTRY, "two upper-case letters (ISO 3166-1 alpha-2)")


@dataclass(frozen=True)
class VerraSerial:
    """A block of a batch mirrored from a Verra issuance; fields in Verra's own order."""

    issuance: int
    first: int
    last: int
    code: int
    country: str
    scope: int
    project: int
    start: datetime.date
    end: datetime.date
    flag: int

    def __post_init__(self) -> None:
        _check_int("issuance", self.issuance, 1)
        _check_range(self.first, self.last)
        _check_int("code", self.code, 0)
        _check_country(self.country)
        _check_int("scope", self.scope, 0)
        _check_int("project", self.project, 1)
        _check_period(self.start, self.end)
        _check_int("flag", self.flag, 0, 1)

    @property
    def quantity(self) -> int:
        """Tonnes in the block: the range is inclusive at both ends."""
        return self.last - self.first + 1

    def with_range(self, first: int, last: int) -> VerraSerial:
        """The same batch, another range (validated afresh)."""
        return dataclasses.replace(self, first=first, last=last)

    def __str__(self) -> str:
        return "-".join(
            [
                str(self.issuance),
                str(self.first),
                str(self.last),
                "VCS",
                "VCU",
                str(self.code),
                "VER",
                self.country,
                str(self.scope),
                str(self.project),
                f"{self.start.day:02d}{self.start.month:02d}{self.start.year:04d}",
                f"{self.end.day:02d}{self.end.month:02d}{self.end.year:04d}",
                str(self.flag),
            ]
        )


@dataclass(frozen=True)
class NativeSerial:
    """A block of a batch Selva issued itself; format in the module docstring."""

    batch: int
    registry: str
    project: str
    country: str
    start: datetime.date
    end: datetime.date
    first: int
    last: int

    def __post_init__(self) -> None:
        _check_int("batch", self.batch, 1)
        _check_text("registry", self.registry, _REGISTRY, "2 to 10 upper-case letters")
        _check_text("project", self.project, _PROJECT, "1 to 20 ASCII letters or digits")
        _check_country(self.country)
        _check_period(self.start, self.end)
        _check_range(self.first, self.last)

    @property
    def quantity(self) -> int:
        """Tonnes in the block: the range is inclusive at both ends."""
        return self.last - self.first + 1

    def with_range(self, first: int, last: int) -> NativeSerial:
        """The same batch, another range (validated afresh)."""
        return dataclasses.replace(self, first=first, last=last)

    def __str__(self) -> str:
        return "-".join(
            [
                "SLV",
                str(self.batch),
                self.registry,
                self.project,
                self.country,
                f"{self.start.year:04d}{self.start.month:02d}{self.start.day:02d}",
                f"{self.end.year:04d}{self.end.month:02d}{self.end.day:02d}",
                str(self.first),
                str(self.last),
            ]
        )


Serial = VerraSerial | NativeSerial
S = TypeVar("S", bound=Serial)


def format_serial(serial: Serial) -> str:
    """The one spelling of ``serial``; ``parse_serial`` reads it back to an equal value."""
    if not isinstance(serial, (VerraSerial, NativeSerial)):
        raise SerialFormatError(f"cannot format a {type(serial).__name__} as a serial")
    return str(serial)


def _int(name: str, token: str) -> int:
    # Check the length before calling int(): it raises ValueError beyond 4300 digits.
    if not _INT.fullmatch(token):
        raise SerialFormatError(
            f"{name} must be decimal digits without leading zeros, got {_show(token)}"
        )
    if len(token) > _MAX_DIGITS:
        raise SerialFormatError(f"{name} must be at most {MAX_SERIAL}, got {_show(token)}")
    return int(token)


def _date(name: str, token: str, order: str) -> datetime.date:
    if not _DATE.fullmatch(token):
        raise SerialFormatError(f"{name} must be 8 digits {order}, got {_show(token)}")
    if order == "DDMMYYYY":
        day, month, year = int(token[:2]), int(token[2:4]), int(token[4:])
    else:
        year, month, day = int(token[:4]), int(token[4:6]), int(token[6:])
    try:
        return datetime.date(year, month, day)
    except ValueError:
        raise SerialFormatError(f"{name} {token} is not a calendar date ({order})") from None


def _literal(position: int, token: str, expected: str) -> None:
    if token != expected:
        raise SerialFormatError(f"field {position} must be {expected!r}, got {_show(token)}")


def _parse_verra(tokens: list[str]) -> VerraSerial:
    if len(tokens) != _VERRA_FIELDS:
        raise SerialFormatError(
            f"a Verra serial has {_VERRA_FIELDS} fields separated by '-', got {len(tokens)}"
        )
    _literal(4, tokens[3], "VCS")
    _literal(5, tokens[4], "VCU")
    _literal(7, tokens[6], "VER")
    return VerraSerial(
        issuance=_int("issuance", tokens[0]),
        first=_int("first", tokens[1]),
        last=_int("last", tokens[2]),
        code=_int("code", tokens[5]),
        country=tokens[7],
        scope=_int("scope", tokens[8]),
        project=_int("project", tokens[9]),
        start=_date("start", tokens[10], "DDMMYYYY"),
        end=_date("end", tokens[11], "DDMMYYYY"),
        flag=_int("flag", tokens[12]),
    )


def _parse_native(tokens: list[str]) -> NativeSerial:
    if len(tokens) != _NATIVE_FIELDS:
        raise SerialFormatError(
            f"a Selva serial has {_NATIVE_FIELDS} fields separated by '-', got {len(tokens)}"
        )
    return NativeSerial(
        batch=_int("batch", tokens[1]),
        registry=tokens[2],
        project=tokens[3],
        country=tokens[4],
        start=_date("start", tokens[5], "YYYYMMDD"),
        end=_date("end", tokens[6], "YYYYMMDD"),
        first=_int("first", tokens[7]),
        last=_int("last", tokens[8]),
    )


def parse_serial(text: str) -> Serial:
    """Read a Verra or Selva serial string; anything but its one exact spelling is refused."""
    if not isinstance(text, str):
        raise SerialFormatError(f"a serial must be a str, got {type(text).__name__}")
    tokens = text.strip().split("-")
    if tokens == [""]:
        raise SerialFormatError("the serial is empty")
    if tokens[0] == "SLV":
        return _parse_native(tokens)
    if tokens[0].isascii() and tokens[0].isdigit():
        return _parse_verra(tokens)
    raise SerialFormatError(
        f"a serial starts with 'SLV' (Selva) or a Verra issuance number, got {_show(tokens[0])}"
    )


def split(serial: S, quantity: int) -> tuple[S, S | None]:
    """The first ``quantity`` serials of the block, and the rest (None if nothing is left).

    This is how a partial transfer or retirement carves a block: the two parts keep the
    batch and together cover exactly the original range.
    """
    if type(quantity) is not int:
        raise InvalidQuantityError(f"quantity must be an int, got {type(quantity).__name__}")
    if not 1 <= quantity <= serial.quantity:
        raise InvalidQuantityError(
            f"quantity must be between 1 and {serial.quantity}, got {_num(quantity)}"
        )
    cut = serial.first + quantity - 1
    head = dataclasses.replace(serial, last=cut)
    tail = dataclasses.replace(serial, first=cut + 1) if cut < serial.last else None
    return head, tail


def contains(serial: Serial, number: int) -> bool:
    """Whether serial ``number`` lies in the block. Anything but an int (a bool too) does not."""
    if type(number) is not int:
        return False
    return serial.first <= number <= serial.last
