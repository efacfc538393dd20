"""Building blocks for ledger tests: a small world of accounts, a project and a batch."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger import operations
from ledger.operations import VerraFields
from ledger.schema import Block, Entry

PERIOD = (dt.date(2025, 1, 1), dt.date(2025, 12, 31))


@contextmanager
def tx(session: Session) -> Iterator[None]:
    """One operation's transaction, as the edge opens it (a SAVEPOINT inside the test's
    transaction). Reads between operations autobegin; end that first."""
    if session.in_transaction():
        session.commit()
    with session.begin():
        yield


@dataclass
class World:
    issuer: int
    inventory: int
    buffer: int
    alice: int
    bob: int
    project: int


def make_world(session: Session, registry_id: str = "944") -> World:
    with tx(session):
        ids = {
            name: operations.open_account(session, f"{name}-{registry_id}", kind).id
            for name, kind in [("issuer", "issuer"), ("inventory", "inventory"),
                               ("buffer", "buffer"), ("alice", "customer"), ("bob", "organisation")]
        }
        project = operations.register_project(
            session, registry="VCS", registry_id=registry_id, name="Alto Mayo Protected Forest",
            country="PE", standards="VCS, CCB", sector="Forestry",
        )
    return World(project=project.id, **ids)


def issue_verra(session: Session, world: World, *, first: int = 1_000_001, quantity: int = 1000,
                buffer: int = 0, vintage: int = 2019, issuance: int = 9660,
                origin: str | None = None) -> operations.Receipt:
    with tx(session):
        return operations.issue(
            session, project_id=world.project, account_id=world.inventory,
            vintage_start=dt.date(vintage, 1, 1), vintage_end=dt.date(vintage, 12, 31),
            first=first, last=first + quantity - 1,
            origin=origin or f"VCS:{issuance}:{first}",
            verra=VerraFields(issuance=issuance, code=261, scope=14, flag=0),
            buffer_account_id=world.buffer if buffer else None, buffer_quantity=buffer,
        )


def retire_args(**overrides: object) -> dict[str, object]:
    args: dict[str, object] = dict(
        beneficiary="Acme Coffee Ltd", purpose="voluntary", country="GB",
        period_start=PERIOD[0], period_end=PERIOD[1],
    )
    args.update(overrides)
    return args


def counts(session: Session) -> tuple[int, int]:
    """(entries, blocks): what a refused operation must leave unchanged."""
    return (
        session.scalar(select(func.count()).select_from(Entry)) or 0,
        session.scalar(select(func.count()).select_from(Block)) or 0,
    )
