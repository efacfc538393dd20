"""The worker: every piece of scheduled and deferred work, in a loop, in both modes.

``flask --app wsgi worker`` runs, every ``--interval`` seconds (default 2):

- outbound webhook deliveries and their retries (``api.webhooks.deliver_due``);
- emails from the outbox (``mail.deliver_due``: SMTP, or ``instance/mail/`` in development),
  and once a day a reminder to the operators of tonnes long pending at the origin registry
  (``mail.origin_reminder``);
- reservation expiry: orders and quotes whose checkout lapsed are expired and their tonnes
  and grams released, without waiting for the next order (``checkout.expire_lapsed``);
- kilogram allocations sealed into the ledger (``kilograms.seal_due``);
- a checkpoint signed when the journal has grown since the last one and ``--checkpoint``
  seconds (default 10) have passed, so that a published checkpoint is never far behind. The
  worker is the only signer (``CARBON_CHECKPOINT_SIGNING`` ``worker``, the default): registry
  reads serve the newest signed checkpoint and write nothing.

Several workers, on several hosts, share the work without doing anything twice: webhook
deliveries are claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` and a lease; lapsed orders
are taken with ``SKIP LOCKED`` too; sealing takes a transaction-scoped advisory lock (one
sealer at a time, the others skip); signing takes the chain head's lock and signs only if the
last checkpoint is behind. PostgreSQL row locks rather than a queue library: every job here
is a row that already exists (a delivery, an order, an allocation, the chain head), so the
database that holds them is also the queue, and a job is done in the transaction that
changes its row.

Stop it with Ctrl-C or SIGTERM: it finishes the tick it is in, then exits.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask

from ledger.schema import utcnow

log = logging.getLogger(__name__)


@dataclass
class Tick:
    """What one pass of the worker did, per mode."""

    delivered: int = 0
    emailed: int = 0
    reminded: int = 0
    expired: int = 0
    sealed: int = 0
    signed: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        signed = ", ".join(f"{mode} checkpoint of {size:,}" for mode, size in self.signed.items())
        parts = [f"{self.delivered} webhook deliveries", f"{self.emailed} emails sent",
                 *([f"{self.reminded} origin reminders"] if self.reminded else []),
                 f"{self.expired} lapsed orders expired",
                 f"{self.sealed} kilogram allocations sealed"]
        if signed:
            parts.append(f"signed {signed}")
        if self.errors:
            parts.append(f"{len(self.errors)} errors")
        return "; ".join(parts)


class Worker:
    def __init__(self, app: Flask, *, checkpoint_every: float = 10.0) -> None:
        self.app = app
        self.checkpoint_every = checkpoint_every
        self.stop = threading.Event()
        self._last_signed: dict[str, float] = {}

    def tick(self) -> Tick:
        """One pass over every job, in every mode. A job that fails is logged and left for the
        next pass; the others still run."""
        from . import checkout, kilograms, mail
        from .api import webhooks
        from .database import all_modes, db

        done = Tick()
        with self.app.app_context():
            try:
                done.delivered = len(webhooks.deliver_due())
            except Exception as exc:  # noqa: BLE001  (one job's failure stops no other)
                self._failed(done, "webhook deliveries", exc)
            try:
                with db.session_for("live").begin():
                    done.reminded = len(mail.origin_reminder(db.session_for("live")))
            except Exception as exc:  # noqa: BLE001
                self._failed(done, "origin reminders", exc)
            try:
                done.emailed = mail.deliver_due()
            except Exception as exc:  # noqa: BLE001
                self._failed(done, "emails", exc)
            for mode in all_modes():
                with db.use(mode):
                    session = db.session
                    try:
                        with session.begin():
                            done.expired += checkout.expire_lapsed(session, skip_locked=True)
                    except Exception as exc:  # noqa: BLE001
                        self._failed(done, f"{mode}: reservation expiry", exc)
                    try:
                        done.sealed += kilograms.seal_due(session, force=True)
                    except Exception as exc:  # noqa: BLE001
                        self._failed(done, f"{mode}: sealing", exc)
                    try:
                        size = self._sign(mode, session)
                        if size:
                            done.signed[mode] = size
                    except Exception as exc:  # noqa: BLE001
                        self._failed(done, f"{mode}: checkpoint", exc)
        return done

    def _sign(self, mode: str, session: Any) -> int:
        """Sign a checkpoint if the journal grew and the last signing here is old enough;
        the size signed, or 0."""
        from ledger import tree

        from . import signing

        now = time.monotonic()
        if now - self._last_signed.get(mode, -1e9) < self.checkpoint_every:
            return 0
        with session.begin():
            size = tree.size(session)
            latest = tree.latest_checkpoint(session)
            if size == 0 or (latest is not None and latest.size >= size):
                return 0
            try:
                signing.signer_key()
            except signing.SigningKeyMissing:
                return 0  # nothing to sign with: the registry signs when it has a key
            signed = signing.current_checkpoint(session)
        self._last_signed[mode] = now
        return int(signed.size)

    @staticmethod
    def _failed(done: Tick, job: str, exc: BaseException) -> None:
        log.exception("worker: %s failed", job)
        done.errors.append(f"{job}: {type(exc).__name__}: {exc}"[:300])

    def run(self, interval: float, *, once: bool = False,
            echo: Any = None) -> None:
        """Tick every ``interval`` seconds until stopped (SIGINT, SIGTERM or ``stop``)."""
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: self.stop.set())
        while True:
            started = utcnow()
            done = self.tick()
            if echo is not None and (once or done.delivered or done.emailed or done.expired
                                     or done.sealed
                                     or done.signed or done.errors):
                echo(f"{started:%H:%M:%S} {done.summary()}")
            if once or self.stop.wait(interval):
                return
