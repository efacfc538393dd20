"""What happened, said once by the code that made it happen.

Each outbound event (``order.fulfilled``, ``retirement.created``,
``retirement.covered_at_origin``) is a frozen value that the causing code hands to
:func:`record` in its own transaction: fulfilment when an order becomes fulfilled, each place
that retires credits for a buyer, the origin import when a retirement becomes covered. Nothing
is inferred by watching the session's INSERTs, so a new way to retire credits cannot emit an
event by accident, nor forget one silently: it calls :func:`record`, or a test says it didn't.

:func:`record` writes the event to the current mode's outbox (``marketplace.api.webhooks``)
for every endpoint of the organisation concerned that wants it; events about a person's own
account, or about an organisation with no endpoint for that type, are not stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class OrderFulfilled:
    """An order's credits were delivered (moved to the buyer, and retired if asked)."""

    type: ClassVar[str] = "order.fulfilled"
    order_id: int


@dataclass(frozen=True)
class RetirementCreated:
    """Credits were retired: the retirement entry at ``seq``."""

    type: ClassVar[str] = "retirement.created"
    seq: int


@dataclass(frozen=True)
class RetirementCoveredAtOrigin:
    """The origin registry now shows the retirement at ``seq`` retired into our name."""

    type: ClassVar[str] = "retirement.covered_at_origin"
    seq: int


@dataclass(frozen=True)
class KilogramsRetired:
    """Kilogram allocations were written into the ledger (sealed): a ``retirement.created``
    for each, with its ``kg_...`` id, its allocate entry and position."""

    type: ClassVar[str] = "retirement.created"
    allocation_ids: tuple[int, ...]


Event = OrderFulfilled | RetirementCreated | RetirementCoveredAtOrigin | KilogramsRetired
TYPES = tuple(kind.type for kind in (OrderFulfilled, RetirementCreated,
                                     RetirementCoveredAtOrigin))


def record(session: Session, event: Event) -> None:
    """Write ``event`` to the outbox in the caller's transaction (it is delivered only if that
    transaction commits)."""
    from .api import webhooks

    if isinstance(event, OrderFulfilled):
        webhooks.emit_order_event(session, event.order_id, event.type)
    elif isinstance(event, KilogramsRetired):
        webhooks.emit_kilogram_events(session, event.allocation_ids, event.type)
    else:
        webhooks.emit_retirement_event(session, event.seq, event.type)
