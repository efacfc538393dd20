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
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ledger import audit, operations, queries
from ledger.errors import LedgerError, UnknownProjectError
from ledger.checkpoint import write_keypair
from ledger.operations import VerraFields
from ledger.replay import VerificationError
from ledger.rules import PURPOSES
from ledger.schema import Project

from ledger import origin as ledger_origin
from ledger.records import CA_DECLARATIONS, CA_STATUSES, CORSIA_PHASES, MITIGATION_TYPES, Labels

from . import demo, events, migrate, modes, origin, signing
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
            raise _UsageError(exc.format_message().splitlines()[-1]) from None


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
    project: Project = found
    return project


def _account_id(session: Any, name: str) -> int:
    return operations.get_account(session, int(name) if name.isdigit() else name).id


db_cli = Commands("db", help="Apply the Alembic migrations.")


@db_cli.command("upgrade")
@click.argument("revision", default="heads")
def db_upgrade(revision: str) -> None:
    """Upgrade the database to REVISION (default: the newest)."""
    migrate.upgrade(current_app.config["DATABASE_URL"], revision,
                    test_schema=current_app.config["TEST_SCHEMA"])
    click.echo(f"database at {revision}")


@db_cli.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Downgrade the database to REVISION (``base`` empties it)."""
    migrate.downgrade(current_app.config["DATABASE_URL"], revision,
                      test_schema=current_app.config["TEST_SCHEMA"])
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
              help="where to write the key pairs (default: instance/keys)")
@click.option("--if-missing", is_flag=True, help="make only the keys that are missing")
@clear_errors
def keygen(directory: Path | None, if_missing: bool) -> None:
    """Create the Ed25519 key pairs that sign checkpoints (for development): one for the live
    ledger, one for the test-mode ledger."""
    app = current_app
    for mode, setting in ((modes.LIVE, "CARBON_CHECKPOINT_KEY"),
                          (modes.TEST, "CARBON_TEST_CHECKPOINT_KEY")):
        configured = signing.key_path(app, mode)
        if if_missing and configured.exists():
            click.echo(f"{mode} checkpoint key present: {configured}")
            continue
        target = directory or signing.default_key_path(app, mode).parent
        target.mkdir(parents=True, exist_ok=True)
        key_path, pub_path = write_keypair(target, signing.ledger_origin(app, mode))
        prefix = "" if mode == modes.LIVE else "test ledger: "
        click.echo(f"{prefix}signer key {key_path} (keep it secret), verifier key {pub_path}")
        if key_path != configured:
            click.echo(f"set {setting}={key_path} to use it")


@ledger_cli.command("checkpoint")
@clear_errors
def checkpoint() -> None:
    """Sign a checkpoint of the journal as it stands (if the last one is behind) and print it."""
    session = db.session
    with session.begin():
        note = signing.current_checkpoint(session).note
    click.echo(note, nl=False)


@ledger_cli.command("certificate")
@click.argument("seq", type=click.IntRange(1, 2**53 - 1))
@clear_errors
def certificate(seq: int) -> None:
    """Print the certificate of the retirement at entry SEQ as JSON (what the registry serves
    at /registry/certificates/SEQ.json), for `python -m ledger.verify --certificate`."""
    import json

    from . import certificates

    session = db.session
    try:
        with session.begin():
            document = certificates.certificate(session, seq, sign=True)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


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
        events.record(session, events.RetirementCreated(receipt.seq))
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


def _labels_from_options(current: Labels, *, ccp_since: dt.datetime | None, no_ccp: bool,
                         article6: bool | None, ca_declaration: str | None,
                         ca_status: str | None, corsia: str | None,
                         mitigation: str | None) -> Labels:
    ccp, since = current.ccp, current.ccp_since
    if no_ccp:
        ccp, since = False, None
    elif ccp_since is not None:
        ccp, since = True, ccp_since.date()
    return Labels(
        ccp=ccp, ccp_since=since,
        article6_authorized=current.article6_authorized if article6 is None else article6,
        ca_declaration=ca_declaration or current.ca_declaration,
        ca_status=ca_status or current.ca_status,
        corsia=current.corsia if corsia is None else (None if corsia == "none" else corsia),
        mitigation=current.mitigation if mitigation is None else (
            None if mitigation == "unknown" else mitigation),
    )


@ledger_cli.command("label")
@click.option("--batch", "batch_id", type=click.IntRange(1, 2**31 - 1), required=True)
@click.option("--ccp-since", type=click.DateTime(["%Y-%m-%d"]),
              help="the ICVCM CCP label, granted on this date")
@click.option("--no-ccp", is_flag=True, help="withdraw the CCP label")
@click.option("--article6/--no-article6", default=None,
              help="authorised by the host country under Article 6")
@click.option("--ca-declaration", type=click.Choice(CA_DECLARATIONS))
@click.option("--ca-status", type=click.Choice(CA_STATUSES))
@click.option("--corsia", type=click.Choice([*CORSIA_PHASES, "none"]))
@click.option("--mitigation", type=click.Choice([*MITIGATION_TYPES, "unknown"]))
@click.option("--effective", type=click.DateTime(["%Y-%m-%d"]),
              help="from when the labels apply (default: today)")
@click.option("--note", default="", help="why the labels changed")
@clear_errors
def label(batch_id: int, ccp_since: dt.datetime | None, no_ccp: bool, article6: bool | None,
          ca_declaration: str | None, ca_status: str | None, corsia: str | None,
          mitigation: str | None, effective: dt.datetime | None, note: str) -> None:
    """Change a batch's quality labels (options not given keep their value); the change is a
    journal entry, so the registry shows when each label appeared."""
    if no_ccp and ccp_since is not None:
        raise click.UsageError("give --ccp-since or --no-ccp, not both")
    session = db.session
    with session.begin():
        current = ledger_origin.labels_at(session, [batch_id])[batch_id]
        labels = _labels_from_options(current, ccp_since=ccp_since, no_ccp=no_ccp,
                                      article6=article6, ca_declaration=ca_declaration,
                                      ca_status=ca_status, corsia=corsia, mitigation=mitigation)
        receipt = ledger_origin.set_labels(
            session, batch_id=batch_id, labels=labels,
            effective=effective.date() if effective else dt.date.today(), note=note)
    click.echo(f"seq {receipt.seq}: labels of batch {batch_id}: " + ", ".join(
        f"{k}={v}" for k, v in labels.to_data().items()))


origin_cli = Commands("origin", help="Reconcile with the origin registry (Verra).")


class _BadFile(click.ClickException):
    exit_code = 2


class _UsageError(click.ClickException):
    """A usage error as one line, exit 2 (as click's own usage errors)."""

    exit_code = 2


@origin_cli.command("reconcile")
@click.option("--registry", type=click.Choice(origin.REGISTRIES), default="verra",
              show_default=True)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@clear_errors
def origin_reconcile(registry: str, file: Path) -> None:
    """Import the origin registry's public export (Verra's VCU CSV) and print, per mirrored
    batch, what is covered, pending and in conflict. Exit 1 if anything is in conflict, 2 for
    a file that cannot be read (then nothing is written). Importing a file twice adds nothing."""
    session = db.session
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise _BadFile(f"cannot read {file}: {exc.strerror}") from None
    try:
        with session.begin():
            result = origin.import_verra(session, data, origin.origin_names(current_app.config))
            lines, conflict = origin.summary_lines(session)
    except origin.OriginFileError as exc:
        raise _BadFile(f"{file.name}: {exc}") from None

    click.echo(origin.import_summary(result))
    for line in lines:
        click.echo(line)
    if conflict:
        raise SystemExit(1)


@origin_cli.command("status")
@clear_errors
def origin_status() -> None:
    """Print the reconciliation without importing anything; exit 1 if anything is in conflict."""
    session = db.session
    with session.begin():
        lines, conflict = origin.summary_lines(session)
    for line in lines:
        click.echo(line)
    if conflict:
        raise SystemExit(1)


@origin_cli.command("record")
@click.option("--batch", "batch_id", type=click.IntRange(1, 2**31 - 1), required=True)
@click.option("--serials", required=True, help="FIRST-LAST, the origin registry's serials")
@click.option("--date", "when", type=click.DateTime(["%Y-%m-%d"]), required=True,
              help="the date of the retirement at origin")
@click.option("--beneficiary", default="", help="as the origin registry shows it")
@click.option("--account", default="", help="the account holder at origin, if shown")
@click.option("--reason", default="")
@click.option("--reference", required=True, help="a URL or transaction id at the origin")
@click.option("--cancelled", is_flag=True, help="a cancellation rather than a retirement")
@click.option("--registry", type=click.Choice(origin.REGISTRIES), default="verra",
              show_default=True)
@clear_errors
def origin_record(batch_id: int, serials: str, when: dt.datetime, beneficiary: str,
                  account: str, reason: str, reference: str, cancelled: bool,
                  registry: str) -> None:
    """Record one retirement made at the origin registry by hand (for registries with no
    export). It is ours when its beneficiary or account names this marketplace
    (CARBON_ORIGIN_NAMES); otherwise its serials still tradable here are frozen."""
    try:
        first, last = (int(x) for x in serials.split("-"))
    except ValueError:
        raise click.BadParameter(f"{serials!r} is not FIRST-LAST", param_hint="--serials") from None
    session = db.session
    with session.begin():
        result = origin.record_manual(
            session, batch_id=batch_id, registry=registry,
            action="cancelled" if cancelled else "retired", first=first, last=last,
            date=when.date(), beneficiary=beneficiary, account=account, reason=reason,
            reference=reference, names=origin.origin_names(current_app.config))
    piece = result.plan.pieces[0]
    whose = "ours" if piece.ours else "under another name"
    click.echo(f"seq {result.recorded[0]}: origin {piece.action} {piece.quantity:,} t of batch "
               f"{batch_id} ({whose}); {result.frozen:,} t frozen, "
               f"{origin.count_of(len(result.newly_covered), 'retirement')} newly covered")


@origin_cli.command("worklist")
@clear_errors
def origin_worklist() -> None:
    """What to retire at the origin registry next: the pending serials, oldest first, one
    origin retirement per batch."""
    session = db.session
    beneficiary = origin.beneficiary_text(current_app.config)
    with session.begin():
        work = ledger_origin.worklist(session)
        if not work:
            click.echo("nothing is pending at the origin registry")
        for item in work:
            ranges = ", ".join(f"{a}-{b}" for a, b in item.ranges)
            click.echo(f"{item.batch.project.ref} batch {item.batch.id}: retire {item.quantity:,} t"
                       f" at origin, serials {ranges}; beneficiary {beneficiary!r}; reason "
                       f"'retirements {', '.join(str(s) for s in item.retirements[:10])}"
                       f"{'…' if len(item.retirements) > 10 else ''} on this registry'")


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
    _seed_test_mode()


@demo_cli.command("kilograms")
@clear_errors
def demo_kilograms() -> None:
    """A demo kilogram pool for Alto Mayo with a few allocations (twice changes nothing)."""
    session = db.session
    with session.begin():
        added = demo.load_kilograms(session)
    click.echo(f"demo kilogram pool: {added['tonnes']} t retired into it, "
               f"{added['allocations']} allocations added")


def _seed_test_mode() -> None:
    from . import testmode
    from .database import ModeUnavailable

    try:
        added = testmode.seed_from_live()
    except ModeUnavailable:
        click.echo("test mode: not available on an in-memory database")
        return
    click.echo(f"test mode: {added['projects']} projects, {added['batches']} batches of "
               f"{testmode.TONNES_PER_BATCH:,} t and {added['listings']} listings added")


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
        user = create_user(name, email, password, role=role, confirmed=True)
    click.echo(f"user {user.id} {email} ({role}) created")


pool_cli = Commands("pool", help="Kilogram pools: what they hold, and sealing allocations.")


@pool_cli.command("status")
@click.option("--test-mode", is_flag=True, help="the test-mode ledger's pools")
@clear_errors
def pool_status(test_mode: bool) -> None:
    """Each listing's kilogram pool: tonnes retired into it, kg allocated, reserved and free."""
    from . import kilograms
    from .database import db as database
    from .models import Listing

    with database.use(modes.TEST if test_mode else modes.LIVE):
        session = database.session
        with session.begin():
            listings = list(session.scalars(select(Listing).order_by(Listing.id)))
            click.echo(f"{'pool':<12}{'retired (t)':>12}{'allocated':>16}{'reserved':>14}"
                       f"{'free':>16}")
            for listing in listings:
                p = kilograms.pool_summary(session, listing)
                click.echo(f"{listing.project.ref:<12}{p.tonnes:>12,}"
                           f"{kilograms.format_mass(p.allocated):>16}"
                           f"{kilograms.format_mass(p.reserved):>14}"
                           f"{kilograms.format_mass(p.free):>16}")


@pool_cli.command("refill")
@click.argument("project")
@click.argument("tonnes", type=click.IntRange(1, 1_000_000))
@click.option("--test-mode", is_flag=True, help="the test-mode ledger's pool")
@clear_errors
def pool_refill(project: str, tonnes: int, test_mode: bool) -> None:
    """Retire TONNES whole tonnes of PROJECT (an id or a reference like VCS-944) into its
    kilogram pool now, from the tonnes for sale."""
    from . import kilograms
    from .checkout import CheckoutError
    from .database import db as database
    from .models import Listing

    with database.use(modes.TEST if test_mode else modes.LIVE):
        session = database.session
        with session.begin():
            found = _project(session, project)
            listing = session.scalars(select(Listing).where(
                Listing.project_id == found.id)).one_or_none()
            if listing is None:
                raise click.ClickException(f"{found.ref} is not listed: it has no pool")
            try:
                retired = kilograms.refill(session, listing, tonnes)
            except CheckoutError as exc:
                raise click.ClickException(str(exc)) from None
    click.echo(f"{retired:,} t retired into the {found.ref} kilogram pool")


@pool_cli.command("seal")
@click.option("--watch", type=float, default=None, metavar="SECONDS",
              help="keep sealing, looking again every SECONDS")
@clear_errors
def pool_seal(watch: float | None) -> None:
    """Write every kilogram allocation waiting into the ledger now (both modes)."""
    import time

    from . import kilograms
    from .database import all_modes
    from .database import db as database

    while True:
        for mode in all_modes():
            with database.use(mode):
                sealed = kilograms.seal_due(database.session, force=True)
            if sealed or watch is None:
                click.echo(f"{mode}: {sealed} allocation(s) sealed")
        if watch is None:
            return
        time.sleep(max(0.1, watch))


@click.command("worker")
@click.option("--interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="seconds between passes")
@click.option("--checkpoint", "checkpoint_every", type=click.FloatRange(min=0.0), default=10.0,
              show_default=True, help="sign a checkpoint at most this often, when the journal "
                                      "has grown")
@click.option("--once", is_flag=True, help="one pass, then exit")
@with_appcontext
def worker_command(interval: float, checkpoint_every: float, once: bool) -> None:
    """Run the scheduled and deferred work: webhook deliveries, reservation expiry, sealing
    kilogram allocations, checkpoint signing. Several may run at once, on several hosts."""
    from .worker import Worker

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    click.echo(f"worker: a pass every {interval:g} s (Ctrl-C stops it)")
    Worker(app, checkpoint_every=checkpoint_every).run(interval, once=once, echo=click.echo)


def register(app: Flask) -> None:
    for group in (db_cli, ledger_cli, demo_cli, users_cli, origin_cli, pool_cli):
        app.cli.add_command(group)
    if "worker" not in app.cli.commands:
        app.cli.add_command(worker_command)
