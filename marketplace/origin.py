"""Reconciling with the origin registry: importing its public export, recording one origin
retirement by hand, and saying what is covered, pending or in conflict.

The ledger holds the rules (``ledger.origin``); this module is the service the CLI and the
operator's pages share. It reads Verra's VCU export (the CSV its public registry writes),
turns every retired or cancelled row that overlaps a mirrored batch into origin evidence,
freezes conflicting serials (inside ``ledger.origin.record_origin``) under the same listing
locks checkout takes, and writes a ``retirement.covered_at_origin`` event for each retirement
the import covers. Importing the same file twice adds nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger import origin as ledger_origin
from ledger.errors import LedgerError, SerialFormatError
from ledger.records import MIRRORED_REGISTRIES, Labels, names_match
from ledger.rules import MAX_TEXT, intersect
from ledger.schema import Batch, OriginRecord
from ledger.serials import VerraSerial, parse_serial

from . import events, formatting

VERRA_HEADER = (
    "Issuance Date", "Sustainable Development Goals", "Vintage Start", "Vintage End", "ID",
    "Name", "Country/Area", "Project Type", "Methodology", "Total Vintage Quantity",
    "Quantity Issued", "Serial Number", "Additional Certifications",
    "Retirement/Cancellation Date", "Retirement Beneficiary", "Retirement Reason",
    "Retirement Details", "Inputs",
)
"""The columns of Verra's public VCU export, in its order."""

REGISTRIES = ("verra",)
MAX_ROWS = 500_000
MAX_FILE_BYTES = 64 * 1024 * 1024
VERRA_PROJECT_URL = "https://registry.verra.org/app/projectDetail/VCS/{project}"


class OriginFileError(ValueError):
    """The file is not an origin export we can read; nothing was written. One line."""


@dataclass(frozen=True)
class VerraRow:
    """One row of Verra's export: a block of VCUs, retired or cancelled if ``date`` is set."""

    line: int
    serial: VerraSerial
    date: dt.date | None
    beneficiary: str
    reason: str
    details: str

    @property
    def cancelled(self) -> bool:
        return "cancel" in self.reason.lower()


def _clean(value: str, what: str, line: int, limit: int = MAX_TEXT) -> str:
    text = " ".join(value.split())
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value if ch not in "\t\r\n"):
        raise OriginFileError(f"line {line}: the {what} holds control characters")
    if len(text) > limit:
        raise OriginFileError(f"line {line}: the {what} is longer than {limit} characters")
    return text


def _date(value: str, what: str, line: int) -> dt.date | None:
    text = value.strip()
    if not text:
        return None
    for pattern in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise OriginFileError(f"line {line}: the {what} {text[:40]!r} is not a date (DD/MM/YYYY)")


def parse_verra_csv(data: bytes) -> list[VerraRow]:
    """Read Verra's VCU export strictly: the exact header, every serial a Verra serial whose
    size is the row's quantity, dates as Verra writes them (DD/MM/YYYY). Raise
    :class:`OriginFileError` naming the line at the first fault."""
    if len(data) > MAX_FILE_BYTES:
        raise OriginFileError(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise OriginFileError("the file is not UTF-8 text (is it Verra's CSV export?)") from None
    if "\x00" in text:
        raise OriginFileError("the file holds NUL bytes: it is not a CSV export")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise OriginFileError("the file is empty") from None
    except csv.Error as exc:
        raise OriginFileError(f"line 1: not CSV: {exc}") from None
    if tuple(h.strip() for h in header) != VERRA_HEADER:
        raise OriginFileError("line 1: the header is not Verra's VCU export "
                              f"({', '.join(VERRA_HEADER[:3])}, ...)")
    rows: list[VerraRow] = []
    column = {name: i for i, name in enumerate(VERRA_HEADER)}
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) >= MAX_ROWS:
                raise OriginFileError(f"the file has more than {MAX_ROWS:,} rows")
            if len(cells) != len(VERRA_HEADER):
                raise OriginFileError(f"line {line}: {len(cells)} columns, the header has "
                                      f"{len(VERRA_HEADER)}")
            raw_serial = cells[column["Serial Number"]].strip()
            try:
                serial = parse_serial(raw_serial)
            except SerialFormatError as exc:
                raise OriginFileError(f"line {line}: the serial number {raw_serial[:80]!r} "
                                      f"does not parse: {exc}") from None
            if not isinstance(serial, VerraSerial):
                raise OriginFileError(f"line {line}: {raw_serial[:80]!r} is not a Verra serial")
            quantity = cells[column["Quantity Issued"]].strip().replace(",", "")
            if not (quantity.isascii() and quantity.isdigit()) or int(quantity) != serial.quantity:
                raise OriginFileError(f"line {line}: the quantity {quantity[:20]!r} is not the "
                                      f"{serial.quantity:,} t its serial number holds")
            if str(serial.project) != cells[column["ID"]].strip():
                raise OriginFileError(f"line {line}: the serial names project {serial.project}, "
                                      f"the row project {cells[column['ID']].strip()[:20]!r}")
            rows.append(VerraRow(
                line=line, serial=serial,
                date=_date(cells[column["Retirement/Cancellation Date"]], "retirement date",
                           line),
                beneficiary=_clean(cells[column["Retirement Beneficiary"]], "beneficiary", line),
                reason=_clean(cells[column["Retirement Reason"]], "retirement reason", line),
                details=_clean(cells[column["Retirement Details"]], "retirement details", line,
                               limit=5000),
            ))
    except csv.Error as exc:
        raise OriginFileError(f"line {reader.line_num}: not CSV: {exc}") from None
    return rows


