"""The footprint calculator's factors and arithmetic, worked by hand from the cited sources.

Every expected figure below is written out from the published factor (quoted in the test as
a literal, so a changed data file fails here until someone checks it against its source)
times the amount, in kilograms, then in grams. No database: these run in milliseconds.

Sources (see ``marketplace/footprint/data/*.json`` for the full citations):
- flights, cars, buses and trains: DESNZ, GHG conversion factors 2025 (flat file);
- heating fuels: DESNZ, GHG conversion factors 2023 (full set);
- grid intensity: Ember yearly electricity data (2023, or 2022 where noted);
- diets: Scarborough et al. 2014, Climatic Change 125, Table 3;
- country averages: Global Carbon Budget 2023 via Our World in Data, 2022.
"""

from __future__ import annotations

import json
import math
import shutil
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from marketplace import create_app, footprint
from marketplace.footprint import airports, forms
from marketplace.footprint.airports import Airport
from marketplace.footprint.calculator import (
    Flight,
    Inputs,
    calculate,
    comparison,
    flight_line,
    grams,
    kilograms,
    offset_tonnes,
    tonnes,
)
from marketplace.footprint.factors import DATA_DIR, FactorFileError, FactorSet, load, load_file

FACTORS = load()


@pytest.fixture(scope="module")
def factors() -> FactorSet:
    return FACTORS


def airport(code: str) -> Airport:
    found = airports.get(code)
    assert found is not None, code
    return found


