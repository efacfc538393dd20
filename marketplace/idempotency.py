"""One store for every ``Idempotency-Key``: key, endpoint, request hash and the resource made,
per organisation, in the mode's own table (``api_idempotency_keys``).

The rules, the same for every POST that takes a key:

- a key seen before with the same request (endpoint and body hash) replays: the caller gets the
  resource that request made, as it stands now, marked ``Idempotent-Replayed: true``;
- a key seen before with a different request is a 409;
- two requests racing with one key: the second's insert fails on the unique key, its
  transaction rolls back, and the retry (:func:`run`) finds the first one's record and replays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models.api import IdempotencyRecord

T = TypeVar("T")


class IdempotencyConflict(Exception):
    """The key was already used with a different request."""


@dataclass(frozen=True)
class Request:
    """What an idempotent POST is: whose, to which endpoint, under which key, with which body."""

    organisation_id: int
    endpoint: str
    key: str | None
    request_hash: str


def find(session: Session, request: Request) -> str | None:
    """The resource id an earlier request with this key made, or None; raises
    :class:`IdempotencyConflict` if that request was a different one."""
    if request.key is None:
        return None
    record = session.scalars(select(IdempotencyRecord).where(
        IdempotencyRecord.organisation_id == request.organisation_id,
        IdempotencyRecord.endpoint == request.endpoint,
        IdempotencyRecord.key == request.key)).one_or_none()
    if record is None:
        return None
    if record.request_hash != request.request_hash:
        raise IdempotencyConflict(request.key)
    return record.resource_id


def remember(session: Session, request: Request, resource_id: str) -> None:
    """Record that this request made ``resource_id`` (in the same transaction that made it)."""
    if request.key is None:
        return
    session.add(IdempotencyRecord(organisation_id=request.organisation_id,
                                  endpoint=request.endpoint, key=request.key,
                                  request_hash=request.request_hash, resource_id=resource_id))
    session.flush()


@dataclass(frozen=True)
class Outcome(Generic[T]):
    value: T
    replayed: bool


def run(session: Session, request: Request, *, replay: Callable[[str], T],
        create: Callable[[], tuple[str, T]]) -> Outcome[T]:
    """In one transaction: replay the earlier result for this key, or create the resource
    (``create`` returns its id and the result) and remember it. A concurrent request that took
    the key first makes this insert fail; the whole transaction is then run again, and replays."""
    for attempt in (1, 2):
        try:
            with session.begin():
                found = find(session, request)
                if found is not None:
                    return Outcome(replay(found), True)
                resource_id, value = create()
                remember(session, request, resource_id)
                return Outcome(value, False)
        except IntegrityError:
            if request.key is None or attempt == 2:
                raise
    raise AssertionError("unreachable")
