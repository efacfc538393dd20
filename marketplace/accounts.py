"""Whose ledger account is whose: a user's account is ``user:<id>`` and an organisation's
``org:<id>`` in each mode's ledger, opened the first time credits go to it. The shared tables
(users, organisations) never point into a ledger, so the same person has one account per mode.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledger import operations
from ledger.schema import Account

from .models import Organisation, User


def _find(session: Session, name: str) -> Account | None:
    return session.scalars(select(Account).where(Account.name == name)).one_or_none()


def account_of(session: Session, holder: User | Organisation) -> Account:
    """The holder's account in this session's ledger, opened if it has none yet.

    Two first purchases of one organisation can race to open its account: the loser's insert
    fails on the unique name inside a savepoint (on PostgreSQL it waits for the winner to
    commit), and it then reads the winner's account."""
    found = _find(session, holder.account_name)
    if found is not None:
        return found
    kind = "organisation" if isinstance(holder, Organisation) else "customer"
    try:
        with session.begin_nested():
            return operations.open_account(session, holder.account_name, kind)
    except IntegrityError:
        found = _find(session, holder.account_name)
        if found is None:
            raise
        return found


def account_id_of(session: Session, holder: User | Organisation) -> int | None:
    """The holder's account id in this ledger, or None if it never held anything (reads
    never open an account)."""
    found = _find(session, holder.account_name)
    return found.id if found is not None else None


def organisation_of_account(session: Session, account_id: int) -> Organisation | None:
    """The organisation whose account this is, if it is an organisation's."""
    account = session.get(Account, account_id)
    if account is None or not account.name.startswith("org:"):
        return None
    number = account.name.removeprefix("org:")
    return session.get(Organisation, int(number)) if number.isdigit() else None