def half_up(exact_grams: Decimal) -> int:
    """Round to the nearest gram, halves up: what the calculator does once per line."""
    return int(exact_grams.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def only_line(inputs: Inputs) -> tuple[int, Any]:
    result = calculate(inputs, FACTORS)
    assert len(result.lines) == 1, result.lines
    return result.lines[0].grams, result.lines[0]


# -- great-circle distances -----------------------------------------------------------------------


def law_of_cosines_km(a: Airport, b: Airport, radius: float = 6371.0) -> float:
    """An independent formula for the same sphere, to check the haversine implementation."""
    p1, p2 = math.radians(a.latitude), math.radians(b.latitude)
    cos_c = (math.sin(p1) * math.sin(p2)
             + math.cos(p1) * math.cos(p2) * math.cos(math.radians(b.longitude - a.longitude)))
    return radius * math.acos(max(-1.0, min(1.0, cos_c)))


@pytest.mark.parametrize(("origin", "destination", "km"), [
    ("LHR", "LIM", 10_150),   # London Heathrow (51.4706 N, 0.46194 W) – Lima (12.0219 S, 77.1143 W)
    ("LHR", "CDG", 347),
    ("LHR", "JFK", 5_540),
    ("CUZ", "LIM", 586),
])
def test_great_circle_distances(origin: str, destination: str, km: int) -> None:
    a, b = airport(origin), airport(destination)
    assert airports.great_circle_km(a, b, Decimal(6371)) == km
    assert airports.great_circle_km(b, a, Decimal(6371)) == km
    assert round(law_of_cosines_km(a, b)) == km


# -- flights --------------------------------------------------------------------------------------


def flight(origin: str = "LHR", destination: str = "LIM", *, round_trip: bool = True,
           cabin: str = "economy", trips: int = 1) -> Flight:
    return Flight(airport(origin), airport(destination), round_trip, cabin, trips)


def test_london_lima_return_economy_with_and_without_non_co2_effects() -> None:
    """The issue's worked example. 10,150 km each way, two legs:
    with RF:    2 × 10,150 km × 0.11704 kg/pkm = 2,375.912 kg = 2,375,912 g (2.38 t)
    without RF: 2 × 10,150 km × 0.06926 kg/pkm = 1,405.978 kg = 1,405,978 g (1.41 t)
    (DESNZ 2025, long-haul to/from UK, economy class; the 8% uplift is inside the factor)."""
    with_rf, line = only_line(Inputs(country="GB", include_rf=True, flights=(flight(),)))
    without_rf, plain = only_line(Inputs(country="GB", include_rf=False, flights=(flight(),)))
    assert with_rf == 2_375_912
    assert without_rf == 1_405_978
    assert line.amount == Decimal(20_300) and line.amount_unit == "passenger-km"
    assert line.factor == Decimal("0.11704") and plain.factor == Decimal("0.06926")
    assert "10,150 km great-circle distance × 2 legs × 1 trip" in line.detail
    assert "long-haul" in line.detail and "8% distance uplift" in line.detail
    assert "with non-CO2 effects" in line.detail and "without RF" in plain.source
    assert line.activity == "LHR → LIM, return, economy"
    assert "DESNZ conversion factors 2025" in line.source
    assert tonnes(with_rf) == Decimal("2.38") and tonnes(without_rf) == Decimal("1.41")
    assert offset_tonnes(with_rf) == 3 and offset_tonnes(without_rf) == 2


@pytest.mark.parametrize(("cabin", "rf", "factor"), [
    ("economy", True, "0.11704"), ("economy", False, "0.06926"),
    ("premium_economy", True, "0.18726"), ("premium_economy", False, "0.11081"),
    ("business", True, "0.33940"), ("business", False, "0.20083"),
    ("first", True, "0.46814"), ("first", False, "0.27701"),
])
def test_every_long_haul_factor(cabin: str, rf: bool, factor: str) -> None:
    """One way LHR → LIM, 10,150 km, three trips: 30,450 passenger-km × the DESNZ factor."""
    got, line = only_line(Inputs(country="GB", include_rf=rf, flights=(
        flight(round_trip=False, cabin=cabin, trips=3),)))
    assert line.factor == Decimal(factor)
    assert got == half_up(Decimal(30_450) * Decimal(factor) * 1000)


@pytest.mark.parametrize(("cabin", "rf", "factor", "used"), [
    ("economy", True, "0.12576", "economy"), ("economy", False, "0.07435", "economy"),
    ("business", True, "0.18863", "business"), ("business", False, "0.11152", "business"),
    # DESNZ publishes no short-haul premium economy or first: economy and business stand in.
    ("premium_economy", True, "0.12576", "economy"),
    ("first", False, "0.11152", "business"),
])
def test_every_short_haul_factor(cabin: str, rf: bool, factor: str, used: str) -> None:
    """Return LHR → CDG, 347 km each way: 694 passenger-km × the DESNZ short-haul factor,
    e.g. economy with RF 694 × 0.12576 = 87.27744 kg = 87,277 g (rounded half up)."""
    got, line = only_line(Inputs(country="GB", include_rf=rf, flights=(
        flight("LHR", "CDG", cabin=cabin),)))
    assert line.factor == Decimal(factor)
    assert got == half_up(Decimal(694) * Decimal(factor) * 1000)
    assert "short-haul" in line.detail
    if used != cabin:
        assert f"the {used}" in line.detail and "factor is used" in line.detail


def test_the_economy_with_rf_short_haul_example_in_grams() -> None:
    got, _ = only_line(Inputs(country="GB", flights=(flight("LHR", "CDG"),)))
    assert got == 87_277


@pytest.mark.parametrize(("km", "band", "factor"), [
    (3_699, "short-haul", "0.12576"), (3_700, "long-haul", "0.11704")])
def test_long_haul_starts_at_3700_km(km: int, band: str, factor: str) -> None:
    """Two points on the equator ``km`` apart on the 6,371 km sphere."""
    a = Airport("AAA", "A", "A", "XX", 0.0, 0.0)
    b = Airport("BBB", "B", "B", "XX", 0.0, math.degrees(km / 6371))
    line = flight_line(Flight(a, b, False), True, FACTORS)
    assert line.amount == Decimal(km)
    assert band in line.detail and line.factor == Decimal(factor)


# -- cars, home, public transport, diet -----------------------------------------------------------


CAR_FACTORS = {
    "small.petrol": "0.14308", "small.diesel": "0.14340", "small.hybrid": "0.11413",
    "small.plugin_hybrid": "0.05669", "small.battery_electric": "0.03688",
    "medium.petrol": "0.17474", "medium.diesel": "0.17174", "medium.hybrid": "0.11724",
    "medium.plugin_hybrid": "0.08820", "medium.battery_electric": "0.03882",
    "large.petrol": "0.26828", "large.diesel": "0.21007", "large.hybrid": "0.15650",
    "large.plugin_hybrid": "0.11430", "large.battery_electric": "0.04205",
    "average.petrol": "0.16272", "average.diesel": "0.17304", "average.hybrid": "0.12825",
    "average.plugin_hybrid": "0.10461", "average.battery_electric": "0.04047",
}


@pytest.mark.parametrize(("key", "factor"), sorted(CAR_FACTORS.items()))
def test_every_car_factor(key: str, factor: str) -> None:
    """A year of 12,000 km × the DESNZ 'Cars (by size)' factor, e.g. medium petrol
    12,000 × 0.17474 = 2,096.88 kg = 2,096,880 g."""
    size, fuel = key.split(".")
    got, line = only_line(Inputs(country="GB", car_km=Decimal(12_000), car_fuel=fuel,
                                 car_size=size))
    assert line.factor == Decimal(factor) and line.amount_unit == "km"
    assert got == int(Decimal(12_000) * Decimal(factor) * 1000)


def test_medium_petrol_car_by_hand() -> None:
    got, _ = only_line(Inputs(country="GB", car_km=Decimal(12_000), car_fuel="petrol",
                              car_size="medium"))
    assert got == 2_096_880


@pytest.mark.parametrize(("country", "kwh", "expected_grams", "year"), [
    ("GB", 2_700, 641_493, 2023),     # 2,700 kWh × 237.59 g/kWh
    ("PE", 1_000, 251_740, 2022),     # 1,000 × 251.74
    ("FR", 2_700, 151_308, 2023),     # 2,700 × 56.04
    ("US", 10_500, 4_052_790, 2022),  # 10,500 × 385.98
    ("SE", 15_000, 610_500, 2023),    # 15,000 × 40.70
])
def test_home_electricity_by_country(country: str, kwh: int, expected_grams: int,
                                     year: int) -> None:
    got, line = only_line(Inputs(country=country, electricity_kwh=Decimal(kwh)))
    assert got == expected_grams
    assert line.factor_unit == "g CO2e per kWh" and str(year) in line.source
    assert "Ember" in line.source


def test_every_grid_intensity_names_its_country_and_year() -> None:
    grid = FACTORS["grid_intensity"]
    assert len(grid.factors) >= 30
    for code, factor in grid.factors.items():
        assert len(code) == 2 and factor.name and factor.year in (2022, 2023)
        assert Decimal(0) < factor.value < Decimal(1500)


@pytest.mark.parametrize(("field", "amount", "expected_grams", "factor"), [
    ("gas_kwh", 12_000, 2_195_160, "0.18293"),   # 12,000 kWh × 0.18293 kg (natural gas)
    ("oil_kwh", 10_000, 2_467_700, "0.24677"),   # 10,000 kWh × 0.24677 kg (burning oil)
])
def test_heating_fuels(field: str, amount: int, expected_grams: int, factor: str) -> None:
    got, line = only_line(Inputs(country="GB", **{field: Decimal(amount)}))
    assert got == expected_grams and line.factor == Decimal(factor)
    assert line.category == "heating" and "DESNZ conversion factors 2023" in line.source


def test_heat_pump_counts_its_electricity_at_the_country_grid_intensity() -> None:
    """3,000 kWh of electricity × 237.59 g/kWh (GB) = 712,770 g; in France × 56.04 = 168,120 g."""
    got, line = only_line(Inputs(country="GB", heat_pump_kwh=Decimal(3_000)))
    assert got == 712_770 and line.category == "heating"
    got, _ = only_line(Inputs(country="FR", heat_pump_kwh=Decimal(3_000)))
    assert got == 168_120


@pytest.mark.parametrize(("mode", "expected_grams"), [
    ("bus", 103_850),    # 1,000 passenger-km × 0.10385 (average local bus)
    ("coach", 27_760),   # × 0.02776
    ("rail", 35_460),    # × 0.03546 (national rail)
    ("tram", 28_600),    # × 0.02860 (light rail and tram)
])
def test_public_transport(mode: str, expected_grams: int) -> None:
    got, line = only_line(Inputs(country="GB", transport_km=((mode, Decimal(1_000)),)))
    assert got == expected_grams and line.amount_unit == "passenger-km"


@pytest.mark.parametrize(("diet", "expected_grams"), [
    ("high_meat", 2_624_350),    # 365 days × 7.19 kg CO2e a day
    ("medium_meat", 2_054_950),  # × 5.63
    ("low_meat", 1_704_550),     # × 4.67
    ("pescatarian", 1_427_150),  # × 3.91
    ("vegetarian", 1_390_650),   # × 3.81
    ("vegan", 1_054_850),        # × 2.89
])
def test_every_diet(diet: str, expected_grams: int) -> None:
    got, line = only_line(Inputs(country="GB", diet=diet))
    assert got == expected_grams
    assert line.amount == Decimal(365) and "Scarborough et al. 2014" in line.source


@pytest.mark.parametrize(("country", "expected_grams", "name"), [
    ("PE", 1_700_000, "Peru"), ("GB", 4_700_000, "United Kingdom"),
    ("US", 14_900_000, "United States"),
    ("SE", 4_700_000, "World"),  # no Swedish figure on file: the world average
])
def test_typical_for_my_country(country: str, expected_grams: int, name: str) -> None:
    got, line = only_line(Inputs(country=country, typical=True,
                                 car_km=Decimal(1_000)))  # typical replaces the rest
    assert got == expected_grams and line.category == "typical" and name in line.activity
    found = comparison(country, FACTORS)
    assert found.tonnes * 1_000_000 == expected_grams and found.fallback == (name == "World")


# -- totals and rounding --------------------------------------------------------------------------


def test_a_whole_footprint_adds_its_lines_exactly() -> None:
    """The issue's visitor: one long-haul return flight and a year of driving, plus home
    and diet. 2,375,912 + 2,096,880 + 641,493 + 2,103,695 + 53,190 + 2,054,950 g."""
    result = calculate(Inputs(
        country="GB", flights=(flight(),), car_km=Decimal(12_000), car_fuel="petrol",
        car_size="medium", electricity_kwh=Decimal(2_700), gas_kwh=Decimal(11_500),
        transport_km=(("rail", Decimal(1_500)),), diet="medium_meat"), FACTORS)
    assert [line.grams for line in result.lines] == [
        2_375_912, 2_096_880, 641_493, 2_103_695, 53_190, 2_054_950]
    assert result.total_grams == 9_326_120
    assert result.tonnes == Decimal("9.33") and result.offset_tonnes == 10
    assert [c for c, _ in result.by_category] == [
        "flights", "car", "electricity", "heating", "public_transport", "diet"]


def test_rounding_is_decimal_and_half_up() -> None:
    assert grams(Decimal("12.5"), Decimal("0.14308"), 1000) == 1_789  # 1,788.5 g
    assert grams(Decimal("0.1"), Decimal("0.2"), 1000) == 20           # not 20.000000000000004
    assert tonnes(2_375_912) == Decimal("2.38") and tonnes(2_374_999) == Decimal("2.37")
    assert tonnes(5_000) == Decimal("0.01") and tonnes(4_999) == Decimal("0.00")
    assert kilograms(87_277) == Decimal("87.3")
    assert offset_tonnes(0) == 0 and offset_tonnes(1) == 1
    assert offset_tonnes(2_000_000) == 2 and offset_tonnes(2_000_001) == 3


# -- factor files: loaded and refused at start-up -------------------------------------------------


def broken_copy(tmp_path: Path, name: str, change: Any) -> Path:
    folder = tmp_path / "factors"
    shutil.copytree(DATA_DIR, folder)
    path = folder / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return folder


def test_every_shipped_file_has_source_year_unit_and_transcription_note() -> None:
    assert {f.id for f in FACTORS} == {"flights", "cars", "public_transport", "heating",
                                       "grid_intensity", "diet", "country_average"}
    for file in FACTORS:
        assert file.source.publisher and file.source.title and file.source.table
        assert file.source.url.startswith("https://")
        assert 2014 <= file.year <= 2025 and file.unit
        assert "transcribed by hand" in file.transcription.lower()
    assert FACTORS.versions.startswith("cars=desnz-2025.1;")


@pytest.mark.parametrize(("what", "change", "message"), [
    ("source", lambda d: d.pop("source"), "missing 'source'"),
    ("source url", lambda d: d["source"].pop("url"), "missing 'source.url'"),
    ("unit", lambda d: d.pop("unit"), "missing 'unit'"),
    ("year", lambda d: d.pop("year"), "missing or invalid 'year'"),
    ("year as text", lambda d: d.update(year="2025"), "missing or invalid 'year'"),
    ("unit without a mass", lambda d: d.update(unit="per km"), "'unit' must read like"),
    ("negative value", lambda d: d["factors"].update({"small.petrol": "-0.1"}),
     "plain non-negative decimal"),
    ("float garbage", lambda d: d["factors"].update({"small.petrol": "1e-3"}),
     "plain non-negative decimal"),
    ("missing factor", lambda d: d["factors"].pop("large.diesel"),
     "missing factors the calculator needs: large.diesel"),
    ("transcription note", lambda d: d.pop("transcription"), "missing 'transcription'"),
])
def test_a_factor_file_missing_its_source_unit_or_year_is_refused(
        tmp_path: Path, what: str, change: Any, message: str) -> None:
    folder = broken_copy(tmp_path, "cars.json", change)
    with pytest.raises(FactorFileError) as raised:
        load(folder)
    assert "cars.json" in str(raised.value) and message in str(raised.value), what


def test_the_app_refuses_to_start_with_a_bad_factor_file(tmp_path: Path) -> None:
    folder = broken_copy(tmp_path, "flights.json", lambda d: d.pop("year"))
    config = {"DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}", "SECRET_KEY": "test",
              "STRIPE_WEBHOOK_SECRET": "whsec_test", "FOOTPRINT_FACTORS_DIR": str(folder)}
    with pytest.raises(FactorFileError, match=r"flights\.json: missing or invalid 'year'"):
        app = create_app(config)  # refuses here once the factory registers the calculator
        footprint.register(app)   # until then, here: the same start-up path


def test_a_missing_factor_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "factors"
    shutil.copytree(DATA_DIR, folder)
    (folder / "diet.json").unlink()
    with pytest.raises(FactorFileError, match=r"missing .*diet\.json"):
        load(folder)


def test_a_file_named_differently_from_its_id_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "factors"
    folder.mkdir()
    (folder / "other.json").write_text((DATA_DIR / "diet.json").read_text())
    with pytest.raises(FactorFileError, match="is named other.json"):
        load_file(folder / "other.json")


def test_an_unreadable_factor_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "factors"
    shutil.copytree(DATA_DIR, folder)
    (folder / "heating.json").write_text("{not json")
    with pytest.raises(FactorFileError, match=r"heating\.json: unreadable"):
        load(folder)


def test_flight_factors_must_include_the_uplift(tmp_path: Path) -> None:
    folder = broken_copy(tmp_path, "flights.json",
                         lambda d: d["parameters"].update(uplift_included_in_factors=False))
    with pytest.raises(FactorFileError, match="uplift_included_in_factors"):
        load(folder)


# -- the form: bad input gets a message beside its field ------------------------------------------


def parse(**fields: str) -> forms.Parsed:
    return forms.parse({"country": "GB", **fields}, FACTORS)


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"car_km": "-5"}, "car_km", "positive amount"),
    ({"car_km": "12 km"}, "car_km", "Enter a number"),
    ({"car_km": "1e5"}, "car_km", "Enter a number"),
    ({"car_km": "NaN"}, "car_km", "Enter a number"),
    ({"car_km": "9999999"}, "car_km", "more than 200,000 km a year"),
    ({"electricity_kwh": "12.345"}, "electricity_kwh", "two decimal places"),
    ({"gas_kwh": "1" * 30}, "gas_kwh", "too long"),
    ({"rail_km": "400000"}, "rail_km", "more than 300,000 km a year"),
    ({"country": "XX"}, "country", "no electricity figures for that country"),
    ({"country": ""}, "country", "Choose the country"),
    ({"f0_from": "ZZZ", "f0_to": "LIM"}, "f0_from", "No airport found for “ZZZ”"),
    ({"f0_from": "Atlantis", "f0_to": "LIM"}, "f0_from", "No airport found"),
    ({"f0_from": "LHR"}, "f0_to", "Enter an airport"),
    ({"f0_from": "London", "f0_to": "LIM"}, "f0_from", "Several airports serve London"),
    ({"f0_from": "LIM", "f0_to": "lim"}, "f0_to", "same airport"),
    ({"f0_from": "LHR", "f0_to": "LIM", "f0_trips": "0"}, "f0_trips", "from 1 to 365"),
    ({"f0_from": "LHR", "f0_to": "LIM", "f0_trips": "5000"}, "f0_trips", "from 1 to 365"),
    ({"f0_from": "LHR", "f0_to": "LIM", "f0_trips": "-1"}, "f0_trips", "from 1 to 365"),
    ({"f0_from": "LHR", "f0_to": "LIM", "f0_trips": "²"}, "f0_trips", "from 1 to 365"),
    ({"car_km": "١٢٠٠٠"}, "car_km", "Enter a number"),
    ({"f0_from": "LHR", "f0_to": "LIM", "f0_cabin": "cargo"}, "f0_cabin", "cabin class"),
    ({"f0_from": "LHR", "f0_to": "LIM", "f0_trip": "twice"}, "f0_trip", "return or one way"),
    ({"car_km": "100", "car_fuel": "coal"}, "car_fuel", "fuel"),
    ({"car_km": "100", "car_size": "tank"}, "car_size", "car size"),
    ({"diet": "air"}, "diet", "diet"),
    ({"rf": "maybe"}, "rf", "non-CO2"),
])
def test_bad_input_is_explained_beside_its_field(fields: dict[str, str], field: str,
                                                 message: str) -> None:
    parsed = parse(**fields)
    assert not parsed.ok and parsed.inputs is None
    assert message in parsed.errors[field], parsed.errors


