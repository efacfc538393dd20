"""The operator's command line: ``flask --app wsgi db|ledger|demo ...``.

Every command runs in one transaction; bad input ends with one line on stderr and a non-zero
exit, having written nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ledger import audit, operations, queries
from ledger.errors import LedgerError, UnknownProjectError
from ledger.checkpoint import write_keypair
from ledger.operations import VerraFields
from ledger.replay import VerificationError
from ledger.rules import PURPOSES
from ledger.schema import Project

from . import demo, migrate, signing
from .database import db

F = TypeVar("F", bound=Callable[..., Any])


def clear_errors(func: F) -> F:
    """Turn a refused operation into one line and exit status 1 (nothing is written)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except VerificationError:
            raise
        except LedgerError as exc:
            raise click.ClickException(str(exc)) from None
        except IntegrityError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "constraint violated"
            raise click.ClickException(f"refused by the database: {reason}") from None

    return wrapper  # type: ignore[return-value]


class Commands(AppGroup):
    """A command group that runs in the app context and answers bad usage in one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            error = click.ClickException(exc.format_message().splitlines()[-1])
            error.exit_code = 2
            raise error from None


def _period(value: str) -> tuple[dt.date, dt.date]:
    try:
        start, _, end = value.partition(":")
        return dt.date.fromisoformat(start), dt.date.fromisoformat(end or start)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a period YYYY-MM-DD:YYYY-MM-DD") from None


def _project(session: Any, ref: str) -> Project:
    if ref.isdigit():
        found = session.get(Project, int(ref))
    else:
        registry, _, registry_id = ref.partition("-")
        found = session.scalars(
            select(Project).where(Project.registry_name == registry.upper(),
                                  Project.registry_id == registry_id)
        ).one_or_none()
    if found is None:
        raise UnknownProjectError(f"no project {ref!r} (use an id or a reference like VCS-944)")
    return found


def _account_id(session: Any, name: str) -> int:
    return operations.get_account(session, int(name) if name.isdigit() else name).id


db_cli = Commands("db", help="Apply the Alembic migrations.")


@db_cli.command("upgrade")
@click.argument("revision", default="heads")
def db_upgrade(revision: str) -> None:
    """Upgrade the database to REVISION (default: the newest)."""
    migrate.upgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"database at {revision}")


@db_cli.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Downgrade the database to REVISION (``base`` empties it)."""
    migrate.downgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"database at {revision}")


ledger_cli = Commands("ledger", help="Operate and verify the credit ledger.")


@ledger_cli.command("verify")
def verify() -> None:
    """Replay and check the whole journal; exit 1 naming the first bad seq."""
    session = db.session
    try:
        with session.begin():
            report = audit.verify(session)
    except VerificationError as exc:
        click.echo(f"ledger INVALID: {exc}", err=True)
        raise SystemExit(1) from None
    click.echo(report.summary())


@ledger_cli.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@clear_errors
def export(directory: Path) -> None:
    """Write the journal (JSON Lines), a signed checkpoint, the public key and a manifest
    into DIRECTORY, for `python -m ledger.verify DIRECTORY`."""
    manifest = signing.export_bundle(directory)
    click.echo(f"exported {manifest['entries']} entries to {directory}")


@ledger_cli.command("keygen")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="where to write the key pair (default: instance/keys)")
@click.option("--if-missing", is_flag=True, help="do nothing if the configured key exists")
@clear_errors
def keygen(directory: Path | None, if_missing: bool) -> None:
    """Create an Ed25519 key pair for signing checkpoints (for development)."""
    app = current_app
    configured = Path(app.config.get("CHECKPOINT_KEY") or signing.default_key_path(app))
    if if_missing and configured.exists():
        click.echo(f"checkpoint key present: {configured}")
        return
    target = directory or signing.default_key_path(app).parent
    target.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = write_keypair(target, app.config["LEDGER_ORIGIN"])
    click.echo(f"signer key {key_path} (keep it secret), verifier key {pub_path}")
    if key_path != configured:
        click.echo(f"set CARBON_CHECKPOINT_KEY={key_path} to use it")


@ledger_cli.command("checkpoint")
@clear_errors
def checkpoint() -> None:
    """Sign a checkpoint of the journal as it stands (if the last one is behind) and print it."""
    session = db.session
    with session.begin():
        note = signing.current_checkpoint(session).note
    click.echo(note, nl=False)


