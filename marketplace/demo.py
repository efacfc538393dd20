"""The demo data: the first three projects, with realistic vintages, serial ranges and buffer
shares. Loading it twice changes nothing: accounts and projects are found by name and registry
id, batches by their unique origin, and the sample sale happens only with the batch it uses.

The serial ranges and Verra issuance numbers are illustrative; the project figures come from
the projects' public descriptions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from pathlib import Path

from ledger import operations
from ledger.operations import VerraFields
from ledger.origin import set_labels
from ledger.records import Labels
from ledger.schema import Account, Batch, Project

INVENTORY = "marketplace-inventory"
BUFFER = "buffer-pool"
DEMO_BUYER = "demo-buyer"


@dataclass(frozen=True)
class DemoProject:
    registry: str
    registry_id: str
    name: str
    standards: str
    methodology: str
    sector: str


@dataclass(frozen=True)
class DemoBatch:
    project: str  # registry_id
    vintage: int
    quantity: int
    buffer: int
    issued: dt.date
    first: int | None = None  # Verra range start; None for a native batch
    verra: VerraFields | None = None

    @property
    def origin(self) -> str:
        if self.verra is not None:
            return f"VCS:{self.project}:{self.verra.issuance}"
        return f"SLV:{self.project}:{self.vintage}"


PROJECTS = [
    DemoProject("VCS", "944", "Alto Mayo Protected Forest", "VCS, CCB (Gold Level biodiversity)",
                "REDD+: avoided unplanned deforestation", "Forestry and land use"),
    DemoProject("VCS", "868", "Madre de Dios Amazon Forest Protection", "VCS, CCBS",
                "REDD+: avoided unplanned deforestation", "Forestry and land use"),
    DemoProject("SLV", "1001", "Tambopata Agroforestry and Forest Conservation", "VCS, CCB",
                "Agroforestry and REDD+", "Forestry and land use"),
]

# Alto Mayo avoids about 700,000 t a year; Madre de Dios about 2,086,089 t a year (64,688,764 t
# over its crediting period). Buffer shares follow typical AFOLU risk ratings.
BATCHES = [
    DemoBatch("944", 2016, 700_000, 84_000, dt.date(2017, 9, 14), 61_407_211,
              VerraFields(issuance=4821, code=263, scope=14, flag=1)),
    DemoBatch("944", 2017, 700_000, 84_000, dt.date(2018, 10, 2), 88_120_455,
              VerraFields(issuance=5903, code=263, scope=14, flag=1)),
    DemoBatch("944", 2018, 700_000, 84_000, dt.date(2019, 11, 20), 102_330_871,
              VerraFields(issuance=7114, code=263, scope=14, flag=1)),
    DemoBatch("868", 2014, 2_086_089, 312_913, dt.date(2016, 3, 8), 40_118_702,
              VerraFields(issuance=3675, code=263, scope=14, flag=1)),
    DemoBatch("868", 2015, 2_086_089, 312_913, dt.date(2017, 2, 21), 57_940_118,
              VerraFields(issuance=4390, code=263, scope=14, flag=1)),
    DemoBatch("1001", 2019, 48_000, 4_800, dt.date(2020, 6, 30)),
    DemoBatch("1001", 2020, 52_000, 5_200, dt.date(2021, 7, 15)),
]


def _account(session: Session, name: str, kind: str) -> Account:
    found = session.scalars(select(Account).where(Account.name == name)).one_or_none()
    return found or operations.open_account(session, name, kind)


def _project(session: Session, spec: DemoProject) -> Project:
    found = session.scalars(
        select(Project).where(Project.registry_name == spec.registry,
                              Project.registry_id == spec.registry_id)
    ).one_or_none()
    return found or operations.register_project(
        session, registry=spec.registry, registry_id=spec.registry_id, name=spec.name,
        country="PE", standards=spec.standards, methodology=spec.methodology, sector=spec.sector,
    )


def load(session: Session) -> dict[str, int]:
    """Load the demo data into the caller's transaction; return what was added."""
    inventory = _account(session, INVENTORY, "inventory")
    buffer = _account(session, BUFFER, "buffer")
    projects = {spec.registry_id: _project(session, spec) for spec in PROJECTS}
    added = {"batches": 0, "entries": 0}
    first_load = False
    for spec in BATCHES:
        if session.scalar(select(Batch.id).where(Batch.origin == spec.origin)) is not None:
            continue
        receipt = operations.issue(
            session,
            project_id=projects[spec.project].id,
            account_id=inventory.id,
            vintage_start=dt.date(spec.vintage, 1, 1),
            vintage_end=dt.date(spec.vintage, 12, 31),
            quantity=spec.quantity,
            first=spec.first,
            last=None if spec.first is None else spec.first + spec.quantity - 1,
            origin=spec.origin,
            verra=spec.verra,
            buffer_account_id=buffer.id,
            buffer_quantity=spec.buffer,
            issued_on=spec.issued,
        )
        added["batches"] += 1
        added["entries"] += 1
        if spec.project == "944" and spec.vintage == 2016:
            first_load = True
            buyer = _account(session, DEMO_BUYER, "customer")
            operations.transfer(session, from_account=inventory.id, to_account=buyer.id,
                                quantity=25, batch_id=receipt.batch_id)
            operations.retire(
                session, account_id=buyer.id, quantity=12, beneficiary="Café Tunki, Lima",
                purpose="product", note="Offsetting the roasting of the 2024 harvest",
                country="PE", period_start=dt.date(2024, 1, 1), period_end=dt.date(2024, 12, 31),
            )
            added["entries"] += 2
    if first_load:
        added["entries"] += _load_origin_story(session, inventory, projects)
    from .listings_demo import load_listings

    added["listings"] = load_listings(session)
    return added


