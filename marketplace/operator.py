"""The operator's back office: register projects, issue batches into the inventory, list and
price them.

Every route needs a logged-in operator; auditors may open the pages (stock, orders, refunds
due) and change nothing (``marketplace.access``). Anyone else logged in gets 403; anonymous
visitors go to the login page. Each form's work runs in one transaction, so a refused operation writes
nothing, and a ledger error comes back as a message beside the form, never a 500.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response
from wtforms import (
    DateField,
    SelectChoice,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    AnyOf,
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from ledger import operations, queries
from ledger.errors import LedgerError, UnknownProjectError
from ledger.operations import VerraFields
from ledger.queries import BatchTotals
from ledger.rules import MAX_SERIAL
from ledger.schema import Account, Batch, Project

from . import access, checkout, demo, formatting, inputs
from .catalogue import for_sale_now
from .database import db
from .models import Listing, Order, User
from .models.listings import CURRENCIES

bp = Blueprint("operator", __name__, url_prefix="/operator")

MAX_INT = 2_147_483_647
"""The largest value the listings table's integer columns hold."""
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


REFUND_STATES = ("paid", "refund_pending")
"""Orders whose money must go back: paid but not fulfillable (refund due), or a refund the
payment provider has not made yet."""


@bp.before_request
def staff_only() -> Response | None:
    """Operators do everything here; auditors see the pages and change nothing."""
    return access.require_staff()


# -- forms -------------------------------------------------------------------------------------


class ProjectForm(FlaskForm):
    registry = StringField("Registry", default="VCS",
                           validators=[DataRequired(), Length(max=10)],
                           description="The registry's short name, e.g. VCS, or SLV for a "
                                       "project issued here.")
    registry_id = StringField("Project id in that registry",
                              validators=[DataRequired(), Length(max=20)],
                              description="Letters and digits, e.g. 944.")
    name = StringField("Project name", validators=[DataRequired(), Length(max=200)])
    country = StringField("Country", default="PE",
                          validators=[DataRequired(), Length(min=2, max=2)],
                          description="Two-letter ISO code, e.g. PE for Peru.")
    standards = StringField("Standards", validators=[Optional(), Length(max=200)],
                            description="Comma-separated, e.g. VCS, CCB.")
    methodology = StringField("Methodology", validators=[Optional(), Length(max=200)])
    sector = StringField("Sector", validators=[Optional(), Length(max=100)])


class IssueForm(FlaskForm):
    project_id = SelectField("Project", coerce=int, validators=[InputRequired()])
    scheme = RadioField("Serial numbers", default="native", choices=[
        SelectChoice("native", "Issued here: the ledger allocates the next serial numbers"),
        SelectChoice("verra", "Mirrors a Verra issuance: give its serial range and fields"),
    ])
    vintage_start = DateField("Vintage from", validators=[DataRequired()])
    vintage_end = DateField("Vintage to", validators=[DataRequired()])
    issued_on = DateField("Issuance date", validators=[Optional()],
                          description="Leave empty for today.")
    quantity = IntegerField("Quantity (tonnes)", validators=[Optional()],
                            description="Native batches: required. Verra batches: optional "
                                        "check against the range.")
    first = IntegerField("First serial", validators=[Optional(), NumberRange(1, MAX_SERIAL)])
    last = IntegerField("Last serial", validators=[Optional(), NumberRange(1, MAX_SERIAL)])
    verra_issuance = IntegerField("Verra issuance number",
                                  validators=[Optional(), NumberRange(1, MAX_SERIAL)])
    verra_code = IntegerField("Verra code", validators=[Optional(), NumberRange(0, 99_999)],
                              description="The number after VCU in the serial, e.g. 263.")
    verra_scope = IntegerField("Sectoral scope", validators=[Optional(), NumberRange(0, 99)],
                               description="e.g. 14 for forestry and land use.")
    verra_flag = IntegerField("Additional certification flag", default=0,
                              validators=[Optional(), NumberRange(0, 1)],
                              description="The last field of the serial: 1 if labelled "
                                          "(e.g. CCB), otherwise 0.")
    origin = StringField("Origin reference", validators=[Optional(), Length(max=200)],
                         description="Unique, so nothing is issued twice. Verra batches "
                                     "default to VCS:<project id>:<issuance>.")
    buffer_quantity = IntegerField("Buffer pool share (tonnes)", default=0,
                                   validators=[Optional(), NumberRange(0, MAX_SERIAL)],
                                   description="Set aside for the non-permanence buffer; "
                                               "0 for none.")

    def validate(self, extra_validators: Any = None) -> bool:
        ok = bool(super().validate(extra_validators))
        if self.vintage_start.data and self.vintage_end.data \
                and self.vintage_start.data > self.vintage_end.data:
            self.vintage_end.errors.append("The vintage ends before it starts.")
            ok = False
        if self.scheme.data == "native":
            if self.quantity.data is None and not self.quantity.errors:
                self.quantity.errors.append("Give the number of tonnes to issue.")
                ok = False
            for f in (self.first, self.last):
                if f.data is not None:
                    f.errors.append("A native batch is allocated its serials: leave this empty.")
                    ok = False
        else:
            for f in (self.first, self.last, self.verra_issuance, self.verra_code,
                      self.verra_scope):
                if f.data is None and not f.errors:
                    f.errors.append("Required for a Verra batch.")
                    ok = False
        return ok