def test_good_input_round_trips_through_the_query_string() -> None:
    parsed = parse(f0_from="Jorge Chavez International Airport, Lima, PE (LIM)",
                   f0_to="zürich", f0_trip="oneway", f0_cabin="business", f0_trips="2",
                   car_km="12,000.5", car_fuel="diesel", car_size="small", diet="vegan",
                   bus_km="0", rail_km="1500", rf="without")
    assert parsed.ok and parsed.inputs is not None, parsed.errors
    inputs = parsed.inputs
    assert [(f.origin.code, f.destination.code, f.round_trip, f.cabin, f.trips)
            for f in inputs.flights] == [("LIM", "ZRH", False, "business", 2)]
    assert inputs.car_km == Decimal("12000.5") and not inputs.include_rf
    assert inputs.transport_km == (("rail", Decimal(1500)),)
    params = forms.to_params(inputs)
    assert params == {"country": "GB", "rf": "without", "f0_from": "LIM", "f0_to": "ZRH",
                      "f0_trip": "oneway", "f0_cabin": "business", "f0_trips": "2",
                      "car_km": "12000.5", "car_fuel": "diesel", "car_size": "small",
                      "rail_km": "1500", "diet": "vegan"}
    again = forms.parse(params, FACTORS)
    assert again.inputs == inputs


