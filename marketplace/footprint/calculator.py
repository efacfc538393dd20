"""The footprint calculation: pure functions from what a person entered to lines of
activity × factor = grams of CO2e, with no I/O and no Flask.

Every product is exact decimal arithmetic on the factor as published; each line is rounded
once, to the nearest gram (half up), and the total is the sum of the lines' grams, so the
figures shown always add up. Tonnes are shown to two decimal places; "offset this" buys
whole tonnes, rounded up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property

from .airports import Airport, great_circle_km
from .factors import FactorSet

GRAMS_PER_TONNE = 1_000_000

CATEGORIES = {
    "flights": "Flights",
    "car": "Car",
    "electricity": "Home electricity",
    "heating": "Home heating",
    "public_transport": "Public transport",
    "diet": "Diet",
    "typical": "Typical for the country",
}
CABIN_LABELS = {"economy": "economy", "premium_economy": "premium economy",
                "business": "business", "first": "first class"}
SHORT_HAUL_CABIN = {"economy": "economy", "premium_economy": "economy",
                    "business": "business", "first": "business"}
"""DESNZ publishes no short-haul premium economy or first class factor (see flights.json)."""
FUEL_LABELS = {"petrol": "petrol", "diesel": "diesel", "hybrid": "hybrid",
               "plugin_hybrid": "plug-in hybrid", "battery_electric": "battery electric"}
SIZE_LABELS = {"small": "small", "medium": "medium", "large": "large",
               "average": "average-size"}
DIET_LABELS = {"high_meat": "Meat with most meals (100 g or more a day)",
               "medium_meat": "Some meat (50 to 99 g a day)",
               "low_meat": "Little meat (under 50 g a day)",
               "pescatarian": "Fish but no meat", "vegetarian": "Vegetarian", "vegan": "Vegan"}
TRANSPORT_LABELS = {"bus": "Local bus", "coach": "Coach", "rail": "National rail",
                    "tram": "Light rail and tram"}
HEATING_LABELS = {"natural_gas": "Natural gas", "heating_oil": "Heating oil (burning oil)"}


@dataclass(frozen=True)
class Flight:
    origin: Airport
    destination: Airport
    round_trip: bool = True
    cabin: str = "economy"
    trips: int = 1


@dataclass(frozen=True)
class Inputs:
    """What a person entered, validated (``forms.parse`` builds it)."""

    country: str
    include_rf: bool = True
    flights: tuple[Flight, ...] = ()
    car_km: Decimal | None = None
    car_fuel: str = "petrol"
    car_size: str = "average"
    electricity_kwh: Decimal | None = None
    gas_kwh: Decimal | None = None
    oil_kwh: Decimal | None = None
    heat_pump_kwh: Decimal | None = None
    transport_km: tuple[tuple[str, Decimal], ...] = ()
    diet: str | None = None
    typical: bool = False


@dataclass(frozen=True)
class Line:
    """One line of the calculation: amount × factor = grams, with where the factor is from."""

    category: str
    activity: str
    amount: Decimal
    amount_unit: str
    factor: Decimal
    factor_unit: str
    source: str
    factor_file: str
    grams: int
    detail: str = ""

    @property
    def category_label(self) -> str:
        return CATEGORIES[self.category]

    def as_json(self) -> dict[str, object]:
        return {"category": self.category, "activity": self.activity,
                "amount": str(self.amount), "amount_unit": self.amount_unit,
                "factor": str(self.factor), "factor_unit": self.factor_unit,
                "source": self.source, "factor_file": self.factor_file,
                "grams": self.grams, "detail": self.detail}


@dataclass(frozen=True)
class Comparison:
    """The country's figure a footprint is compared with."""

    tonnes: Decimal
    name: str
    year: int
    fallback: bool
    source: str


