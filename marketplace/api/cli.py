"""``flask --app wsgi api ...``: operators' commands for the API.

create-org and create-key bootstrap a company (the browser does the same for its admins),
deliver-webhooks runs the outbound webhook queue, invoice-paid records an invoice's payment,
save-payment-method records an organisation's Stripe customer and payment method, expire
releases lapsed quotes and unpaid orders.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time

import click
from flask import Flask
from sqlalchemy import select

from .. import checkout
from ..cli import Commands, clear_errors
from ..database import db
from ..models import Membership, Organisation, User
from ..models.api import ApiKey
from . import billing, keys, webhooks

api_cli = Commands("api", help="The API for companies: keys, webhooks, invoices.")


@api_cli.command("create-org")
@click.argument("name")
@click.option("--admin", "email", required=True, help="the admin's email (an account is "
                                                       "made if there is none)")
@click.option("--admin-name", default="", help="the admin's name, for a new account")
@clear_errors
def create_org(name: str, email: str, admin_name: str) -> None:
    """Create an organisation with its ledger account, EMAIL its admin."""
    from ..auth import create_user
    from ..orgs import create_organisation

    password = None
    with db.session.begin():
        user = db.session.scalars(select(User).where(User.email == email.strip().lower())
                                  ).one_or_none()
        if user is None:
            password = secrets.token_urlsafe(12)
            user = create_user(admin_name or email.split("@")[0], email, password,
                               confirmed=True)
        org = create_organisation(name, user)
    click.echo(f"organisation {org.id} {org.name!r}, admin {user.email}")
    if password:
        click.echo(f"new account {user.email}, password {password} (shown once)")


@api_cli.command("create-key")
@click.option("--org", "org_id", type=int, required=True, help="the organisation's id")
@click.option("--name", default="CLI key", show_default=True)
@click.option("--live", is_flag=True, help="a live key (default: a test-mode key)")
@click.option("--read-only", is_flag=True)
@click.option("--as", "email", help="the admin the key acts for (default: the first admin)")
@clear_errors
def create_key(org_id: int, name: str, live: bool, read_only: bool, email: str | None) -> None:
    """Create an API key and print it (it is shown only once)."""
    with db.session.begin():
        org = db.session.get(Organisation, org_id)
        if org is None:
            raise click.ClickException(f"no organisation {org_id}")
        stmt = (select(User).join(Membership, Membership.user_id == User.id)
                .where(Membership.organisation_id == org_id, Membership.role == "admin")
                .order_by(Membership.id))
        if email:
            stmt = stmt.where(User.email == email.strip().lower())
        user = db.session.scalars(stmt).first()
        if user is None:
            raise click.ClickException("no such admin of that organisation")
        key, secret = keys.create_key(db.session, organisation=org, user=user, name=name,
                                      livemode=live, scope="read" if read_only else "write")
    click.echo(secret)


@api_cli.command("revoke-key")
@click.argument("prefix")
@clear_errors
def revoke_key(prefix: str) -> None:
    """Revoke the key with this prefix (as listed on the organisation's API keys page)."""
    with db.session.begin():
        key = db.session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).one_or_none()
        if key is None:
            raise click.ClickException(f"no key {prefix}")
        user = db.session.get(User, key.created_by)
        assert user is not None
        done = keys.revoke_key(key, user)
    click.echo(f"key {prefix} {'revoked' if done else 'was already revoked'}")


@api_cli.command("deliver-webhooks")
@click.option("--watch", type=click.FloatRange(min=0.1), help="keep delivering, every N seconds")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
def deliver_webhooks(watch: float | None, limit: int) -> None:
    """Deliver the outbound webhooks that are due (once, or every --watch seconds)."""
    while True:
        for outcome in webhooks.deliver_due(limit=limit):
            verdict = "delivered" if outcome.delivered else (
                "gave up" if outcome.gave_up else "will retry")
            click.echo(f"{outcome.event} -> {outcome.url}: "
                       f"{outcome.status_code or outcome.error} ({verdict})")
        if watch is None:
            return
        time.sleep(watch)


