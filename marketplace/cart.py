"""The cart (kept in the signed session cookie, priced from the database on every view) and
checkout: reserve, open the payment page, and let the webhook do the rest."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import DateField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from ledger.errors import LedgerError
from ledger.rules import MAX_ID, PURPOSES

from . import checkout, kilograms
from .checkout import CartLine, CheckoutDetails, CheckoutError
from .database import db
from .formatting import COUNTRY_CHOICES
from .models import Organisation
from .payments import gateway

bp = Blueprint("cart", __name__)
MAX_LINES = 20


def _cart() -> list[dict[str, Any]]:
    raw = session.get("cart", [])
    return raw if isinstance(raw, list) else []


def _save(lines: list[dict[str, Any]]) -> None:
    session["cart"] = lines
    session.modified = True


def cart_lines() -> list[CartLine]:
    lines = []
    for item in _cart():
        try:
            if item.get("grams"):
                lines.append(CartLine(int(item["listing"]), 0, None, int(item["grams"])))
                continue
            lines.append(CartLine(int(item["listing"]), int(item["quantity"]),
                                  int(item["batch"]) if item.get("batch") else None))
        except (KeyError, TypeError, ValueError):
            continue
    return lines


def _whole_number(value: str | None, limit: int) -> int | None:
    """A form's whole number in 1..limit, or None: ASCII digits only ('²'.isdigit() is True)."""
    text = (value or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        return None
    number = int(text)
    return number if 1 <= number <= limit else None


def _whole_tonnes(value: str | None) -> int | None:
    return _whole_number(value, checkout.MAX_TONNES_PER_LINE)


def _add_grams(listing: int | None, back: str) -> Response:
    """Add an exact mass, in grams, of a project's kilogram pool to the cart."""
    grams = _whole_number(request.form.get("grams"), kilograms.MAX_GRAMS_PER_LINE)
    if listing is None:
        flash("That project is not on sale.", "error")
        return redirect(back)
    if grams is None:
        flash("Enter a whole number of grams, from 1 g to "
              f"{kilograms.format_mass(kilograms.MAX_GRAMS_PER_LINE)}.", "error")
        return redirect(back)
    with db.session.begin():
        try:
            checkout.price_lines(db.session, [CartLine(listing, 0, None, grams)])
        except CheckoutError as exc:
            flash(str(exc), "error")
            return redirect(back)
    lines = _cart()
    for item in lines:
        if item.get("listing") == listing and item.get("grams"):
            item["grams"] = min(int(item["grams"]) + grams, kilograms.MAX_GRAMS_PER_LINE)
            break
    else:
        if len(lines) >= MAX_LINES:
            flash("Your cart is full.", "error")
            return redirect(back)
        lines.append({"listing": listing, "batch": None, "quantity": 0, "grams": grams})
    _save(lines)
    flash(f"Added {kilograms.format_mass(grams)} to your cart.", "success")
    return redirect(url_for("cart.view"))


@bp.post("/cart/add")
def add() -> Response:
    back = request.referrer or url_for("cart.view")
    listing = _whole_number(request.form.get("listing_id"), MAX_ID)
    if "grams" in request.form:
        return _add_grams(listing, back)
    batch = _whole_number(request.form.get("batch_id"), MAX_ID)
    listing_id = str(listing) if listing else ""
    batch_id = str(batch) if batch else ""
    quantity = _whole_tonnes(request.form.get("quantity"))
    if listing is None or (request.form.get("batch_id", "").strip() and batch is None):
        flash("That project or vintage is not on sale.", "error")
        return redirect(back)
    if quantity is None:
        flash(f"Enter a whole number of tonnes, from 1 to {checkout.MAX_TONNES_PER_LINE:,}.", "error")
        return redirect(back)
    with db.session.begin():
        try:
            checkout.price_lines(db.session, [CartLine(int(listing_id), quantity,
                                                       int(batch_id) if batch_id else None)])
        except CheckoutError as exc:
            flash(str(exc), "error")
            return redirect(back)
    lines = _cart()
    for item in lines:
        if item.get("listing") == int(listing_id) and not item.get("grams") and \
                item.get("batch") == (int(batch_id) if batch_id else None):
            item["quantity"] = min(int(item["quantity"]) + quantity, checkout.MAX_TONNES_PER_LINE)
            break
    else:
        if len(lines) >= MAX_LINES:
            flash("Your cart is full.", "error")
            return redirect(back)
        lines.append({"listing": int(listing_id), "batch": int(batch_id) if batch_id else None,
                      "quantity": quantity})
    _save(lines)
    flash(f"Added {quantity:,} t to your cart.", "success")
    return redirect(url_for("cart.view"))


@bp.post("/cart/update")
def update() -> Response:
    lines = _cart()
    index = request.form.get("index", "")
    quantity = _whole_tonnes(request.form.get("quantity"))
    if not (index.isascii() and index.isdigit()) or int(index) >= len(lines):
        flash("That line is no longer in your cart.", "error")
    elif quantity is None:
        flash("Enter a whole number of tonnes, at least 1.", "error")
    elif lines[int(index)].get("grams"):
        flash("A line in kilograms keeps its exact mass: remove it to change it.", "error")
    else:
        lines[int(index)]["quantity"] = quantity
        _save(lines)
    return redirect(url_for("cart.view"))


@bp.post("/cart/remove")
def remove() -> Response:
    lines = _cart()
    index = request.form.get("index", "")
    if index.isascii() and index.isdigit() and int(index) < len(lines):
        del lines[int(index)]
        _save(lines)
    return redirect(url_for("cart.view"))


@bp.get("/cart")
def view() -> str:
    with db.session.begin():
        priced, problem = [], None
        if cart_lines():
            try:
                priced = checkout.price_lines(db.session, cart_lines())
            except CheckoutError as exc:
                problem = str(exc)
        total = sum(p.amount_minor for p in priced)
        currency = priced[0].listing.currency if priced else "USD"
        return render_template("checkout/cart.html", priced=priced, problem=problem,
                               total=total, currency=currency)


class CheckoutForm(FlaskForm):
    buy_for = SelectField("Buy for", choices=[])
    beneficiary = StringField("Beneficiary (the name the retirement is made in)",
                              validators=[DataRequired(), Length(max=200)])
    purpose = SelectField("Purpose", choices=[SelectChoice(k, v) for k, v in PURPOSES.items()])
    note = TextAreaField("Note (optional; required for 'Other')", validators=[Optional(), Length(max=500)])
    country = SelectField("Country where the claim is used", choices=COUNTRY_CHOICES)
    period_start = DateField("Emissions period from", validators=[DataRequired()])
    period_end = DateField("to", validators=[DataRequired()])
    action = RadioField("When paid", choices=[SelectChoice("retire", "Retire the credits now, in the beneficiary's name"),
                                              SelectChoice("hold", "Hold them in the account, to retire later")],
                        default="retire")


def _organisations() -> list[Organisation]:
    return [m.organisation for m in current_user.memberships]


@bp.route("/checkout", methods=["GET", "POST"])
@login_required
def checkout_page() -> str | Response:
    if not cart_lines():
        flash("Your cart is empty.", "info")
        return redirect(url_for("catalogue.index"))
    form = CheckoutForm()
    with db.session.begin():
        orgs = _organisations()
        form.buy_for.choices = [SelectChoice("self", f"Myself ({current_user.name})")] + [
            SelectChoice(str(o.id), o.name) for o in orgs]
        if request.method == "GET":
            year = dt.date.today().year
            form.period_start.data = dt.date(year, 1, 1)
            form.period_end.data = dt.date(year, 12, 31)
            form.beneficiary.data = current_user.name
            form.country.data = "GB"
        priced = checkout.price_lines(db.session, cart_lines()) if cart_lines() else []
        total = sum(p.amount_minor for p in priced)
        currency = priced[0].listing.currency if priced else "USD"
    if form.validate_on_submit():
        organisation = None
        if form.buy_for.data != "self":
            organisation = next((o for o in orgs if str(o.id) == form.buy_for.data), None)
        details = CheckoutDetails(
            beneficiary=form.beneficiary.data, purpose=form.purpose.data,
            country=form.country.data, period_start=form.period_start.data,
            period_end=form.period_end.data, action=form.action.data, note=form.note.data or "",
        )
        pay = gateway()
        try:
            with db.session.begin():
                order = checkout.place_order(db.session, user=current_user._get_current_object(),
                                             lines=cart_lines(), details=details,
                                             gateway=pay.name, organisation=organisation)
        except (CheckoutError, LedgerError) as exc:
            form.form_errors.append(str(exc))
        else:
            # The reservation is committed; the provider is called outside any lock.
            try:
                hosted = pay.create_checkout(
                    order,
                    success_url=url_for("orders.success", reference=order.reference, _external=True),
                    cancel_url=url_for("cart.view", _external=True),
                    customer_email=current_user.email,
                )
            except Exception:
                with db.session.begin():
                    checkout.release(db.session, order.reference, "failed")
                current_app.logger.exception("could not open a checkout for %s", order.reference)
                form.form_errors.append("The payment page could not be opened. Nothing was "
                                        "charged; please try again in a moment.")
            else:
                with db.session.begin():
                    fresh = checkout.locked_order(db.session, order.reference)
                    assert fresh is not None
                    checkout.attach_checkout(fresh, hosted.id, hosted.url)
                _save([])
                return redirect(hosted.url)
    return render_template("checkout/checkout.html", form=form, priced=priced, total=total,
                           currency=currency)
