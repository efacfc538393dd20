"""Organisation admins' pages for the API: keys (created, shown once, revoked) and webhook
endpoints (registered, secret shown once, disabled, deliveries logged).

Only an admin of the organisation sees these pages: a non-member gets a 404 (others'
organisations are not even acknowledged), a member who is not an admin a 403.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import RadioField, SelectMultipleField, StringField, URLField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from ledger.schema import utcnow

from .. import access
from ..database import db
from ..models import Organisation
from ..models.api import (
    EVENT_TYPES,
    ApiKey,
    SavedPaymentMethod,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from . import keys, webhooks

bp = Blueprint("api_admin", __name__, url_prefix="/organisations")

MODES = [SelectChoice("test", "Test mode (sk_test_…): the test ledger, nothing real happens"),
         SelectChoice("live", "Live mode (sk_live_…): real orders and retirements")]


class ApiKeyForm(FlaskForm):
    name = StringField("Name (what the key is for)", validators=[DataRequired(), Length(max=100)])
    mode = RadioField("Mode", choices=MODES, default="test")
    scope = RadioField("Permissions", choices=[
        SelectChoice("write", "Read and write: quotes, orders, retirements"),
        SelectChoice("read", "Read only")], default="write")


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class WebhookForm(FlaskForm):
    url = URLField("Endpoint URL", validators=[DataRequired(), Length(max=500)])
    mode = RadioField("Events of", choices=[SelectChoice("live", "Live mode"),
                                            SelectChoice("test", "Test mode")], default="live")
    events = MultiCheckboxField("Events", choices=[SelectChoice(e, e) for e in EVENT_TYPES],
                                default=list(EVENT_TYPES), validators=[DataRequired()])
    description = StringField("Description", validators=[Optional(), Length(max=200)])


class ConfirmForm(FlaskForm):
    pass


def _admin_of(org_id: int) -> Organisation:
    """The organisation, if the current user is one of its admins (404 for non-members)."""
    return access.membership(db.session, current_user.id, org_id, "admin").organisation


def _no_store(page: str, status: int = 200) -> Response:
    response = current_app.make_response((page, status))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/<int:org_id>/api-keys", methods=["GET", "POST"])
@login_required
def api_keys(org_id: int) -> Response:
    form = ApiKeyForm()
    new_secret: str | None = None
    with db.session.begin():
        org = _admin_of(org_id)
    if form.validate_on_submit() and form.mode.data == "live" and \
            current_user.email_confirmed_at is None:
        form.mode.errors = ["Confirm your email address first (the link we sent it, or "
                            "'Send the link again' on your account page): live keys move "
                            "real credits and money."]
    elif form.validate_on_submit():
        with db.session.begin():
            org = _admin_of(org_id)
            key, new_secret = keys.create_key(
                db.session, organisation=org, user=current_user._get_current_object(),
                name=form.name.data, livemode=form.mode.data == "live", scope=form.scope.data)
        form = ApiKeyForm(formdata=None)
    with db.session.begin():
        org = _admin_of(org_id)
        listed = list(db.session.scalars(select(ApiKey).where(ApiKey.organisation_id == org_id)
                                         .order_by(ApiKey.revoked_at.is_not(None),
                                                   ApiKey.id.desc())))
        saved = db.session.scalars(select(SavedPaymentMethod).where(
            SavedPaymentMethod.organisation_id == org_id)).one_or_none()
        page = render_template("api/keys.html", org=org, form=form, keys=listed,
                               new_secret=new_secret, confirm=ConfirmForm(), saved=saved,
                               gateway=current_app.config["PAYMENT_GATEWAY"])
    return _no_store(page, 201 if new_secret else 200)


@bp.post("/<int:org_id>/api-keys/<int:key_id>/revoke")
@login_required
def revoke_key(org_id: int, key_id: int) -> Response:
    form = ConfirmForm()
    with db.session.begin():
        _admin_of(org_id)
        if not form.validate_on_submit():
            abort(400)
        key = db.session.get(ApiKey, key_id)
        if key is None or key.organisation_id != org_id:
            abort(404)
        if keys.revoke_key(key, current_user._get_current_object()):
            flash(f"Key {key.prefix}… is revoked: requests with it now get a 401.", "success")
        else:
            flash("That key was already revoked.", "info")
    return redirect(url_for("api_admin.api_keys", org_id=org_id))


def _deliveries(org_id: int) -> dict[int, list[dict[str, Any]]]:
    rows = db.session.execute(
        select(WebhookDelivery, WebhookEvent)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookEvent.organisation_id == org_id)
        .order_by(WebhookDelivery.id.desc()).limit(50)
    ).all()
    found: dict[int, list[dict[str, Any]]] = {}
    for delivery, event in rows:
        attempts = list(db.session.scalars(select(WebhookAttempt).where(
            WebhookAttempt.delivery_id == delivery.id).order_by(WebhookAttempt.id)))
        found.setdefault(delivery.endpoint_id, []).append(
            {"delivery": delivery, "event": event, "attempts": attempts})
    return found


@bp.route("/<int:org_id>/webhooks", methods=["GET", "POST"])
@login_required
def webhook_endpoints(org_id: int) -> Response:
    form = WebhookForm()
    new_secret: str | None = None
    with db.session.begin():
        _admin_of(org_id)
    if form.validate_on_submit():
        try:
            url = webhooks.check_url(form.url.data, private_ok=webhooks.allow_private())
        except webhooks.EndpointURLError as exc:
            form.url.errors.append(str(exc))
        else:
            with db.session.begin():
                _admin_of(org_id)
                new_secret = webhooks.new_secret()
                db.session.add(WebhookEndpoint(
                    organisation_id=org_id, url=url, secret=new_secret,
                    livemode=form.mode.data == "live", events=",".join(form.events.data),
                    description=form.description.data or "", created_by=current_user.id))
            form = WebhookForm(formdata=None)
    with db.session.begin():
        org = _admin_of(org_id)
        endpoints = list(db.session.scalars(select(WebhookEndpoint).where(
            WebhookEndpoint.organisation_id == org_id).order_by(
            WebhookEndpoint.disabled_at.is_not(None), WebhookEndpoint.id.desc())))
        page = render_template("api/webhooks.html", org=org, form=form, endpoints=endpoints,
                               deliveries=_deliveries(org_id), new_secret=new_secret,
                               confirm=ConfirmForm(), header=webhooks.SIGNATURE_HEADER)
    return _no_store(page, 201 if new_secret else 200)


@bp.post("/<int:org_id>/webhooks/<int:endpoint_id>/disable")
@login_required
def disable_endpoint(org_id: int, endpoint_id: int) -> Response:
    form = ConfirmForm()
    with db.session.begin():
        _admin_of(org_id)
        if not form.validate_on_submit():
            abort(400)
        endpoint = db.session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None or endpoint.organisation_id != org_id:
            abort(404)
        if endpoint.disabled_at is None:
            endpoint.disabled_at = utcnow()
            flash("The endpoint is disabled: no more events will be sent to it.", "success")
    return redirect(url_for("api_admin.webhook_endpoints", org_id=org_id))