# -- planning an import ------------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """One origin record to write: the part of a row that lies in one batch, not yet recorded."""

    line: int
    batch_id: int
    first: int
    last: int
    action: str
    date: dt.date
    beneficiary: str
    reason: str
    reference: str
    ours: bool

    @property
    def quantity(self) -> int:
        return self.last - self.first + 1


@dataclass
class ImportPlan:
    pieces: list[Piece] = field(default_factory=list)
    rows: int = 0
    unretired_rows: int = 0
    ignored_rows: int = 0
    ignored_tonnes: int = 0
    known_tonnes: int = 0
    """Tonnes of retired rows already recorded by an earlier import."""
    warnings: list[str] = field(default_factory=list)


def _reason(row: VerraRow) -> str:
    text = row.reason
    if row.details:
        text = f"{text}: {row.details}" if text else row.details
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"


def _subtract(first: int, last: int, taken: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """[first, last] less the (sorted, disjoint) ranges in ``taken``."""
    pieces: list[tuple[int, int]] = []
    cursor = first
    for low, high in taken:
        if high < cursor:
            continue
        if low > last:
            break
        if low > cursor:
            pieces.append((cursor, low - 1))
        cursor = max(cursor, high + 1)
    if cursor <= last:
        pieces.append((cursor, last))
    return pieces


def batch_label(batch: Batch) -> str:
    vintage = formatting.vintage_label(batch.vintage_start, batch.vintage_end)
    return f"{batch.project.ref} {vintage} (batch {batch.id})"


def plan_verra_import(session: Session, rows: Iterable[VerraRow], names: tuple[str, ...]
                      ) -> ImportPlan:
    """What importing ``rows`` would record: each retired or cancelled row's overlap with each
    mirrored batch, less what earlier imports already recorded. A row whose serials fall inside
    a batch but whose fixed fields (issuance, project, vintage) differ from the batch's is a
    bad file: the mirror and the origin would disagree on what those credits are."""
    batches = list(session.scalars(select(Batch).where(Batch.scheme == "verra")
                                   .order_by(Batch.first_serial)))
    recorded: dict[int, list[tuple[int, int]]] = {b.id: [] for b in batches}
    for row in session.execute(select(OriginRecord.batch_id, OriginRecord.first_serial,
                                      OriginRecord.last_serial)):
        recorded.setdefault(row.batch_id, []).append((row.first_serial, row.last_serial))
    plan = ImportPlan()
    for item in rows:
        plan.rows += 1
        if item.date is None:
            plan.unretired_rows += 1
            continue
        serial = item.serial
        inside = 0
        for batch in batches:
            overlap = intersect(serial.first, serial.last, batch.first_serial, batch.last_serial)
            if overlap is None:
                continue
            if (serial.issuance != batch.verra_issuance
                    or str(serial.project) != batch.project.registry_id
                    or (serial.start, serial.end) != (batch.vintage_start, batch.vintage_end)):
                raise OriginFileError(
                    f"line {item.line}: serials {serial.first}-{serial.last} fall in "
                    f"{batch_label(batch)}, which mirrors Verra issuance "
                    f"{batch.verra_issuance} of VCS {batch.project.registry_id}, but the file "
                    f"names issuance {serial.issuance} of VCS {serial.project}")
            inside += overlap[1] - overlap[0] + 1
            taken = sorted(recorded[batch.id])
            fresh = _subtract(overlap[0], overlap[1], taken)
            plan.known_tonnes += (overlap[1] - overlap[0] + 1) - sum(h - l + 1 for l, h in fresh)
            ours = names_match(names, item.beneficiary)
            for first, last in fresh:
                plan.pieces.append(Piece(
                    line=item.line, batch_id=batch.id, first=first, last=last,
                    action="cancelled" if item.cancelled else "retired", date=item.date,
                    beneficiary=item.beneficiary, reason=_reason(item),
                    reference=str(serial), ours=ours,
                ))
                recorded[batch.id].append((first, last))
        if inside < serial.quantity:
            plan.ignored_tonnes += serial.quantity - inside
            if inside == 0:
                plan.ignored_rows += 1
    return plan


# -- applying -------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    plan: ImportPlan
    recorded: list[int] = field(default_factory=list)
    """Seqs of the origin entries written."""
    frozen: int = 0
    newly_covered: list[int] = field(default_factory=list)
    """Retirement seqs that were pending and are now covered."""


def _affected_retirements(session: Session, batch_ranges: Iterable[tuple[int, int, int]]
                          ) -> list[int]:
    from ledger.schema import Block

    seqs: set[int] = set()
    for batch_id, first, last in batch_ranges:
        seqs.update(session.scalars(
            select(Block.created_by).where(
                Block.batch_id == batch_id, Block.state == "retired", Block.spent_by.is_(None),
                Block.first_serial <= last, Block.last_serial >= first)))
    return sorted(seqs)


def apply(session: Session, pieces: Sequence[Piece], registry: str = "verra") -> ImportResult:
    """Record ``pieces`` as origin entries in the caller's transaction, under the listing locks
    checkout and fulfilment take, so that a freeze and a sale never cross. Emits
    ``retirement.covered_at_origin`` for every retirement this covers."""
    from . import checkout
    from .models import Listing

    result = ImportResult(ImportPlan(pieces=list(pieces)))
    if not pieces:
        return result
    batch_ids = {p.batch_id for p in pieces}
    project_ids = set(session.scalars(select(Batch.project_id).where(Batch.id.in_(batch_ids))))
    listing_ids = set(session.scalars(select(Listing.id).where(
        Listing.project_id.in_(project_ids))))
    if listing_ids:
        checkout.lock_listings(session, listing_ids)
    affected = _affected_retirements(session, ((p.batch_id, p.first, p.last) for p in pieces))
    before = ledger_origin.retirement_origins(session, affected)
    for piece in pieces:
        receipt = ledger_origin.record_origin(
            session, batch_id=piece.batch_id, registry=registry, action=piece.action,
            first=piece.first, last=piece.last, date=piece.date, beneficiary=piece.beneficiary,
            reason=piece.reason, reference=piece.reference, ours=piece.ours)
        result.recorded.append(receipt.seq)
        result.frozen += int(receipt.extra["frozen"])
    after = ledger_origin.retirement_origins(session, affected)
    for seq in affected:
        if before[seq].status != "covered" and after[seq].status == "covered":
            result.newly_covered.append(seq)
    from . import mail

    for seq in result.newly_covered:
        events.record(session, events.RetirementCoveredAtOrigin(seq))
        mail.covered_at_origin(session, seq)
    return result


def count_of(number: int, thing: str, plural: str | None = None) -> str:
    return f"{number:,} {thing if number == 1 else (plural or thing + 's')}"


def import_summary(result: ImportResult) -> str:
    """One line saying what an import did."""
    plan = result.plan
    return (f"read {count_of(plan.rows, 'row')}: {count_of(len(result.recorded), 'origin record')} "
            f"added ({sum(p.quantity for p in plan.pieces):,} t), {plan.known_tonnes:,} t already "
            f"recorded, {count_of(plan.unretired_rows, 'row')} not retired, "
            f"{count_of(plan.ignored_rows, 'row')} ignored ({plan.ignored_tonnes:,} t outside every "
            f"mirrored batch), {result.frozen:,} t frozen, "
            f"{count_of(len(result.newly_covered), 'retirement')} newly covered")


def import_verra(session: Session, data: bytes, names: tuple[str, ...]) -> ImportResult:
    """Parse, plan and apply a Verra export in the caller's transaction. A bad file raises
    :class:`OriginFileError` before anything is written."""
    rows = parse_verra_csv(data)
    plan = plan_verra_import(session, rows, names)
    result = apply(session, plan.pieces)
    result.plan = plan
    return result


def record_manual(session: Session, *, batch_id: int, registry: str, action: str, first: int,
                  last: int, date: dt.date, beneficiary: str, account: str, reason: str,
                  reference: str, names: tuple[str, ...]) -> ImportResult:
    """Record one origin retirement typed in by an operator (for registries with no export)."""
    piece = Piece(line=0, batch_id=batch_id, first=first, last=last, action=action, date=date,
                  beneficiary=beneficiary, reason=reason, reference=reference,
                  ours=names_match(names, beneficiary, account))
    if registry not in MIRRORED_REGISTRIES.values():
        raise LedgerError(f"no mirrored batch comes from the registry {registry!r}")
    return apply(session, [piece], registry)


# -- reporting ------------------------------------------------------------------------------------


def summary_lines(session: Session) -> tuple[list[str], bool]:
    """One line per mirrored batch, then one per conflict; and whether any conflict exists."""
    lines: list[str] = []
    conflicts: list[str] = []
    for item in ledger_origin.reconcile(session):
        label = batch_label(item.batch)
        lines.append(f"{label}  retired here {item.retired_here:,} t | covered at origin "
                     f"{item.coverage.covered:,} t | pending at origin {item.coverage.pending:,} t"
                     f" | conflicts {item.conflicts:,} t")
        for record in item.records:
            if record.ours:
                continue
            for first, last in _retired_inside(item, record):
                conflicts.append(
                    f"conflict: {label} serials {first}-{last} ({last - first + 1:,} t) retired "
                    f"here, and {record.action} at origin for "
                    f"{record.beneficiary or 'an unnamed beneficiary'!r} on "
                    f"{record.origin_date.isoformat()} (seq {record.seq})")
        for first, last, seq in item.frozen_ranges:
            conflicts.append(f"conflict: {label} serials {first}-{last} "
                             f"({last - first + 1:,} t) frozen here: the origin retired them "
                             f"elsewhere (seq {seq})")
    return lines + conflicts, bool(conflicts)


def _retired_inside(item: ledger_origin.BatchReconciliation, record: OriginRecord
                    ) -> list[tuple[int, int]]:
    found = []
    for first, last in item.coverage.conflict_ranges:
        overlap = intersect(first, last, record.first_serial, record.last_serial)
        if overlap is not None:
            found.append(overlap)
    return _merge(found)


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and merged[-1][1] + 1 >= first:
            merged[-1] = (merged[-1][0], max(last, merged[-1][1]))
        else:
            merged.append((first, last))
    return merged


def origin_names(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The marketplace's names at origin registries, from ``CARBON_ORIGIN_NAMES``."""
    raw = config.get("ORIGIN_NAMES", "Selva")
    if isinstance(raw, (list, tuple)):
        return tuple(str(n).strip() for n in raw if str(n).strip())
    return tuple(n.strip() for n in str(raw or "").split(",") if n.strip())


def beneficiary_text(config: Mapping[str, Any]) -> str:
    """What the operator writes as the beneficiary of an origin retirement made for buyers
    here: it names the marketplace (so the import recognises it) and where to check, e.g.
    "Selva customers, see selva.example/registry"."""
    site = str(config.get("SITE_URL") or str(config.get("LEDGER_ORIGIN") or "").rsplit("/", 1)[0])
    site = site.removeprefix("https://").removeprefix("http://").rstrip("/")
    name = origin_names(config)[0] if origin_names(config) else str(config.get("SITE_NAME"))
    return f"{name} customers, see {site}/registry"


# -- how it is shown --------------------------------------------------------------------------

STATUS_LABELS = {
    "covered": "Covered at the origin registry",
    "pending": "Pending at the origin registry",
    "conflict": "Conflict at the origin registry",
    "issued_here": "Issued on this registry",
}


def record_url(record: OriginRecord) -> str | None:
    """A link to the origin registry's page for the record, where one exists."""
    reference = record.reference
    if reference.startswith(("https://", "http://")):
        return reference
    if record.registry_name == "verra":
        return VERRA_PROJECT_URL.format(project=record.batch.project.registry_id)
    return None


def record_dict(record: OriginRecord) -> dict[str, object]:
    return {
        "seq": record.seq, "registry": record.registry_name, "action": record.action,
        "first": record.first_serial, "last": record.last_serial, "quantity": record.quantity,
        "date": record.origin_date.isoformat(), "beneficiary": record.beneficiary,
        "account": record.account, "reason": record.reason, "reference": record.reference,
        "url": record_url(record), "ours": bool(record.ours),
    }


def origin_dict(status: ledger_origin.RetirementOrigin) -> dict[str, object]:
    """The ``origin`` object of a retirement in the API, the certificate and webhooks."""
    coverage = status.coverage
    registry = None
    if status.records:
        registry = status.records[0].registry_name
    elif status.mirrored:
        registry = "verra"
    return {
        "status": status.status,
        "label": STATUS_LABELS[status.status],
        "registry": registry,
        "covered_tonnes": coverage.covered,
        "pending_tonnes": coverage.pending if status.mirrored else 0,
        "conflict_tonnes": coverage.conflict,
        "records": [record_dict(r) for r in status.records],
    }


def labels_dict(labels: Labels) -> dict[str, object]:
    return labels.to_data()


def batch_labels(session: Session, batches: Sequence[Batch], before: int | None = None
                 ) -> list[dict[str, object]]:
    """Each batch's labels (as they stood before entry ``before``, default now)."""
    found = ledger_origin.labels_at(session, [b.id for b in batches], before)
    return [{"batch": b.id, "vintage": formatting.vintage_label(b.vintage_start, b.vintage_end),
             **labels_dict(found[b.id])} for b in batches]


# -- label filters (catalogue, registry and API) -------------------------------------------------

LABEL_PARAMS = ("ccp", "corsia", "article6", "mitigation", "ca", "ca_status")


def slug(value: str) -> str:
    """A CAD Trust value as a query parameter: ``Not Required`` -> ``not_required``."""
    return value.lower().replace(" ", "_")


def _by_slug(values: tuple[str, ...]) -> dict[str, str]:
    return {slug(value): value for value in values}
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


@dataclass(frozen=True)
class LabelFilter:
    """Filters on a batch's labels: each one set must hold; None means any."""

    ccp: bool | None = None
    corsia: str | None = None
    """A phase, or ``any`` for any CORSIA phase."""
    article6: bool | None = None
    mitigation: str | None = None
    ca: str | None = None
    """The corresponding-adjustment declaration (CAD Trust's value, e.g. ``Committed``)."""
    ca_status: str | None = None
    """The corresponding adjustment's status (``Not Started``, ``Pending``, ``Completed``)."""

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.ccp, self.corsia, self.article6, self.mitigation,
                                           self.ca, self.ca_status))

    def matches(self, labels: Labels) -> bool:
        if self.ccp is not None and labels.ccp != self.ccp:
            return False
        if self.corsia is not None and (labels.corsia is None if self.corsia == "any"
                                        else labels.corsia != self.corsia):
            return False
        if self.article6 is not None and labels.article6_authorized != self.article6:
            return False
        if self.mitigation is not None and labels.mitigation != self.mitigation:
            return False
        if self.ca is not None and labels.ca_declaration != self.ca:
            return False
        if self.ca_status is not None and labels.ca_status != self.ca_status:
            return False
        return True

    def args(self) -> dict[str, str]:
        """The filter as query parameters, for links that keep it."""
        found: dict[str, str] = {}
        if self.ccp is not None:
            found["ccp"] = "true" if self.ccp else "false"
        if self.corsia is not None:
            found["corsia"] = self.corsia
        if self.article6 is not None:
            found["article6"] = "true" if self.article6 else "false"
        if self.mitigation is not None:
            found["mitigation"] = self.mitigation
        if self.ca is not None:
            found["ca"] = slug(self.ca)
        if self.ca_status is not None:
            found["ca_status"] = slug(self.ca_status)
        return found


