"""The ledger's rules as small pure functions, shared by the operations and by the replay.

Each rule raises its own error class (see ``errors``). The operations check them before
writing anything; ``replay`` checks them again on every journal entry, so a rule that only the
code enforced would still be caught by ``verify``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from typing import NamedTuple
from dataclasses import dataclass, field

from .errors import (
    AccountKindError,
    FinalStateError,
    InsufficientCreditsError,
    InvalidQuantityError,
    RetirementDetailsError,
    SerialRangeError,
)

ZERO_HASH = "0" * 64
RECORD_VERSION = 1

MAX_SERIAL = 2**53 - 1
"""Serials stay within the I-JSON safe integer range so every JSON reader agrees on them."""

MAX_QUANTITY = 10**12
"""A trillion tonnes: far above any real issuance, far below overflow. Anything larger is a typo."""

MAX_TEXT = 500

PURPOSES: dict[str, str] = {
    "voluntary": "Voluntary offsetting of emissions",
    "net_zero": "Progress towards a net-zero or climate target",
    "product": "Offsetting a product or service",
    "event": "Offsetting an event",
    "travel": "Offsetting travel",
    "corsia": "CORSIA compliance",
    "other": "Other (described in the note)",
}
"""The fixed list of retirement purposes; free text goes in the note beside it."""

COUNTRIES = frozenset(
    """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO
    BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK
    DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR
    GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM
    KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP
    MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL
    PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST
    SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG
    VI VN VU WF WS YE YT ZA ZM ZW""".split()
)
"""ISO 3166-1 alpha-2 codes."""

_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


class BlockRange(NamedTuple):
    """A block as the rules see it: which batch, who holds it, which serials, in which state.

    A named tuple rather than a frozen dataclass: the replay makes millions of them, and a
    tuple is built and compared several times faster. Immutable either way."""

    id: int
    batch: int
    account: int
    first: int
    last: int
    state: str

    @property
    def quantity(self) -> int:
        return self.last - self.first + 1

    def as_record(self) -> dict[str, int | str]:
        return {
            "id": self.id,
            "batch": self.batch,
            "account": self.account,
            "first": self.first,
            "last": self.last,
            "state": self.state,
        }


MAX_ID = 2**31 - 1
"""Ids the ledger hands out fit the smallest id column (a PostgreSQL INTEGER)."""


def check_id(value: object, error: type[Exception], what: str) -> int:
    """An id is a whole number in range; anything else is refused before it reaches SQL."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise error(f"no {what} {value!r}")
    return value


def validate_quantity(quantity: object) -> int:
    """Invariant 2: whole tonnes only, at least one, no absurd amounts."""
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidQuantityError(f"quantity must be a whole number of tonnes, not {quantity!r}")
    if quantity < 1:
        raise InvalidQuantityError(f"quantity must be at least 1 tonne, not {quantity}")
    if quantity > MAX_QUANTITY:
        raise InvalidQuantityError(f"quantity {quantity} is larger than any real issuance")
    return quantity


def validate_range(first: object, last: object) -> tuple[int, int]:
    """A serial range is 1 <= first <= last <= MAX_SERIAL, in whole numbers."""
    for value in (first, last):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SerialRangeError(f"serial numbers must be whole numbers, not {value!r}")
    assert isinstance(first, int) and isinstance(last, int)
    if not 1 <= first <= last <= MAX_SERIAL:
        raise SerialRangeError(f"serial range [{first}, {last}] is empty or out of bounds")
    validate_quantity(last - first + 1)
    return first, last


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f]")
"""Control characters other than a tab or a line break."""


def validate_text(value: object, what: str, *, required: bool) -> str:
    """Free text in a record: a string, trimmed, at most MAX_TEXT characters."""
    if not isinstance(value, str):
        raise RetirementDetailsError(f"{what} must be text")
    text = value.strip()
    if required and not text:
        raise RetirementDetailsError(f"{what} is required")
    if len(text) > MAX_TEXT:
        raise RetirementDetailsError(f"{what} is longer than {MAX_TEXT} characters")
    if _CONTROL.search(text):
        raise RetirementDetailsError(f"{what} holds control characters")
    return text


