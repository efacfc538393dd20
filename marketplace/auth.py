"""Sign up, log in, log out. Passwords are hashed (werkzeug's scrypt); logins are rate-limited
per address; every form carries a CSRF token."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
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


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    number = inputs.plain_int(user_id)
    return db.session.get(User, number) if number is not None else None


def _safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect would turn our login page into a phishing aid."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("catalogue.home")


def create_user(name: str, email: str, password: str, role: str = "customer") -> User:
    """Create a user, in the caller's transaction (their ledger account in each mode is
    opened the first time credits go to it: ``marketplace.accounts``)."""
    session = db.session
    user = User(name=name.strip(), email=email.strip().lower(),
                password_hash=generate_password_hash(password), role=role)
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