def parse_label_filter(args: Mapping[str, str]) -> tuple[LabelFilter, list[str]]:
    """Read ``ccp``, ``corsia``, ``article6``, ``mitigation``, ``ca`` and ``ca_status`` from a
    query string; every bad value is dropped with a message, never an error page."""
    from ledger.records import CA_DECLARATIONS, CA_STATUSES, CORSIA_PHASES, MITIGATION_TYPES

    problems: list[str] = []
    values: dict[str, Any] = {}
    for name in ("ccp", "article6"):
        raw = (args.get(name) or "").strip().lower()
        if raw in _TRUE:
            values[name] = True
        elif raw in _FALSE:
            values[name] = False
        elif raw:
            problems.append(f"The {name} filter is true or false.")
    corsia = (args.get("corsia") or "").strip().lower()
    if corsia in (*CORSIA_PHASES, "any"):
        values["corsia"] = corsia
    elif corsia:
        problems.append(f"The CORSIA filter is one of {', '.join(CORSIA_PHASES)} or any.")
    mitigation = (args.get("mitigation") or "").strip().lower()
    if mitigation in MITIGATION_TYPES:
        values["mitigation"] = mitigation
    elif mitigation:
        problems.append(f"The mitigation filter is one of {', '.join(MITIGATION_TYPES)}.")
    for name, allowed in (("ca", _by_slug(CA_DECLARATIONS)), ("ca_status", _by_slug(CA_STATUSES))):
        raw = (args.get(name) or "").strip().lower()
        if raw in allowed:
            values[name] = allowed[raw]
        elif raw:
            problems.append(f"The {name} filter is one of {', '.join(allowed)}.")
    return LabelFilter(**values), problems