@api_cli.command("seed-test-mode")
def seed_test_mode() -> None:
    """Give test mode something to sell: each live listing's project as a test project with
    native test batches (serials ``SLV-<batch>-TEST-...``). Twice adds nothing."""
    from ..database import ModeUnavailable
    from .. import testmode

    try:
        added = testmode.seed_from_live()
    except ModeUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"test mode: {added['projects']} projects, {added['batches']} batches of "
               f"{testmode.TONNES_PER_BATCH:,} t and {added['listings']} listings added")


@api_cli.command("invoice-paid")
@click.argument("reference")
@clear_errors
def invoice_paid(reference: str) -> None:
    """Record that the invoice of API order REFERENCE was paid: the order is fulfilled."""
    with db.session.begin():
        try:
            outcome = billing.record_invoice_payment(db.session, reference)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None
    from .. import kilograms

    kilograms.seal_due(db.session)
    click.echo(f"{reference}: {outcome}")


@api_cli.command("save-payment-method")
@click.option("--org", "org_id", type=int, required=True)
@click.option("--customer", required=True, help="the Stripe customer (cus_...)")
@click.option("--payment-method", required=True, help="the saved payment method (pm_...)")
@click.option("--label", default="", help="e.g. 'Visa ending 4242'")
@clear_errors
def save_payment_method(org_id: int, customer: str, payment_method: str, label: str) -> None:
    """Record the Stripe customer and payment method an organisation's API orders are charged
    to."""
    if not (customer.startswith("cus_") and payment_method.startswith("pm_")):
        raise click.ClickException("expected a customer cus_... and a payment method pm_...")
    with db.session.begin():
        if db.session.get(Organisation, org_id) is None:
            raise click.ClickException(f"no organisation {org_id}")
        billing.save_payment_method(db.session, org_id, customer, payment_method, label)
    click.echo(f"organisation {org_id} pays with {label or payment_method}")


@api_cli.command("expire")
@clear_errors
def expire() -> None:
    """Mark lapsed quotes and unpaid orders expired, releasing their tonnes."""
    with db.session.begin():
        count = checkout.expire_lapsed(db.session, dt.datetime.now(dt.UTC))
    click.echo(f"{count} lapsed quote(s) and order(s) expired")


@api_cli.command("statement")
@click.option("--org", "org_id", type=int, required=True)
@click.option("--month", required=True, help="YYYY-MM")
@clear_errors
def statement(org_id: int, month: str) -> None:
    """The kilograms an organisation's API orders billed on account in one month: one line an
    order, then the total per currency (what the month's invoice charges)."""
    from ..checkout import mass_label
    from ..models import Order

    try:
        dt.date.fromisoformat(f"{month}-01")
    except ValueError:
        raise click.ClickException(f"the month must be YYYY-MM, not {month!r}") from None
    with db.session.begin():
        if db.session.get(Organisation, org_id) is None:
            raise click.ClickException(f"no organisation {org_id}")
        orders = list(db.session.scalars(
            select(Order).where(Order.organisation_id == org_id,
                                Order.payment_reference == f"account:{month}")
            .order_by(Order.id)))
        totals: dict[str, int] = {}
        for order in orders:
            click.echo(f"{order.reference}  {order.created_at:%Y-%m-%d}  "
                       f"{mass_label(order):>14}  {order.total_minor:>10,} {order.currency}")
            totals[order.currency] = totals.get(order.currency, 0) + order.total_minor
    for currency, total in sorted(totals.items()):
        click.echo(f"total {currency}: {total:,} (minor units) for {len(orders)} order(s)")
    if not orders:
        click.echo(f"nothing billed on account to organisation {org_id} in {month}")


def register(app: Flask) -> None:
    if "api" not in app.cli.commands:
        app.cli.add_command(api_cli)