@ledger_cli.command("open-account")
@click.argument("name")
@click.option("--kind", type=click.Choice(["issuer", "inventory", "customer", "organisation",
                                           "buffer"]), default="customer", show_default=True)
@clear_errors
def open_account(name: str, kind: str) -> None:
    """Open an account that can hold credits."""
    session = db.session
    with session.begin():
        account = operations.open_account(session, name, kind)
    click.echo(f"account {account.id} {account.name!r} ({account.kind})")


@ledger_cli.command("issue")
@click.option("--project", "project_ref", required=True, help="project id or reference, e.g. VCS-944")
@click.option("--to", "to", required=True, help="account name or id receiving the batch")
@click.option("--vintage", required=True, help="vintage period YYYY-MM-DD:YYYY-MM-DD")
@click.option("--quantity", type=click.IntRange(min=1), help="tonnes, for a native batch")
@click.option("--serials", help="FIRST-LAST, for a batch mirroring a Verra issuance")
@click.option("--verra", help="ISSUANCE,CODE,SCOPE,FLAG of the mirrored Verra issuance")
@click.option("--origin", help="unique reference of what this batch mirrors")
@click.option("--buffer", "buffer_quantity", type=click.IntRange(min=0), default=0)
@click.option("--buffer-account", default=demo.BUFFER, show_default=True)
@click.option("--issued-on", type=click.DateTime(["%Y-%m-%d"]))
@clear_errors
def issue(project_ref: str, to: str, vintage: str, quantity: int | None, serials: str | None,
          verra: str | None, origin: str | None, buffer_quantity: int, buffer_account: str,
          issued_on: dt.datetime | None) -> None:
    """Issue a batch of credits into an account."""
    start, end = _period(vintage)
    first = last = None
    fields = None
    if serials:
        try:
            first, last = (int(x) for x in serials.split("-"))
        except ValueError:
            raise click.BadParameter(f"{serials!r} is not FIRST-LAST", param_hint="--serials") from None
    if verra:
        try:
            issuance, code, scope, flag = (int(x) for x in verra.split(","))
        except ValueError:
            raise click.BadParameter("expected ISSUANCE,CODE,SCOPE,FLAG", param_hint="--verra") from None
        fields = VerraFields(issuance, code, scope, flag)
    session = db.session
    with session.begin():
        receipt = operations.issue(
            session, project_id=_project(session, project_ref).id,
            account_id=_account_id(session, to), vintage_start=start, vintage_end=end,
            quantity=quantity, first=first, last=last, origin=origin, verra=fields,
            buffer_account_id=_account_id(session, buffer_account) if buffer_quantity else None,
            buffer_quantity=buffer_quantity,
            issued_on=issued_on.date() if issued_on else None,
        )
    click.echo(f"seq {receipt.seq}: issued batch {receipt.batch_id}, "
               f"{sum(b.quantity for b in receipt.created):,} t")


def _spend_filters(func: F) -> F:
    func = click.option("--batch", "batch_id", type=int, help="only this batch")(func)
    func = click.option("--project", "project_ref", help="only this project")(func)
    return func


@ledger_cli.command("transfer")
@click.option("--from", "from_", required=True)
@click.option("--to", required=True)
@click.option("--quantity", type=int, required=True, help="whole tonnes")
@_spend_filters
@clear_errors
def transfer(from_: str, to: str, quantity: int, batch_id: int | None,
             project_ref: str | None) -> None:
    """Move tonnes from one account to another, lowest serials first."""
    session = db.session
    with session.begin():
        receipt = operations.transfer(
            session, from_account=_account_id(session, from_), to_account=_account_id(session, to),
            quantity=quantity, batch_id=batch_id,
            project_id=_project(session, project_ref).id if project_ref else None,
        )
    click.echo(f"seq {receipt.seq}: transferred {quantity:,} t")