def test_flight_rows_grow_with_what_is_filled_in() -> None:
    assert forms.flight_rows_in({}) == forms.MIN_FLIGHT_ROWS
    assert forms.flight_rows_in({"f3_from": "LHR"}) == 5
    assert forms.flight_rows_in({f"f{i}_from": "LHR" for i in range(40)}) == forms.MAX_FLIGHTS


# -- airports -------------------------------------------------------------------------------------


def test_airports_come_from_airportsdata() -> None:
    lhr = airport("LHR")
    assert (lhr.name, lhr.city, lhr.country) == ("London Heathrow Airport", "London", "GB")
    assert lhr.label == "London Heathrow Airport, GB (LHR)"  # the city is in the name
    assert airport("CUZ").label == "Alejandro Velasco Astete International Airport, Cusco, PE (CUZ)"
    assert airports.get("lhr") == lhr and airports.get("XXXX") is None


def test_search_by_code_city_or_name_is_bounded() -> None:
    assert [a.code for a in airports.search("LIM")][0] == "LIM"
    assert "LHR" in [a.code for a in airports.search("london")]
    assert [a.code for a in airports.search("Zürich")][0] == "ZRH"
    assert [a.code for a in airports.search("zurich")][0] == "ZRH"
    assert "CUZ" in [a.code for a in airports.search("cusco")]
    for query in ("a" * 2, "an", "in", "port", "international"):
        assert len(airports.search(query)) <= airports.MAX_RESULTS
    assert airports.search("l") == [] and airports.search("") == []
    assert len(airports.search("an", limit=500)) == airports.MAX_RESULTS
    assert airports.search("x" * 10_000) == []


def test_resolve_accepts_codes_labels_and_single_airport_cities() -> None:
    assert airports.resolve(" lim ").code == "LIM"
    assert airports.resolve("London Heathrow Airport, London, GB (LHR)").code == "LHR"
    assert airports.resolve("Cusco").code == "CUZ"
    with pytest.raises(airports.AirportError, match="Several airports serve"):
        airports.resolve("Paris")
    with pytest.raises(airports.AirportError, match="too long"):
        airports.resolve("L" * 100)