def validate_country(code: object) -> str:
    """A country of use is an ISO 3166-1 alpha-2 code."""
    if not isinstance(code, str) or code not in COUNTRIES:
        raise RetirementDetailsError(f"country must be an ISO 3166-1 alpha-2 code, not {code!r}")
    return code


def validate_purpose(purpose: object, note: str) -> str:
    """The purpose comes from a fixed list; 'other' must be described in the note."""
    if not isinstance(purpose, str) or purpose not in PURPOSES:
        raise RetirementDetailsError(
            f"purpose must be one of {', '.join(PURPOSES)}, not {purpose!r}"
        )
    if purpose == "other" and not note:
        raise RetirementDetailsError("a purpose of 'other' needs a note describing it")
    return purpose


def parse_date(value: object, what: str) -> dt.date:
    """Dates in records are ISO 8601 calendar dates, YYYY-MM-DD."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or len(value) != 10:
        raise RetirementDetailsError(f"{what} must be a date as YYYY-MM-DD, not {value!r}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise RetirementDetailsError(f"{what} is not a valid date: {value!r}") from None


def validate_period(start: dt.date, end: dt.date) -> None:
    """The period a retirement claim covers runs forwards."""
    if start > end:
        raise RetirementDetailsError(f"the period starts ({start}) after it ends ({end})")


def validate_hash(value: object, what: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise RetirementDetailsError(f"{what} must be 64 lower-case hex digits")
    return value


def validate_time(value: object) -> str:
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise RetirementDetailsError(f"time must be UTC as YYYY-MM-DDTHH:MM:SSZ, not {value!r}")
    try:
        dt.datetime.fromisoformat(value)  # the pattern above already fixed the shape
    except ValueError:
        raise RetirementDetailsError(f"time is not a valid instant: {value!r}") from None
    return value


def format_time(at: dt.datetime) -> str:
    """Record times are UTC, to the second."""
    if at.tzinfo is None:
        raise ValueError("record times must be timezone-aware")
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def beneficiary_commitment(salt: str, name: str) -> str:
    """The journal's commitment to a beneficiary: SHA-256 over salt, a colon, and the name.

    The salt (32 random hex digits) makes the commitment useless for guessing names; once the
    salt and name are erased, the commitment reveals nothing.
    """
    return hashlib.sha256(f"{salt}:{name}".encode()).hexdigest()


def check_movable(account_kind: str) -> None:
    """Credits in the buffer pool insure against reversals; they can be cancelled, not moved."""
    if account_kind == "buffer":
        raise AccountKindError("credits in the buffer pool cannot be transferred or retired")


def plan_spend(
    inputs: Sequence[BlockRange],
    quantity: int,
    *,
    holder: int,
    to_account: int,
    to_state: str,
    next_id: int,
) -> list[BlockRange]:
    """The blocks an operation creates when it spends ``inputs`` for ``quantity`` tonnes.

    Invariant 5: every input must be the holder's and tradable, and together they must hold
    enough. Inputs are taken whole, in the order given; the last one is split if it holds more
    than is still needed, and the split gives the operation the lowest serials, the remainder
    staying with the holder. Every input must be needed: no block is spent for nothing. New
    block ids run on from ``next_id``.
    """
    validate_quantity(quantity)
    if not inputs:
        raise InsufficientCreditsError(f"no tradable credits to take {quantity} t from")
    created: list[BlockRange] = []
    remaining = quantity
    new_id = next_id
    for position, block in enumerate(inputs):
        if block.account != holder or block.state != "tradable":
            raise InsufficientCreditsError(f"block {block.id} is not a tradable block of the holder")
        if remaining == 0:
            raise InsufficientCreditsError(f"block {block.id} is spent but not needed")
        size = block.last - block.first + 1
        take = remaining if remaining < size else size
        head_last = block.first + take - 1
        created.append(BlockRange(new_id, block.batch, to_account, block.first, head_last, to_state))
        new_id += 1
        if take < size:
            if position != len(inputs) - 1:
                raise InsufficientCreditsError("only the last block spent may be split")
            created.append(
                BlockRange(new_id, block.batch, holder, head_last + 1, block.last, "tradable")
            )
            new_id += 1
        remaining -= take
    if remaining:
        raise InsufficientCreditsError(
            f"not enough tradable credits: {quantity} t asked, {quantity - remaining} t held"
        )
    return created


# -- origin registry: freezing and coverage -------------------------------------------------


def intersect(a_first: int, a_last: int, b_first: int, b_last: int) -> tuple[int, int] | None:
    """The serials two inclusive ranges share, or None."""
    first, last = max(a_first, b_first), min(a_last, b_last)
    return (first, last) if first <= last else None


def plan_freeze(inputs: Sequence[BlockRange], first: int, last: int, *, next_id: int
                ) -> list[BlockRange]:
    """The blocks an origin record under another name creates when it freezes the serials
    [first, last] that are still tradable here.

    Each input is a tradable block overlapping the range, in serial order; it is spent whole
    and splits into up to three blocks for the same holder, in serial order: the serials below
    the range (still tradable), the overlap (``frozen``: final, never sold or retired here),
    and the serials above it (still tradable). New block ids run on from ``next_id``.
    """
    created: list[BlockRange] = []
    new_id = next_id
    previous = 0
    for block in inputs:
        if block.state != "tradable":
            raise FinalStateError(f"block {block.id} is {block.state}: only tradable serials "
                                  "are frozen")
        overlap = intersect(block.first, block.last, first, last)
        if overlap is None:
            raise SerialRangeError(f"block {block.id} does not hold serials of [{first}, {last}]")
        if block.first <= previous:
            raise SerialRangeError("the blocks to freeze must be in serial order")
        previous = block.last
        pieces = [(block.first, overlap[0] - 1, "tradable"), (overlap[0], overlap[1], "frozen"),
                  (overlap[1] + 1, block.last, "tradable")]
        for low, high, state in pieces:
            if low <= high:
                created.append(BlockRange(new_id, block.batch, block.account, low, high, state))
                new_id += 1
    return created


@dataclass
class Coverage:
    """Tonnes of some retired serials by what the origin registry shows for them, with the
    serial ranges of each."""

    covered: int = 0
    pending: int = 0
    conflict: int = 0
    covered_ranges: list[tuple[int, int]] = field(default_factory=list)
    pending_ranges: list[tuple[int, int]] = field(default_factory=list)
    conflict_ranges: list[tuple[int, int]] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``conflict`` if any serial was retired at origin under another name, ``covered`` if
        every serial is inside an origin record that is ours, else ``pending``."""
        if self.conflict:
            return "conflict"
        if self.pending or not self.covered:
            return "pending"
        return "covered"

    def add(self, other: Coverage) -> None:
        self.covered += other.covered
        self.pending += other.pending
        self.conflict += other.conflict
        self.covered_ranges.extend(other.covered_ranges)
        self.pending_ranges.extend(other.pending_ranges)
        self.conflict_ranges.extend(other.conflict_ranges)