@ledger_cli.command("retire")
@click.option("--account", required=True)
@click.option("--quantity", type=int, required=True, help="whole tonnes")
@click.option("--beneficiary", required=True)
@click.option("--purpose", type=click.Choice(list(PURPOSES)), required=True)
@click.option("--note", default="")
@click.option("--country", required=True, help="ISO 3166 alpha-2 country of use")
@click.option("--period", required=True, help="period claimed, YYYY-MM-DD:YYYY-MM-DD")
@_spend_filters
@clear_errors
def retire(account: str, quantity: int, beneficiary: str, purpose: str, note: str, country: str,
           period: str, batch_id: int | None, project_ref: str | None) -> None:
    """Retire tonnes on behalf of a beneficiary."""
    start, end = _period(period)
    session = db.session
    with session.begin():
        receipt = operations.retire(
            session, account_id=_account_id(session, account), quantity=quantity,
            beneficiary=beneficiary, purpose=purpose, note=note, country=country.upper(),
            period_start=start, period_end=end, batch_id=batch_id,
            project_id=_project(session, project_ref).id if project_ref else None,
        )
    click.echo(f"seq {receipt.seq}: retired {quantity:,} t ({receipt.hash[:16]})")


@ledger_cli.command("cancel")
@click.option("--account", required=True)
@click.option("--quantity", type=int, required=True, help="whole tonnes")
@click.option("--reason", required=True)
@_spend_filters
@clear_errors
def cancel(account: str, quantity: int, reason: str, batch_id: int | None,
           project_ref: str | None) -> None:
    """Cancel tonnes for good."""
    session = db.session
    with session.begin():
        receipt = operations.cancel(
            session, account_id=_account_id(session, account), quantity=quantity, reason=reason,
            batch_id=batch_id, project_id=_project(session, project_ref).id if project_ref else None,
        )
    click.echo(f"seq {receipt.seq}: cancelled {quantity:,} t")


@ledger_cli.command("show")
@click.argument("serial")
@clear_errors
def show(serial: str) -> None:
    """Show the history of a serial number or serial string."""
    session = db.session
    with session.begin():
        timelines = queries.timeline(session, serial)
        if not timelines:
            raise click.ClickException(f"no credit has the serial {serial}")
        for line in timelines:
            batch = line.batch
            click.echo(f"serial {line.number} · batch {batch.id} · {batch.project.ref} "
                       f"{batch.project.name} · vintage {batch.vintage_start}..{batch.vintage_end}")
            for step in line.steps:
                spent = f" -> spent by seq {step.spent_by}" if step.spent_by else " (current)"
                click.echo(f"  seq {step.seq:>6} {step.kind:<8} {step.hash[:16]}  "
                           f"{step.account_name}: {step.state} {step.serial}{spent}")


@ledger_cli.command("balance")
@click.argument("account")
@clear_errors
def balance(account: str) -> None:
    """Show an account's tradable credits by project and vintage."""
    session = db.session
    with session.begin():
        account_id = _account_id(session, account)
        rows = queries.holdings(session, account_id)
        total = 0
        for holding in rows:
            click.echo(f"{holding.project_ref:<10} {holding.vintage_start.year} "
                       f"batch {holding.batch_id:<4} {holding.quantity:>14,} t")
            for block in holding.blocks:
                click.echo(f"    {block.serial}")
            total += holding.quantity
    click.echo(f"total {total:,} t tradable")


demo_cli = Commands("demo", help="Demo data for a local run.")


@demo_cli.command("load")
@clear_errors
def demo_load() -> None:
    """Load the three Peruvian projects and their batches (twice changes nothing)."""
    session = db.session
    with session.begin():
        added = demo.load(session)
    click.echo(f"demo data: {added['batches']} batches, {added['entries']} entries and "
               f"{added['listings']} listings added")


users_cli = Commands("users", help="Manage user accounts.")


@users_cli.command("create")
@click.argument("email")
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["customer", "operator", "auditor"]), default="customer",
              show_default=True)
@click.password_option(help="prompted for when not given (or set it in CARBON_NEW_PASSWORD)",
                       envvar="CARBON_NEW_PASSWORD")
@clear_errors
def users_create(email: str, name: str, role: str, password: str) -> None:
    """Create a user, e.g. the first operator."""
    from email_validator import EmailNotValidError, validate_email

    from .auth import create_user
    from .models import User

    try:
        email = validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise click.ClickException(str(exc)) from None
    if len(password) < 10:
        raise click.ClickException("the password must be at least 10 characters")
    session = db.session
    with session.begin():
        if session.scalar(select(User.id).where(User.email == email)) is not None:
            raise click.ClickException(f"a user with the email {email} already exists")
        user = create_user(name, email, password, role=role)
    click.echo(f"user {user.id} {email} ({role}) created")


def register(app: Flask) -> None:
    for group in (db_cli, ledger_cli, demo_cli, users_cli):
        app.cli.add_command(group)
