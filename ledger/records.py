"""Typed records for journal entries: one frozen dataclass per operation, built and parsed in
one place.

``to_data`` gives the ``data`` object of the entry's record (canonical JSON); ``from_data``
parses one back, checking every field, and raises the same error class the operation raises
for the same broken rule. Operations, replay, benchmarks and tests share these types.

Pure: standard library and ``ledger.rules`` / ``ledger.errors`` only.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import (
    AccountKindError,
    ChainError,
    InvalidQuantityError,
    LabelError,
    OriginRecordError,
    OverAllocationError,
    PoolError,
    RetirementDetailsError,
)
from .rules import (
    BlockRange,
    parse_date,
    validate_country,
    validate_hash,
    validate_period,
    validate_purpose,
    validate_quantity,
    validate_range,
    validate_text,
)

# -- origin registry evidence -----------------------------------------------------------------

ORIGIN_ACTIONS = ("retired", "cancelled")
"""What the origin registry did with the serials: both take them out of circulation for good."""

MIRRORED_REGISTRIES = {"verra": "verra"}
"""Which origin registry a batch's serial scheme mirrors (native batches have none: this
ledger is their registry of record)."""

_REGISTRY = re.compile(r"[a-z][a-z0-9_]{1,19}")
MAX_NAME = 200


def validate_registry(value: object) -> str:
    """An origin registry is named by a short lower-case slug: ``verra``, ``gold_standard``."""
    if not isinstance(value, str) or not _REGISTRY.fullmatch(value):
        raise OriginRecordError(
            f"the origin registry must be a short lower-case name like 'verra', not {value!r}")
    return value


def _text(value: object, what: str, *, required: bool, limit: int = 500) -> str:
    try:
        text = validate_text(value, what, required=required)
    except RetirementDetailsError as exc:
        raise OriginRecordError(str(exc)) from None
    if len(text) > limit:
        raise OriginRecordError(f"{what} is longer than {limit} characters")
    if "\n" in text or "\t" in text:
        raise OriginRecordError(f"{what} must be one line")
    return text


@dataclass(frozen=True)
class OriginRetirement:
    """A retirement or cancellation made at the origin registry, for serials inside one
    mirrored batch, as the origin shows it.

    ``ours`` says whether the origin names this marketplace (its beneficiary or account matched
    one of the marketplace's origin names when it was recorded): serials inside an origin
    record that is ours *cover* the retirements here; serials inside one that is not are
    counted elsewhere, so a retirement here of the same serials is a conflict and any of them
    still tradable here is frozen by this same entry (``spent`` and ``created``), never sold.
    """

    batch: int
    registry: str
    action: str
    first: int
    last: int
    date: dt.date
    beneficiary: str
    account: str
    reason: str
    reference: str
    ours: bool
    spent: tuple[int, ...] = ()
    created: tuple[BlockRange, ...] = field(default=())

    @property
    def quantity(self) -> int:
        return self.last - self.first + 1

    @property
    def frozen(self) -> int:
        """Tonnes this entry froze here."""
        return sum(b.quantity for b in self.created if b.state == "frozen")

    def to_data(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "registry": self.registry,
            "action": self.action,
            "first": self.first,
            "last": self.last,
            "date": self.date.isoformat(),
            "beneficiary": self.beneficiary,
            "account": self.account,
            "reason": self.reason,
            "reference": self.reference,
            "ours": self.ours,
            "spent": list(self.spent),
            "created": [b.as_record() for b in self.created],
        }

    @classmethod
    def build(cls, *, batch: int, registry: object, action: object, first: object,
              last: object, date: object, beneficiary: object, account: object,
              reason: object, reference: object, ours: object,
              spent: tuple[int, ...] = (), created: tuple[BlockRange, ...] = ()
              ) -> OriginRetirement:
        """Check every field; raise :class:`OriginRecordError` (or ``SerialRangeError``)."""
        if action not in ORIGIN_ACTIONS:
            raise OriginRecordError(f"the origin action must be one of {', '.join(ORIGIN_ACTIONS)}, "
                                    f"not {action!r}")
        if not isinstance(ours, bool):
            raise OriginRecordError("ours must be true or false")
        low, high = validate_range(first, last)
        try:
            when = parse_date(date, "origin date")
        except RetirementDetailsError as exc:
            raise OriginRecordError(str(exc)) from None
        beneficiary_text = _text(beneficiary, "origin beneficiary", required=False)
        account_text = _text(account, "origin account", required=False, limit=MAX_NAME)
        return cls(
            batch=batch, registry=validate_registry(registry), action=str(action), first=low,
            last=high, date=when, beneficiary=beneficiary_text, account=account_text,
            reason=_text(reason, "origin reason", required=False),
            reference=_text(reference, "origin reference", required=True),
            ours=ours, spent=tuple(spent), created=tuple(created),
        )

    @classmethod
    def from_data(cls, data: Any) -> OriginRetirement:
        _keys(data, {"batch", "registry", "action", "first", "last", "date", "beneficiary",
                     "account", "reason", "reference", "ours", "spent", "created"})
        if data["date"] != _iso(data["date"]):
            raise ChainError("the origin date is not written as YYYY-MM-DD")
        return cls.build(
            batch=_id(data["batch"], "batch"), registry=data["registry"], action=data["action"],
            first=data["first"], last=data["last"], date=data["date"],
            beneficiary=data["beneficiary"], account=data["account"], reason=data["reason"],
            reference=data["reference"], ours=data["ours"], spent=_spent(data["spent"]),
            created=_created(data["created"]),
        )


def names_match(names: tuple[str, ...], *texts: str) -> bool:
    """Whether any of ``names`` appears as a whole word, case-insensitively, in any text:
    ``Selva`` matches "Selva customers, see selva.example" but not "Selvatica Ltd"."""
    for name in names:
        name = name.strip()
        if not name:
            continue
        pattern = re.compile(rf"(?<![0-9A-Za-z]){re.escape(name)}(?![0-9A-Za-z])", re.IGNORECASE)
        if any(pattern.search(text) for text in texts if text):
            return True
    return False


# -- quality labels ------------------------------------------------------------------------------

CA_DECLARATIONS = ("Committed", "Not Required", "Unknown")
"""The Climate Action Data Trust's values for a corresponding adjustment declaration."""

CA_STATUSES = ("Not Started", "Pending", "Completed")
"""... and for the status of that adjustment."""

CORSIA_PHASES = ("pilot_phase", "first_phase", "second_phase")
"""CORSIA compliance periods: pilot 2021-2023, first 2024-2026, second 2027-2029."""

MITIGATION_TYPES = ("avoidance", "removal", "mixed")


@dataclass(frozen=True)
class Labels:
    """The quality labels of one batch at one moment.

    ``ccp``: the ICVCM's Core Carbon Principles label, and since when (``ccp_since``).
    ``article6_authorized``: the host country authorised the credits for use under Article 6 of
    the Paris Agreement; ``ca_declaration`` and ``ca_status``: whether a corresponding
    adjustment is committed and how far it got (CAD Trust's values). ``corsia``: the CORSIA
    phase the credits are eligible for, if any. ``mitigation``: avoided emissions or removals.
    """

    ccp: bool = False
    ccp_since: dt.date | None = None
    article6_authorized: bool = False
    ca_declaration: str = "Unknown"
    ca_status: str = "Not Started"
    corsia: str | None = None
    mitigation: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.ccp, bool) or not isinstance(self.article6_authorized, bool):
            raise LabelError("ccp and article6_authorized must be true or false")
        if self.ccp and self.ccp_since is None:
            raise LabelError("a CCP label needs the date it was granted (ccp_since)")
        if not self.ccp and self.ccp_since is not None:
            raise LabelError("ccp_since is only given with the CCP label")
        if self.ca_declaration not in CA_DECLARATIONS:
            raise LabelError(f"ca_declaration must be one of {', '.join(CA_DECLARATIONS)}, "
                             f"not {self.ca_declaration!r}")
        if self.ca_status not in CA_STATUSES:
            raise LabelError(f"ca_status must be one of {', '.join(CA_STATUSES)}, "
                             f"not {self.ca_status!r}")
        if self.ca_status != "Not Started" and self.ca_declaration != "Committed":
            raise LabelError("a corresponding adjustment can only be pending or completed "
                             "once it is committed")
        if self.corsia is not None and self.corsia not in CORSIA_PHASES:
            raise LabelError(f"corsia must be one of {', '.join(CORSIA_PHASES)} or null, "
                             f"not {self.corsia!r}")
        if self.mitigation is not None and self.mitigation not in MITIGATION_TYPES:
            raise LabelError(f"mitigation must be one of {', '.join(MITIGATION_TYPES)} or null, "
                             f"not {self.mitigation!r}")

    def to_data(self) -> dict[str, Any]:
        return {
            "ccp": self.ccp,
            "ccp_since": None if self.ccp_since is None else self.ccp_since.isoformat(),
            "article6_authorized": self.article6_authorized,
            "ca_declaration": self.ca_declaration,
            "ca_status": self.ca_status,
            "corsia": self.corsia,
            "mitigation": self.mitigation,
        }

    @classmethod
    def from_data(cls, data: Any) -> Labels:
        _keys(data, {"ccp", "ccp_since", "article6_authorized", "ca_declaration", "ca_status",
                     "corsia", "mitigation"}, error=LabelError)
        since = data["ccp_since"]
        if since is not None:
            if since != _iso(since):
                raise LabelError("ccp_since must be a date as YYYY-MM-DD")
            since = dt.date.fromisoformat(since)
        return cls(ccp=data["ccp"], ccp_since=since,
                   article6_authorized=data["article6_authorized"],
                   ca_declaration=data["ca_declaration"], ca_status=data["ca_status"],
                   corsia=data["corsia"], mitigation=data["mitigation"])


