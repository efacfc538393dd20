"""Sign up, log in, log out, reset a forgotten password. Passwords are hashed (werkzeug's
scrypt); logins and reset requests are rate-limited per address; every form carries a CSRF
token.

A password reset link carries a token signed with the app's secret (itsdangerous), naming the
user and a fingerprint of the password hash it was made for: it expires after
``PASSWORD_RESET_SECONDS`` (an hour by default) and works once, since the reset changes the
hash. Asking for one answers the same whether or not the address has an account."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import hashlib

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length



from . import inputs
from .database import db
from .extensions import limiter, login_manager
from .models import User

bp = Blueprint("auth", __name__)


class SignupForm(FlaskForm):
    name = StringField("Your name", validators=[DataRequired(), Length(max=120)])
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(min=10, max=200)])
    confirm = PasswordField("Repeat the password",
                            validators=[DataRequired(), EqualTo("password", "The passwords differ.")])


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email()])
    password = PasswordField("Password", validators=[DataRequired()])


class ForgotForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)])


class ResetForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(min=10, max=200)])
    confirm = PasswordField("Repeat the new password",
                            validators=[DataRequired(), EqualTo("password", "The passwords differ.")])


CONFIRM_DAYS = 7


def _confirm_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(current_app.config["SECRET_KEY"]), salt="email-confirm")


def send_confirmation(session: Any, user: User) -> None:
    """Queue the link that confirms the user's address (valid for a week)."""
    from . import mail
    from .urls import site_link

    token = _confirm_serializer().dumps({"u": user.id, "e": user.email})
    link = site_link("auth.confirm_email", token=token)
    mail.enqueue(session, user.email, "Confirm your email address for Selva", "\n".join([
        f"Hello {user.name},", "",
        "Please confirm that this address is yours, within a week:", "", f"  {link}", "",
        "Until then you can buy and retire credits, and use test API keys; an organisation's",
        "live API keys need a confirmed address.", "",
        "If you did not sign up for Selva, ignore this message.", "", "Selva"]) + "\n",
        "confirm_email")


def _reset_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(current_app.config["SECRET_KEY"]), salt="password-reset")


def _fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def reset_token(user: User) -> str:
    return str(_reset_serializer().dumps({"u": user.id, "p": _fingerprint(user)}))


def user_for_token(token: str) -> User | None:
    """The user a reset token was made for, if it is genuine, unexpired and unused."""
    max_age = int(current_app.config.get("PASSWORD_RESET_SECONDS", 3600))
    try:
        data = _reset_serializer().loads(token, max_age=max_age)
    except (BadSignature, SignatureExpired):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("u"), int):
        return None
    user = db.session.get(User, data["u"])
    if user is None or data.get("p") != _fingerprint(user):
        return None  # the password changed since: the link was used
    return user


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    number = inputs.plain_int(user_id)
    return db.session.get(User, number) if number is not None else None


def _safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect would turn our login page into a phishing aid."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("catalogue.home")


def create_user(name: str, email: str, password: str, role: str = "customer", *,
                confirmed: bool = False) -> User:
    """Create a user, in the caller's transaction (their ledger account in each mode is
    opened the first time credits go to it: ``marketplace.accounts``). ``confirmed``: the
    address is vouched for (an operator made the account)."""
    from ledger.schema import utcnow

    session = db.session
    user = User(name=name.strip(), email=email.strip().lower(),
                password_hash=generate_password_hash(password), role=role,
                email_confirmed_at=utcnow() if confirmed else None)
    session.add(user)
    session.flush()
    return user


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit("10 per minute", methods=["POST"])
def signup() -> str | Response:
    form = SignupForm()
    if form.validate_on_submit():
        session = db.session
        email = form.email.data.strip().lower()
        try:
            with session.begin():
                if session.scalar(select(User.id).where(func.lower(User.email) == email)):
                    raise IntegrityError("duplicate", None, Exception("email"))
                user = create_user(form.name.data, email, form.password.data)
                send_confirmation(session, user)
        except IntegrityError:
            form.email.errors.append("An account with this email already exists. Log in instead?")
        else:
            login_user(user)
            flash(f"Welcome, {user.name}. Your account is ready.", "success")
            return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/signup.html", form=form)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute;50 per hour", methods=["POST"])