def _price(form: FlaskForm, field: StringField) -> None:
    try:
        form.price_minor = formatting.parse_price(field.data, "price")
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def _coordinate(limit: int, what: str) -> Any:
    def check(form: FlaskForm, field: StringField) -> None:
        if not (field.data or "").strip():
            field.data = None
            return
        try:
            value = formatting.parse_decimal(field.data, what)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if not -limit <= value <= limit:
            raise ValidationError(f"The {what} is between -{limit} and {limit}.")
        if value != value.quantize(Decimal("0.000001")):
            raise ValidationError(f"The {what} can have at most 6 decimal places.")
        field.data = value
    return check


def _sdgs(form: FlaskForm, field: StringField) -> None:
    numbers: list[int] = []
    for part in (field.data or "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        number = inputs.plain_int(part, 1, 17)
        if number is None:
            raise ValidationError("List goal numbers from 1 to 17, separated by commas.")
        if number not in numbers:
            numbers.append(number)
    field.data = ",".join(str(n) for n in sorted(numbers))


class ListingForm(FlaskForm):
    project_id = SelectField("Project", coerce=int, validators=[InputRequired()])
    slug = StringField("Web address (slug)", validators=[
        DataRequired(), Length(max=80),
        Regexp(SLUG, message="Lower-case letters, digits and single hyphens, e.g. alto-mayo."),
    ], description="The project page will be /projects/<slug>.")
    status = SelectField("Status", default="unlisted", choices=[
        SelectChoice("unlisted", "Unlisted: hidden from the shop"),
        SelectChoice("listed", "Listed: on sale"),
    ])
    price = StringField("Price per tonne", validators=[DataRequired(), _price],
                        render_kw={"inputmode": "decimal"},
                        description="In major units, e.g. 18.50.")
    currency = SelectField("Currency", default="USD", choices=list(CURRENCIES))
    headline = StringField("Headline", validators=[Optional(), Length(max=200)])
    summary = TextAreaField("Summary", validators=[Optional(), Length(max=1000)],
                            description="Two or three sentences for the catalogue card.")
    story = TextAreaField("Story", validators=[Optional(), Length(max=20_000)],
                          description="The project in its own words; a blank line starts a "
                                      "new paragraph.")
    location = StringField("Location", validators=[Optional(), Length(max=200)])
    latitude = StringField("Latitude", validators=[_coordinate(90, "latitude")],
                           render_kw={"inputmode": "decimal"},
                           description="Decimal degrees, south negative, e.g. -5.75.")
    longitude = StringField("Longitude", validators=[_coordinate(180, "longitude")],
                            render_kw={"inputmode": "decimal"},
                            description="Decimal degrees, west negative, e.g. -77.3.")
    developer = StringField("Developer", validators=[Optional(), Length(max=200)])
    project_type = StringField("Project type", validators=[Optional(), Length(max=60)],
                               description="e.g. REDD+, or Agroforestry + REDD+.")
    area_hectares = IntegerField("Area (hectares)",
                                 validators=[Optional(), NumberRange(1, MAX_INT)])
    annual_reduction_t = IntegerField("Reductions per year (t CO2e)",
                                      validators=[Optional(), NumberRange(0, MAX_INT)])
    total_reduction_t = IntegerField("Total reductions (t CO2e)",
                                     validators=[Optional(), NumberRange(0, MAX_INT)])
    validator = StringField("Validator", validators=[Optional(), Length(max=200)])
    co_benefits = TextAreaField("Co-benefits", validators=[Optional(), Length(max=5000)],
                                description="One per line.")
    sdgs = StringField("Sustainable Development Goals", validators=[Length(max=100), _sdgs],
                       description="Goal numbers, comma-separated, e.g. 1,5,8,13,15.")

    FACTS = ("headline", "summary", "story", "location", "developer", "project_type",
             "validator", "co_benefits", "sdgs")
    NUMBERS = ("area_hectares", "annual_reduction_t", "total_reduction_t")

    def apply(self, listing: Listing) -> None:
        listing.slug = self.slug.data.strip()
        listing.status = self.status.data
        listing.price_minor = int(self.price_minor)
        listing.currency = self.currency.data
        for name in self.FACTS:
            setattr(listing, name, (getattr(self, name).data or "").strip())
        for name in self.NUMBERS:
            setattr(listing, name, getattr(self, name).data)
        listing.latitude = self.latitude.data
        listing.longitude = self.longitude.data


class StatusForm(FlaskForm):
    status = HiddenField(validators=[AnyOf(["listed", "unlisted"])])


# -- helpers -----------------------------------------------------------------------------------


def buffer_account(session: Session) -> Account:
    """The buffer pool (``demo.BUFFER``), opened on first use."""
    found = session.scalars(select(Account).where(Account.name == demo.BUFFER)).one_or_none()
    return found or operations.open_account(session, demo.BUFFER, "buffer")


def _integrity_message(error: IntegrityError, fallback: str) -> str:
    text = str(error.orig or "").lower()
    if "slug" in text:
        return "Another listing already uses that web address (slug)."
    if "project_id" in text:
        return "That project already has a listing: edit it instead."
    if "registry" in text:
        return "A project with that registry and id is already registered."
    return fallback


def _project_choices(session: Session, *, without_listing: bool = False) -> list[SelectChoice]:
    stmt = select(Project).order_by(Project.name)
    if without_listing:
        stmt = stmt.where(~Project.id.in_(select(Listing.project_id)))
    return [_choice(p) for p in session.scalars(stmt)]


def _plain(value: Decimal) -> str:
    """A coordinate as typed: ``-5.750000`` shows as ``-5.75``."""
    return f"{Decimal(value).normalize():f}"


def _choice(project: Project) -> SelectChoice:
    return SelectChoice(str(project.id), f"{project.name} ({project.ref})")


# -- views -------------------------------------------------------------------------------------


@bp.get("/")
def dashboard() -> str:
    session = db.session
    with session.begin():
        projects = queries.projects(session)
        listings = {listing.project_id: listing for listing in session.scalars(select(Listing))}
        batches = list(session.scalars(
            select(Batch).order_by(Batch.project_id, Batch.vintage_start, Batch.id)))
        totals = queries.batch_totals(session)
        for_sale = for_sale_now(session)
        orders = session.execute(
            select(Order, User.email).join(User, User.id == Order.user_id)
            .order_by(Order.created_at.desc(), Order.id.desc()).limit(25)
        ).all()
        refunds = session.execute(
            select(Order, User.email).join(User, User.id == Order.user_id)
            .where(Order.status.in_(REFUND_STATES))
            .order_by(Order.created_at, Order.id).limit(200)
        ).all()
        return render_template(
            "operator/dashboard.html", projects=projects, listings=listings, batches=batches,
            totals=totals, empty=BatchTotals(), for_sale=for_sale, orders=orders,
            refunds=refunds, can_act=access.is_operator(current_user),
        )


@bp.route("/projects/new", methods=["GET", "POST"])
def new_project() -> str | Response:
    form = ProjectForm()
    error = None
    if form.validate_on_submit():
        session = db.session
        try:
            with session.begin():
                project = operations.register_project(
                    session, registry=form.registry.data, registry_id=form.registry_id.data,
                    name=form.name.data, country=form.country.data.strip().upper(),
                    standards=(form.standards.data or "").strip(),
                    methodology=(form.methodology.data or "").strip(),
                    sector=(form.sector.data or "").strip(),
                )
                ref, name = project.ref, project.name
        except LedgerError as exc:
            error = str(exc)
        except IntegrityError as exc:
            error = _integrity_message(exc, "The project could not be registered.")
        else:
            flash(f"Registered {name} ({ref}).", "success")
            return redirect(url_for("operator.dashboard"))
    return render_template("operator/project_form.html", form=form, error=error)


@bp.route("/batches/new", methods=["GET", "POST"])
def issue_batch() -> str | Response:
    session = db.session
    form = IssueForm()
    with session.begin():
        form.project_id.choices = _project_choices(session)
    error = None
    if form.validate_on_submit():
        try:
            with session.begin():
                receipt = _issue(session, form)
        except LedgerError as exc:
            error = str(exc)
        except IntegrityError as exc:
            error = _integrity_message(exc, "The batch was refused by the database: "
                                            "nothing was issued.")
        else:
            issued = sum(b.quantity for b in receipt.created)
            flash(f"Issued batch #{receipt.batch_id}: {issued:,} t (ledger entry "
                  f"#{receipt.seq}).", "success")
            return redirect(url_for("operator.dashboard"))
    return render_template("operator/issue_form.html", form=form, error=error)


def _issue(session: Session, form: IssueForm) -> operations.Receipt:
    project = session.get(Project, form.project_id.data)
    if project is None:
        raise UnknownProjectError("choose a registered project")
    verra = None
    origin = (form.origin.data or "").strip() or None
    if form.scheme.data == "verra":
        verra = VerraFields(issuance=form.verra_issuance.data, code=form.verra_code.data,
                            scope=form.verra_scope.data, flag=form.verra_flag.data or 0)
        origin = origin or f"VCS:{project.registry_id}:{verra.issuance}"
    buffer_quantity = form.buffer_quantity.data or 0
    return operations.issue(
        session,
        project_id=project.id,
        account_id=checkout.inventory_account(session).id,
        vintage_start=form.vintage_start.data,
        vintage_end=form.vintage_end.data,
        quantity=form.quantity.data,
        first=form.first.data if verra else None,
        last=form.last.data if verra else None,
        origin=origin,
        verra=verra,
        buffer_account_id=buffer_account(session).id if buffer_quantity else None,
        buffer_quantity=buffer_quantity,
        issued_on=form.issued_on.data,
    )


@bp.route("/listings/new", methods=["GET", "POST"])
def new_listing() -> str | Response:
    session = db.session
    form = ListingForm()
    with session.begin():
        form.project_id.choices = _project_choices(session, without_listing=True)
    chosen = inputs.plain_int(request.args.get("project"))
    if not form.is_submitted() and chosen is not None:
        form.project_id.data = chosen
    error = None
    if form.validate_on_submit():
        try:
            with session.begin():
                if session.get(Project, form.project_id.data) is None:
                    raise UnknownProjectError("choose a registered project")
                listing = Listing(project_id=form.project_id.data)
                form.apply(listing)
                session.add(listing)
                session.flush()
                slug = listing.slug
        except LedgerError as exc:
            error = str(exc)
        except IntegrityError as exc:
            error = _integrity_message(exc, "The listing could not be saved.")
        else:
            flash(f"Saved the listing /projects/{slug}.", "success")
            return redirect(url_for("operator.dashboard"))
    return render_template("operator/listing_form.html", form=form, error=error, listing=None)


@bp.route("/listings/<int:listing_id>/edit", methods=["GET", "POST"])
def edit_listing(listing_id: int) -> str | Response:
    session = db.session
    with session.begin():
        listing = session.get(Listing, listing_id)
        if listing is None:
            abort(404)
        project = listing.project
        form = ListingForm(obj=listing)
        form.project_id.choices = [_choice(project)]
        if not form.is_submitted():
            form.project_id.data = project.id
            form.price.data = formatting.major(listing.price_minor)
            form.latitude.data = "" if listing.latitude is None else _plain(listing.latitude)
            form.longitude.data = "" if listing.longitude is None else _plain(listing.longitude)
    error = None
    if form.validate_on_submit():
        try:
            with session.begin():
                listing = session.get(Listing, listing_id)
                if listing is None:
                    abort(404)
                form.apply(listing)
                session.flush()
                slug = listing.slug
        except IntegrityError as exc:
            error = _integrity_message(exc, "The listing could not be saved.")
        else:
            flash(f"Saved the listing /projects/{slug}.", "success")
            return redirect(url_for("operator.dashboard"))
    return render_template("operator/listing_form.html", form=form, error=error,
                           listing=listing, project=project)


@bp.post("/listings/<int:listing_id>/status")
def set_status(listing_id: int) -> Response:
    form = StatusForm()
    if not form.validate_on_submit():
        flash("That change of status was not understood; nothing changed.", "error")
        return redirect(url_for("operator.dashboard"))
    session = db.session
    with session.begin():
        listing = session.get(Listing, listing_id)
        if listing is None:
            abort(404)
        listing.status = form.status.data
        slug, status = listing.slug, listing.status
    word = "now on sale" if status == "listed" else "hidden from the shop"
    flash(f"/projects/{slug} is {word}.", "success")
    return redirect(url_for("operator.dashboard"))


@bp.post("/orders/<reference>/refund")
def refund_order(reference: str) -> Response:
    """Refund an order: held credits return to inventory through the ledger and the order waits
    as ``refund_pending`` while the payment provider is asked (``marketplace.refunds``). A
    retired order cannot be refunded; the message says why."""
    from . import refunds

    try:
        outcome = refunds.refund_order(reference)
    except checkout.RefundError as exc:
        flash(f"Order {reference} was not refunded. {exc}", "error")
    except refunds.RefundPending as exc:
        flash(f"Order {reference} is waiting for its refund: the payment provider did not make "
              f"it ({exc}). Its credits are back in the inventory; try the refund again.",
              "error")
    else:
        flash(f"Order {reference} {outcome}.", "success")
    return redirect(url_for("operator.dashboard"))
