"""Organisations: a company account with members. Credits bought for it are held by its own
ledger account; its admins add and remove members and retire its credits."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from werkzeug.wrappers import Response
from wtforms import EmailField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length

from ledger import queries

from . import access
from .accounts import account_id_of
from .database import db
from .models import Membership, Organisation, User

bp = Blueprint("orgs", __name__, url_prefix="/organisations")


class OrganisationForm(FlaskForm):
    name = StringField("Organisation name", validators=[DataRequired(), Length(max=160)])


class MemberForm(FlaskForm):
    email = EmailField("Member's email (they need an account)", validators=[DataRequired(), Email()])
    role = SelectField("Role", choices=[SelectChoice("member", "Member"), SelectChoice("admin", "Admin")])


class RemoveForm(FlaskForm):
    pass


def _membership(org_id: int, role: str | None = None) -> Membership:
    """The current user's membership of the organisation (``marketplace.access``)."""
    return access.membership(db.session, current_user.id, org_id, role)


def _holdings(org: Organisation) -> list[queries.Holding]:
    account = account_id_of(db.session, org)
    return queries.holdings(db.session, account) if account is not None else []


def create_organisation(name: str, admin: User) -> Organisation:
    """A new organisation, ``admin`` its first admin. Its ledger account (one in each mode's
    ledger, ``org:<id>``) opens when it first holds credits (``accounts.account_of``)."""
    session = db.session
    org = Organisation(name=name.strip())
    session.add(org)
    session.flush()
    session.add(Membership(user_id=admin.id, organisation_id=org.id, role="admin"))
    session.flush()
    return org


@bp.route("", methods=["GET", "POST"])
@login_required
def index() -> str | Response:
    form = OrganisationForm()
    if form.validate_on_submit():
        with db.session.begin():
            org = create_organisation(form.name.data, current_user._get_current_object())
        flash(f"{org.name} is set up; you are its admin.", "success")
        return redirect(url_for("orgs.show", org_id=org.id))
    with db.session.begin():
        memberships = list(current_user.memberships)
        return render_template("orgs/index.html", form=form, memberships=memberships)


@bp.route("/<int:org_id>", methods=["GET", "POST"])
@login_required
def show(org_id: int) -> str | Response:
    form = MemberForm()
    with db.session.begin():
        _membership(org_id)
    if form.validate_on_submit():
        with db.session.begin():
            _membership(org_id, "admin")
            user = db.session.scalars(
                select(User).where(User.email == form.email.data.strip().lower())
            ).one_or_none()
            if user is None:
                org = db.session.get(Organisation, org_id)
                assert org is not None
                invite(db.session, org, form.email.data.strip().lower(), form.role.data,
                       current_user._get_current_object())
                flash(f"No account uses {form.email.data.strip()} yet: we emailed them an "
                      f"invitation to join {org.name} (the link works for a week).", "success")
            elif db.session.scalar(select(Membership.id).where(
                    Membership.organisation_id == org_id, Membership.user_id == user.id)):
                form.email.errors.append("They are already a member.")
            else:
                db.session.add(Membership(user_id=user.id, organisation_id=org_id,
                                          role=form.role.data))
                flash(f"{user.name} added as {form.role.data}.", "success")
        if not form.errors:
            return redirect(url_for("orgs.show", org_id=org_id))
    with db.session.begin():
        mine = _membership(org_id)
        org = mine.organisation
        return render_template("orgs/show.html", org=org, mine=mine, form=form,
                               remove_form=RemoveForm(),
                               holdings=_holdings(org))


INVITATION_DAYS = 7


def _invitations() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(current_app.config["SECRET_KEY"]), salt="org-invitation")


def invite(session: Any, org: Organisation, email: str, role: str, by: User) -> None:
    """Email an invitation to join ``org`` as ``role``: a signed link for that address, valid
    for a week, queued in the caller's transaction."""
    from . import mail
    from .urls import site_link

    token = _invitations().dumps({"o": org.id, "e": email, "r": role})
    link = site_link("orgs.join", token=token)
    mail.enqueue(session, email, f"{by.name} invites you to {org.name} on Selva", "\n".join([
        "Hello,", "",
        f"{by.name} invites you to join {org.name} on Selva as {'an admin' if role == 'admin' else 'a member'}:",
        "buy and retire carbon credits for the organisation, and see what it holds.", "",
        f"Accept within {INVITATION_DAYS} days (sign up first with this address if you have "
        "no account):", "", f"  {link}", "", "Selva"]) + "\n", "invitation")


@bp.get("/join/<token>")
def join(token: str) -> Response | tuple[str, int]:
    """An invitation's link: the invited address's account joins the organisation (once; a
    second visit changes nothing). Not logged in: log in or sign up first, then back here."""
    try:
        data = _invitations().loads(token[:600], max_age=INVITATION_DAYS * 86400)
    except (BadSignature, SignatureExpired):
        return render_template("orgs/invitation_invalid.html"), 400
    if not (isinstance(data, dict) and isinstance(data.get("o"), int)
            and isinstance(data.get("e"), str) and data.get("r") in ("admin", "member")):
        return render_template("orgs/invitation_invalid.html"), 400
    if not current_user.is_authenticated:
        flash("Log in, or sign up with the address the invitation was sent to, to accept it.",
              "info")
        return redirect(url_for("auth.login", next=url_for("orgs.join", token=token)))
    with db.session.begin():
        org = db.session.get(Organisation, data["o"])
        if org is None:
            return render_template("orgs/invitation_invalid.html"), 400
        if current_user.email != data["e"]:
            flash(f"This invitation is for {data['e']}: log in with that address to accept it.",
                  "error")
            return redirect(url_for("orgs.index"))
        exists = db.session.scalar(select(Membership.id).where(
            Membership.organisation_id == org.id, Membership.user_id == current_user.id))
        if exists is None:
            db.session.add(Membership(user_id=current_user.id, organisation_id=org.id,
                                      role=data["r"]))
            flash(f"Welcome to {org.name}.", "success")
        org_id = org.id
    return redirect(url_for("orgs.show", org_id=org_id))


@bp.post("/<int:org_id>/members/<int:member_id>/remove")
@login_required
def remove(org_id: int, member_id: int) -> Response:
    form = RemoveForm()
    if not form.validate_on_submit():
        abort(400)
    with db.session.begin():
        _membership(org_id, "admin")
        target = db.session.get(Membership, member_id)
        if target is None or target.organisation_id != org_id:
            abort(404)
        admins = db.session.scalar(select(func.count(Membership.id)).where(
            Membership.organisation_id == org_id, Membership.role == "admin")) or 0
        if target.role == "admin" and admins <= 1:
            flash("An organisation needs at least one admin: add another admin first.", "error")
        else:
            db.session.delete(target)
            flash("Member removed.", "info")
    return redirect(url_for("orgs.show", org_id=org_id))
