"""Airports from the maintained ``airportsdata`` package (IATA codes), looked up by code or city.

The data is loaded once per process, on first use, and indexed for prefix search. Searches
return at most ``MAX_RESULTS`` airports, so the autocomplete endpoint's answer stays small
whatever is typed.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

MAX_RESULTS = 10
MAX_QUERY = 60
_CODE_IN_LABEL = re.compile(r"\(([A-Za-z]{3})\)\s*$")


class AirportError(ValueError):
    """The text does not name exactly one airport; the message says why, for the person."""


@dataclass(frozen=True)
class Airport:
    code: str
    name: str
    city: str
    country: str
    latitude: float
    longitude: float

    @property
    def label(self) -> str:
        """``London Heathrow Airport, London, GB (LHR)``: what the autocomplete offers."""
        place = ", ".join(p for p in (self.city, self.country) if p and p not in self.name)
        return f"{self.name}{', ' + place if place else ''} ({self.code})"

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "name": self.name, "city": self.city,
                "country": self.country, "label": self.label}


def fold(text: str) -> str:
    """Lower case without accents or extra spaces: ``Zürich`` and ``zurich`` match."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.casefold().split())


@dataclass(frozen=True)
class _Index:
    by_code: dict[str, Airport]
    by_city: dict[str, tuple[Airport, ...]]
    entries: tuple[tuple[str, str, Airport], ...]  # (folded city, folded name, airport)
    cities: tuple[str, ...]  # the entries' folded cities, sorted, for prefix search
    names: str  # the entries' folded names, one a line, for substring search in one pass
    name_starts: tuple[int, ...]  # where each entry's line starts in ``names``


def _rank(airport: Airport) -> tuple[int, str]:
    """International airports first among several serving one city, then by name."""
    return (0 if "international" in airport.name.lower() else 1, airport.name)


@functools.cache
def _index() -> _Index:
    import airportsdata

    by_code: dict[str, Airport] = {}
    for code, row in airportsdata.load("IATA").items():
        if not re.fullmatch(r"[A-Z]{3}", code or ""):
            continue
        by_code[code] = Airport(code, str(row.get("name") or code).strip(),
                                str(row.get("city") or "").strip(),
                                str(row.get("country") or "").strip(),
                                float(row["lat"]), float(row["lon"]))
    cities: dict[str, list[Airport]] = {}
    for airport in by_code.values():
        if airport.city:
            cities.setdefault(fold(airport.city), []).append(airport)
    entries = tuple(sorted(((fold(a.city), fold(a.name), a) for a in by_code.values()),
                           key=lambda e: (e[0], _rank(e[2]))))
    starts, offset = [], 0
    for _city, name, _airport in entries:
        starts.append(offset)
        offset += len(name) + 1
    serving = {city: tuple(sorted(found, key=_rank)) for city, found in cities.items()}
    names = "\n".join(e[1] for e in entries)
    return _Index(by_code, serving, entries, tuple(e[0] for e in entries), names, tuple(starts))


def get(code: str) -> Airport | None:
    """The airport with this IATA code, or None."""
    return _index().by_code.get(code.strip().upper()) if len(code.strip()) == 3 else None


def search(query: str, limit: int = MAX_RESULTS) -> list[Airport]:
    """Airports whose code, city or name matches what was typed, best first.

    An exact code comes first, then airports of a city of that name, then cities starting
    with it (shortest city names first: "lon" finds London before Londrina), then names
    containing it. At most ``limit`` (capped at MAX_RESULTS) results.
    """
    limit = max(0, min(limit, MAX_RESULTS))
    text = fold(query[:MAX_QUERY])
    if len(text) < 2 or not limit:
        return []
    index = _index()
    found: list[Airport] = []
    seen: set[str] = set()

    def take(airport: Airport) -> bool:
        if airport.code not in seen:
            seen.add(airport.code)
            found.append(airport)
        return len(found) >= limit

    exact = index.by_code.get(text.upper()) if len(text) == 3 else None
    if exact is not None and take(exact):
        return found
    for airport in index.by_city.get(text, ()):
        if take(airport):
            return found
    lo = bisect.bisect_left(index.cities, text)
    hi = bisect.bisect_left(index.cities, text + "\uffff")
    prefixed = sorted(index.entries[lo:hi], key=lambda e: (len(e[0]), e[0], _rank(e[2])))
    for _city, _name, airport in prefixed:
        if take(airport):
            return found
    position = index.names.find(text)
    while position >= 0:
        line = bisect.bisect_right(index.name_starts, position) - 1
        if take(index.entries[line][2]):
            return found
        following = line + 1
        if following >= len(index.name_starts):
            break
        position = index.names.find(text, index.name_starts[following])
    return found


def resolve(text: str) -> Airport:
    """The one airport a person meant: an IATA code, an autocomplete label ending in
    ``(LHR)``, or a city served by a single airport. ``AirportError`` otherwise."""
    raw = (text or "").strip()
    if not raw:
        raise AirportError("Enter an airport: its three-letter code (like LIM) or its city.")
    if len(raw) > MAX_QUERY:
        raise AirportError("That is too long for an airport: enter its code, like LIM.")
    labelled = _CODE_IN_LABEL.search(raw)
    code = labelled.group(1) if labelled else (raw if re.fullmatch(r"[A-Za-z]{3}", raw) else None)
    if code is not None:
        airport = get(code)
        if airport is not None:
            return airport
    serving = _index().by_city.get(fold(raw), ())
    if len(serving) == 1:
        return serving[0]
    if len(serving) > 1:
        codes = ", ".join(a.code for a in serving[:8])
        raise AirportError(f"Several airports serve {raw}: choose one ({codes}).")
    raise AirportError(f"No airport found for “{raw}”. Enter its three-letter IATA code, "
                       "like LIM for Lima.")


def great_circle_km(a: Airport, b: Airport, radius_km: Decimal) -> int:
    """Great-circle distance in whole kilometres (haversine on a sphere of ``radius_km``).

    The trigonometry is done in floating point; the result is rounded to the nearest whole
    kilometre, half up, so every figure shown after it is exact decimal arithmetic.
    """
    phi1, phi2 = math.radians(a.latitude), math.radians(b.latitude)
    dphi = phi2 - phi1
    dlam = math.radians(b.longitude - a.longitude)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    km = 2 * float(radius_km) * math.asin(min(1.0, math.sqrt(h)))
    return int(Decimal(repr(km)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
