"""The storefront: the home page, the catalogue of listed projects, and each project's page.

What is for sale is always read from the ledger (the inventory account's tradable blocks less
active reservations, ``checkout.for_sale_by_batch``); a listing only adds the price and the
story. These pages only read: they never create the inventory account or anything else.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flask import Blueprint, Flask, Response, abort, request, url_for
from sqlalchemy import Select, select
from sqlalchemy.orm import Session, contains_eager

from ledger import queries
from ledger.queries import BatchTotals
from ledger.origin import labels_at
from ledger.records import UNLABELLED, Labels
from ledger.schema import Account, Batch, Project

from . import checkout, formatting, inputs, pagecache
from .database import db
from .formatting import SDG_NAMES, vintage_label
from .models import Listing
from .origin import LABEL_PARAMS, LabelFilter, parse_label_filter

bp = Blueprint("catalogue", __name__)

PAGE_SIZE = 12
SORTS = {
    "name": "Name (A–Z)",
    "price_asc": "Price: low to high",
    "price_desc": "Price: high to low",
    "available": "Most tonnes available",
}
_STANDARD_ALIASES = {
    "CCBS": "CCB", "CCB STANDARDS": "CCB", "VERRA": "VCS", "VERIFIED CARBON STANDARD": "VCS",
    "VCS": "VCS", "CCB": "CCB", "GOLD STANDARD": "Gold Standard", "PLAN VIVO": "Plan Vivo",
}


# -- what a buyer sees of a listing -------------------------------------------------------


@dataclass(frozen=True)
class Vintage:
    """One batch of a project, as a buyer sees it: its vintage and the tonnes for sale now."""

    batch_id: int
    label: str
    first_year: int
    last_year: int
    scheme: str
    for_sale: int
    labels: Labels = UNLABELLED


@dataclass
class Offer:
    """A listed project with what the ledger says is for sale."""

    listing: Listing
    project: Project
    vintages: list[Vintage] = field(default_factory=list)

    @property
    def for_sale(self) -> int:
        return sum(v.for_sale for v in self.vintages)

    @property
    def on_sale(self) -> list[Vintage]:
        return [v for v in self.vintages if v.for_sale > 0]

    @property
    def years(self) -> set[int]:
        """Calendar years covered by a vintage with tonnes for sale."""
        return {y for v in self.on_sale for y in range(v.first_year, v.last_year + 1)}

    @property
    def vintage_span(self) -> str:
        years = sorted(self.years)
        if not years:
            return ""
        return str(years[0]) if years[0] == years[-1] else f"{years[0]}–{years[-1]}"

    @property
    def standards(self) -> list[str]:
        return standard_names(self.project.standards)

    @property
    def type_class(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.listing.project_type.lower()).strip("-") or "other"

    @property
    def sdgs(self) -> list[tuple[int, str]]:
        return [(n, SDG_NAMES[n]) for n in self.listing.sdg_numbers if n in SDG_NAMES]


def standard_names(text: str) -> list[str]:
    """The standards a project names, as short names: ``"VCS, CCB (Gold Level)"`` gives
    ``["VCS", "CCB"]``; CCBS and CCB are the same standard."""
    names: list[str] = []
    for part in re.split(r"[,;&/+]", re.sub(r"\([^)]*\)", "", text or "")):
        name = " ".join(part.split())
        if not name:
            continue
        name = _STANDARD_ALIASES.get(name.upper(), name)
        if name.lower() not in (n.lower() for n in names):
            names.append(name)
    return names


def for_sale_now(session: Session) -> dict[int, int]:
    """Tonnes for sale per batch id, without creating the inventory account if it is missing."""
    exists = session.scalar(select(Account.id).where(Account.name == checkout.INVENTORY))
    if exists is None:
        return {}
    return checkout.for_sale_by_batch(session)


def listed(session: Session, slug: str | None = None) -> list[Listing]:
    stmt = (
        select(Listing).join(Listing.project).options(contains_eager(Listing.project))
        .where(Listing.status == "listed")
    )
    if slug is not None:
        stmt = stmt.where(Listing.slug == slug)
    return list(session.scalars(stmt.order_by(Project.name, Listing.id)))


def build_offers(session: Session, listings: Iterable[Listing],
                 for_sale: Mapping[int, int] | None = None) -> list[Offer]:
    offers = [Offer(listing, listing.project) for listing in listings]
    if not offers:
        return []
    stock = for_sale_now(session) if for_sale is None else for_sale
    by_project = {offer.project.id: offer for offer in offers}
    batches = list(session.scalars(
        select(Batch).where(Batch.project_id.in_(list(by_project)))
        .order_by(Batch.vintage_start, Batch.id)
    ))
    labels = labels_at(session, [b.id for b in batches])
    for batch in batches:
        by_project[batch.project_id].vintages.append(Vintage(
            batch.id, vintage_label(batch.vintage_start, batch.vintage_end),
            batch.vintage_start.year, batch.vintage_end.year, batch.scheme,
            stock.get(batch.id, 0), labels[batch.id],
        ))
    return offers


# -- filters ----------------------------------------------------------------------------------


@dataclass
class Filters:
    country: str = ""
    project_type: str = ""
    standard: str = ""
    vintage: int | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    sort: str = "name"
    page: int = 1
    labels: LabelFilter = field(default_factory=lambda: LabelFilter())
    raw: dict[str, str] = field(default_factory=dict)
    """What the buyer typed, to show it back in the form."""
    messages: list[str] = field(default_factory=list)

    def link_args(self) -> dict[str, str]:
        """The valid filters, for links that keep them (pagination)."""
        args: dict[str, str] = {}
        if self.country:
            args["country"] = self.country
        if self.project_type:
            args["type"] = self.project_type
        if self.standard:
            args["standard"] = self.standard
        if self.vintage is not None:
            args["vintage"] = str(self.vintage)
        if self.min_price is not None:
            args["min_price"] = self.raw["min_price"]
        if self.max_price is not None:
            args["max_price"] = self.raw["max_price"]
        if self.sort != "name":
            args["sort"] = self.sort
        args.update(self.labels.args())
        return args

    @property
    def active(self) -> bool:
        return bool(set(self.link_args()) - {"sort"})

    def matches(self, offer: Offer) -> bool:
        listing = offer.listing
        if self.country and offer.project.country.upper() != self.country:
            return False
        if self.project_type and listing.project_type != self.project_type:
            return False
        if self.standard and self.standard.lower() not in (s.lower() for s in offer.standards):
            return False
        if self.vintage is not None and self.vintage not in offer.years:
            return False
        if self.min_price is not None and listing.price_minor < self.min_price.scaleb(2):
            return False
        if self.max_price is not None and listing.price_minor > self.max_price.scaleb(2):
            return False
        if self.labels.active and not any(self.labels.matches(v.labels) for v in offer.on_sale):
            return False
        return True

    def sort_key(self, offer: Offer) -> tuple[object, ...]:
        name = offer.project.name.lower()
        if self.sort == "price_asc":
            return (offer.listing.price_minor, offer.listing.currency, name)
        if self.sort == "price_desc":
            return (-offer.listing.price_minor, offer.listing.currency, name)
        if self.sort == "available":
            return (-offer.for_sale, name)
        return (name,)


def _text(args: Mapping[str, str], key: str, limit: int = 80) -> str:
    return (args.get(key) or "").strip()[:limit]


def parse_filters(args: Mapping[str, str]) -> Filters:
    """Read the catalogue's query string. Bad values never raise: each one is dropped with a
    message for the buyer."""
    f = Filters()
    f.raw = {key: _text(args, key) for key in
             ("country", "type", "standard", "vintage", "min_price", "max_price", "sort", "page",
              *LABEL_PARAMS)}
    f.labels, problems = parse_label_filter(f.raw)
    f.messages.extend(problems)
    f.country = f.raw["country"].upper()
    f.project_type = f.raw["type"]
    f.standard = f.raw["standard"]
    if f.raw["vintage"]:
        if (year := inputs.plain_int(f.raw["vintage"], 1000, 9999)) is not None:
            f.vintage = year
        else:
            f.messages.append("The vintage must be a year, like 2018.")
    for key, label in (("min_price", "minimum price"), ("max_price", "maximum price")):
        if not f.raw[key]:
            continue
        try:
            value = formatting.parse_decimal(f.raw[key], label)
        except ValueError as exc:
            f.messages.append(str(exc))
            continue
        if value < 0:
            f.messages.append(f"The {label} cannot be negative.")
            continue
        setattr(f, key, value)
    if f.min_price is not None and f.max_price is not None and f.min_price > f.max_price:
        f.messages.append("The minimum price is higher than the maximum price, so that range "
                          "was ignored.")
        f.min_price = f.max_price = None
    if f.raw["sort"]:
        if f.raw["sort"] in SORTS:
            f.sort = f.raw["sort"]
        else:
            f.messages.append("That sort order is not one we offer; showing projects by name.")
    if f.raw["page"]:
        if (number := inputs.plain_int(f.raw["page"], 1, 10**6)) is not None:
            f.page = number
        else:
            f.messages.append("The page must be a whole number, 1 or more; showing page 1.")
    return f


def page_numbers(current: int, total: int, around: int = 2) -> list[int | None]:
    """Page links to show: the first, the last and a window round the current page; None
    marks a gap."""
    wanted = {1, total, *range(current - around, current + around + 1)}
    shown: list[int | None] = []
    previous = 0
    for number in sorted(n for n in wanted if 1 <= n <= total):
        if previous and number - previous > 1:
            shown.append(None)
        shown.append(number)
        previous = number
    return shown


@dataclass(frozen=True)
class Facets:
    countries: list[tuple[str, str]]
    types: list[str]
    standards: list[str]
    vintages: list[int]


def facets(offers: list[Offer]) -> Facets:
    countries = sorted({o.project.country.upper() for o in offers})
    return Facets(
        countries=[(code, formatting.country_name(code)) for code in countries],
        types=sorted({o.listing.project_type for o in offers if o.listing.project_type}),
        standards=sorted({s for o in offers for s in o.standards}),
        vintages=sorted({y for o in offers for y in o.years}, reverse=True),
    )


# -- views ---------------------------------------------------------------------------------


@functools.cache
def _stock_state() -> Select[Any]:
    """What a page showing stock depends on: the ledger and the listings (one query, built
    once, shared by every thread: run it as it is, never build on it; see ``pagecache``)."""
    return select(pagecache.head_seq(), *pagecache.listings_changed())


def _stock_page(render: Callable[[], str]) -> str | Response:
    """A page showing listings and their stock: cached until the ledger or a listing changes,
    and at most ``PAGE_STOCK_SECONDS`` (reservations)."""
    return pagecache.page(_stock_state(), render, stock=True)


@bp.get("/")
def home() -> str | Response:
    return _stock_page(_home)


def _home() -> str:
    session = db.session
    with session.begin():
        offers = build_offers(session, listed(session))
        totals = BatchTotals()
        for batch_totals in queries.batch_totals(session).values():
            totals.add(batch_totals)
        return pagecache.render_template(
            "catalogue/home.html",
            offers=offers[:6],
            more=len(offers) > 6,
            project_count=len(offers),
            totals=totals,
            for_sale=sum(o.for_sale for o in offers),
        )


@bp.get("/projects")
def index() -> str | Response:
    return _stock_page(_index)


def _index() -> str:
    session = db.session
    f = parse_filters(request.args)
    with session.begin():
        offers = build_offers(session, listed(session))
        matched = sorted((o for o in offers if f.matches(o)), key=f.sort_key)
        pages = max(1, math.ceil(len(matched) / PAGE_SIZE))
        if f.page > pages:
            f.page = pages
        start = (f.page - 1) * PAGE_SIZE
        shown = matched[start:start + PAGE_SIZE]
        args: dict[str, Any] = dict(f.link_args())

        def page_url(number: int) -> str:
            return url_for("catalogue.index", **args, page=number)

        return pagecache.render_template(
            "catalogue/index.html",
            offers=shown,
            total=len(matched),
            first=start + 1 if shown else 0,
            last=start + len(shown),
            page=f.page,
            pages=pages,
            page_links=page_numbers(f.page, pages),
            page_url=page_url,
            filters=f,
            facets=facets(offers),
            sorts=SORTS,
        )


@bp.get("/projects/<slug>")
def project(slug: str) -> str | Response:
    return _stock_page(lambda: _project(slug))


def _project(slug: str) -> str:
    session = db.session
    with session.begin():
        found = listed(session, slug)
        if not found:
            abort(404, description="There is no project on sale at this address.")
        offer = build_offers(session, found)[0]
        totals = queries.project_totals(session).get(offer.project.id, BatchTotals())
        return pagecache.render_template("catalogue/project.html", offer=offer,
                                         listing=offer.listing, project=offer.project,
                                         totals=totals)


def register(app: Flask) -> None:
    """Register the storefront's blueprint and the money and number helpers on ``app``."""
    formatting.register(app)
    app.register_blueprint(bp)
