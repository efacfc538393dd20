"""The catalogue through the API: the storefront's own offers and filters
(``marketplace.catalogue``), as JSON, and the choice of what a quote buys.

Availability comes from a *stock* mapping (tonnes for sale per batch): ``catalogue.for_sale_now``
read from the session of the request's mode (``marketplace.modes``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from flask import url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.records import CA_DECLARATIONS, CA_STATUSES
from ledger.schema import Batch, Project

from .. import catalogue, formatting
from ..checkout import CartLine
from ..models import Listing
from ..origin import LabelFilter, slug
from .pagination import Page, decode, page_of
from .problems import Problem, invalid_field

CA_BY_SLUG = {slug(value): value for value in CA_DECLARATIONS}
STATUS_BY_SLUG = {slug(value): value for value in CA_STATUSES}


def filters_from(data: Mapping[str, Any]) -> catalogue.Filters:
    """The catalogue's filters from validated API input (prices in minor units)."""
    f = catalogue.Filters()
    f.country = str(data.get("country") or "").upper()
    f.project_type = str(data.get("type") or "")
    f.standard = str(data.get("standard") or "")
    f.vintage = data.get("vintage")
    if data.get("min_price") is not None:
        f.min_price = Decimal(int(data["min_price"])).scaleb(-2)
    if data.get("max_price") is not None:
        f.max_price = Decimal(int(data["max_price"])).scaleb(-2)
    f.sort = str(data.get("sort") or "name")
    f.labels = LabelFilter(ccp=data.get("ccp"), corsia=data.get("corsia"),
                           article6=data.get("article6"), mitigation=data.get("mitigation"),
                           ca=CA_BY_SLUG.get(data.get("ca") or ""),
                           ca_status=STATUS_BY_SLUG.get(data.get("ca_status") or ""))
    return f


def offers(session: Session, stock: Mapping[int, int]) -> list[catalogue.Offer]:
    return catalogue.build_offers(session, catalogue.listed(session), for_sale=stock)


def project_ref(project: Project) -> dict[str, Any]:
    return {"id": project.id, "ref": project.ref, "name": project.name}


def project_dict(offer: catalogue.Offer) -> dict[str, Any]:
    listing, project = offer.listing, offer.project
    return {
        "id": project.id, "object": "project", "slug": listing.slug, "ref": project.ref,
        "registry": project.registry_name, "registry_id": project.registry_id,
        "name": project.name, "country": project.country, "project_type": listing.project_type,
        "standards": offer.standards, "methodology": project.methodology,
        "sector": project.sector, "headline": listing.headline, "summary": listing.summary,
        "developer": listing.developer, "location": listing.location,
        "price_minor": listing.price_minor, "currency": listing.currency,
        "sdgs": listing.sdg_numbers, "co_benefits": listing.co_benefit_list,
        "available_tonnes": offer.for_sale,
        "vintages": [{"batch": v.batch_id, "label": v.label, "first_year": v.first_year,
                      "last_year": v.last_year, "available_tonnes": v.for_sale,
                      "labels": v.labels.to_data()}
                     for v in offer.vintages],
        "url": url_for("catalogue.project", slug=listing.slug, _external=True),
    }


def _key(f: catalogue.Filters, offer: catalogue.Offer) -> list[Any]:
    return [*f.sort_key(offer), offer.project.id]


def list_projects(session: Session, query: Mapping[str, Any],
                  stock: Mapping[int, int]) -> Page[dict[str, Any]]:
    """Listed projects matching the filters, in the catalogue's order, one page."""
    f = filters_from(query)
    kind = f"projects:{f.sort}"
    after = decode(kind, query.get("cursor"))
    matched = sorted((o for o in offers(session, stock) if f.matches(o)),
                     key=lambda o: _key(f, o))
    if after is not None:
        try:
            matched = [o for o in matched if _key(f, o) > after]
        except TypeError:
            from .pagination import bad_cursor

            raise bad_cursor() from None
    limit = int(query["limit"])
    page = page_of(matched[:limit + 1], limit, kind, lambda o: _key(f, o))
    return Page([project_dict(o) for o in page.items], page.next_cursor)


def get_project(session: Session, project_id: int,
                stock: Mapping[int, int]) -> dict[str, Any] | None:
    for offer in offers(session, stock):
        if offer.project.id == project_id:
            return project_dict(offer)
    return None


def vintage_label(batch: Batch | None) -> str:
    if batch is None:
        return ""
    return formatting.vintage_label(batch.vintage_start, batch.vintage_end)


def listing_for_project(session: Session, project_id: int) -> Listing | None:
    return session.scalars(
        select(Listing).where(Listing.project_id == project_id, Listing.status == "listed")
    ).one_or_none()


def cart_line(session: Session, project_id: int, quantity: int, batch_id: int | None,
              pointer: str, grams: int | None = None,
              listings: dict[int, Listing | None] | None = None) -> CartLine:
    """A cart line for tonnes (or grams) of a listed project; a 422 naming the field
    otherwise. ``listings`` remembers the projects' listings across an order's lines."""
    if listings is None:
        listings = {}
    if project_id not in listings:
        listings[project_id] = listing_for_project(session, project_id)
    listing = listings[project_id]
    if listing is None:
        raise invalid_field(f"{pointer}/project", f"No project {project_id} is on sale.")
    if batch_id is not None:
        batch = session.get(Batch, batch_id)
        if batch is None or batch.project_id != project_id:
            raise invalid_field(f"{pointer}/batch",
                                f"Batch {batch_id} is not a vintage of project {project_id}.")
    return CartLine(listing.id, 0 if grams else quantity, batch_id, grams)


def out_of_stock(detail: str) -> Problem:
    return Problem(409, "Not enough tonnes for sale", detail, slug="out-of-stock")


def quote_line(session: Session, data: Mapping[str, Any],
               stock: Callable[[], Mapping[int, int]]) -> CartLine:
    """What a quote buys: tonnes of the project asked for, or of the cheapest listed project
    matching the filters that has them all for sale (in one vintage if a vintage is asked
    for). ``stock`` gives the tonnes for sale per batch (read only for a choice by filters:
    the reservation itself checks availability under its lock)."""
    grams = data.get("grams")
    quantity = int(data.get("quantity") or 0)
    if "project" in data:
        return cart_line(session, int(data["project"]), quantity, data.get("batch"), "#", grams)
    f = filters_from({**(data.get("filters") or {}), "sort": "price_asc"})
    if grams:
        from .. import kilograms

        for offer in sorted((o for o in offers(session, stock()) if f.matches(o)),
                            key=f.sort_key):
            free = kilograms.free_grams(session, offer.listing.id)
            if free + offer.for_sale * kilograms.GRAMS_PER_TONNE >= grams:
                return CartLine(offer.listing.id, 0, None, grams)
        raise out_of_stock(f"No listed project matching these filters has "
                           f"{kilograms.format_mass(grams)} for sale.")
    for offer in sorted((o for o in offers(session, stock()) if f.matches(o)), key=f.sort_key):
        if f.vintage is not None:
            year = f.vintage
            for vintage in offer.vintages:
                if vintage.first_year <= year <= vintage.last_year and vintage.for_sale >= quantity:
                    return CartLine(offer.listing.id, quantity, vintage.batch_id)
        elif offer.for_sale >= quantity:
            return CartLine(offer.listing.id, quantity, None)
    raise out_of_stock(f"No listed project matching these filters has {quantity:,} t for sale.")


def aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; every datetime stored is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)