@dataclass(frozen=True)
class Footprint:
    country: str
    include_rf: bool
    lines: tuple[Line, ...] = field(default_factory=tuple)

    @cached_property
    def total_grams(self) -> int:
        return sum(line.grams for line in self.lines)

    @property
    def tonnes(self) -> Decimal:
        return tonnes(self.total_grams)

    @property
    def offset_tonnes(self) -> int:
        return offset_tonnes(self.total_grams)

    @cached_property
    def by_category(self) -> list[tuple[str, int]]:
        """(category, grams) in the calculator's order, categories with nothing left out."""
        totals: dict[str, int] = {}
        for line in self.lines:
            totals[line.category] = totals.get(line.category, 0) + line.grams
        return [(c, totals[c]) for c in CATEGORIES if c in totals]


# -- arithmetic ---------------------------------------------------------------------------------


def grams(amount: Decimal, factor: Decimal, grams_per_unit: int) -> int:
    """``amount × factor`` in grams, rounded once to the nearest gram, half up."""
    exact = amount * factor * grams_per_unit
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def tonnes(total_grams: int) -> Decimal:
    """Grams as tonnes to two decimal places, half up: ``2_375_912 -> Decimal("2.38")``."""
    return (Decimal(total_grams) / GRAMS_PER_TONNE).quantize(Decimal("0.01"), ROUND_HALF_UP)


