"""An order's life, in one table: the states, the transitions between them and the event that
causes each one. Every change of ``Order.status`` goes through :func:`transition`; a write to
the attribute anywhere else raises (:func:`install` puts the guard on the model), and so does
a move the table does not declare.

    pending ───────── checkout_started / invoice_issued ─────────► awaiting_payment
    pending, awaiting_payment ── payment_succeeded ──────────────► fulfilled
    pending, awaiting_payment ── checkout_expired / lapsed ──────► expired
    pending, awaiting_payment ── payment_failed / amount_mismatch ► failed
    pending, awaiting_payment ── cancelled_by_buyer ─────────────► cancelled
    expired, failed, cancelled ─ paid_after_lapse (re-reserved) ─► fulfilled
    pending, awaiting_payment, expired, failed, cancelled
                               ─ paid_unfulfillable ─────────────► paid  (refund due)
    paid ─────────────────────── payment_succeeded (re-reserved) ► fulfilled
    fulfilled (held), paid ───── refund_requested ───────────────► refund_pending
    refund_pending ───────────── refund_completed ───────────────► refunded

A payment that arrives for an order whose reservation lapsed is declared, not an accident: the
tonnes are reserved again if they are still for sale (``paid_after_lapse``), otherwise the
order is ``paid`` with a refund due.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

STATES = ("pending", "awaiting_payment", "paid", "fulfilled", "expired", "failed",
          "cancelled", "refund_pending", "refunded")
INITIAL = "pending"
OPEN = ("pending", "awaiting_payment")
"""Waiting for payment: their reservations hold tonnes back from sale."""
LAPSED = ("expired", "failed", "cancelled")
FINAL = ("refunded",)

TRANSITIONS: dict[tuple[str, str], frozenset[str]] = {
    ("pending", "awaiting_payment"): frozenset({"checkout_started", "invoice_issued"}),
    ("pending", "fulfilled"): frozenset({"payment_succeeded"}),
    ("awaiting_payment", "fulfilled"): frozenset({"payment_succeeded"}),
    ("pending", "expired"): frozenset({"checkout_expired", "lapsed"}),
    ("awaiting_payment", "expired"): frozenset({"checkout_expired", "lapsed"}),
    ("pending", "failed"): frozenset({"payment_failed", "amount_mismatch"}),
    ("awaiting_payment", "failed"): frozenset({"payment_failed", "amount_mismatch"}),
    ("pending", "cancelled"): frozenset({"cancelled_by_buyer"}),
    ("awaiting_payment", "cancelled"): frozenset({"cancelled_by_buyer"}),
    ("expired", "fulfilled"): frozenset({"paid_after_lapse"}),
    ("failed", "fulfilled"): frozenset({"paid_after_lapse"}),
    ("cancelled", "fulfilled"): frozenset({"paid_after_lapse"}),
    ("pending", "paid"): frozenset({"paid_unfulfillable"}),
    ("awaiting_payment", "paid"): frozenset({"paid_unfulfillable"}),
    ("expired", "paid"): frozenset({"paid_unfulfillable"}),
    ("failed", "paid"): frozenset({"paid_unfulfillable"}),
    ("cancelled", "paid"): frozenset({"paid_unfulfillable"}),
    ("paid", "fulfilled"): frozenset({"payment_succeeded"}),
    ("fulfilled", "refund_pending"): frozenset({"refund_requested"}),
    ("paid", "refund_pending"): frozenset({"refund_requested"}),
    ("refund_pending", "refunded"): frozenset({"refund_completed"}),
}
"""(from, to) -> the events that may cause that move. Nothing else moves an order."""

EVENTS = frozenset(e for events in TRANSITIONS.values() for e in events)


class TransitionError(Exception):
    """An order was asked to move in a way the transition table does not declare."""


_ALLOWED: ContextVar[bool] = ContextVar("order_transition", default=False)


@contextmanager
def _writing() -> Iterator[None]:
    token = _ALLOWED.set(True)
    try:
        yield
    finally:
        _ALLOWED.reset(token)


def can(current: str, target: str, event: str) -> bool:
    return event in TRANSITIONS.get((current, target), frozenset())


def transition(order: Any, target: str, event: str) -> None:
    """Move ``order`` to ``target`` because of ``event``; :class:`TransitionError` if the table
    does not declare that move."""
    if event not in EVENTS:
        raise TransitionError(f"unknown order event {event!r}")
    current = order.status
    if not can(current, target, event):
        raise TransitionError(f"order {order.reference}: {event} cannot move it from {current} "
                              f"to {target}")
    with _writing():
        order.status = target


def install(model: type[Any]) -> None:
    """Refuse every write of ``model.status`` that does not come through :func:`transition`
    (a new order may only start as ``pending``)."""
    from sqlalchemy import event
    from sqlalchemy.orm.base import NO_VALUE, NEVER_SET

    @event.listens_for(model.status, "set", propagate=True)
    def _guard(target: Any, value: Any, old: Any, _initiator: Any) -> None:
        if _ALLOWED.get():
            return
        if old in (NO_VALUE, NEVER_SET, None) and value == INITIAL:
            return
        raise TransitionError(f"Order.status may only change through order_states.transition "
                              f"(tried {old!r} -> {value!r})")

    @event.listens_for(model, "init", propagate=True)
    def _initial(target: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        status = kwargs.get("status", INITIAL)
        if status != INITIAL:
            raise TransitionError(f"a new order starts as {INITIAL!r}, not {status!r}")
