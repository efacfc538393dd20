"""What test mode has to sell: for every listed project, a test project and native test
batches in the test ledger, and the same listing (price, story, facts).

Test batches are issued here (their serial strings read ``SLV-<batch>-TEST-...``: the test
projects' registry is ``TEST``), so nothing about them can be mistaken for a live credit or a
Verra serial. Seeding twice adds nothing: projects are found by registry id, batches by their
unique origin, listings by slug.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger import operations
from ledger.schema import Account, Batch, Project

from .models import Listing

TEST_REGISTRY = "TEST"
INVENTORY = "marketplace-inventory"
TONNES_PER_BATCH = 100_000
"""Test stock per vintage: plenty to integrate against, small enough to sell out on purpose."""

LISTING_FIELDS = ("status", "price_minor", "currency", "headline", "summary", "story",
                  "location", "latitude", "longitude", "developer", "project_type",
                  "area_hectares", "annual_reduction_t", "total_reduction_t", "validator",
                  "co_benefits", "sdgs")


@dataclass(frozen=True)
class LiveListing:
    """What is copied of a live listing and its project (plain values: the two modes' sessions
    are separate)."""

    slug: str
    registry_id: str
    name: str
    country: str
    standards: str
    methodology: str
    sector: str
    vintages: tuple[tuple[object, object], ...]
    fields: dict[str, object]


def read_live(live: Session) -> list[LiveListing]:
    """The live listings to mirror, read in the caller's live transaction."""
    found = []
    for listing in live.scalars(select(Listing).order_by(Listing.id)):
        project = listing.project
        vintages = tuple(live.execute(
            select(Batch.vintage_start, Batch.vintage_end).where(Batch.project_id == project.id)
            .order_by(Batch.vintage_start, Batch.id)).all())
        found.append(LiveListing(
            slug=listing.slug, registry_id=f"{project.registry_name}{project.registry_id}"[:20],
            name=project.name, country=project.country, standards=project.standards,
            methodology=project.methodology, sector=project.sector, vintages=vintages,
            fields={name: getattr(listing, name) for name in LISTING_FIELDS}))
    return found


def seed(test: Session, listings: list[LiveListing]) -> dict[str, int]:
    """Mirror ``listings`` into the test mode's ledger and catalogue, in the caller's test
    transaction; return what was added."""
    added = {"projects": 0, "batches": 0, "listings": 0}
    inventory = (test.scalars(select(Account).where(Account.name == INVENTORY)).one_or_none()
                 or operations.open_account(test, INVENTORY, "inventory"))
    for live in listings:
        project = test.scalars(select(Project).where(
            Project.registry_name == TEST_REGISTRY,
            Project.registry_id == live.registry_id)).one_or_none()
        if project is None:
            project = operations.register_project(
                test, registry=TEST_REGISTRY, registry_id=live.registry_id,
                name=f"{live.name} (test)", country=live.country, standards=live.standards,
                methodology=live.methodology, sector=live.sector)
            added["projects"] += 1
        for start, end in live.vintages or ():
            origin = f"TEST:{live.registry_id}:{start}:{end}"
            if test.scalar(select(Batch.id).where(Batch.origin == origin)) is not None:
                continue
            operations.issue(test, project_id=project.id, account_id=inventory.id,
                             vintage_start=start, vintage_end=end,  # type: ignore[arg-type]
                             quantity=TONNES_PER_BATCH, origin=origin)
            added["batches"] += 1
        listing = test.scalars(select(Listing).where(Listing.slug == live.slug)).one_or_none()
        if listing is None:
            test.add(Listing(slug=live.slug, project_id=project.id, **live.fields))
            test.flush()
            added["listings"] += 1
    return added


def seed_from_live() -> dict[str, int]:
    """Read the live catalogue and mirror it into test mode (two transactions: the live one
    only reads). Needs an app context; raises ``ModeUnavailable`` on an in-memory database."""
    from .database import db
    from .modes import LIVE, TEST

    live = db.session_for(LIVE)
    with live.begin():
        listings = read_live(live)
    test = db.session_for(TEST)
    with test.begin():
        return seed(test, listings)
