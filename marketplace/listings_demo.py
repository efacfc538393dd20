"""Listings for the three demo projects, so the local shop has something to sell.

Idempotent by project: a project that already has a listing keeps it untouched. The facts and
figures come from the projects' public descriptions (``seeds/``); the wording is ours. Where
a description does not give a figure (a validator, Tambopata's tonnes per year) the field is
left empty and the pages say it is not published, rather than guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.schema import Project

from .models import Listing


@dataclass(frozen=True)
class DemoListing:
    registry: str
    registry_id: str
    slug: str
    price_minor: int
    headline: str
    summary: str
    story: str
    location: str
    latitude: Decimal
    longitude: Decimal
    developer: str
    project_type: str
    validator: str
    co_benefits: list[str]
    sdgs: str
    area_hectares: int | None = None
    annual_reduction_t: int | None = None
    total_reduction_t: int | None = None
    currency: str = "USD"


ALTO_MAYO = DemoListing(
    registry="VCS", registry_id="944", slug="alto-mayo", price_minor=1800,
    headline="Coffee farmers and rangers keeping an Andean cloud forest standing",
    summary=(
        "A 182,000-hectare protected forest in San Martín where more than a thousand farming "
        "families have signed agreements to stop clearing trees, in exchange for help growing "
        "better coffee. Roughly 700,000 tonnes of CO2 a year stay out of the air."
    ),
    story=(
        "The Alto Mayo Protected Forest sits where the Andes fall away into the Amazon, in "
        "Peru's San Martín region. It was declared a protected area in 1987 and is recognised "
        "as an Alliance for Zero Extinction site: some plants and animals found here live "
        "nowhere else. Its rivers also supply water to well over two hundred thousand people "
        "downstream.\n\n"
        "For years the protection existed mostly on paper. Nobody enforced it until the 2000s, "
        "and by then a national highway crossed the forest and thousands of settlers had "
        "arrived. Most cleared land for coffee; as tired soils gave less each season, more "
        "forest was cut, and the area lost trees faster than almost anywhere in Peru. Early "
        "attempts to remove families by force only deepened distrust.\n\n"
        "Conservation International, co-managing the forest with the Peruvian authorities, "
        "tried the opposite approach: treat the farmers as partners. Families sign voluntary "
        "conservation agreements, promising to leave the standing forest alone, and in return "
        "receive agronomic training, school materials and medical supplies. It started with a "
        "handful of community leaders willing to take the risk; as results showed, neighbours "
        "followed. Today 1,033 families have signed.\n\n"
        "With technical support, farmers raised both the yield and the quality of their coffee, "
        "earned organic and Fair Trade certification, and formed a cooperative that sells at "
        "premium prices. Deforestation has fallen by about three quarters from its earlier "
        "rate, and the government has adopted the agreement model for other parks.\n\n"
        "Over its 20-year crediting period the project expects to avoid around 10.3 million "
        "tonnes of CO2. Every tonne sold here carries its own serial number and is retired in "
        "your name on our public ledger."
    ),
    location="Alto Mayo Protected Forest, San Martín region, Peru",
    latitude=Decimal("-5.750000"), longitude=Decimal("-77.300000"),
    developer="Conservation International",
    project_type="REDD+",
    validator="",
    co_benefits=[
        "1,033 farming families under voluntary conservation agreements",
        "Training that raised coffee yields and quality, with organic and Fair Trade certification",
        "A farmers' cooperative selling coffee at premium prices",
        "School materials and environmental education for local children",
        "Medical supplies for participating families",
        "Protects a watershed that supplies water to more than 240,000 people",
        "Habitat for species found nowhere else (Alliance for Zero Extinction site)",
    ],
    sdgs="1,4,6,8,13,15",
    area_hectares=182_000, annual_reduction_t=700_000, total_reduction_t=10_300_000,
)

MADRE_DE_DIOS = DemoListing(
    registry="VCS", registry_id="868", slug="madre-de-dios", price_minor=1250,
    headline="Guarding Brazil-nut forest along the Interoceanic Highway",
    summary=(
        "Forest concessions of over 100,000 hectares in Madre de Dios, patrolled with carbon "
        "revenue now that a new highway has opened the region up. The wider effort protects "
        "about 300,000 hectares and avoids some 2 million tonnes of CO2 a year."
    ),
    story=(
        "Madre de Dios, in Peru's far south-east, calls itself the country's capital of "
        "biodiversity, and with reason: researchers believe about one in ten animal species "
        "living there has not yet been described. For a long time its remoteness was its "
        "best defence.\n\n"
        "That changed in 2011, when the Interoceanic Highway opened, a road of more than 2,600 "
        "kilometres linking the Brazilian Amazon to the Pacific coast. Wherever roads have "
        "reached into the Amazon, farms and illegal logging have followed. The concessions in "
        "this project cover more than 100,000 hectares of dense rainforest, and keeping "
        "squatters and destructive logging out of an area that size takes constant patrols, "
        "which carbon revenue pays for.\n\n"
        "The project also makes the standing forest worth more to the people who live beside "
        "it. It supports the sustainable harvest of Brazil nuts, giving small producers, many "
        "of them women, a reliable income that depends on the trees staying up. Workshops "
        "held in every town of the region explain why an intact forest matters.\n\n"
        "Taken together, the work helps protect roughly 300,000 hectares of rainforest. The "
        "project is registered under the Verified Carbon Standard and the Climate, Community "
        "and Biodiversity Standards, validated by SCS Global Services, and expects to avoid "
        "about 2,086,089 tonnes of CO2 each year, 64,688,764 tonnes over its lifetime. On "
        "average, each tonne corresponds to some 2,000 square metres of Amazon forest kept "
        "standing."
    ),
    location="Madre de Dios region, Peru (Interoceanic Highway corridor)",
    latitude=Decimal("-11.000000"), longitude=Decimal("-69.500000"),
    developer="Forest concession holders, Madre de Dios (not named in the public description)",
    project_type="REDD+",
    validator="SCS Global Services",
    co_benefits=[
        "Secure, long-term income for small farmers from the Brazil-nut harvest",
        "Many of the Brazil-nut producers and project participants are women",
        "Forestry jobs and patrols paid for by carbon revenue",
        "Stronger land rights for small farmers",
        "Awareness workshops held in every town of the region",
        "Habitat for birds, mammals, fish, reptiles, amphibians and trees",
    ],
    sdgs="1,5,8,10,12,13,15",
    area_hectares=100_000, annual_reduction_t=2_086_089, total_reduction_t=64_688_764,
)

TAMBOPATA = DemoListing(
    registry="SLV", registry_id="1001", slug="tambopata", price_minor=2400,
    headline="Cocoa farms that shield the Tambopata National Reserve",
    summary=(
        "Farmers around Puerto Maldonado are turning worn-out papaya plots into cocoa "
        "agroforestry, forming a living buffer around 570,000 hectares of rainforest. Their "
        "cooperative has grown from 21 members to 350."
    ),
    story=(
        "Between the city of Puerto Maldonado and the Tambopata National Reserve lies a strip "
        "of land that had been worn down by illegal gold mining and by papaya grown as a "
        "single crop. Papaya paid the bills but drained the soil, so farmers kept moving on "
        "to fresh plots, which usually meant cutting more forest.\n\n"
        "AIDER, a Peruvian non-governmental organisation, works with these farmers to break "
        "that cycle. Each family draws up its own business plan. On a typical 40-hectare "
        "holding, half of which is primary forest and half crops, at least 3 hectares are "
        "farmed with sustainable methods such as shade-grown cocoa among trees. So far 1,300 "
        "hectares inside the reserve's buffer zone have been restored or conserved.\n\n"
        "In 2014 AIDER helped 21 farmers set up a cooperative, COOPASER (Cooperativa de "
        "Servicios Múltiples Tambopata Candamo). It now counts 350 members, who sell "
        "deforestation-free cocoa alongside the carbon credits their land produces.\n\n"
        "A US$ 12 million investment programme, backed by the Althelia Climate Fund and "
        "Ecosphere+, pays for the transition. The goal is an economic buffer: when farms at "
        "the edge earn a good living without clearing, the 570,000 hectares of forest behind "
        "them, an area about the size of Los Angeles, face far less pressure. Credits from "
        "conserving the forest fund the farmers' crops and agroforestry, rather than fencing "
        "people out."
    ),
    location="Tambopata National Reserve buffer zone, near Puerto Maldonado, Madre de Dios, Peru",
    latitude=Decimal("-12.800000"), longitude=Decimal("-69.300000"),
    developer="AIDER (Association for Research and Integrated Development)",
    project_type="Agroforestry + REDD+",
    validator="",
    co_benefits=[
        "Farmer cooperative COOPASER grown from 21 to 350 members since 2014",
        "1,300 hectares of degraded land restored or conserved in the buffer zone",
        "Income from deforestation-free cocoa as well as carbon",
        "Individual business plans and sustainable-farming support for each family",
        "Less pressure on 570,000 hectares of protected rainforest",
    ],
    sdgs="1,2,8,12,13,15",
    area_hectares=570_000, annual_reduction_t=None, total_reduction_t=None,
)

LISTINGS = [ALTO_MAYO, MADRE_DE_DIOS, TAMBOPATA]


def load_listings(session: Session) -> int:
    """Create a listed Listing for each demo project that has none yet; return how many.

    Runs in the caller's transaction; projects missing from the ledger are skipped (load the
    demo ledger first with ``marketplace.demo.load``).
    """
    created = 0
    for spec in LISTINGS:
        project = session.scalars(
            select(Project).where(Project.registry_name == spec.registry,
                                  Project.registry_id == spec.registry_id)
        ).one_or_none()
        if project is None:
            continue
        if session.scalar(select(Listing.id).where(Listing.project_id == project.id)) is not None:
            continue
        session.add(Listing(
            project_id=project.id, slug=spec.slug, status="listed",
            price_minor=spec.price_minor, currency=spec.currency, headline=spec.headline,
            summary=spec.summary, story=spec.story, location=spec.location,
            latitude=spec.latitude, longitude=spec.longitude, developer=spec.developer,
            project_type=spec.project_type, area_hectares=spec.area_hectares,
            annual_reduction_t=spec.annual_reduction_t,
            total_reduction_t=spec.total_reduction_t, validator=spec.validator,
            co_benefits="\n".join(spec.co_benefits), sdgs=spec.sdgs,
        ))
        created += 1
    session.flush()
    return created
