"""The calculator's form: read what was typed, check it, and say what is wrong beside the field.

The form travels in the query string (``GET /footprint/result?...``) so that a result can be
bookmarked, shared and saved; ``to_params`` writes validated inputs back in the same shape.
Nothing here raises on bad input: every problem becomes a message keyed by its field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from . import airports
from .calculator import Flight, Inputs
from .factors import CABINS, CAR_FUELS, CAR_SIZES, DIETS, FactorSet

MAX_FLIGHTS = 12
MIN_FLIGHT_ROWS = 3
MAX_TRIPS = 365
TRANSPORT = ("bus", "coach", "rail", "tram")

LIMITS: dict[str, tuple[Decimal, str]] = {
    "car_km": (Decimal(200_000), "km a year"),
    "electricity_kwh": (Decimal(200_000), "kWh a year"),
    "gas_kwh": (Decimal(300_000), "kWh a year"),
    "oil_kwh": (Decimal(300_000), "kWh a year"),
    "heat_pump_kwh": (Decimal(100_000), "kWh a year"),
    "bus_km": (Decimal(150_000), "km a year"),
    "coach_km": (Decimal(150_000), "km a year"),
    "rail_km": (Decimal(300_000), "km a year"),
    "tram_km": (Decimal(150_000), "km a year"),
}
"""The most anyone could plausibly use in a year (a car driven 550 km every day; a large
house heated all year); more than this is a typing mistake, not a footprint."""

_PLAIN = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+", re.ASCII)


@dataclass
class Parsed:
    """The outcome of reading the form: inputs if all is well, else messages by field."""

    inputs: Inputs | None
    errors: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    flight_rows: int = MIN_FLIGHT_ROWS

    @property
    def ok(self) -> bool:
        return self.inputs is not None and not self.errors


def parse_amount(raw: str, maximum: Decimal, unit: str) -> tuple[Decimal | None, str | None]:
    """A non-negative amount typed by a person: digits, optional thousands commas, up to two
    decimals. Returns (amount or None if blank, message or None)."""
    text = raw.strip()
    if not text:
        return None, None
    if len(text) > 20:
        return None, "That is too long to be an amount."
    if text.startswith("-") and _PLAIN.fullmatch(text[1:].strip()):
        return None, "Enter a positive amount (or leave it blank)."
    if not _PLAIN.fullmatch(text):
        return None, "Enter a number, like 12000 (digits only, no units)."
    amount = Decimal(text.replace(",", ""))
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        return None, "Use at most two decimal places."
    if amount > maximum:
        return None, (f"That is more than {maximum:,} {unit}, more than anyone could use: "
                      "check the figure.")
    return amount, None


def _one_of(raw: str, allowed: tuple[str, ...] | Mapping[str, str], default: str | None
            ) -> tuple[str | None, bool]:
    value = raw.strip()
    if not value:
        return default, True
    return (value, True) if value in allowed else (None, False)


def flight_rows_in(args: Mapping[str, str]) -> int:
    """How many flight rows to show: those filled in, plus one or two empty ones."""
    args = {k: v for k, v in args.items() if isinstance(v, str)}
    used = [i for i in range(MAX_FLIGHTS)
            if (args.get(f"f{i}_from") or "").strip() or (args.get(f"f{i}_to") or "").strip()]
    wanted = (max(used) + 2) if used else MIN_FLIGHT_ROWS
    return max(MIN_FLIGHT_ROWS, min(MAX_FLIGHTS, wanted))


def parse(args: Mapping[str, str], factors: FactorSet) -> Parsed:
    """Read the calculator's fields from ``args`` (a request's query or form)."""
    args = {k: v for k, v in args.items() if isinstance(v, str)}  # first values; no KeyErrors
    values = {k: v[:200] for k, v in args.items()}
    errors: dict[str, str] = {}
    countries = factors.countries
    country = (args.get("country") or "").strip().upper()
    if not country:
        errors["country"] = "Choose the country you live in."
    elif country not in countries:
        errors["country"] = ("We have no electricity figures for that country: choose one "
                             "from the list.")
    typical = (args.get("typical") or "") in ("1", "yes", "on")
    rf_raw = (args.get("rf") or "with").strip()
    if rf_raw not in ("with", "without"):
        errors["rf"] = "Choose whether to count the non-CO2 effects of flying."
    include_rf = rf_raw != "without"

    flights: list[Flight] = []
    for i in range(MAX_FLIGHTS):
        origin_raw = (args.get(f"f{i}_from") or "").strip()
        dest_raw = (args.get(f"f{i}_to") or "").strip()
        if not origin_raw and not dest_raw:
            continue
        ends: list[airports.Airport | None] = []
        for name, raw in ((f"f{i}_from", origin_raw), (f"f{i}_to", dest_raw)):
            try:
                ends.append(airports.resolve(raw))
            except airports.AirportError as exc:
                errors[name] = str(exc)
                ends.append(None)
        trip, ok = _one_of(args.get(f"f{i}_trip") or "", ("return", "oneway"), "return")
        if not ok:
            errors[f"f{i}_trip"] = "Choose return or one way."
        cabin, ok = _one_of(args.get(f"f{i}_cabin") or "", CABINS, "economy")
        if not ok:
            errors[f"f{i}_cabin"] = "Choose a cabin class from the list."
        trips_raw = (args.get(f"f{i}_trips") or "1").strip()
        plain = trips_raw.isascii() and trips_raw.isdigit() and len(trips_raw) <= 4
        trips = int(trips_raw) if plain else -1
        if not 1 <= trips <= MAX_TRIPS:
            errors[f"f{i}_trips"] = f"Enter how many times a year, from 1 to {MAX_TRIPS}."
        origin, destination = ends
        if origin is not None and destination is not None and origin.code == destination.code:
            errors[f"f{i}_to"] = "The flight starts and ends at the same airport."
        if (origin is not None and destination is not None and f"f{i}_to" not in errors
                and f"f{i}_trips" not in errors and trip and cabin):
            flights.append(Flight(origin, destination, trip == "return", cabin, trips))

    amounts: dict[str, Decimal | None] = {}
    for name, (maximum, unit) in LIMITS.items():
        amount, problem = parse_amount(args.get(name) or "", maximum, unit)
        if problem:
            errors[name] = problem
        amounts[name] = amount
    car_fuel, ok = _one_of(args.get("car_fuel") or "", CAR_FUELS, "petrol")
    if not ok:
        errors["car_fuel"] = "Choose a fuel from the list."
    car_size, ok = _one_of(args.get("car_size") or "", CAR_SIZES, "average")
    if not ok:
        errors["car_size"] = "Choose a car size from the list."
    diet, ok = _one_of(args.get("diet") or "", DIETS, None)
    if not ok:
        errors["diet"] = "Choose a diet from the list."

    rows = flight_rows_in(args)
    if errors:
        return Parsed(None, errors, values, rows)
    transport = tuple((key, amount) for key in TRANSPORT
                      if (amount := amounts[f"{key}_km"]) is not None and amount > 0)
    inputs = Inputs(
        country=country, include_rf=include_rf, flights=tuple(flights),
        car_km=amounts["car_km"], car_fuel=car_fuel or "petrol", car_size=car_size or "average",
        electricity_kwh=amounts["electricity_kwh"], gas_kwh=amounts["gas_kwh"],
        oil_kwh=amounts["oil_kwh"], heat_pump_kwh=amounts["heat_pump_kwh"],
        transport_km=transport,
        diet=diet, typical=typical,
    )
    return Parsed(inputs, {}, values, rows)


def _plain(amount: Decimal) -> str:
    text = format(amount, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def to_params(inputs: Inputs) -> dict[str, str]:
    """The inputs as canonical query parameters (only what was given), for links and saving."""
    params: dict[str, str] = {"country": inputs.country,
                              "rf": "with" if inputs.include_rf else "without"}
    if inputs.typical:
        params["typical"] = "1"
    for i, flight in enumerate(inputs.flights):
        params.update({f"f{i}_from": flight.origin.code, f"f{i}_to": flight.destination.code,
                       f"f{i}_trip": "return" if flight.round_trip else "oneway",
                       f"f{i}_cabin": flight.cabin, f"f{i}_trips": str(flight.trips)})
    if inputs.car_km:
        params.update({"car_km": _plain(inputs.car_km), "car_fuel": inputs.car_fuel,
                       "car_size": inputs.car_size})
    for name in ("electricity_kwh", "gas_kwh", "oil_kwh", "heat_pump_kwh"):
        amount = getattr(inputs, name)
        if amount:
            params[name] = _plain(amount)
    for key, km in inputs.transport_km:
        params[f"{key}_km"] = _plain(km)
    if inputs.diet:
        params["diet"] = inputs.diet
    return params
