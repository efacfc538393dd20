"""The public registry: totals, retirements, serial look-up, certificates, and the raw ledger
(signed checkpoints, the journal, Merkle proofs) for anyone who wants to check it themselves.

Everything here is public and read-only except erasing a beneficiary's name, which only an
operator may do. Pages never show who holds an account: the ledger names accounts by id, and
the registry shows only the account's kind ("a buyer's account"). The one personal datum shown
is a retirement's beneficiary, a name the buyer chose to publish, until it is erased.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import (
    Blueprint,
    Flask,
    current_app,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import ColumnElement, Select, exists, func, or_, select
from sqlalchemy.orm import Session, aliased
from werkzeug.wrappers import Response as WerkzeugResponse

from ledger import bundle, canonical, operations, queries, tree
from ledger.checkpoint import CheckpointError
from ledger.errors import ChainError, LedgerError, SerialFormatError
from ledger.merkle import MerkleProofError
from ledger.rules import MAX_SERIAL, PURPOSES
from ledger.schema import (
    Account,
    Batch,
    BatchLabel,
    Beneficiary,
    Block,
    Entry,
    OriginRecord,
    Project,
    SignedCheckpoint,
)
from ledger.serials import parse_serial

from ledger import origin as ledger_origin

from . import access, certificates, formatting, inputs, kg_certificates, kilograms, modes
from . import pagecache, pdfstore, pool_registry, signing
from . import origin as origin_service
from .urls import registry_blueprint
from .database import db
from .extensions import limiter
from .models import Listing
from .models.pools import KgAllocation

bp = Blueprint("registry", __name__)

PER_PAGE = 25
MAX_ID = 2**31 - 1
JOURNAL_CHUNK = 2000
MAX_QUERY = 200

HOLDER_LABELS = {
    "issuer": "the issuer",
    "inventory": "the marketplace's inventory",
    "customer": "a buyer's account",
    "organisation": "an organisation's account",
    "buffer": "the buffer pool",
}
"""How an account is shown in public: by its kind, never by who holds it."""

STATE_LABELS = {"tradable": "tradable", "retired": "retired", "cancelled": "cancelled"}


def register(app: Flask) -> None:
    """Register the registry's blueprint twice: the live registry, and the test-mode ledger's
    under ``/test`` (``/test/registry/...``, ``/test/ledger/...``): the same pages and proofs,
    on the test data, so integrators can verify test retirements end to end."""
    formatting.register(app)
    app.register_blueprint(bp)
    app.register_blueprint(bp, url_prefix="/test", name="test_registry")

    @app.context_processor
    def _registry_blueprint() -> dict[str, Any]:
        return {"reg": registry_blueprint(), "test_mode": db.mode() == modes.TEST}


@bp.before_request
def _mode() -> None:
    if request.blueprint == "test_registry":
        db.set_mode(modes.TEST)


def _b64(raw: bytes) -> str:
    return base64.b64encode(bytes(raw)).decode("ascii")


def holder_label(kind: str | None) -> str:
    return HOLDER_LABELS.get(kind or "", "an account")


# -- overview -------------------------------------------------------------------------------


@bp.get("/registry")
def index() -> str | Response:
    """The registry's totals, projects and latest entries: cached until an entry is added, a
    checkpoint signed or a project registered."""
    return pagecache.page(_index_state(), _index)


@functools.cache
def _index_state() -> Select[Any]:
    """What the registry overview depends on (one query, built once, shared by every thread:
    run it as it is, never build on it; see ``pagecache``)."""
    return select(pagecache.head_seq(), pagecache.signed_size(),
                  select(func.count(Project.id)).scalar_subquery())


def _index() -> str:
    session = db.session
    with session.begin():
        projects = queries.projects(session)
        totals = queries.batch_totals(session)
        per_project = queries.project_totals(session)
        overall = queries.BatchTotals()
        for project_totals in per_project.values():
            overall.add(project_totals)
        return pagecache.render_template(
            "registry/index.html",
            projects=projects,
            totals=totals,
            per_project=per_project,
            overall=overall,
            empty=queries.BatchTotals(),
            entries=queries.recent_entries(session, 20),
            labels=ledger_origin.labels_at(session, [b.id for p in projects for b in p.batches]),
            checkpoint=tree.latest_checkpoint(session),
            journal_size=tree.size(session),
            b64=_b64,
        )


# -- the origin registry and labels ---------------------------------------------------------


@bp.get("/registry/origin")
def origin() -> str:
    """Per mirrored batch: retired here, covered / pending / in conflict at the origin
    registry; the public list of conflicts; every origin record."""
    session = db.session
    with session.begin():
        report = ledger_origin.reconcile(session)
        lines, _conflict = origin_service.summary_lines(session)
        records = list(session.scalars(select(OriginRecord).order_by(OriginRecord.seq.desc())
                                       .limit(500)))
        return render_template(
            "registry/origin.html", report=report, records=records,
            conflicts=[line.removeprefix("conflict: ") for line in lines
                       if line.startswith("conflict:")],
            label=origin_service.batch_label, record_url=origin_service.record_url,
            names=", ".join(origin_service.origin_names(current_app.config)))


@bp.get("/registry/batches/<int:batch_id>")
def batch(batch_id: int) -> str:
    """One batch: its facts and totals, its labels and their history, and what the origin
    registry shows for it."""
    session = db.session
    with session.begin():
        found = session.get(Batch, batch_id) if 1 <= batch_id <= MAX_ID else None
        if found is None:
            abort(404, description=f"There is no batch {batch_id} on this registry.")
        history = [(row, ledger_origin.labels_of(row))
                   for row in ledger_origin.label_history(session, batch_id)]
        reconciliation = ledger_origin.reconcile(session, [batch_id])
        return render_template(
            "registry/batch.html", batch=found, history=history,
            labels=ledger_origin.labels_at(session, [batch_id])[batch_id],
            totals=queries.batch_totals(session).get(batch_id, queries.BatchTotals()),
            reconciliation=reconciliation[0] if reconciliation else None,
            label=origin_service.batch_label, record_url=origin_service.record_url)


# -- retirements ----------------------------------------------------------------------------


@dataclass
class RetirementSearch:
    """The retirement search form, read from the query string; ``errors`` say what was wrong."""

    beneficiary: str = ""
    project: str = ""
    vintage: str = ""
    date_from: str = ""
    date_to: str = ""
    serial: str = ""
    page: int = 1
    errors: list[str] = field(default_factory=list)
    project_id: int | None = None
    vintage_year: int | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    serial_number: int | None = None
    labels: origin_service.LabelFilter = field(default_factory=origin_service.LabelFilter)
    """Labels the retired batch carried when it was retired."""

    @property
    def active(self) -> bool:
        return any((self.beneficiary, self.project, self.vintage, self.date_from, self.date_to,
                    self.serial)) or self.labels.active

    def params(self, **changes: Any) -> dict[str, Any]:
        values = {"beneficiary": self.beneficiary, "project": self.project,
                  "vintage": self.vintage, "from": self.date_from, "to": self.date_to,
                  "serial": self.serial, "page": self.page, **self.labels.args()}
        values.update(changes)
        return {k: v for k, v in values.items() if v not in ("", None) and not (k == "page" and v == 1)}


def _arg(args: Mapping[str, str], name: str) -> str:
    return str(args.get(name, "") or "").strip()


def _date_arg(text: str, what: str, search: RetirementSearch) -> dt.date | None:
    if not text:
        return None
    try:
        if len(text) != 10:
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        search.errors.append(f"The {what} date must be a date written as YYYY-MM-DD.")
        return None


def parse_search(args: Mapping[str, str], projects: list[Project]) -> RetirementSearch:
    """Read and check the search parameters; every problem becomes a message, never a 500."""
    search = RetirementSearch(
        beneficiary=_arg(args, "beneficiary"), project=_arg(args, "project"),
        vintage=_arg(args, "vintage"), date_from=_arg(args, "from"), date_to=_arg(args, "to"),
        serial=_arg(args, "serial"),
    )
    search.labels, problems = origin_service.parse_label_filter(args)
    search.errors.extend(problems)
    page = _arg(args, "page")
    search.page = int(page) if page.isascii() and page.isdigit() and 0 < len(page) < 7 else 1
    search.page = max(search.page, 1)
    for name in ("beneficiary", "project", "vintage", "date_from", "date_to", "serial"):
        if len(getattr(search, name)) > MAX_QUERY:
            search.errors.append(f"The {name.replace('_', ' ')} is too long to search for.")
            setattr(search, name, getattr(search, name)[:MAX_QUERY])
    if search.errors:
        return search
    if search.project:
        found = next((p for p in projects if p.ref.lower() == search.project.lower()
                      or str(p.id) == search.project), None)
        if found is None:
            search.errors.append(f"There is no project {search.project!r} on this registry.")
        else:
            search.project_id = found.id
    if search.vintage:
        year = search.vintage
        if year.isascii() and year.isdigit() and len(year) == 4 and 1900 <= int(year) <= 2200:
            search.vintage_year = int(year)
        else:
            search.errors.append("The vintage must be a year, like 2016.")
    search.start = _date_arg(search.date_from, "from", search)
    search.end = _date_arg(search.date_to, "to", search)
    if search.start and search.end and search.start > search.end:
        search.errors.append("The date range starts after it ends.")
    if search.serial:
        text = search.serial
        if text.isascii() and text.isdigit():
            number = int(text)
            if 1 <= number <= MAX_SERIAL:
                search.serial_number = number
            else:
                search.errors.append(f"Serial number {text} is out of range.")
        else:
            try:
                search.serial_number = parse_serial(text).first
            except SerialFormatError as exc:
                search.errors.append(f"That is not a serial number or serial string: {exc}.")
    return search


def _retired_block_exists(*conditions: Any) -> Any:
    return exists(
        select(Block.id).join(Batch, Batch.id == Block.batch_id)
        .where(Block.created_by == Entry.seq, Block.state == "retired", *conditions)
    )


def _labelled_at_retirement(wanted: origin_service.LabelFilter) -> Any:
    """A retired block of the entry whose batch carried ``wanted`` labels when it was retired:
    the batch's latest label entry before the retirement matches, or it had none yet and the
    unlabelled defaults match."""
    from ledger.records import UNLABELLED

    earlier = aliased(BatchLabel)
    latest = (select(func.max(earlier.seq))
              .where(earlier.batch_id == Block.batch_id, earlier.seq < Entry.seq)
              .correlate_except(earlier).scalar_subquery())
    conditions = [BatchLabel.batch_id == Block.batch_id, BatchLabel.seq == latest]
    if wanted.ccp is not None:
        conditions.append(BatchLabel.ccp.is_(wanted.ccp))
    if wanted.article6 is not None:
        conditions.append(BatchLabel.article6_authorized.is_(wanted.article6))
    if wanted.corsia == "any":
        conditions.append(BatchLabel.corsia.is_not(None))
    elif wanted.corsia is not None:
        conditions.append(BatchLabel.corsia == wanted.corsia)
    if wanted.mitigation is not None:
        conditions.append(BatchLabel.mitigation == wanted.mitigation)
    if wanted.ca is not None:
        conditions.append(BatchLabel.ca_declaration == wanted.ca)
    if wanted.ca_status is not None:
        conditions.append(BatchLabel.ca_status == wanted.ca_status)
    matched: ColumnElement[bool] = exists(select(BatchLabel.seq).where(*conditions))
    if wanted.matches(UNLABELLED):
        matched = or_(matched, latest.is_(None))
    return _retired_block_exists(matched)


def search_statement(
        search: RetirementSearch) -> Select[int, str, bytes, dt.datetime, str | None]:
    """Retirement entries matching the search, newest first, with the beneficiary's name."""
    stmt = (
        select(Entry.seq, Entry.hash, Entry.record, Entry.created_at, Beneficiary.name)
        .outerjoin(Beneficiary, Beneficiary.seq == Entry.seq)
        .where(Entry.kind == "retire")
    )
    if search.beneficiary:
        term = search.beneficiary
        stmt = stmt.where(Beneficiary.name.is_not(None), or_(
            func.lower(Beneficiary.name).contains(term.lower(), autoescape=True),
            Beneficiary.name.contains(term, autoescape=True),
        ))
    if search.project_id is not None:
        stmt = stmt.where(_retired_block_exists(Batch.project_id == search.project_id))
    if search.vintage_year is not None:
        year = search.vintage_year
        stmt = stmt.where(_retired_block_exists(Batch.vintage_start <= dt.date(year, 12, 31),
                                                Batch.vintage_end >= dt.date(year, 1, 1)))
    if search.labels.active:
        stmt = stmt.where(_labelled_at_retirement(search.labels))
    if search.serial_number is not None:
        number = search.serial_number
        stmt = stmt.where(_retired_block_exists(Block.first_serial <= number,
                                                Block.last_serial >= number))
    if search.start is not None:
        stmt = stmt.where(Entry.created_at >= dt.datetime.combine(search.start, dt.time(),
                                                                  tzinfo=dt.UTC))
    if search.end is not None:
        stmt = stmt.where(Entry.created_at < dt.datetime.combine(
            search.end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC))
    return stmt


