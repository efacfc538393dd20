"""How the storefront writes money, tonnes, dates and places, and how it reads prices.

Money is integer minor units plus a currency everywhere; a price typed by a person is parsed
with ``Decimal`` and converted exactly, never through a float.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from flask import Flask
from wtforms.fields.choices import SelectChoice

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "PEN": "S/ "}
"""Currency symbols for the currencies a listing may use (``models.listings.CURRENCIES``)."""

_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
"""Digits with an optional point: no exponents, NaN or infinities."""

MINOR_DIGITS = 2
"""Every currency we sell in has cents (or céntimos, or pence)."""

MAX_MINOR = 2_147_483_647
"""The largest price the listings table holds (a 32-bit integer column)."""

SDG_NAMES = {
    1: "No poverty",
    2: "Zero hunger",
    3: "Good health and well-being",
    4: "Quality education",
    5: "Gender equality",
    6: "Clean water and sanitation",
    7: "Affordable and clean energy",
    8: "Decent work and economic growth",
    9: "Industry, innovation and infrastructure",
    10: "Reduced inequalities",
    11: "Sustainable cities and communities",
    12: "Responsible consumption and production",
    13: "Climate action",
    14: "Life below water",
    15: "Life on land",
    16: "Peace, justice and strong institutions",
    17: "Partnerships for the goals",
}

def _country_names() -> dict[str, str]:
    """ISO 3166-1 names from pycountry, preferring the common name (Bolivia, not the
    Plurinational State of Bolivia)."""
    import pycountry

    return {c.alpha_2: getattr(c, "common_name", None) or c.name for c in pycountry.countries}


COUNTRY_NAMES = _country_names()


def money(minor: int, currency: str) -> str:
    """Format minor units: ``money(1800, "USD") == "$18.00"``, ``money(1850, "PEN") == "S/ 18.50"``.

    Thousands are separated by commas; an unknown currency is written after the amount.
    """
    value = int(minor)
    sign = "-" if value < 0 else ""
    major, cents = divmod(abs(value), 10**MINOR_DIGITS)
    amount = f"{major:,}.{cents:0{MINOR_DIGITS}d}"
    code = (currency or "").upper()
    symbol = SYMBOLS.get(code)
    if symbol is None:
        return f"{sign}{amount} {code}".strip()
    return f"{sign}{symbol}{amount}"


def tonnes(quantity: int | None) -> str:
    """A whole number of tonnes with thousands separators (``1,234,567``)."""
    if quantity is None:
        return "—"
    return f"{int(quantity):,}"


def parse_decimal(text: object, what: str, *, max_length: int = 24) -> Decimal:
    """Read a decimal number a person typed, exactly: digits, an optional point, commas as
    thousands separators. Raises ``ValueError`` with a message for them otherwise (exponents,
    NaN, infinities, absurdly long input)."""
    raw = str(text if text is not None else "").strip()
    if not raw:
        raise ValueError(f"Enter the {what}.")
    if len(raw) > max_length:
        raise ValueError(f"The {what} is too long to be a price.")
    if "," in raw and "." not in raw:
        raise ValueError(f"Write the {what} with a point for decimals, like 18.50.")
    plain = raw.replace(",", "")
    if not _PLAIN_NUMBER.fullmatch(plain):
        raise ValueError(f"The {what} must be a number, like 18.50.")
    try:
        return Decimal(plain)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise ValueError(f"The {what} must be a number, like 18.50.") from None


def to_minor(value: Decimal, what: str = "price") -> int:
    """Convert major units to minor units exactly: ``Decimal("18.5") -> 1850``. More than two
    decimal places is refused rather than rounded."""
    scaled = value.scaleb(MINOR_DIGITS)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"The {what} can have at most {MINOR_DIGITS} decimal places.")
    return int(scaled)


def parse_price(text: object, what: str = "price") -> int:
    """A positive price typed in major units, as minor units (``"18.50" -> 1850``)."""
    minor = to_minor(parse_decimal(text, what), what)
    if minor <= 0:
        raise ValueError(f"The {what} must be more than zero.")
    if minor > MAX_MINOR:
        raise ValueError(f"The {what} is higher than the shop can hold.")
    return minor


def major(minor: int) -> str:
    """Minor units as a plain major-unit string for a form field (``1850 -> "18.50"``)."""
    whole, cents = divmod(int(minor), 10**MINOR_DIGITS)
    return f"{whole}.{cents:0{MINOR_DIGITS}d}"


def vintage_label(start: dt.date, end: dt.date) -> str:
    """``2016`` for a calendar-year vintage, otherwise ``Jul 2019 – Jun 2020``."""
    if start.year == end.year and (start.month, start.day) == (1, 1) and (end.month, end.day) == (12, 31):
        return str(start.year)
    return f"{start:%b %Y} – {end:%b %Y}"


def coordinates(latitude: Decimal | None, longitude: Decimal | None) -> str:
    """``5.75° S, 77.30° W``; an empty string when either is unknown."""
    if latitude is None or longitude is None:
        return ""
    lat, lon = Decimal(latitude), Decimal(longitude)
    ns = "S" if lat < 0 else "N"
    ew = "W" if lon < 0 else "E"
    return f"{abs(lat):.2f}° {ns}, {abs(lon):.2f}° {ew}"


def osm_url(latitude: Decimal | None, longitude: Decimal | None, zoom: int = 9) -> str:
    """A link to OpenStreetMap with a marker at the coordinates."""
    if latitude is None or longitude is None:
        return ""
    lat, lon = Decimal(latitude).normalize(), Decimal(longitude).normalize()
    return (f"https://www.openstreetmap.org/?mlat={lat:f}&mlon={lon:f}"
            f"#map={zoom}/{lat:f}/{lon:f}")


def country_name(code: str) -> str:
    return COUNTRY_NAMES.get((code or "").upper(), code)


def paragraphs(text: str | None) -> list[str]:
    """Split a story into paragraphs at blank lines (templates escape each one)."""
    if not text:
        return []
    blocks = text.replace("\r\n", "\n").split("\n\n")
    return [" ".join(line.strip() for line in block.splitlines()).strip()
            for block in blocks if block.strip()]


def register(app: Flask) -> None:
    """Make the helpers available to every template as filters and globals (idempotent)."""
    from .checkout import mass_label
    from .kilograms import format_mass

    filters = {"money": money, "tonnes": tonnes, "vintage": vintage_label, "mass": format_mass,
               "order_mass": mass_label,
               "coordinates": coordinates, "osm_url": osm_url, "country_name": country_name,
               "paragraphs": paragraphs, "major": major}
    for name, function in filters.items():
        app.jinja_env.filters[name] = function
    app.jinja_env.globals.update(money=money, tonnes=tonnes, sdg_names=SDG_NAMES)


def _country_choices() -> list[SelectChoice]:
    """Every ISO 3166-1 country for a select, by name, valued by its alpha-2 code."""
    from ledger.rules import COUNTRIES

    return sorted((SelectChoice(code, f"{country_name(code)} ({code})") for code in COUNTRIES),
                  key=lambda choice: choice.label)


COUNTRY_CHOICES = _country_choices()