DEMO_ORIGIN_FILE = Path(__file__).resolve().parent / "demo_data" / "verra_vcus_2025.csv"
"""Verra's export as it stood in 2025: the first demo retirement retired at origin into
Selva's name, and Madre de Dios serials retired there for another buyer."""

DEMO_LABELS = {
    # batch id: labels; illustrative, like the serial ranges.
    1: Labels(mitigation="avoidance"),
    2: Labels(mitigation="avoidance"),
    3: Labels(mitigation="avoidance", ccp=True, ccp_since=dt.date(2025, 6, 1),
              corsia="first_phase"),
    4: Labels(mitigation="avoidance"),
    5: Labels(mitigation="avoidance", article6_authorized=True, ca_declaration="Committed",
              ca_status="Pending"),
    6: Labels(mitigation="mixed"),
    7: Labels(mitigation="mixed"),
}


def _load_origin_story(session: Session, inventory: Account, projects: dict[str, Project]
                       ) -> int:
    """Two more demo retirements, the origin registry's export for the mirrored batches, and
    the batches' labels, so that a newcomer sees a retirement covered at origin, one pending
    and one in conflict (and the serials that conflict froze). Returns the entries added."""
    from . import origin

    buyer = _account(session, DEMO_BUYER, "customer")
    madre_2014 = session.scalar(select(Batch.id).where(Batch.origin == "VCS:868:3675"))
    operations.retire(
        session, account_id=buyer.id, quantity=8, beneficiary="Andean Trails Trekking Co.",
        purpose="travel", note="Guides' transport on the Inca Trail, 2025", country="PE",
        period_start=dt.date(2025, 1, 1), period_end=dt.date(2025, 12, 31),
    )
    operations.transfer(session, from_account=inventory.id, to_account=buyer.id, quantity=10,
                        batch_id=madre_2014)
    operations.retire(
        session, account_id=buyer.id, quantity=10, beneficiary="Lima Running Club",
        purpose="event", note="The 2025 Lima 10K", country="PE",
        period_start=dt.date(2025, 4, 1), period_end=dt.date(2025, 4, 30), batch_id=madre_2014,
    )
    result = origin.import_verra(session, DEMO_ORIGIN_FILE.read_bytes(), ("Selva",))
    for batch_id, labels in DEMO_LABELS.items():
        set_labels(session, batch_id=batch_id, labels=labels, effective=dt.date(2025, 6, 1),
                   note="Demo labels, for illustration only")
    return 3 + len(result.recorded) + len(DEMO_LABELS)


DEMO_PARCELS = [
    (2_500, "Parcel LIM-20418, Lima to Cusco", "travel", "PE"),
    (850, "Parcel LIM-20419, Lima to Arequipa", "travel", "PE"),
    (312_000, "Flight LIM-CUZ-LIM, Ana Quispe", "travel", "PE"),
    (4_970_000, "Household footprint 2025, the Huamán family", "voluntary", "PE"),
    (12_400, "Coffee roast batch 77, Tunki Cooperative", "voluntary", "PE"),
]
"""(grams, beneficiary, purpose, country): the demo's kilogram allocations."""


def load_kilograms(session: Session) -> dict[str, int]:
    """A demo kilogram pool for Alto Mayo: whole tonnes retired into it and a few allocations
    (parcels, a flight, a household), sealed into the ledger. Twice changes nothing."""
    from .checkout import inventory_account
    from .kilograms import GRAMS_PER_TONNE, lock_pools
    from .models import Listing
    from .models.pools import PoolRetirementStock

    listing = session.scalars(select(Listing).join(Project, Project.id == Listing.project_id)
                              .where(Project.registry_id == "944")).one_or_none()
    if listing is None:
        return {"tonnes": 0, "allocations": 0}
    lock_pools(session, {listing.id})
    if session.scalar(select(PoolRetirementStock.seq).where(
            PoolRetirementStock.listing_id == listing.id).limit(1)) is not None:
        return {"tonnes": 0, "allocations": 0}
    tonnes = 7
    pool = operations.pool_retire(session, account_id=inventory_account(session).id,
                                  project_id=listing.project_id, quantity=tonnes)
    year = dt.date.today().year
    requests = [operations.AllocationRequest(
        grams=grams, draws=((pool.seq, grams),), beneficiary=name, purpose=purpose,
        country=country, period_start=dt.date(year, 1, 1), period_end=dt.date(year, 12, 31))
        for grams, name, purpose, country in DEMO_PARCELS]
    operations.allocate(session, requests)
    session.add(PoolRetirementStock(seq=pool.seq, listing_id=listing.id,
                                    grams=tonnes * GRAMS_PER_TONNE,
                                    taken=sum(r.grams for r in requests)))
    session.flush()
    return {"tonnes": tonnes, "allocations": len(requests)}
