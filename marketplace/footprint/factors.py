"""Emission factor files: versioned JSON under ``data/``, loaded and validated at start-up.

Each file says where its numbers come from (publisher, title, table, address), the year they
are for, the unit they are in and how they were transcribed; the calculator refuses to start
(``FactorFileError``) on a file that is missing any of that, holds a value that is not a plain
non-negative decimal, or lacks a factor the calculator looks up. Values are read as
``Decimal`` from their text, never through a float.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data"

_NUMBER = re.compile(r"\d+(?:\.\d+)?", re.ASCII)
_ID = re.compile(r"[a-z][a-z0-9_]{0,40}", re.ASCII)
_MASS = {"g": 1, "kg": 1000, "t": 1_000_000}
"""Grams in one unit of each mass a factor may be expressed in (the unit's first word)."""

CABINS = ("economy", "premium_economy", "business", "first")
CAR_SIZES = ("small", "medium", "large", "average")
CAR_FUELS = ("petrol", "diesel", "hybrid", "plugin_hybrid", "battery_electric")
DIETS = ("high_meat", "medium_meat", "low_meat", "pescatarian", "vegetarian", "vegan")

REQUIRED_FACTORS: dict[str, frozenset[str]] = {
    "flights": frozenset(
        [f"short_haul.{c}.{rf}" for c in ("average", "economy", "business")
         for rf in ("with_rf", "without_rf")]
        + [f"long_haul.{c}.{rf}" for c in ("average", *CABINS) for rf in ("with_rf", "without_rf")]
    ),
    "cars": frozenset(f"{size}.{fuel}" for size in CAR_SIZES for fuel in CAR_FUELS),
    "public_transport": frozenset({"bus", "coach", "rail", "tram"}),
    "heating": frozenset({"natural_gas", "heating_oil"}),
    "diet": frozenset(DIETS),
    "grid_intensity": frozenset(),
    "country_average": frozenset({"WORLD"}),
}
"""The files the calculator needs, and the factors it looks up in each."""

REQUIRED_PARAMETERS: dict[str, frozenset[str]] = {
    "flights": frozenset({"long_haul_from_km", "distance_uplift", "uplift_included_in_factors",
                          "radiative_forcing_multiplier", "earth_radius_km"}),
    "diet": frozenset({"days_per_year"}),
    "country_average": frozenset({"fallback"}),
}

COUNTRY_KEYED = ("grid_intensity", "country_average")
"""Files keyed by ISO 3166-1 alpha-2 country code, each entry naming its country and year."""


class FactorFileError(RuntimeError):
    """A factor file is missing, unreadable or incomplete: the app refuses to start."""


@dataclass(frozen=True)
class Source:
    short: str
    publisher: str
    title: str
    table: str
    url: str

    @property
    def citation(self) -> str:
        return f"{self.publisher}, {self.title}; {self.table}. {self.url}"


@dataclass(frozen=True)
class Factor:
    key: str
    value: Decimal
    year: int
    name: str = ""


@dataclass(frozen=True)
class FactorFile:
    """One versioned factor file, validated."""

    id: str
    title: str
    version: str
    year: int
    unit: str
    source: Source
    transcription: str
    notes: tuple[str, ...]
    parameters: Mapping[str, Any]
    factors: Mapping[str, Factor]
    filename: str

    @property
    def grams_per_unit(self) -> int:
        """Grams of CO2e in one unit of this file's factors (``kg CO2e per km`` gives 1000)."""
        return _MASS[self.unit.split()[0]]

    def value(self, key: str) -> Decimal:
        return self.factors[key].value

    def get(self, key: str) -> Factor | None:
        return self.factors.get(key)

    def decimal(self, name: str) -> Decimal:
        """A numeric parameter (``long_haul_from_km``, ...)."""
        return Decimal(str(self.parameters[name]))


@dataclass(frozen=True)
class FactorSet:
    """Every factor file the calculator uses, by id."""

    files: Mapping[str, FactorFile] = field(default_factory=dict)

    def __getitem__(self, file_id: str) -> FactorFile:
        return self.files[file_id]

    def __iter__(self) -> Iterator[FactorFile]:
        return iter(sorted(self.files.values(), key=lambda f: f.id))

    @property
    def versions(self) -> str:
        """``cars=desnz-2025.1;diet=...``: what a saved footprint was computed with."""
        return ";".join(f"{f.id}={f.version}" for f in self)

    @property
    def countries(self) -> dict[str, str]:
        """The countries a person can choose (those with a grid intensity), code -> name."""
        grid = self.files["grid_intensity"].factors
        return dict(sorted(((code, f.name) for code, f in grid.items()), key=lambda kv: kv[1]))


# -- loading ----------------------------------------------------------------------------------


def _fail(name: str, problem: str) -> FactorFileError:
    return FactorFileError(f"emission factor file {name}: {problem}. The calculator will not "
                           "start with a factor whose source, year or unit cannot be traced.")


def _text(data: Mapping[str, Any], key: str, name: str, where: str = "") -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _fail(name, f"missing '{where}{key}' (a non-empty text)")
    return value.strip()


def _year(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1990 <= value <= 2100:
        raise _fail(name, f"missing or invalid '{where}' (a year such as 2025, got {value!r})")
    return value


def _decimal(value: Any, name: str, where: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise _fail(name, f"'{where}' is not a number: {value!r}")
    text = str(value).strip()
    if not _NUMBER.fullmatch(text):
        raise _fail(name, f"'{where}' must be a plain non-negative decimal like 0.11704, "
                          f"not {value!r}")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise _fail(name, f"'{where}' is not a number: {value!r}") from None


def parse(raw: Mapping[str, Any], name: str) -> FactorFile:
    """Validate one file's parsed JSON; raise ``FactorFileError`` naming what is wrong."""
    if not isinstance(raw, Mapping):
        raise _fail(name, "the file must hold a JSON object")
    file_id = _text(raw, "id", name)
    if not _ID.fullmatch(file_id):
        raise _fail(name, f"invalid 'id' {file_id!r}")
    source_raw = raw.get("source")
    if not isinstance(source_raw, Mapping):
        raise _fail(name, "missing 'source' (short, publisher, title, table and url)")
    source = Source(*(_text(source_raw, key, name, "source.")
                      for key in ("short", "publisher", "title", "table", "url")))
    if not source.url.startswith(("https://", "http://")):
        raise _fail(name, "'source.url' must be a web address")
    year = _year(raw.get("year"), name, "year")
    unit = _text(raw, "unit", name)
    if unit.split()[0] not in _MASS or "CO2" not in unit or " per " not in unit:
        raise _fail(name, f"'unit' must read like 'kg CO2e per km' (g, kg or t of CO2 or "
                          f"CO2e per something), not {unit!r}")
    notes = raw.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise _fail(name, "'notes' must be a list of texts")
    parameters = raw.get("parameters", {})
    if not isinstance(parameters, Mapping):
        raise _fail(name, "'parameters' must be an object")
    factors_raw = raw.get("factors")
    if not isinstance(factors_raw, Mapping) or not factors_raw:
        raise _fail(name, "missing 'factors' (an object of at least one value)")
    factors: dict[str, Factor] = {}
    for key, entry in factors_raw.items():
        where = f"factors.{key}"
        if isinstance(entry, Mapping):
            value = _decimal(entry.get("value"), name, f"{where}.value")
            entry_year = _year(entry.get("year", year), name, f"{where}.year")
            label = entry.get("name", "")
            if not isinstance(label, str):
                raise _fail(name, f"'{where}.name' must be text")
        else:
            value, entry_year, label = _decimal(entry, name, where), year, ""
        factors[str(key)] = Factor(str(key), value, entry_year, label.strip())
    checked = FactorFile(
        id=file_id, title=_text(raw, "title", name), version=_text(raw, "version", name),
        year=year, unit=unit, source=source, transcription=_text(raw, "transcription", name),
        notes=tuple(notes), parameters=dict(parameters), factors=factors, filename=name,
    )
    _check_contents(checked)
    return checked


def _check_contents(file: FactorFile) -> None:
    name = file.filename
    missing = sorted(REQUIRED_FACTORS.get(file.id, frozenset()) - set(file.factors))
    if missing:
        raise _fail(name, f"missing factors the calculator needs: {', '.join(missing)}")
    missing = sorted(REQUIRED_PARAMETERS.get(file.id, frozenset()) - set(file.parameters))
    if missing:
        raise _fail(name, f"missing parameters: {', '.join(missing)}")
    for key in REQUIRED_PARAMETERS.get(file.id, frozenset()):
        value = file.parameters[key]
        if isinstance(value, bool) or key == "fallback":
            continue
        _decimal(value, name, f"parameters.{key}")
    if file.id == "flights" and file.parameters.get("uplift_included_in_factors") is not True:
        raise _fail(name, "the calculator multiplies the flight factors by great-circle "
                          "distance, so 'uplift_included_in_factors' must be true")
    if file.id in COUNTRY_KEYED:
        for key, factor in file.factors.items():
            if not (re.fullmatch(r"[A-Z]{2}", key) or key == "WORLD") or not factor.name:
                raise _fail(name, f"'factors.{key}' must be keyed by an ISO country code "
                                  "and name its country")
    if file.id == "country_average" and file.parameters.get("fallback") not in file.factors:
        raise _fail(name, "'parameters.fallback' must name one of the factors")


def load_file(path: Path) -> FactorFile:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except FileNotFoundError:
        raise _fail(path.name, "not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path.name, f"unreadable ({exc})") from None
    loaded = parse(raw, path.name)
    if loaded.id != path.stem:
        raise _fail(path.name, f"its 'id' is {loaded.id!r} but the file is named {path.name}")
    return loaded


def load(directory: Path | str | None = None) -> FactorSet:
    """Load and validate every ``*.json`` in ``directory`` (default: the package's data)."""
    folder = Path(directory) if directory is not None else DATA_DIR
    files = {}
    for path in sorted(folder.glob("*.json")):
        loaded = load_file(path)
        files[loaded.id] = loaded
    missing = sorted(set(REQUIRED_FACTORS) - set(files))
    if missing:
        raise FactorFileError(f"emission factor files missing from {folder}: "
                              f"{', '.join(m + '.json' for m in missing)}")
    return FactorSet(files)
