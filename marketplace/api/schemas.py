"""marshmallow schemas at the edge: one per shape, created once at module level.

Input schemas (``<Thing>CreateSchema`` for request bodies, ``<Thing>QuerySchema`` for query
strings) validate every value (type, range, length, enumeration) and refuse unknown fields.
Output schemas (``<Thing>Schema``) dump the plain dicts the services build. The OpenAPI
description is generated from these same classes (``api.openapi``).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from ledger.records import CA_DECLARATIONS, CA_STATUSES, CORSIA_PHASES, MITIGATION_TYPES
from ledger.rules import COUNTRIES, PURPOSES

from ..checkout import MAX_TONNES_PER_LINE
from ..kilograms import UNITS, MassError, grams_of
from ..models.listings import CURRENCIES

MAX_ID = 2**31 - 1
MAX_SEQ = 2**53 - 1
MAX_LINES = 20
SORTS = ("name", "price_asc", "price_desc", "available")
ACTIONS = ("retire", "hold")
PAYMENT_METHODS = ("saved", "invoice", "account")
PAID_BY = ("saved", "invoice", "account", "checkout")
"""How an order is paid: the API's two ways, or the storefront's hosted checkout."""
ORDER_STATES = ("pending", "awaiting_payment", "paid", "fulfilled", "expired", "failed",
                "cancelled", "refunded")
QUOTE_STATES = ("open", "ordered", "expired")
COUNTRY_ERROR = "Must be an ISO 3166-1 alpha-2 country code in capitals, like GB."
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


# -- fields ---------------------------------------------------------------------------------


class WholeNumber(fields.Integer):
    """An integer, and only an integer: no strings, floats or booleans in a JSON body."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("strict", True)
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return int(super()._deserialize(value, attr, data, **kwargs))


class QueryFlag(fields.Boolean):
    """``true`` or ``false`` in a query string, and nothing else."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if value not in ("true", "false"):
            raise ValidationError("Must be true or false.")
        return bool(value == "true")


class QueryNumber(fields.Integer):
    """A whole number written in a query string: digits only, at most 16 of them."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if not isinstance(value, str) or not (value.isascii() and value.isdigit()
                                              and len(value) <= 16):
            raise self.make_error("invalid")
        return int(value)


