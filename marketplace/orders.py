"""A buyer's orders and the credits they hold; retiring held credits later."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import Select, select
from werkzeug.wrappers import Response
from wtforms import DateField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from ledger import operations, queries
from ledger.errors import LedgerError
from ledger.rules import PURPOSES
from ledger.schema import Batch, Block, Entry

from . import access, checkout, events
from .accounts import account_id_of
from .database import db
from .formatting import COUNTRY_CHOICES
from .models import Order, Organisation

bp = Blueprint("orders", __name__)


def _visible_orders() -> Select[Order]:
    """The user's and their organisations' orders."""
    return access.visible_orders(user_id=current_user.id)


def _order(reference: str) -> Order:
    """The order, if the current user may see it: theirs or their organisation's. Else 404."""
    order = db.session.scalars(_visible_orders().where(Order.reference == reference)).one_or_none()
    if order is None:
        abort(404)
    return order


@bp.get("/orders")
@login_required
def list_orders() -> str:
    with db.session.begin():
        orders = list(db.session.scalars(_visible_orders().order_by(Order.created_at.desc()).limit(200)))
        return render_template("orders/list.html", orders=orders)


def _retirements(order: Order) -> list[dict[str, object]]:
    """The retirement entries of an order, with the serial strings they retired."""
    found = []
    for reservation in order.reservations:
        if reservation.retire_seq is None:
            continue
        blocks = db.session.scalars(select(Block).where(Block.created_by == reservation.retire_seq,
                                                        Block.state == "retired"))
        entry = db.session.get(Entry, reservation.retire_seq)
        found.append({
            "seq": reservation.retire_seq,
            "hash": entry.hash if entry else "",
            "quantity": reservation.quantity,
            "serials": [queries.serial_string(b.batch, b.first_serial, b.last_serial) for b in blocks],
        })
    return found


def _kilograms(order: Order) -> list[dict[str, object]]:
    """The order's kilogram allocations once paid, with the pool retirements they draw on."""
    from . import kilograms

    found = []
    for allocation in kilograms.allocations_of(db.session, order.id):
        if allocation.state not in ("allocated", "sealed"):
            continue
        draws = []
        for seq, grams in allocation.draw_pairs:
            blocks = db.session.scalars(select(Block).where(Block.created_by == seq,
                                                            Block.state == "retired"))
            draws.append({"seq": seq, "grams": grams, "serials": [
                queries.serial_string(b.batch, b.first_serial, b.last_serial) for b in blocks]})
        found.append({"reference": allocation.reference, "grams": allocation.grams,
                      "sealed": allocation.state == "sealed", "seq": allocation.seq,
                      "idx": allocation.idx, "draws": draws})
    return found


@bp.get("/orders/<reference>")
@login_required
def detail(reference: str) -> str:
    with db.session.begin():
        order = _order(reference)
        return render_template("orders/detail.html", order=order, retirements=_retirements(order),
                               kilograms=_kilograms(order), purposes=PURPOSES)


@bp.get("/orders/<reference>/success")
@login_required
def success(reference: str) -> str:
    """Where the payment page sends the buyer back. Fulfilment happens on the webhook, not
    here: the page shows the order's state and refreshes until it is fulfilled."""
    with db.session.begin():
        order = _order(reference)
        return render_template("orders/success.html", order=order,
                               retirements=_retirements(order), kilograms=_kilograms(order))


@bp.post("/orders/<reference>/cancel")
@login_required
def cancel(reference: str) -> Response:
    with db.session.begin():
        order = _order(reference)
        if order.user_id != current_user.id:
            abort(404)
        checkout.cancel_by_buyer(db.session, order)
    flash("The order is cancelled and its tonnes are back on sale.", "info")
    return redirect(url_for("orders.detail", reference=reference))


class RetireForm(FlaskForm):
    holder = SelectField("Held by", choices=[])
    batch_id = SelectField("Project and vintage", choices=[])
    quantity = IntegerField("Tonnes to retire", validators=[DataRequired(), NumberRange(min=1, max=10**9)])
    beneficiary = StringField("Beneficiary", validators=[DataRequired(), Length(max=200)])
    purpose = SelectField("Purpose", choices=[SelectChoice(k, v) for k, v in PURPOSES.items()])
    note = TextAreaField("Note (optional; required for 'Other')", validators=[Optional(), Length(max=500)])
    country = SelectField("Country where the claim is used", choices=COUNTRY_CHOICES)
    period_start = DateField("Emissions period from", validators=[DataRequired()])
    period_end = DateField("to", validators=[DataRequired()])


def _holders() -> list[tuple[str, str, int, bool]]:
    """(key, label, ledger account id, may retire) for the user and each organisation."""
    holders = []
    mine = account_id_of(db.session, current_user)
    if mine is not None:
        holders.append(("self", f"You ({current_user.name})", mine, True))
    for membership in current_user.memberships:
        org: Organisation = membership.organisation
        account = account_id_of(db.session, org)
        if account is not None:
            holders.append((f"org:{org.id}", org.name, account, membership.role == "admin"))
    return holders


@bp.route("/holdings", methods=["GET", "POST"])
@login_required
def holdings() -> str | Response:
    form = RetireForm()
    with db.session.begin():
        holders = _holders()
        held = {key: queries.holdings(db.session, account) for key, _, account, _ in holders}
        form.holder.choices = [SelectChoice(key, label) for key, label, _, may in holders if may]
        form.batch_id.choices = [
            SelectChoice(str(h.batch_id), f"{h.project_name}, vintage {h.vintage_start.year}")
            for key, _, _, may in holders if may for h in held[key]
        ]
        if not form.is_submitted():
            year = dt.date.today().year
            form.period_start.data = dt.date(year, 1, 1)
            form.period_end.data = dt.date(year, 12, 31)
            form.country.data = "GB"
    if form.validate_on_submit():
        holder = next((h for h in holders if h[0] == form.holder.data and h[3]), None)
        if holder is None:
            abort(404)
        try:
            with db.session.begin():
                if db.session.get(Batch, int(form.batch_id.data)) is None:
                    raise LedgerError("That vintage is not one you hold.")
                receipt = operations.retire(
                    db.session, account_id=holder[2], quantity=form.quantity.data,
                    beneficiary=form.beneficiary.data, purpose=form.purpose.data,
                    note=form.note.data or "", country=form.country.data,
                    period_start=form.period_start.data, period_end=form.period_end.data,
                    batch_id=int(form.batch_id.data),
                )
                events.record(db.session, events.RetirementCreated(receipt.seq))
        except LedgerError as exc:
            form.form_errors.append(str(exc))
        else:
            flash(f"Retired {form.quantity.data:,} t for {form.beneficiary.data} "
                  f"(ledger entry {receipt.seq}).", "success")
            return redirect(url_for("orders.holdings"))
    return render_template("orders/holdings.html", form=form, holders=holders, held=held)