def offset_tonnes(total_grams: int) -> int:
    """Whole tonnes that cover ``total_grams``: rounded up (0 g needs 0 t)."""
    return -(-total_grams // GRAMS_PER_TONNE)


def kilograms(total_grams: int) -> Decimal:
    """Grams as kilograms to one decimal place, half up."""
    return (Decimal(total_grams) / 1000).quantize(Decimal("0.1"), ROUND_HALF_UP)


# -- the lines ----------------------------------------------------------------------------------


def flight_line(flight: Flight, include_rf: bool, factors: FactorSet) -> Line:
    file = factors["flights"]
    distance = great_circle_km(flight.origin, flight.destination, file.decimal("earth_radius_km"))
    threshold = file.decimal("long_haul_from_km")
    band = "long_haul" if distance >= threshold else "short_haul"
    cabin = flight.cabin if band == "long_haul" else SHORT_HAUL_CABIN[flight.cabin]
    rf = "with_rf" if include_rf else "without_rf"
    factor = file.value(f"{band}.{cabin}.{rf}")
    legs = 2 if flight.round_trip else 1
    passenger_km = Decimal(distance * legs * flight.trips)
    uplift = int(file.decimal("distance_uplift") * 100)
    notes = [
        f"{distance:,} km great-circle distance × {legs} {'legs' if legs == 2 else 'leg'}"
        f" × {flight.trips} {'trips' if flight.trips != 1 else 'trip'}",
        f"{'long-haul' if band == 'long_haul' else 'short-haul'} "
        f"({'at least' if band == 'long_haul' else 'under'} {threshold:,} km)",
        f"the factor includes DESNZ's {uplift}% distance uplift for indirect routes and "
        "stacking",
        ("with non-CO2 effects (radiative forcing ×"
         f"{file.decimal('radiative_forcing_multiplier')} on CO2)") if include_rf
        else "CO2, methane and nitrous oxide only (no non-CO2 effects)",
    ]
    if cabin != flight.cabin:
        notes.append(f"no short-haul {CABIN_LABELS[flight.cabin]} factor is published: "
                     f"the {CABIN_LABELS[cabin]} factor is used")
    trip = "return" if flight.round_trip else "one way"
    return Line(
        category="flights",
        activity=(f"{flight.origin.code} → {flight.destination.code}, {trip}, "
                  f"{CABIN_LABELS[flight.cabin]}"),
        amount=passenger_km, amount_unit="passenger-km", factor=factor,
        factor_unit=file.unit,
        source=(f"{file.source.short}: {'long' if band == 'long_haul' else 'short'}-haul, "
                f"{CABIN_LABELS[cabin]}, {'with' if include_rf else 'without'} RF"),
        factor_file=file.id, grams=grams(passenger_km, factor, file.grams_per_unit),
        detail="; ".join(notes),
    )


def _simple(category: str, activity: str, amount: Decimal, amount_unit: str, file_id: str,
            key: str, factors: FactorSet, source_detail: str, detail: str = "") -> Line:
    file = factors[file_id]
    factor = file.factors[key]
    return Line(category=category, activity=activity, amount=amount, amount_unit=amount_unit,
                factor=factor.value, factor_unit=file.unit,
                source=f"{file.source.short}: {source_detail}", factor_file=file.id,
                grams=grams(amount, factor.value, file.grams_per_unit), detail=detail)


def grid_line(category: str, activity: str, kwh: Decimal, country: str,
              factors: FactorSet, detail: str = "") -> Line:
    grid = factors["grid_intensity"].factors[country]
    return _simple(category, activity, kwh, "kWh", "grid_intensity", country, factors,
                   f"{grid.name}, {grid.year}", detail)


def comparison(country: str, factors: FactorSet) -> Comparison:
    """The country's emissions per person, or the fallback (world) when it has none."""
    file = factors["country_average"]
    found = file.get(country)
    fallback = found is None
    if found is None:
        found = file.factors[str(file.parameters["fallback"])]
    return Comparison(found.value, found.name, found.year, fallback, file.source.short)


def calculate(inputs: Inputs, factors: FactorSet) -> Footprint:
    """Every line of a footprint, in the calculator's order."""
    lines: list[Line] = []
    if inputs.typical:
        typical = comparison(inputs.country, factors)
        lines.append(_simple(
            "typical", f"Typical emissions per person, {typical.name}", Decimal(1),
            "person-year", "country_average",
            inputs.country if not typical.fallback else str(
                factors["country_average"].parameters["fallback"]),
            factors, f"{typical.name}, {typical.year}",
            "a starting point: fossil CO2 emitted in the country divided by its population",
        ))
        return Footprint(inputs.country, inputs.include_rf, tuple(lines))
    for flight in inputs.flights:
        lines.append(flight_line(flight, inputs.include_rf, factors))
    if inputs.car_km:
        lines.append(_simple(
            "car", f"Driving a {SIZE_LABELS[inputs.car_size]} {FUEL_LABELS[inputs.car_fuel]} car",
            inputs.car_km, "km", "cars", f"{inputs.car_size}.{inputs.car_fuel}", factors,
            f"cars by size, {SIZE_LABELS[inputs.car_size]}, {FUEL_LABELS[inputs.car_fuel]}",
            "the whole car's emissions per km; electric cars on the UK grid mix"
            if inputs.car_fuel in ("battery_electric", "plugin_hybrid")
            else "the whole car's emissions per km",
        ))
    if inputs.electricity_kwh:
        lines.append(grid_line("electricity", "Electricity used at home",
                               inputs.electricity_kwh, inputs.country, factors))
    for key, amount in (("natural_gas", inputs.gas_kwh), ("heating_oil", inputs.oil_kwh)):
        if amount:
            lines.append(_simple("heating", HEATING_LABELS[key], amount, "kWh", "heating", key,
                                 factors, f"fuels, {HEATING_LABELS[key].lower()}, gross CV"))
    if inputs.heat_pump_kwh:
        lines.append(grid_line("heating", "Heat pump (electricity it used)",
                               inputs.heat_pump_kwh, inputs.country, factors,
                               "count it here or under home electricity, not both"))
    for key, km in inputs.transport_km:
        if km:
            lines.append(_simple("public_transport", TRANSPORT_LABELS[key], km, "passenger-km",
                                 "public_transport", key, factors,
                                 f"{TRANSPORT_LABELS[key].lower()}, per passenger"))
    if inputs.diet:
        days = factors["diet"].decimal("days_per_year")
        lines.append(_simple("diet", DIET_LABELS[inputs.diet], days, "days", "diet", inputs.diet,
                             factors, f"{DIET_LABELS[inputs.diet].split(' (')[0].lower()}, "
                                      "2,000 kcal a day"))
    return Footprint(inputs.country, inputs.include_rf, tuple(lines))
