"""The operator's pages for the registry of record: the reconciliation with the origin registry
(upload of Verra's export, what is covered, pending and in conflict), the "retire at origin"
worklist, a form for one origin retirement typed in by hand, and each batch's labels.

Operators may change things; auditors see the same pages read-only. Each change runs in one
transaction: a bad file or a refused record writes nothing and comes back as a message.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    url_for,
)
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import (
    BooleanField,
    DateField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from ledger import origin as ledger_origin
from ledger.errors import LedgerError
from ledger.records import CA_DECLARATIONS, CA_STATUSES, CORSIA_PHASES, MITIGATION_TYPES, Labels
from ledger.rules import MAX_SERIAL
from ledger.schema import Batch

from . import access, origin
from .database import db

bp = Blueprint("origin_ops", __name__, url_prefix="/operator")

MAX_ID = 2**31 - 1


@bp.before_request
def staff_only() -> Response | None:
    """Operators do everything here; auditors see the reconciliation and change nothing."""
    return access.require_staff()


class UploadForm(FlaskForm):
    registry = SelectField("Registry", choices=[SelectChoice("verra", "Verra (VCU export, CSV)")],
                           default="verra")
    file = FileField("Export file", validators=[FileRequired("Choose the CSV file to import.")],
                     description="The CSV of VCUs that Verra's public registry exports for "
                                 "the mirrored projects. Importing a file twice adds nothing.")


class RecordForm(FlaskForm):
    batch_id = SelectField("Batch", coerce=int, validators=[InputRequired()])
    action = RadioField("What the origin did", default="retired",
                        choices=[SelectChoice("retired", "Retired"),
                                 SelectChoice("cancelled", "Cancelled")])
    first = IntegerField("First serial", validators=[InputRequired(), NumberRange(1, MAX_SERIAL)])
    last = IntegerField("Last serial", validators=[InputRequired(), NumberRange(1, MAX_SERIAL)])
    date = DateField("Date at the origin", validators=[DataRequired()])
    beneficiary = StringField("Beneficiary, as the origin shows it",
                              validators=[Optional(), Length(max=500)])
    account = StringField("Account holder at the origin", validators=[Optional(), Length(max=200)])
    reason = StringField("Reason", validators=[Optional(), Length(max=500)])
    reference = StringField("Reference", validators=[DataRequired(), Length(max=500)],
                            description="A link to the record, or its transaction id.")


class LabelsForm(FlaskForm):
    ccp = BooleanField("ICVCM Core Carbon Principles label")
    ccp_since = DateField("CCP label since", validators=[Optional()])
    article6_authorized = BooleanField("Authorised under Article 6 by the host country")
    ca_declaration = SelectField("Corresponding adjustment", default="Unknown",
                                 choices=[SelectChoice(v, v) for v in CA_DECLARATIONS])
    ca_status = SelectField("Adjustment status", default="Not Started", choices=[SelectChoice(v, v) for v in CA_STATUSES])
    corsia = SelectField("CORSIA eligibility", default="", choices=[SelectChoice("", "Not eligible")] + [
        SelectChoice(p, p.replace("_", " ").capitalize()) for p in CORSIA_PHASES])
    mitigation = SelectField("Removal or avoidance", default="", choices=[SelectChoice("", "Unknown")] + [
        SelectChoice(m, m.capitalize()) for m in MITIGATION_TYPES])
    effective = DateField("In force from", validators=[DataRequired()])
    note = StringField("Why it changed", validators=[Optional(), Length(max=500)])


def _batch_choices() -> list[SelectChoice]:
    return [SelectChoice(b.id, origin.batch_label(b)) for b in db.session.scalars(
        select(Batch).where(Batch.scheme == "verra").order_by(Batch.id))]


@bp.get("/origin")
def reconciliation() -> str:
    session = db.session
    with session.begin():
        return _render()


def _render(**extra: Any) -> str:
    session = db.session
    report = ledger_origin.reconcile(session)
    lines, conflict = origin.summary_lines(session)
    return render_template(
        "operator/origin.html", report=report, work=ledger_origin.worklist(session),
        conflict_lines=[line for line in lines if line.startswith("conflict:")],
        has_conflict=conflict, upload=extra.pop("upload", None) or UploadForm(),
        beneficiary=origin.beneficiary_text(current_app.config), label=origin.batch_label,
        record_url=origin.record_url, **extra)


@bp.post("/origin/import")
def import_file() -> str | Response:
    form = UploadForm()
    session = db.session
    error = None
    if not form.validate_on_submit():
        error = "; ".join(e for errors in form.errors.values() for e in errors)
    else:
        data = form.file.data.read(origin.MAX_FILE_BYTES + 1)
        name = form.file.data.filename or "the file"
        try:
            with session.begin():
                result = origin.import_verra(session, data,
                                             origin.origin_names(current_app.config))
        except origin.OriginFileError as exc:
            error = f"{name}: {exc}"
        except LedgerError as exc:
            error = f"{name}: {exc}"
        else:
            flash(f"Imported {name}: {origin.import_summary(result)}.",
                  "warning" if result.frozen else "success")
            return redirect(url_for("origin_ops.reconciliation"))
    with session.begin():
        return _render(error=error, upload=form)


@bp.route("/origin/record", methods=["GET", "POST"])
def record() -> str | Response:
    session = db.session
    form = RecordForm()
    with session.begin():
        form.batch_id.choices = _batch_choices()
    error = None
    if form.validate_on_submit():
        if form.first.data > form.last.data:
            form.last.errors = [*form.last.errors, "The last serial comes before the first."]
        else:
            try:
                with session.begin():
                    result = origin.record_manual(
                        session, batch_id=form.batch_id.data, registry="verra",
                        action=form.action.data, first=form.first.data, last=form.last.data,
                        date=form.date.data, beneficiary=(form.beneficiary.data or "").strip(),
                        account=(form.account.data or "").strip(),
                        reason=(form.reason.data or "").strip(),
                        reference=(form.reference.data or "").strip(),
                        names=origin.origin_names(current_app.config))
            except LedgerError as exc:
                error = str(exc)
            else:
                piece = result.plan.pieces[0]
                flash(f"Recorded the origin {piece.action} of {piece.quantity:,} t (ledger entry "
                      f"#{result.recorded[0]}, {'ours' if piece.ours else 'under another name'});"
                      f" {result.frozen:,} t frozen.",
                      "success" if piece.ours else "warning")
                return redirect(url_for("origin_ops.reconciliation"))
    return render_template("operator/origin_record.html", form=form, error=error,
                           names=", ".join(origin.origin_names(current_app.config)))


@bp.route("/batches/<int:batch_id>/labels", methods=["GET", "POST"])
def labels(batch_id: int) -> str | Response:
    session = db.session
    if not 1 <= batch_id <= MAX_ID:
        abort(404)
    with session.begin():
        batch = session.get(Batch, batch_id)
        if batch is None:
            abort(404, description=f"There is no batch {batch_id}.")
        current = ledger_origin.labels_at(session, [batch_id])[batch_id]
        history = [(row, ledger_origin.labels_of(row))
                   for row in ledger_origin.label_history(session, batch_id)]
        title = origin.batch_label(batch)
    form = LabelsForm(data=None if _posted() else {
        **current.to_data(), "ccp_since": current.ccp_since, "corsia": current.corsia or "",
        "mitigation": current.mitigation or "", "effective": dt.date.today()})
    error = None
    if form.validate_on_submit():
        try:
            new = Labels(ccp=bool(form.ccp.data), ccp_since=form.ccp_since.data if form.ccp.data
                         else None, article6_authorized=bool(form.article6_authorized.data),
                         ca_declaration=form.ca_declaration.data, ca_status=form.ca_status.data,
                         corsia=form.corsia.data or None, mitigation=form.mitigation.data or None)
            if new == current:
                raise LedgerError("these are the labels the batch already has: nothing changed")
            with session.begin():
                receipt = ledger_origin.set_labels(session, batch_id=batch_id, labels=new,
                                                   effective=form.effective.data,
                                                   note=form.note.data or "")
        except LedgerError as exc:
            error = str(exc)
        else:
            flash(f"The labels of {title} changed (ledger entry #{receipt.seq}).", "success")
            return redirect(url_for("origin_ops.labels", batch_id=batch_id))
    return render_template("operator/labels_form.html", form=form, error=error, title=title,
                           batch_id=batch_id, history=history)


def _posted() -> bool:
    from flask import request

    return request.method == "POST"