def login() -> str | Response:
    form = LoginForm()
    if form.validate_on_submit():
        session = db.session
        with session.begin():
            user = session.scalars(
                select(User).where(User.email == form.email.data.strip().lower())
            ).one_or_none()
            ok = user is not None and check_password_hash(user.password_hash, form.password.data)
        if ok and user is not None:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        form.password.errors.append("That email and password do not match an account.")
    return render_template("auth/login.html", form=form)


@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit("5 per minute;20 per hour", methods=["POST"])
def forgot_password() -> str | Response:
    """Ask for a reset link. The answer is the same whether or not an account exists, so the
    page cannot be used to find out who has one."""
    from . import mail
    from .urls import site_link

    form = ForgotForm()
    if form.validate_on_submit():
        session = db.session
        with session.begin():
            user = session.scalars(select(User).where(
                User.email == form.email.data.strip().lower())).one_or_none()
            if user is not None:
                link = site_link("auth.reset_password", token=reset_token(user))
                minutes = int(current_app.config.get("PASSWORD_RESET_SECONDS", 3600)) // 60
                mail.enqueue(session, user.email, "Reset your Selva password", "\n".join([
                    f"Hello {user.name},", "",
                    "Someone (we hope you) asked to reset the password of your Selva account.",
                    f"Choose a new one here within {minutes} minutes; the link works once:", "",
                    f"  {link}", "",
                    "If it was not you, ignore this message: your password stays as it is.", "",
                    "Selva"]) + "\n", "password_reset")
        flash("If an account uses that address, a link to reset its password is on its way.",
              "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/forgot.html", form=form)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
@limiter.limit("10 per minute", methods=["POST"])
def reset_password(token: str) -> str | Response | tuple[str, int]:
    if len(token) > 500:
        return render_template("auth/reset_invalid.html"), 400
    session = db.session
    with session.begin():
        user = user_for_token(token)
    if user is None:
        return render_template("auth/reset_invalid.html"), 400
    form = ResetForm()
    if form.validate_on_submit():
        with session.begin():
            fresh = user_for_token(token)  # checked again: two tabs, one link
            if fresh is None:
                return render_template("auth/reset_invalid.html"), 400
            fresh.password_hash = generate_password_hash(form.password.data)
        flash("Your password is changed: log in with the new one.", "success")
        return redirect(url_for("auth.login"))
    return render_template("auth/reset.html", form=form)


@bp.get("/account/confirm/<token>")
def confirm_email(token: str) -> Response | tuple[str, int]:
    """The link from the confirmation email: the address is the user's (idempotent)."""
    from ledger.schema import utcnow

    try:
        data = _confirm_serializer().loads(token[:500], max_age=CONFIRM_DAYS * 86400)
    except (BadSignature, SignatureExpired):
        return render_template("auth/confirm_invalid.html"), 400
    session = db.session
    with session.begin():
        user = session.get(User, data.get("u")) if isinstance(data, dict) and \
            isinstance(data.get("u"), int) else None
        if user is None or user.email != data.get("e"):
            return render_template("auth/confirm_invalid.html"), 400
        if user.email_confirmed_at is None:
            user.email_confirmed_at = utcnow()
    flash("Thank you: your email address is confirmed.", "success")
    return redirect(url_for("auth.account"))


@bp.post("/account/confirm")
@login_required
@limiter.limit("3 per minute;10 per hour")
def resend_confirmation() -> Response:
    session = db.session
    with session.begin():
        user = session.get(User, current_user.id)
        if user is not None and user.email_confirmed_at is None:
            send_confirmation(session, user)
    flash("A new confirmation link is on its way to your address.", "info")
    return redirect(url_for("auth.account"))


@bp.post("/logout")
@login_required
def logout() -> Response:
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("catalogue.home"))


@bp.get("/account")
@login_required
def account() -> str:
    return render_template("auth/account.html", user=current_user)