def _summaries(session: Session, rows: list[Any]) -> list[dict[str, Any]]:
    seqs = [row.seq for row in rows]
    blocks: dict[int, list[Block]] = {seq: [] for seq in seqs}
    if seqs:
        for block in session.scalars(
            select(Block).where(Block.created_by.in_(seqs), Block.state == "retired")
            .order_by(Block.created_by, Block.batch_id, Block.first_serial)
        ):
            blocks[block.created_by].append(block)
    found = []
    for row in rows:
        data = canonical.loads(bytes(row.record))["data"]
        mine = blocks[row.seq]
        batches = list({b.batch_id: b.batch for b in mine}.values())
        found.append({
            "seq": row.seq,
            "hash": row.hash,
            "beneficiary": row.name,
            "quantity": int(data["quantity"]),
            "date": data.get("date"),
            "purpose": PURPOSES.get(data.get("purpose", ""), data.get("purpose", "")),
            "projects": list(dict.fromkeys(b.project.name for b in batches)),
            "vintages": list(dict.fromkeys(formatting.vintage_label(b.vintage_start, b.vintage_end)
                                           for b in batches)),
            "serials": [queries.serial_string(b.batch, b.first_serial, b.last_serial) for b in mine],
        })
    return found


@bp.get("/registry/retirements")
def retirements() -> str:
    session = db.session
    with session.begin():
        projects = queries.projects(session)
        search = parse_search(request.args, projects)
        results: list[dict[str, Any]] = []
        total = 0
        if not search.errors:
            stmt = search_statement(search)
            total = int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
            rows = session.execute(
                stmt.order_by(Entry.seq.desc()).limit(PER_PAGE)
                .offset((search.page - 1) * PER_PAGE)
            ).all()
            results = _summaries(session, list(rows))
        pages = max(1, -(-total // PER_PAGE))
        return render_template("registry/retirements.html", search=search, projects=projects,
                               results=results, total=total, pages=pages, per_page=PER_PAGE)


# -- serial look-up -------------------------------------------------------------------------


@bp.get("/registry/serial")
def serial() -> str:
    query = _arg(request.args, "q")
    error = None
    session = db.session
    with session.begin():
        timelines: list[queries.Timeline] = []
        kinds: dict[int, str] = {}
        if len(query) > MAX_QUERY:
            error = "That is too long to be a serial number or a serial string."
        elif query:
            try:
                timelines = queries.timeline(session, query)
            except SerialFormatError as exc:
                error = f"That is not a serial number or serial string: {exc}."
            except ValueError:
                error = "That is not a serial number or serial string."
            if not error and not timelines:
                error = f"No credit with serial number {query} is recorded on this ledger."
            ids = {step.account_id for t in timelines for step in t.steps}
            if ids:
                kinds = {account_id: kind for account_id, kind in session.execute(
                    select(Account.id, Account.kind).where(Account.id.in_(ids)))}
        return render_template("registry/serial.html", query=query, error=error,
                               timelines=timelines, kinds=kinds, holder_label=holder_label)


# -- journal entries ------------------------------------------------------------------------


@bp.get("/registry/entries/<int:seq>")
def entry(seq: int) -> str:
    session = db.session
    with session.begin():
        found = session.get(Entry, seq)
        if found is None:
            abort(404, description=f"There is no ledger entry {seq}.")
        record = bytes(found.record).decode("utf-8")
        parsed = json.loads(record)
        pretty = json.dumps(parsed, indent=2, sort_keys=True, ensure_ascii=False)
        pool_ref = parsed["data"].get("pool") if found.kind == "pool" else None
        return render_template("registry/entry.html", entry=found, record=record, pretty=pretty,
                               size=tree.size(session), pool_ref=pool_ref)


# -- certificates ---------------------------------------------------------------------------


class _NotSigned(Exception):
    """The certificate's entry is recorded, but no signed checkpoint covers it yet."""

    def __init__(self, pending: dict[str, Any]) -> None:
        super().__init__(pending.get("reference"))
        self.pending = pending


def _certificate(seq: int) -> dict[str, Any]:
    """The certificate, in the request's transaction; 404 unless ``seq`` is a retirement,
    ``_NotSigned`` until a signed checkpoint covers it."""
    try:
        return certificates.certificate(db.session, seq)
    except LookupError:
        abort(404, description=f"There is no retirement at ledger entry {seq}.")
    except signing.NotYetSigned:
        raise _NotSigned(_tonne_pending(seq)) from None
    except CheckpointError:
        abort(503, description="The registry cannot sign a checkpoint right now; "
                               "please try again later.")


def _display(cert: dict[str, Any]) -> dict[str, Any]:
    """Labels for the templates, computed once."""
    vintage = cert.get("vintage")
    label = ""
    if vintage:
        label = formatting.vintage_label(dt.date.fromisoformat(vintage["start"]),
                                         dt.date.fromisoformat(vintage["end"]))
    return {"vintage": label, "country": formatting.country_name(cert.get("country") or "")}


def _tonne_pending(seq: int) -> dict[str, Any]:
    """What the pending page and JSON say of a retirement not yet under a checkpoint."""
    entry = db.session.get(Entry, seq)
    quantity = int(canonical.loads(bytes(entry.record))["data"]["quantity"]) if entry else 0
    links = {"page": url_for(f"{registry_blueprint()}.certificate", seq=seq, _external=True),
             "json": url_for(f"{registry_blueprint()}.certificate_json", seq=seq,
                             _external=True)}
    return {"status": "pending", "kind": "retirement", "reference": str(seq), "seq": seq,
            "quantity": quantity, "mass": f"{quantity:,} t",
            "message": "This retirement is recorded. Its certificate is ready once the next "
                       "checkpoint is signed, in a few seconds.",
            "links": links}


def _pending_json(pending: dict[str, Any]) -> Response:
    """``202 {"status": "pending", ...}`` with ``Retry-After``."""
    body = {key: value for key, value in pending.items() if key != "project"}
    response = jsonify(body)
    response.status_code = 202
    response.headers["Retry-After"] = str(signing.RETRY_SECONDS)
    response.headers["Cache-Control"] = "no-cache"
    return response


# The three forms of a certificate (page, JSON, PDF), for a retirement or an allocation alike:
# ``build`` makes the certificate in the caller's transaction, or raises ``_NotSigned`` (the
# answer is then the pending page or JSON, with Retry-After) or aborts 404.


def _certificate_page(build: Callable[[], dict[str, Any]], template: str,
                      show: Callable[[dict[str, Any]], dict[str, Any]],
                      depends: list[ColumnElement[Any]]) -> str | Response:
    """The certificate page, cached by the page cache until ``depends`` (besides the newest
    origin record and signed checkpoint) reads otherwise."""
    def render() -> str | Response:
        try:
            with db.session.begin():
                cert = build()
        except _NotSigned as exc:
            return _pending_page(exc.pending, 200)
        return pagecache.render_template(template, cert=cert, show=show(cert))

    return pagecache.page([*depends, pagecache.origin_head(), pagecache.signed_size()],
                          render)


def _certificate_json(build: Callable[[], dict[str, Any]], name: str) -> Response:
    try:
        with db.session.begin():
            cert = build()
    except _NotSigned as exc:
        return _pending_json(exc.pending)
    response = Response(json.dumps(cert, indent=2, ensure_ascii=False) + "\n",
                        mimetype="application/json")
    response.headers["Content-Disposition"] = f'inline; filename="selva-certificate-{name}.json"'
    return response


def _certificate_pdf(kind: str, name: str, erased: ColumnElement[Any],
                     build: Callable[[], dict[str, Any]],
                     print_html: Callable[[dict[str, Any]], str]) -> Response:
    """The PDF: rendered on the first request, then served from storage (``pdfstore``), with
    its digest as a strong ETag (304 on a match)."""
    try:
        found = pdfstore.pdf_for(kind, name, request.url_root, erased, build,
                                 lambda cert: pdf_from_html(print_html(cert)))
    except _NotSigned as exc:
        return _pending_page(exc.pending, 202)
    response = Response(found.pdf, mimetype="application/pdf")
    response.set_etag(found.digest)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Disposition"] = f'inline; filename="selva-certificate-{name}.pdf"'
    response.make_conditional(request)
    return response


@bp.get("/registry/certificates/<int:seq>")
def certificate(seq: int) -> str | Response:
    """A retirement's certificate; until a signed checkpoint covers it (seconds), a page that
    says so and refreshes itself. Cached until its name is erased, the origin registry records
    something or a checkpoint is signed."""
    return _certificate_page(lambda: _certificate(seq), "registry/certificate.html", _display,
                             [pagecache.retirement_erased(seq)])


@bp.get("/registry/certificates/<int:seq>.json")
def certificate_json(seq: int) -> Response:
    """The certificate JSON; ``202 {"status": "pending", ...}`` with ``Retry-After`` until a
    signed checkpoint covers the retirement."""
    return _certificate_json(lambda: _certificate(seq), str(seq))


def qr_data_uri(text: str) -> str:
    """A QR code of ``text`` as an SVG data URI (for the printed certificate)."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    svg = image.to_string(encoding="unicode")
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def render_certificate_print(cert: dict[str, Any]) -> str:
    """The HTML the PDF is made from (self-contained: inline styles, the QR as a data URI)."""
    page = cert.get("links", {}).get("page") or url_for(
        f"{registry_blueprint()}.certificate", seq=cert["seq"], _external=True)
    return render_template("registry/certificate_print.html", cert=cert, show=_display(cert),
                           page_url=page, qr=qr_data_uri(page))


def pdf_from_html(html: str) -> bytes:
    """Render print HTML to an A4 PDF. Only data: URIs are fetched: never the network or disk."""
    with warnings.catch_warnings():
        # Without libharfbuzz-subset WeasyPrint warns on import that a future version will need
        # it; fonts are then embedded whole, which is fine for a one-page certificate.
        warnings.filterwarnings("ignore", message="HarfBuzz-Subset", category=DeprecationWarning)
        from weasyprint import HTML, URLFetcher

    fetcher = URLFetcher(allowed_protocols={"data"})
    return bytes(HTML(string=html, url_fetcher=fetcher).write_pdf())


@bp.get("/registry/certificates/<int:seq>.pdf")
@limiter.limit("30 per minute")
def certificate_pdf(seq: int) -> Response:
    """The certificate's PDF: rendered on the first request, then served from storage."""
    return _certificate_pdf("retirement", str(seq), pagecache.retirement_erased(seq),
                            lambda: _certificate(seq), render_certificate_print)


@bp.post("/registry/certificates/<int:seq>/erase")
@login_required
def erase(seq: int) -> WerkzeugResponse:
    """Erase a beneficiary's name on their request (operators only). The chain stays valid."""
    if not access.is_operator(current_user):
        abort(403, description="Only an operator can withhold a beneficiary's name.")
    with db.session.begin():
        try:
            certificates.retirement_entry(db.session, seq)
        except LookupError:
            abort(404, description=f"There is no retirement at ledger entry {seq}.")
        erased = operations.erase_beneficiary(db.session, seq)
        pdfstore.forget(db.session, "retirement", str(seq))
    if erased:
        flash("The beneficiary's name and salt are erased. The certificate now says the name "
              "was withheld, and the ledger still verifies.", "success")
    else:
        flash("The beneficiary's name was already withheld.", "info")
    return redirect(url_for(f"{registry_blueprint()}.certificate", seq=seq))


# -- kilogram pools -------------------------------------------------------------------------


@bp.get("/registry/pools")
def pools() -> str:
    """Every listing's kilogram pool: tonnes retired into it, kilograms allocated and free."""
    with db.session.begin():
        rows = pool_registry.pools(db.session)
        return render_template("registry/pools.html", pools=rows, mass=kilograms.format_mass)


@bp.get("/registry/pools/<ref>")
def pool(ref: str) -> tuple[str, int]:
    """One pool: its pool retirements with their serials, and its sealed allocations, newest
    first, searchable by beneficiary and by allocation id."""
    session = db.session
    with session.begin():
        project = pool_registry.find_project(session, ref)
        if project is None:
            abort(404, description=f"There is no kilogram pool {ref[:40]} on this registry.")
        search = pool_registry.parse_search(request.args)
        retirements = pool_registry.pool_retirements(session, project.id)
        results: list[pool_registry.AllocationRow] = []
        total = 0
        if not search.errors:
            results, total = pool_registry.allocations(session, project.id, search)
        per_page = pool_registry.PER_PAGE
        html = render_template(
            "registry/pool.html", project=project, retirements=retirements, search=search,
            results=results, total=total, pages=max(1, -(-total // per_page)),
            mass=kilograms.format_mass,
            tonnes=sum(r.quantity for r in retirements),
            allocated=sum(r.allocated for r in retirements),
            free=sum(r.free for r in retirements))
    return html, 400 if search.errors else 200


# -- kilogram certificates ------------------------------------------------------------------

KG_NOT_FOUND = "There is no kilogram certificate with that reference on this registry."


def _kg_allocation(reference: str) -> KgAllocation:
    """The paid-for allocation ``reference`` names (sealed or about to be); 404 otherwise."""
    found = kg_certificates.find(db.session, reference)
    if found is None:
        abort(404, description=KG_NOT_FOUND)
    return found


def _kg_certificate(allocation: KgAllocation) -> dict[str, Any]:
    try:
        return kg_certificates.certificate(db.session, allocation)
    except LookupError:
        abort(404, description=KG_NOT_FOUND)
    except signing.NotYetSigned:
        raise _NotSigned(_kg_pending(allocation)) from None
    except CheckpointError:
        abort(503, description="The registry cannot sign a checkpoint right now; "
                               "please try again later.")


def _sealed_kg_certificate(reference: str) -> dict[str, Any]:
    """The certificate of allocation ``reference``, in the caller's transaction; 404 if there is
    no such paid-for allocation, ``_NotSigned`` while it waits to be sealed or signed."""
    allocation = _kg_allocation(reference)
    if kg_certificates.status(allocation) == kg_certificates.PENDING:
        raise _NotSigned(_kg_pending(allocation))
    return _kg_certificate(allocation)


def _kg_pending(allocation: KgAllocation) -> dict[str, Any]:
    """What the pending page shows: the mass and the project, nothing personal."""
    listing = db.session.get(Listing, allocation.listing_id)
    return {**kg_certificates.pending(allocation), "kind": "allocation",
            "project": listing.project if listing is not None else None}


def _kg_display(cert: dict[str, Any]) -> dict[str, Any]:
    return {"country": formatting.country_name(cert.get("country") or "")}


def _pending_page(pending: dict[str, Any], status: int) -> Response:
    response = Response(render_template("registry/pending.html", pending=pending,
                                        retry=signing.RETRY_SECONDS), status=status,
                        mimetype="text/html")
    response.headers["Retry-After"] = str(signing.RETRY_SECONDS)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/registry/kg/<reference>")
def kg_certificate(reference: str) -> str | Response:
    """A kilogram allocation's certificate; while it is being written into the ledger, a page
    that says so and refreshes itself."""
    if not kg_certificates.REFERENCE.fullmatch(reference):
        abort(404, description=KG_NOT_FOUND)
    state = select(KgAllocation.state).where(KgAllocation.reference == reference)
    return _certificate_page(lambda: _sealed_kg_certificate(reference),
                             "registry/kg_certificate.html", _kg_display,
                             [state.scalar_subquery(), pagecache.allocation_erased(reference)])


@bp.get("/registry/kg/<reference>.json")
def kg_certificate_json(reference: str) -> Response:
    """The certificate JSON; ``202 {"status": "pending", ...}`` with ``Retry-After`` while the
    allocation is being written into the ledger."""
    return _certificate_json(lambda: _sealed_kg_certificate(reference), reference)


def render_kg_certificate_print(cert: dict[str, Any]) -> str:
    """The HTML the kilogram certificate's PDF is made from (self-contained)."""
    page = cert.get("links", {}).get("page") or url_for(
        f"{registry_blueprint()}.kg_certificate", reference=cert["reference"], _external=True)
    return render_template("registry/kg_certificate_print.html", cert=cert,
                           show=_kg_display(cert), page_url=page, qr=qr_data_uri(page))


@bp.get("/registry/kg/<reference>.pdf")
@limiter.limit("30 per minute")
def kg_certificate_pdf(reference: str) -> Response:
    """The certificate's PDF: rendered on the first request, then served from storage."""
    if not kg_certificates.REFERENCE.fullmatch(reference):
        abort(404, description=KG_NOT_FOUND)
    return _certificate_pdf("allocation", reference, pagecache.allocation_erased(reference),
                            lambda: _sealed_kg_certificate(reference),
                            render_kg_certificate_print)


@bp.post("/registry/kg/<reference>/erase")
@login_required
def kg_erase(reference: str) -> WerkzeugResponse:
    """Erase a kilogram beneficiary's name on their request (operators only), as for a
    retirement. The ledger keeps the salted commitment and still verifies."""
    if not access.is_operator(current_user):
        abort(403, description="Only an operator can withhold a beneficiary's name.")
    with db.session.begin():
        allocation = _kg_allocation(reference)
        seq, index = allocation.seq, allocation.idx
        if kg_certificates.status(allocation) == kg_certificates.PENDING or \
                seq is None or index is None:
            abort(409, description="This allocation is still being written into the ledger. "
                                   "Try again in a few seconds.")
        erased = operations.erase_allocation_beneficiary(db.session, seq, index)
        pdfstore.forget(db.session, "allocation", allocation.reference)
    if erased:
        flash("The beneficiary's name and salt are erased. The certificate now says the name "
              "was withheld, and the ledger still verifies.", "success")
    else:
        flash("The beneficiary's name was already withheld.", "info")
    return redirect(url_for(f"{registry_blueprint()}.kg_certificate", reference=reference))


# -- the raw ledger, for auditors ----------------------------------------------------------


def _text(body: str, status: int = 200) -> Response:
    response = Response(body, status=status, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-cache"
    if status == 503:
        response.headers["Retry-After"] = str(signing.RETRY_SECONDS)
    return response


def _json_error(message: str, status: int = 400) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


class _Unavailable(Exception):
    """The journal is empty (404) or no checkpoint can be signed (503)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _current_checkpoint() -> SignedCheckpoint:
    """The newest signed checkpoint (read-only: the worker signs), in its own transaction."""
    try:
        with db.session.begin():
            return signing.published_checkpoint(db.session)
    except ChainError:
        raise _Unavailable(404, "The journal is empty: there is no checkpoint yet.") from None
    except signing.NotYetSigned:
        raise _Unavailable(503, "No checkpoint is signed yet; the first is signed in a few "
                                "seconds.") from None
    except CheckpointError:
        raise _Unavailable(503, "No checkpoint can be signed right now.") from None
    except LedgerError as exc:
        raise _Unavailable(503, f"No checkpoint can be signed right now: {exc}") from None


@bp.get("/ledger/checkpoint")
def checkpoint() -> Response:
    """The current signed checkpoint (a C2SP signed note); ``?size=N`` for an earlier one."""
    wanted = _arg(request.args, "size")
    if wanted:
        size = inputs.plain_int(wanted, 0, inputs.MAX_BIGINT)
        if size is None:
            return _text("size must be a whole number\n", 400)
        with db.session.begin():
            stored = db.session.get(SignedCheckpoint, size)
            if stored is None:
                return _text(f"no checkpoint of size {size} was signed\n", 404)
            return _text(stored.note)
    try:
        return _text(_current_checkpoint().note)
    except _Unavailable as exc:
        return _text(f"{exc}\n", exc.status)


@bp.get("/ledger/key")
def key() -> Response:
    """The operator's verifier key, for checkpoints and certificates."""
    try:
        return _text(signing.verifier_key() + "\n")
    except CheckpointError:
        return _text("The registry has no checkpoint key configured.\n", 503)


def _journal_lines(session: Session, size: int) -> Iterator[bytes]:
    """journal.jsonl lines for entries 1..size, read in chunks; closes the session when done."""
    try:
        last = 0
        while last < size:
            with session.begin():
                rows = session.execute(
                    select(Entry.seq, Entry.kind, Entry.record, Entry.hash)
                    .where(Entry.seq > last, Entry.seq <= size)
                    .order_by(Entry.seq).limit(JOURNAL_CHUNK)
                ).all()
            if not rows:
                break
            yield b"".join(bundle.journal_line(seq, kind, bytes(record), digest)
                           for seq, kind, record, digest in rows)
            last = rows[-1].seq
    finally:
        session.close()


def _checkpoint_size() -> int:
    try:
        return int(_current_checkpoint().size)
    except _Unavailable as exc:
        if exc.status == 404:
            return 0
        raise


@bp.get("/ledger/journal.jsonl")
def journal() -> Response:
    """Every entry up to the current checkpoint, one JSON line each (``ledger.bundle``)."""
    try:
        size = _checkpoint_size()
    except _Unavailable as exc:
        return _text(f"{exc}\n", exc.status)
    response = Response(_journal_lines(db.new_session(), size), mimetype="application/jsonl")
    response.headers["X-Checkpoint-Size"] = str(size)
    response.headers["Content-Disposition"] = f'attachment; filename="{bundle.JOURNAL}"'
    return response


@bp.get("/ledger/manifest.json")
@limiter.limit("10 per minute")
def manifest() -> Response:
    """The manifest the offline verifier expects beside journal.jsonl, checkpoint.txt and
    key.pub, for the journal up to ``?size=N`` (a signed checkpoint's size; default the current
    one). Computed by reading the journal, exactly as ``flask ledger export`` writes it."""
    wanted = _arg(request.args, "size")
    asked = inputs.plain_int(wanted, 0, inputs.MAX_BIGINT) if wanted else None
    if wanted and asked is None:
        return _json_error("size must be a whole number")
    try:
        size = asked if asked is not None else _checkpoint_size()
    except _Unavailable as exc:
        return _json_error(str(exc), exc.status)
    with db.session.begin():
        stored = db.session.get(SignedCheckpoint, size)
        if stored is None:
            return _json_error(f"no checkpoint of size {size} was signed", 404)
        note = stored.note
        head = db.session.scalar(select(Entry.hash).where(Entry.seq == size)) or "0" * 64
    digest = hashlib.sha256()
    for chunk in _journal_lines(db.new_session(), size):
        digest.update(chunk)
    files = {bundle.JOURNAL: digest.hexdigest(),
             bundle.CHECKPOINT: hashlib.sha256(note.encode("utf-8")).hexdigest()}
    try:
        files[bundle.KEY] = hashlib.sha256((signing.verifier_key() + "\n").encode()).hexdigest()
    except CheckpointError:
        pass
    return jsonify({"format": bundle.FORMAT, "entries": size, "head": head, "files": files})


def _int_param(name: str) -> int:
    value = _arg(request.args, name)
    if not value:
        raise ValueError(f"the parameter {name!r} is required")
    number = inputs.plain_int(value, 0, inputs.MAX_BIGINT)
    if number is None:
        raise ValueError(f"the parameter {name!r} must be a whole number")
    return number


@bp.get("/ledger/proofs/inclusion")
def inclusion_proof() -> Response:
    """The Merkle proof that entry ``seq`` is in the tree of ``size`` entries (RFC 9162)."""
    try:
        seq, size = _int_param("seq"), _int_param("size")
    except ValueError as exc:
        return _json_error(str(exc))
    with db.session.begin():
        try:
            return jsonify(tree.inclusion_document(db.session, seq, size))
        except MerkleProofError as exc:
            return _json_error(str(exc))


@bp.get("/ledger/proofs/consistency")
def consistency_proof() -> Response:
    """The Merkle proof that the tree of ``to`` entries extends the tree of ``from``."""
    try:
        first, second = _int_param("from"), _int_param("to")
    except ValueError as exc:
        return _json_error(str(exc))
    with db.session.begin():
        try:
            document = tree.consistency_document(db.session, first, second)
        except MerkleProofError as exc:
            return _json_error(str(exc))
        return jsonify({"from": first, "to": second, **document})