def classify(ranges: Sequence[tuple[int, int]], origin: Sequence[tuple[int, int, bool]]
             ) -> Coverage:
    """Split retired serial ``ranges`` (of one batch) by the origin records of that batch,
    given as (first, last, ours) and never overlapping one another: serials inside a record
    that is ours are covered, inside one that is not are in conflict, the rest pending."""
    result = Coverage()
    records = sorted(origin)
    if not records:  # the origin shows nothing yet: the loop's answer, without its inner walk
        result.pending_ranges = [(first, last) for first, last in sorted(ranges)
                                 if first <= last]
        result.pending = sum(last - first + 1 for first, last in result.pending_ranges)
        return result
    for first, last in sorted(ranges):
        cursor = first
        for o_first, o_last, ours in records:
            if o_last < cursor:
                continue
            if o_first > last:
                break
            if o_first > cursor:
                result.pending += o_first - cursor
                result.pending_ranges.append((cursor, o_first - 1))
            low, high = max(cursor, o_first), min(last, o_last)
            if ours:
                result.covered += high - low + 1
                result.covered_ranges.append((low, high))
            else:
                result.conflict += high - low + 1
                result.conflict_ranges.append((low, high))
            cursor = high + 1
            if cursor > last:
                break
        if cursor <= last:
            result.pending += last - cursor + 1
            result.pending_ranges.append((cursor, last))
    return result