class Text(fields.String):
    """Free text: trimmed, no control characters (tabs and line breaks excepted), valid
    Unicode (no lone surrogates)."""

    PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"

    def __init__(self, **kwargs: Any) -> None:
        checks = kwargs.pop("validate", None)
        checks = [] if checks is None else (list(checks) if isinstance(checks, list) else [checks])
        super().__init__(validate=[validate.Regexp(self.PATTERN), *checks], **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("Not valid Unicode text.") from None
        if _CONTROL.search(text):
            raise ValidationError("Control characters are not allowed.")
        return text.strip()


class CalendarDate(fields.Date):
    """A date written YYYY-MM-DD, nothing else."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.date:
        if not isinstance(value, str) or not _DATE.fullmatch(value):
            raise self.make_error("invalid", input=value, obj_type="date")
        result: dt.date = super()._deserialize(value, attr, data, **kwargs)
        return result


def _not_blank(value: str) -> None:
    if not value:
        raise ValidationError("May not be blank.")


class Base(Schema):
    class Meta:
        unknown = RAISE


# -- inputs ---------------------------------------------------------------------------------


class PageQuerySchema(Base):
    limit = QueryNumber(load_default=20, validate=validate.Range(min=1, max=100),
                        metadata={"description": "How many items to return (1 to 100)."})
    cursor = fields.String(validate=[validate.Length(min=1, max=400),
                                     validate.Regexp(r"^[A-Za-z0-9_-]+$")],
                  metadata={"description": "``next_cursor`` from the previous page."})


class ProjectQuerySchema(PageQuerySchema):
    country = fields.String(validate=validate.Regexp(r"^[A-Z]{2}$"),
                   metadata={"description": "ISO 3166-1 alpha-2 country of the project."})
    type = Text(validate=validate.Length(min=1, max=60),
                metadata={"description": "Project type, as in the catalogue."})
    standard = Text(validate=validate.Length(min=1, max=60),
                    metadata={"description": "A standard the project is certified to, "
                                             "e.g. VCS or CCB."})
    vintage = QueryNumber(validate=validate.Range(min=1900, max=2200),
                          metadata={"description": "A year with tonnes for sale."})
    min_price = QueryNumber(validate=validate.Range(min=0, max=10**9),
                            metadata={"description": "Lowest price per tonne, minor units."})
    max_price = QueryNumber(validate=validate.Range(min=0, max=10**9),
                            metadata={"description": "Highest price per tonne, minor units."})
    sort = fields.String(load_default="name", validate=validate.OneOf(SORTS))
    ccp = QueryFlag(metadata={"description": "Only projects with a vintage for sale that "
                                             "carries (true) or lacks (false) the ICVCM CCP "
                                             "label."})
    corsia = fields.String(validate=validate.OneOf([*CORSIA_PHASES, "any"]),
                           metadata={"description": "Only projects with a vintage for sale "
                                                    "eligible for this CORSIA phase (any: any "
                                                    "phase)."})
    article6 = QueryFlag(metadata={"description": "Only projects with a vintage for sale "
                                                  "authorised (true) or not (false) under "
                                                  "Article 6."})
    mitigation = fields.String(validate=validate.OneOf(MITIGATION_TYPES),
                               metadata={"description": "Avoidance, removal or mixed."})
    ca = fields.String(validate=validate.OneOf(["committed", "not_required", "unknown"]),
                       metadata={"description": "Only projects with a vintage for sale whose "
                                                "corresponding adjustment is declared so "
                                                "(CAD Trust: Committed, Not Required, "
                                                "Unknown)."})
    ca_status = fields.String(validate=validate.OneOf(["not_started", "pending", "completed"]),
                              metadata={"description": "Only projects with a vintage for sale "
                                                       "whose corresponding adjustment has "
                                                       "this status."})

    @validates_schema
    def _price_range(self, data: dict[str, Any], **kwargs: Any) -> None:
        low, high = data.get("min_price"), data.get("max_price")
        if low is not None and high is not None and low > high:
            raise ValidationError("Must not be below min_price.", "max_price")


class OrderQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(ORDER_STATES))


class HoldingQuerySchema(PageQuerySchema):
    project = QueryNumber(validate=validate.Range(min=1, max=MAX_ID))


class InclusionQuerySchema(Base):
    seq = QueryNumber(required=True, validate=validate.Range(min=1, max=MAX_SEQ))
    size = QueryNumber(required=True, validate=validate.Range(min=1, max=MAX_SEQ))


class ConsistencyQuerySchema(Base):
    first = QueryNumber(required=True, data_key="from", validate=validate.Range(min=1, max=MAX_SEQ))
    second = QueryNumber(required=True, data_key="to", validate=validate.Range(min=1, max=MAX_SEQ))


class CheckpointQuerySchema(Base):
    size = QueryNumber(validate=validate.Range(min=1, max=MAX_SEQ),
                       metadata={"description": "An earlier signed checkpoint, by its size."})


class QuoteFiltersCreateSchema(Base):
    country = fields.String(validate=validate.OneOf(sorted(COUNTRIES), error=COUNTRY_ERROR))
    type = Text(validate=validate.Length(min=1, max=60))
    standard = Text(validate=validate.Length(min=1, max=60))
    vintage = WholeNumber(validate=validate.Range(min=1900, max=2200))
    min_price = WholeNumber(validate=validate.Range(min=0, max=10**9))
    max_price = WholeNumber(validate=validate.Range(min=0, max=10**9))


_quantity = {"validate": validate.Range(min=1, max=MAX_TONNES_PER_LINE),
             "metadata": {"description": "Whole tonnes of CO2e (or give mass)."}}


class MassCreateSchema(Base):
    """A mass of CO2e: a whole number in grams, kilograms or (whole) tonnes. Tonnes are sold
    as serials; grams and kilograms come from the project's kilogram pool and are retired at
    once in the beneficiary's name."""

    amount = WholeNumber(required=True, validate=validate.Range(min=1, max=10**15),
                         metadata={"description": "A whole number: 2500 with unit g is 2.5 kg."})
    unit = fields.String(required=True, validate=validate.OneOf(list(UNITS)),
                         metadata={"description": "g, kg or t."})

    @validates_schema
    def _whole(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("unit") == "t":  # whole tonnes, sold as serials
            if data["amount"] > MAX_TONNES_PER_LINE:
                raise ValidationError(f"At most {MAX_TONNES_PER_LINE:,} t.", "amount")
            return
        try:
            grams_of(data.get("amount"), data.get("unit"))
        except MassError as exc:
            raise ValidationError(str(exc), "amount") from None


class _Sized(Base):
    """``quantity`` (whole tonnes) or ``mass``: exactly one. After loading, a mass in tonnes
    becomes ``quantity``; one in g or kg becomes ``grams``."""

    def _one_size(self, data: dict[str, Any]) -> None:
        if ("quantity" in data) == ("mass" in data):
            raise ValidationError("Give either quantity (whole tonnes) or mass.", "quantity")
        mass = data.get("mass")
        if mass and mass["unit"] != "t" and "batch" in data:
            raise ValidationError("Kilograms come from the project's pool, not from a chosen "
                                  "vintage: leave batch out.", "batch")

    @post_load
    def _normalise(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        mass = data.pop("mass", None)
        if mass is not None:
            if mass["unit"] == "t":
                data["quantity"] = mass["amount"]
            else:
                data["grams"] = grams_of(mass["amount"], mass["unit"])
        return data


class QuoteCreateSchema(_Sized):
    """Tonnes of one project (optionally one vintage batch of it), or of the cheapest project
    matching ``filters`` (no project and no filters: any project); or a ``mass`` in g or kg
    from the project's kilogram pool."""

    quantity = WholeNumber(**_quantity)
    mass = fields.Nested(MassCreateSchema)
    project = WholeNumber(validate=validate.Range(min=1, max=MAX_ID))
    batch = WholeNumber(validate=validate.Range(min=1, max=MAX_ID),
                        metadata={"description": "A vintage batch of the project."})
    filters = fields.Nested(QuoteFiltersCreateSchema)

    @validates_schema
    def _choice(self, data: dict[str, Any], **kwargs: Any) -> None:
        self._one_size(data)
        if "project" in data and "filters" in data:
            raise ValidationError("Give a project or filters, not both.", "filters")
        if "batch" in data and "project" not in data:
            raise ValidationError("A batch needs its project.", "batch")
        filters = data.get("filters") or {}
        low, high = filters.get("min_price"), filters.get("max_price")
        if low is not None and high is not None and low > high:
            raise ValidationError({"max_price": ["Must not be below min_price."]}, "filters")


class OrderLineCreateSchema(_Sized):
    project = WholeNumber(required=True, validate=validate.Range(min=1, max=MAX_ID))
    quantity = WholeNumber(**_quantity)
    mass = fields.Nested(MassCreateSchema)
    batch = WholeNumber(validate=validate.Range(min=1, max=MAX_ID),
                        metadata={"description": "A vintage batch (default: oldest first)."})

    @validates_schema
    def _size(self, data: dict[str, Any], **kwargs: Any) -> None:
        self._one_size(data)


class _RetirementDetails(Base):
    beneficiary = Text(validate=[validate.Length(max=200), _not_blank],
                       metadata={"description": "Who the retirement is made for (published on "
                                                "the certificate)."})
    purpose = fields.String(load_default="voluntary", validate=validate.OneOf(list(PURPOSES)))
    note = Text(load_default="", validate=validate.Length(max=500),
                metadata={"description": "Free text; required when purpose is 'other'."})
    country = fields.String(validate=validate.OneOf(sorted(COUNTRIES), error=COUNTRY_ERROR),
                            metadata={"description": "ISO 3166-1 alpha-2 country where the "
                                                     "claim is used."})
    period_start = CalendarDate(metadata={"description": "First day of the emissions period "
                                                         "claimed."})
    period_end = CalendarDate(metadata={"description": "Last day of the emissions period "
                                                       "claimed."})

    def _details_rules(self, data: dict[str, Any], needed: bool) -> None:
        errors: dict[str, list[str]] = {}
        if needed:
            for name in ("beneficiary", "country", "period_start", "period_end"):
                if name not in data:
                    errors[name] = ["Missing data for required field."]
        start, end = data.get("period_start"), data.get("period_end")
        if start is not None and end is not None and start > end:
            errors["period_end"] = ["The period ends before it starts."]
        if data.get("purpose") == "other" and not data.get("note"):
            errors["note"] = ["A purpose of 'other' needs a note describing it."]
        if errors:
            raise ValidationError(errors)


class OrderCreateSchema(_RetirementDetails):
    """An order from a quote, or from lines. ``action`` says what happens once paid: ``retire``
    the credits at once in the beneficiary's name (the retirement details are then required)
    or ``hold`` them in the organisation's account, to retire later."""

    quote = Text(validate=validate.Length(min=1, max=40))
    lines = fields.List(fields.Nested(OrderLineCreateSchema),
                        validate=validate.Length(min=1, max=MAX_LINES))
    action = fields.String(load_default="retire", validate=validate.OneOf(ACTIONS))
    payment_method = fields.String(
        load_default="saved", validate=validate.OneOf(PAYMENT_METHODS),
        metadata={"description": "'saved': charge the organisation's saved payment method "
                                 "now; 'invoice': the order waits as awaiting_payment until "
                                 "the invoice is paid; 'account' (kilograms only): retired "
                                 "at once and billed on the organisation's monthly statement."})

    @validates_schema
    def _rules(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("quote" in data) == ("lines" in data):
            raise ValidationError("Give either a quote or lines.", "quote")
        if data.get("action") == "hold" and any(
                line.get("grams") for line in data.get("lines") or []):
            raise ValidationError("Kilograms are retired at once in the beneficiary's name; "
                                  "they cannot be held.", "action")
        if data.get("payment_method") == "account" and "lines" in data and not all(
                line.get("grams") for line in data["lines"]):
            raise ValidationError("Billing on the monthly statement is for kilograms: pay for "
                                  "tonnes with the saved method or an invoice.",
                                  "payment_method")
        self._details_rules(data, needed=data.get("action") == "retire")


class RetirementCreateSchema(_RetirementDetails, _Sized):
    """Retire held credits (``quantity`` or a ``mass`` in t): oldest vintage first, optionally
    only of one project or batch. Or retire a ``mass`` in g or kg of a ``project``'s kilogram
    pool: bought, retired at once, and billed on the organisation's monthly statement."""

    quantity = WholeNumber(**_quantity)
    mass = fields.Nested(MassCreateSchema)
    project = WholeNumber(validate=validate.Range(min=1, max=MAX_ID))
    batch = WholeNumber(validate=validate.Range(min=1, max=MAX_ID))

    @validates_schema
    def _rules(self, data: dict[str, Any], **kwargs: Any) -> None:
        self._one_size(data)
        mass = data.get("mass")
        if mass and mass["unit"] != "t" and "project" not in data:
            raise ValidationError("Kilograms are bought from a project's pool: give project.",
                                  "project")
        self._details_rules(data, needed=True)


# -- outputs --------------------------------------------------------------------------------


def _out(field: fields.Field[Any], description: str | None = None) -> fields.Field[Any]:
    field.required = True
    if description:
        field.metadata = {**field.metadata, "description": description}
    return field


class ProjectRefSchema(Base):
    id = _out(fields.Integer())
    ref = _out(fields.String(), "Registry and project id, e.g. VCS-944.")
    name = _out(fields.String())


class LabelsSchema(Base):
    ccp = _out(fields.Boolean(), "The ICVCM's Core Carbon Principles label.")
    ccp_since = _out(fields.String(allow_none=True), "The date the label was granted (YYYY-MM-DD).")
    article6_authorized = _out(fields.Boolean(),
                               "Authorised by the host country under Article 6 of the Paris "
                               "Agreement.")
    ca_declaration = _out(fields.String(validate=validate.OneOf(CA_DECLARATIONS)),
                          "Corresponding adjustment declaration (CAD Trust's values).")
    ca_status = _out(fields.String(validate=validate.OneOf(CA_STATUSES)))
    corsia = _out(fields.String(allow_none=True, validate=validate.OneOf(CORSIA_PHASES)),
                  "The CORSIA phase the credits are eligible for.")
    mitigation = _out(fields.String(allow_none=True, validate=validate.OneOf(MITIGATION_TYPES)),
                      "Avoided emissions or removals.")


class VintageSchema(Base):
    batch = _out(fields.Integer(), "The batch (one issuance of one vintage).")
    label = _out(fields.String())
    first_year = _out(fields.Integer())
    last_year = _out(fields.Integer())
    available_tonnes = _out(fields.Integer(), "Tonnes for sale now.")
    labels = _out(fields.Nested(LabelsSchema), "The batch's quality labels now.")


class ProjectSchema(Base):
    id = _out(fields.Integer())
    object = _out(fields.String(validate=validate.OneOf(["project"])))
    slug = _out(fields.String())
    ref = _out(fields.String())
    registry = _out(fields.String())
    registry_id = _out(fields.String())
    name = _out(fields.String())
    country = _out(fields.String())
    project_type = _out(fields.String())
    standards = _out(fields.List(fields.String()))
    methodology = _out(fields.String())
    sector = _out(fields.String())
    headline = _out(fields.String())
    summary = _out(fields.String())
    developer = _out(fields.String())
    location = _out(fields.String())
    price_minor = _out(fields.Integer(), "Price per tonne in minor units of the currency.")
    currency = _out(fields.String(validate=validate.OneOf(CURRENCIES)))
    sdgs = _out(fields.List(fields.Integer()))
    co_benefits = _out(fields.List(fields.String()))
    available_tonnes = _out(fields.Integer())
    vintages = _out(fields.List(fields.Nested(VintageSchema)))
    url = _out(fields.String(), "The project's page in the shop.")


class AllocationSchema(Base):
    batch = _out(fields.Integer())
    vintage = _out(fields.String())
    quantity = _out(fields.Integer())


class OrderLineSchema(Base):
    project = _out(fields.Nested(ProjectRefSchema))
    batch = _out(fields.Integer(allow_none=True), "The batch asked for (null: oldest first).")
    quantity = _out(fields.Integer(), "Whole tonnes (0 for a line in grams).")
    grams = _out(fields.Integer(allow_none=True),
                 "Grams from the project's kilogram pool (null for a line in tonnes). Priced "
                 "per tonne, rounded half up to the minor unit.")
    unit_price_minor = _out(fields.Integer())
    amount_minor = _out(fields.Integer())
    allocation = _out(fields.List(fields.Nested(AllocationSchema)),
                      "The batches the tonnes are reserved from.")


class QuoteSchema(Base):
    id = _out(fields.String())
    object = _out(fields.String(validate=validate.OneOf(["quote"])))
    livemode = _out(fields.Boolean())
    status = _out(fields.String(validate=validate.OneOf(QUOTE_STATES)))
    currency = _out(fields.String(validate=validate.OneOf(CURRENCIES)))
    total_minor = _out(fields.Integer())
    lines = _out(fields.List(fields.Nested(OrderLineSchema)))
    created_at = _out(fields.DateTime())
    expires_at = _out(fields.DateTime(), "The tonnes are held until then.")
    order = _out(fields.String(allow_none=True), "The order placed from this quote.")


class RetirementLinksSchema(Base):
    json = _out(fields.String(), "The certificate as JSON (public, no key needed).")
    page = _out(fields.String())
    pdf = _out(fields.String())


class OrderRetirementSchema(Base):
    id = _out(fields.String())
    quantity = _out(fields.Integer())
    grams = _out(fields.Integer(allow_none=True),
                 "The mass retired in grams (tonnes x 1,000,000; for kilograms quantity is 0).")
    certificate = _out(fields.Nested(RetirementLinksSchema, allow_none=True))


class OrderSchema(Base):
    id = _out(fields.String(), "The order's reference.")
    object = _out(fields.String(validate=validate.OneOf(["order"])))
    livemode = _out(fields.Boolean())
    status = _out(fields.String(validate=validate.OneOf(ORDER_STATES)))
    action = _out(fields.String(validate=validate.OneOf(ACTIONS)))
    payment_method = _out(fields.String(validate=validate.OneOf(PAID_BY)),
                          "'checkout' for an order placed in the shop.")
    currency = _out(fields.String(validate=validate.OneOf(CURRENCIES)))
    total_minor = _out(fields.Integer())
    quantity = _out(fields.Integer(), "Whole tonnes ordered.")
    grams = _out(fields.Integer(), "Grams ordered from kilogram pools.")
    lines = _out(fields.List(fields.Nested(OrderLineSchema)))
    beneficiary = _out(fields.String(allow_none=True))
    purpose = _out(fields.String(allow_none=True))
    note = _out(fields.String(allow_none=True))
    country = _out(fields.String(allow_none=True))
    period_start = _out(fields.Date(allow_none=True))
    period_end = _out(fields.Date(allow_none=True))
    quote = _out(fields.String(allow_none=True))
    created_at = _out(fields.DateTime())
    expires_at = _out(fields.DateTime(), "An unpaid order's tonnes are held until then.")
    paid_at = _out(fields.DateTime(allow_none=True))
    fulfilled_at = _out(fields.DateTime(allow_none=True))
    failure = _out(fields.String(allow_none=True))
    retirements = _out(fields.List(fields.Nested(OrderRetirementSchema)))


class HoldingSchema(Base):
    object = _out(fields.String(validate=validate.OneOf(["holding"])))
    livemode = _out(fields.Boolean())
    project = _out(fields.Nested(ProjectRefSchema))
    batch = _out(fields.Integer())
    vintage = _out(fields.String())
    vintage_start = _out(fields.Date())
    vintage_end = _out(fields.Date())
    quantity = _out(fields.Integer())
    serials = _out(fields.List(fields.String()),
                   "Serial strings of the blocks held (empty in test mode: simulated credits "
                   "have none).")


class BatchLabelsSchema(LabelsSchema):
    batch = _out(fields.Integer())
    vintage = _out(fields.String())


class OriginRecordSchema(Base):
    seq = _out(fields.Integer(), "The ledger entry recording it.")
    registry = _out(fields.String())
    action = _out(fields.String(validate=validate.OneOf(["retired", "cancelled"])))
    first = _out(fields.Integer())
    last = _out(fields.Integer())
    quantity = _out(fields.Integer())
    date = _out(fields.String())
    beneficiary = _out(fields.String(), "As the origin registry shows it.")
    account = _out(fields.String())
    reason = _out(fields.String())
    reference = _out(fields.String())
    url = _out(fields.String(allow_none=True))
    ours = _out(fields.Boolean(), "Retired at origin into this marketplace's name.")


class OriginSchema(Base):
    status = _out(fields.String(validate=validate.OneOf(
        ["covered", "pending", "conflict", "issued_here"])),
        "covered: its serials are retired at the origin registry into this marketplace's "
        "name; pending: not yet; conflict: the origin retired some of them for someone else; "
        "issued_here: this ledger is the credits' registry of record.")
    label = _out(fields.String())
    registry = _out(fields.String(allow_none=True))
    covered_tonnes = _out(fields.Integer())
    pending_tonnes = _out(fields.Integer())
    conflict_tonnes = _out(fields.Integer())
    records = _out(fields.List(fields.Nested(OriginRecordSchema)))


class PoolDrawSchema(Base):
    seq = _out(fields.Integer(), "The pool retirement's ledger entry.")
    grams = _out(fields.Integer(), "Grams of it allocated here.")
    serials = _out(fields.List(fields.String()), "The serials retired into the pool by it.")


class RetirementSchema(Base):
    id = _out(fields.String(), "ret_<seq> for tonnes, kg_<hex> for kilograms.")
    object = _out(fields.String(validate=validate.OneOf(["retirement"])))
    livemode = _out(fields.Boolean())
    status = _out(fields.String(validate=validate.OneOf(
        ["recorded", "pending", "awaiting_payment", "failed"])),
        "recorded: in the ledger; pending: kilograms paid for, being written into the ledger "
        "(seconds); awaiting_payment: kilograms of an order not paid yet; failed: the order "
        "lapsed or its payment failed, nothing was retired.")
    seq = _out(fields.Integer(allow_none=True), "The ledger entry (for kilograms, the allocate "
                                                "entry holding it; null while pending).")
    index = _out(fields.Integer(allow_none=True), "For kilograms: its position in that entry.")
    hash = _out(fields.String(allow_none=True))
    quantity = _out(fields.Integer(), "Whole tonnes (0 for kilograms).")
    grams = _out(fields.Integer(), "The mass retired, in grams (tonnes × 1,000,000).")
    pool = _out(fields.List(fields.Nested(PoolDrawSchema), allow_none=True),
                "For kilograms: the pool retirements the grams come from (null for tonnes).")
    beneficiary = _out(fields.String(allow_none=True), "Null once erased on request.")
    purpose = _out(fields.String())
    note = _out(fields.String())
    country = _out(fields.String())
    period_start = _out(fields.Date())
    period_end = _out(fields.Date())
    projects = _out(fields.List(fields.Nested(ProjectRefSchema)))
    allocation = _out(fields.List(fields.Nested(AllocationSchema)))
    serials = _out(fields.List(fields.String()))
    created_at = _out(fields.DateTime())
    certificate = _out(fields.Nested(RetirementLinksSchema, allow_none=True),
                       "Null in test mode: nothing was recorded in the ledger.")
    origin = _out(fields.Nested(OriginSchema, allow_none=True),
                  "What the origin registry shows for these serials (null in test mode).")
    labels = _out(fields.List(fields.Nested(BatchLabelsSchema)),
                  "The quality labels of each batch in force when it was retired.")


def _page(item: type[Schema], name: str) -> type[Schema]:
    return type(name, (Base,), {
        "__doc__": "One page of a list; ask for the next with ?cursor=next_cursor.",
        "object": _out(fields.String(validate=validate.OneOf(["list"]))),
        "data": _out(fields.List(fields.Nested(item))),
        "has_more": _out(fields.Boolean()),
        "next_cursor": _out(fields.String(allow_none=True)),
    })


ProjectListSchema = _page(ProjectSchema, "ProjectListSchema")
OrderListSchema = _page(OrderSchema, "OrderListSchema")
HoldingListSchema = _page(HoldingSchema, "HoldingListSchema")
RetirementListSchema = _page(RetirementSchema, "RetirementListSchema")


# -- public registry ------------------------------------------------------------------------


class TotalsSchema(Base):
    issued = _out(fields.Integer())
    tradable = _out(fields.Integer())
    retired = _out(fields.Integer())
    cancelled = _out(fields.Integer())
    buffer = _out(fields.Integer())


class ProjectTotalsSchema(TotalsSchema):
    project = _out(fields.Nested(ProjectRefSchema))
    country = _out(fields.String())


class RegistryTotalsSchema(Base):
    object = _out(fields.String(validate=validate.OneOf(["registry_totals"])))
    totals = _out(fields.Nested(TotalsSchema))
    projects = _out(fields.List(fields.Nested(ProjectTotalsSchema)))
    journal_size = _out(fields.Integer())


class CertificateBeneficiarySchema(Base):
    name = _out(fields.String())
    salt = _out(fields.String())


class CertificateProjectSchema(Base):
    ref = _out(fields.String())
    name = _out(fields.String())
    country = _out(fields.String())


class CertificatePeriodSchema(Base):
    start = _out(fields.String(allow_none=True))
    end = _out(fields.String(allow_none=True))


class CertificateBlockSchema(Base):
    batch = _out(fields.Integer())
    first = _out(fields.Integer())
    last = _out(fields.Integer())
    quantity = _out(fields.Integer())
    serial = _out(fields.String())


class CertificatePurposeSchema(Base):
    code = _out(fields.String())
    label = _out(fields.String())


class CertificateLinksSchema(Base):
    page = fields.String()
    json = fields.String()
    pdf = fields.String()


class OriginEvidenceSchema(Base):
    seq = _out(fields.Integer())
    hash = _out(fields.String())
    record = _out(fields.String(), "The origin entry's canonical JSON, exactly as hashed.")
    leaf_index = _out(fields.Integer())
    inclusion_proof = _out(fields.List(fields.String()),
                           "Its inclusion proof in the certificate's checkpoint.")


class CertificateOriginSchema(OriginSchema):
    evidence = _out(fields.List(fields.Nested(OriginEvidenceSchema)),
                    "The origin entries the status rests on, provable offline.")


class CertificateSchema(Base):
    """A retirement certificate, exactly as the registry serves it: ``python -m ledger.verify
    --certificate FILE --key KEY`` checks it offline with the operator's public key."""

    format = _out(fields.String())
    seq = _out(fields.Integer())
    hash = _out(fields.String())
    record = _out(fields.String(), "The journal entry's canonical JSON, exactly as hashed.")
    kind = _out(fields.String())
    beneficiary = _out(fields.Nested(CertificateBeneficiarySchema, allow_none=True))
    withheld = _out(fields.Boolean())
    quantity = _out(fields.Integer())
    project = _out(fields.Nested(CertificateProjectSchema, allow_none=True))
    vintage = _out(fields.Nested(CertificatePeriodSchema, allow_none=True))
    batch = _out(fields.Integer(allow_none=True))
    batches = _out(fields.List(fields.Integer()))
    serials = _out(fields.List(fields.String()))
    blocks = _out(fields.List(fields.Nested(CertificateBlockSchema)))
    purpose = _out(fields.Nested(CertificatePurposeSchema))
    note = _out(fields.String())
    country = _out(fields.String(allow_none=True))
    period = _out(fields.Nested(CertificatePeriodSchema))
    date = _out(fields.String(allow_none=True))
    recorded_at = _out(fields.String(allow_none=True))
    checkpoint = _out(fields.String(), "A signed checkpoint (C2SP signed note) covering it.")
    tree_size = _out(fields.Integer())
    leaf_index = _out(fields.Integer())
    inclusion_proof = _out(fields.List(fields.String()))
    root = _out(fields.String())
    origin = _out(fields.Nested(CertificateOriginSchema),
                  "What the origin registry shows for these serials.")
    labels = _out(fields.List(fields.Nested(BatchLabelsSchema)),
                  "The quality labels of each batch in force when it was retired.")
    links = _out(fields.Nested(CertificateLinksSchema))


class SerialStepSchema(Base):
    seq = _out(fields.Integer())
    kind = _out(fields.String())
    hash = _out(fields.String())
    at = _out(fields.DateTime())
    holder = _out(fields.String(), "The kind of account that held it (never who).")
    state = _out(fields.String())
    first = _out(fields.Integer())
    last = _out(fields.Integer())
    serial = _out(fields.String())
    spent_by = _out(fields.Integer(allow_none=True))


class SerialTimelineSchema(Base):
    batch = _out(fields.Integer())
    project = _out(fields.Nested(ProjectRefSchema))
    vintage = _out(fields.String())
    number = _out(fields.Integer())
    state = _out(fields.String(), "Where the serial is now.")
    steps = _out(fields.List(fields.Nested(SerialStepSchema)))


class SerialLookupSchema(Base):
    object = _out(fields.String(validate=validate.OneOf(["serial_lookup"])))
    query = _out(fields.String())
    timelines = _out(fields.List(fields.Nested(SerialTimelineSchema)))


class CheckpointSchema(Base):
    object = _out(fields.String(validate=validate.OneOf(["checkpoint"])))
    size = _out(fields.Integer())
    root = _out(fields.String(), "Base64 Merkle root (RFC 9162).")
    note = _out(fields.String(), "The C2SP signed note.")
    key = _out(fields.String(), "The verifier key that signed it.")
    created_at = _out(fields.DateTime())


class InclusionProofSchema(Base):
    seq = _out(fields.Integer())
    leaf_index = _out(fields.Integer())
    tree_size = _out(fields.Integer())
    hash = _out(fields.String())
    leaf_hash = _out(fields.String())
    proof = _out(fields.List(fields.String()))
    root = _out(fields.String())
    checkpoint = _out(fields.String(allow_none=True))


class ConsistencyProofSchema(Base):
    first = _out(fields.Integer(data_key="from"))
    second = _out(fields.Integer(data_key="to"))
    proof = _out(fields.List(fields.String()))
    from_root = _out(fields.String())
    to_root = _out(fields.String())


class ProblemErrorSchema(Base):
    pointer = fields.String(metadata={"description": "JSON Pointer into the request body."})
    parameter = fields.String(metadata={"description": "The query parameter."})
    header = fields.String(metadata={"description": "The request header."})
    detail = _out(fields.String())


class ProblemSchema(Base):
    """RFC 9457 problem details."""

    type = _out(fields.String())
    title = _out(fields.String())
    status = _out(fields.Integer())
    detail = fields.String()
    instance = fields.String()
    errors = fields.List(fields.Nested(ProblemErrorSchema))


class EventSchema(Base):
    """An outbound webhook event, POSTed to your endpoint with a ``Selva-Signature`` header."""

    id = _out(fields.String())
    object = _out(fields.String(validate=validate.OneOf(["event"])))
    type = _out(fields.String(validate=validate.OneOf(["order.fulfilled",
                                                       "retirement.created"])))
    created = _out(fields.Integer(), "Unix time.")
    livemode = _out(fields.Boolean())
    data = _out(fields.Dict(), "{'object': the order or the retirement}.")


# One instance of each, made once.
page_query = PageQuerySchema()
project_query = ProjectQuerySchema()
order_query = OrderQuerySchema()
holding_query = HoldingQuerySchema()
inclusion_query = InclusionQuerySchema()
consistency_query = ConsistencyQuerySchema()
checkpoint_query = CheckpointQuerySchema()
quote_create = QuoteCreateSchema()
order_create = OrderCreateSchema()
retirement_create = RetirementCreateSchema()
project_out = ProjectSchema()
project_list_out = ProjectListSchema()
quote_out = QuoteSchema()
order_out = OrderSchema()
order_list_out = OrderListSchema()
holding_list_out = HoldingListSchema()
retirement_out = RetirementSchema()
retirement_list_out = RetirementListSchema()
registry_totals_out = RegistryTotalsSchema()
certificate_out = CertificateSchema()
serial_lookup_out = SerialLookupSchema()
checkpoint_out = CheckpointSchema()
inclusion_out = InclusionProofSchema()
consistency_out = ConsistencyProofSchema()