UNLABELLED = Labels()
"""What a batch carries until its first label entry: no label claimed, adjustment unknown."""


@dataclass(frozen=True)
class LabelChange:
    """A change of one batch's labels: the whole new set, why, and from when it applies."""

    batch: int
    labels: Labels
    effective: dt.date
    note: str = ""

    def to_data(self) -> dict[str, Any]:
        return {"batch": self.batch, "labels": self.labels.to_data(),
                "effective": self.effective.isoformat(), "note": self.note}

    @classmethod
    def from_data(cls, data: Any) -> LabelChange:
        _keys(data, {"batch", "labels", "effective", "note"})
        effective = data["effective"]
        if effective != _iso(effective):
            raise LabelError("effective must be a date as YYYY-MM-DD")
        note = data["note"]
        if not isinstance(note, str) or note != note.strip() or len(note) > 500:
            raise LabelError("the note must be trimmed text of at most 500 characters")
        return cls(batch=_id(data["batch"], "batch"), labels=Labels.from_data(data["labels"]),
                   effective=dt.date.fromisoformat(effective), note=note)


# -- the four ledger operations -----------------------------------------------------------------


def _spent(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise ChainError("spent must be a list of distinct block ids")
    for block in value:
        if isinstance(block, bool) or not isinstance(block, int):
            raise ChainError("spent must be a list of distinct block ids")
    if len(value) > 1 and len(set(value)) != len(value):
        raise ChainError("spent must be a list of distinct block ids")
    return tuple(value)


def _created(value: Any) -> tuple[BlockRange, ...]:
    if not isinstance(value, list):
        raise ChainError("created must be a list of blocks")
    return tuple(block_from_record(item) for item in value)


@dataclass(frozen=True)
class IssuedProject:
    """The project facts an issue record carries (so that an export alone names it)."""

    id: int
    registry: str
    registry_id: str
    name: str
    country: str

    def to_data(self) -> dict[str, Any]:
        return {"id": self.id, "registry": self.registry, "registry_id": self.registry_id,
                "name": self.name, "country": self.country}

    @classmethod
    def from_data(cls, data: Any) -> IssuedProject:
        _keys(data, {"id", "registry", "registry_id", "name", "country"})
        return cls(id=data["id"], registry=data["registry"], registry_id=data["registry_id"],
                   name=data["name"], country=validate_country(data["country"]))

    @property
    def ref(self) -> str:
        return f"{self.registry}-{self.registry_id}"


@dataclass(frozen=True)
class Issue:
    """``issue``: a new batch of serials [first, last] for one project vintage, credited to an
    account, less an optional share for the buffer pool."""

    KIND: ClassVar[str] = "issue"
    batch: int
    project: IssuedProject
    vintage_start: dt.date
    vintage_end: dt.date
    issued: dt.date
    first: int
    last: int
    origin: str | None
    serial: dict[str, Any]
    account: int
    buffer_account: int | None
    buffer_quantity: int
    created: tuple[BlockRange, ...]

    @property
    def scheme(self) -> str:
        return str(self.serial["scheme"])

    def to_data(self) -> dict[str, Any]:
        return {
            "batch": {
                "id": self.batch,
                "project": self.project.to_data(),
                "vintage_start": self.vintage_start.isoformat(),
                "vintage_end": self.vintage_end.isoformat(),
                "issued": self.issued.isoformat(),
                "first": self.first,
                "last": self.last,
                "origin": self.origin,
                "serial": dict(self.serial),
            },
            "account": self.account,
            "buffer": (None if self.buffer_account is None else
                       {"account": self.buffer_account, "quantity": self.buffer_quantity}),
            "created": [b.as_record() for b in self.created],
        }

    @classmethod
    def from_data(cls, data: Any) -> Issue:
        _keys(data, {"batch", "account", "buffer", "created"})
        batch = data["batch"]
        _keys(batch, {"id", "project", "vintage_start", "vintage_end", "issued", "first", "last",
                      "origin", "serial"})
        first, last = validate_range(batch["first"], batch["last"])
        start = parse_date(batch["vintage_start"], "vintage start")
        end = parse_date(batch["vintage_end"], "vintage end")
        validate_period(start, end)
        issued = parse_date(batch["issued"], "issuance date")
        serial = batch["serial"]
        scheme = serial["scheme"] if isinstance(serial, dict) else None
        if scheme == "verra":
            _keys(serial, {"scheme", "issuance", "code", "scope", "flag"})
            for name in ("issuance", "code", "scope", "flag"):
                if not isinstance(serial[name], int) or isinstance(serial[name], bool):
                    raise ChainError(f"the Verra serial field {name} must be a whole number")
        elif scheme == "native":
            _keys(serial, {"scheme"})
        else:
            raise ChainError(f"unknown serial scheme {scheme!r}")
        origin = batch["origin"]
        if origin is not None:
            validate_text(origin, "origin", required=True)
        account = _id(data["account"], "account")
        buffer = data["buffer"]
        buffer_account: int | None = None
        buffer_quantity = 0
        if buffer is not None:
            _keys(buffer, {"account", "quantity"})
            buffer_account = _id(buffer["account"], "buffer account")
            buffer_quantity = validate_quantity(buffer["quantity"])
            if buffer_quantity >= last - first + 1 or buffer_account == account:
                raise ChainError("the buffer share must be smaller than the batch, in its own "
                                 "account")
        return cls(batch=batch["id"], project=IssuedProject.from_data(batch["project"]),
                   vintage_start=start, vintage_end=end, issued=issued, first=first, last=last,
                   origin=origin, serial=dict(serial), account=account,
                   buffer_account=buffer_account, buffer_quantity=buffer_quantity,
                   created=_created(data["created"]))


@dataclass(frozen=True)
class Transfer:
    """``transfer``: tradable credits move from one account to another."""

    KIND: ClassVar[str] = "transfer"
    sender: int
    receiver: int
    quantity: int
    spent: tuple[int, ...]
    created: tuple[BlockRange, ...]

    def __post_init__(self) -> None:
        if self.sender == self.receiver:
            raise AccountKindError("a transfer must go to another account")

    def to_data(self) -> dict[str, Any]:
        return {"from": self.sender, "to": self.receiver, "quantity": self.quantity,
                "spent": list(self.spent), "created": [b.as_record() for b in self.created]}

    @classmethod
    def from_data(cls, data: Any) -> Transfer:
        _keys(data, _TRANSFER_KEYS)
        return cls(sender=_id(data["from"], "from"), receiver=_id(data["to"], "to"),
                   quantity=validate_quantity(data["quantity"]), spent=_spent(data["spent"]),
                   created=_created(data["created"]))


@dataclass(frozen=True)
class Retire:
    """``retire``: credits retired for good on behalf of a beneficiary, who is named in the
    record only by a salted commitment (``beneficiary``)."""

    KIND: ClassVar[str] = "retire"
    account: int
    quantity: int
    spent: tuple[int, ...]
    created: tuple[BlockRange, ...]
    beneficiary: str
    purpose: str
    note: str
    country: str
    period_start: dt.date
    period_end: dt.date
    date: dt.date

    def __post_init__(self) -> None:
        validate_hash(self.beneficiary, "beneficiary commitment")
        if validate_text(self.note, "note", required=False) != self.note:
            raise RetirementDetailsError("the note is not trimmed")
        validate_purpose(self.purpose, self.note)
        validate_country(self.country)
        validate_period(self.period_start, self.period_end)

    def to_data(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "quantity": self.quantity,
            "spent": list(self.spent),
            "created": [b.as_record() for b in self.created],
            "beneficiary": self.beneficiary,
            "purpose": self.purpose,
            "note": self.note,
            "country": self.country,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "date": self.date.isoformat(),
        }

    @classmethod
    def from_data(cls, data: Any) -> Retire:
        _keys(data, _RETIRE_KEYS)
        return cls(account=_id(data["account"], "account"),
                   quantity=validate_quantity(data["quantity"]), spent=_spent(data["spent"]),
                   created=_created(data["created"]), beneficiary=data["beneficiary"],
                   purpose=data["purpose"], note=data["note"], country=data["country"],
                   period_start=parse_date(data["period_start"], "period start"),
                   period_end=parse_date(data["period_end"], "period end"),
                   date=parse_date(data["date"], "retirement date"))


@dataclass(frozen=True)
class Cancel:
    """``cancel``: credits cancelled for good (an issuance error, a reversal from the buffer)."""

    KIND: ClassVar[str] = "cancel"
    account: int
    quantity: int
    spent: tuple[int, ...]
    created: tuple[BlockRange, ...]
    reason: str

    def __post_init__(self) -> None:
        validate_text(self.reason, "reason", required=True)

    def to_data(self) -> dict[str, Any]:
        return {"account": self.account, "quantity": self.quantity, "spent": list(self.spent),
                "created": [b.as_record() for b in self.created], "reason": self.reason}

    @classmethod
    def from_data(cls, data: Any) -> Cancel:
        _keys(data, _CANCEL_KEYS)
        return cls(account=_id(data["account"], "account"),
                   quantity=validate_quantity(data["quantity"]), spent=_spent(data["spent"]),
                   created=_created(data["created"]), reason=data["reason"])


# -- kilogram pools -----------------------------------------------------------------------------

GRAMS_PER_TONNE = 1_000_000
"""Kilogram sales are counted in whole grams: a tonne retired into a pool holds 1,000,000 g."""

POOL_BENEFICIARY = "Selva kilogram pool"
"""Who a pool retirement is made for, in clear: no person's name, so no commitment."""

MAX_ALLOCATIONS = 1000
"""At most this many allocations in one ``allocate`` entry."""

MAX_GRAMS = GRAMS_PER_TONNE * 10**6
"""No single allocation is larger than a million tonnes."""

_POOL = re.compile(r"[A-Z]{2,10}-[A-Za-z0-9]{1,20}")


def validate_grams(value: object, what: str = "grams") -> int:
    """Kilogram sales are whole grams, at least one: no fractions, no floats."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidQuantityError(f"{what} must be a whole number of grams, not {value!r}")
    if not 1 <= value <= MAX_GRAMS:
        raise InvalidQuantityError(f"{what} must be between 1 g and {MAX_GRAMS:,} g, not {value}")
    return value


def validate_pool(value: object) -> str:
    """A pool is named by its project's reference, e.g. ``VCS-944``."""
    if not isinstance(value, str) or not _POOL.fullmatch(value):
        raise PoolError(f"a pool is named by its project's reference like 'VCS-944', not {value!r}")
    return value


@dataclass(frozen=True)
class PoolRetire:
    """``pool``: whole tonnes of one project retired into that project's kilogram pool.

    Like a retirement, it spends tradable blocks and creates retired ones; its beneficiary is
    the pool itself, in clear. Each tonne then backs 1,000,000 g of ``allocate`` entries.
    """

    KIND: ClassVar[str] = "pool"
    account: int
    pool: str
    quantity: int
    spent: tuple[int, ...]
    created: tuple[BlockRange, ...]
    date: dt.date

    def __post_init__(self) -> None:
        validate_pool(self.pool)

    @property
    def grams(self) -> int:
        return self.quantity * GRAMS_PER_TONNE

    def to_data(self) -> dict[str, Any]:
        return {"account": self.account, "pool": self.pool, "quantity": self.quantity,
                "spent": list(self.spent), "created": [b.as_record() for b in self.created],
                "beneficiary": POOL_BENEFICIARY, "date": self.date.isoformat()}

    @classmethod
    def from_data(cls, data: Any) -> PoolRetire:
        _keys(data, {"account", "pool", "quantity", "spent", "created", "beneficiary", "date"})
        if data["beneficiary"] != POOL_BENEFICIARY:
            raise PoolError(f"a pool retirement is made for {POOL_BENEFICIARY!r}")
        return cls(account=_id(data["account"], "account"), pool=data["pool"],
                   quantity=validate_quantity(data["quantity"]), spent=_spent(data["spent"]),
                   created=_created(data["created"]),
                   date=parse_date(data["date"], "retirement date"))


@dataclass(frozen=True)
class Allocation:
    """Grams of one or more pool retirements allocated to a beneficiary (a salted commitment,
    as in a retirement), for a purpose, a country of use and the period the claim covers.

    ``draws`` says which pool retirements (by seq, ascending) give how many grams; they add up
    to ``grams``.
    """

    grams: int
    draws: tuple[tuple[int, int], ...]
    beneficiary: str
    purpose: str
    note: str
    country: str
    period_start: dt.date
    period_end: dt.date

    def __post_init__(self) -> None:
        validate_grams(self.grams)
        if not self.draws:
            raise PoolError("an allocation draws from at least one pool retirement")
        seqs = [seq for seq, _ in self.draws]
        if seqs != sorted(set(seqs)):
            raise PoolError("an allocation's draws name distinct pool retirements in seq order")
        for seq, grams in self.draws:
            _id(seq, "pool retirement seq")
            validate_grams(grams, "a draw")
        if sum(grams for _, grams in self.draws) != self.grams:
            raise OverAllocationError(
                f"the draws add up to {sum(g for _, g in self.draws)} g, not {self.grams} g")
        validate_hash(self.beneficiary, "beneficiary commitment")
        if validate_text(self.note, "note", required=False) != self.note:
            raise RetirementDetailsError("the note is not trimmed")
        validate_purpose(self.purpose, self.note)
        validate_country(self.country)
        validate_period(self.period_start, self.period_end)

    def to_data(self) -> dict[str, Any]:
        return {"grams": self.grams, "from": [[seq, grams] for seq, grams in self.draws],
                "beneficiary": self.beneficiary, "purpose": self.purpose, "note": self.note,
                "country": self.country, "period_start": self.period_start.isoformat(),
                "period_end": self.period_end.isoformat()}

    @classmethod
    def from_data(cls, data: Any) -> Allocation:
        _keys(data, {"grams", "from", "beneficiary", "purpose", "note", "country",
                     "period_start", "period_end"})
        draws = data["from"]
        if not isinstance(draws, list) or not all(
                isinstance(d, list) and len(d) == 2 for d in draws):
            raise ChainError("from must be a list of [pool retirement seq, grams] pairs")
        return cls(grams=data["grams"], draws=tuple((d[0], d[1]) for d in draws),
                   beneficiary=data["beneficiary"], purpose=data["purpose"], note=data["note"],
                   country=data["country"],
                   period_start=parse_date(data["period_start"], "period start"),
                   period_end=parse_date(data["period_end"], "period end"))


@dataclass(frozen=True)
class Allocate:
    """``allocate``: a batch of kilogram allocations, written as one entry. Allocation ``i``
    of the entry at seq ``s`` is known as ``s.i``; its proof is the entry's inclusion proof
    and its position in the entry's list."""

    KIND: ClassVar[str] = "allocate"
    allocations: tuple[Allocation, ...]
    date: dt.date

    def __post_init__(self) -> None:
        if not 1 <= len(self.allocations) <= MAX_ALLOCATIONS:
            raise PoolError(f"an allocate entry holds 1 to {MAX_ALLOCATIONS} allocations")

    @property
    def grams(self) -> int:
        return sum(a.grams for a in self.allocations)

    def to_data(self) -> dict[str, Any]:
        return {"allocations": [a.to_data() for a in self.allocations],
                "date": self.date.isoformat()}

    @classmethod
    def from_data(cls, data: Any) -> Allocate:
        _keys(data, {"allocations", "date"})
        items = data["allocations"]
        if not isinstance(items, list):
            raise ChainError("allocations must be a list")
        return cls(allocations=tuple(Allocation.from_data(item) for item in items),
                   date=parse_date(data["date"], "allocation date"))


Spend = Transfer | Retire | Cancel | PoolRetire
"""The operations that spend blocks and create new ones."""


# -- shared parsing helpers ---------------------------------------------------------------------


_TRANSFER_KEYS = frozenset(("from", "to", "quantity", "spent", "created"))
_RETIRE_KEYS = frozenset(("account", "quantity", "spent", "created", "beneficiary", "purpose",
                          "note", "country", "period_start", "period_end", "date"))
_CANCEL_KEYS = frozenset(("account", "quantity", "spent", "created", "reason"))
_BLOCK_KEYS = frozenset(("id", "batch", "account", "first", "last", "state"))


def _keys(obj: Any, expected: set[str] | frozenset[str],
          error: type[Exception] = ChainError) -> None:
    if not isinstance(obj, dict) or obj.keys() != expected:
        found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise error(f"expected the fields {sorted(expected)}, found {found}")


def _id(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ChainError(f"{what} must be a positive id, not {value!r}")
    return value


def _iso(value: Any) -> str | None:
    """``value`` back as YYYY-MM-DD if it is a valid date written that way, else None."""
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        return None


def block_from_record(item: Any) -> BlockRange:
    """A block as an entry's ``created`` list writes it."""
    _keys(item, _BLOCK_KEYS)
    return BlockRange(item["id"], item["batch"], item["account"], item["first"], item["last"],
                      item["state"])
