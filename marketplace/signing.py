"""The operator's checkpoint keys and the journals' published checkpoints.

Each mode's ledger has its own key and origin: the live one ``CARBON_CHECKPOINT_KEY`` and
``CARBON_LEDGER_ORIGIN`` (``selva.example/ledger``), the test ledger
``CARBON_TEST_CHECKPOINT_KEY`` and the same origin with ``test-ledger`` for its last part
(``selva.example/test-ledger``), so that a test checkpoint can never pass for a live one.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app
from sqlalchemy.orm import Session

from ledger import bundle, tree
from ledger.checkpoint import CheckpointError, load_signer, verifier_from_signer
from ledger.errors import ChainError
from ledger.export import export
from ledger.schema import SignedCheckpoint


class SigningKeyMissing(CheckpointError):
    """No checkpoint signing key is configured (see ``flask ledger keygen``)."""


def key_stem(origin: str) -> str:
    return origin.replace("/", "_")


def ledger_origin(app: Flask | None = None, mode: str | None = None) -> str:
    """The origin line of ``mode``'s checkpoints (default: the current mode)."""
    from .database import db
    from .modes import LIVE

    app = app or current_app
    live = str(app.config["LEDGER_ORIGIN"])
    if (mode or db.mode()) == LIVE:
        return live
    base, _, _ = live.rpartition("/")
    return f"{base}/test-ledger" if base else "test-ledger"


def default_key_path(app: Flask, mode: str | None = None) -> Path:
    return Path(app.instance_path) / "keys" / f"{key_stem(ledger_origin(app, mode))}.key"


def key_path(app: Flask | None = None, mode: str | None = None) -> Path:
    """Where ``mode``'s signer key is (CARBON_CHECKPOINT_KEY / CARBON_TEST_CHECKPOINT_KEY)."""
    from .database import db
    from .modes import LIVE

    app = app or current_app
    setting = "CHECKPOINT_KEY" if (mode or db.mode()) == LIVE else "TEST_CHECKPOINT_KEY"
    return Path(app.config.get(setting) or default_key_path(app, mode))


def signer_key() -> str:
    """The current mode's signer key (a file path in CARBON_CHECKPOINT_KEY, or
    CARBON_TEST_CHECKPOINT_KEY in test mode)."""
    path = key_path()
    if not path.exists():
        raise SigningKeyMissing(f"no checkpoint signing key at {path}: run "
                                "'flask --app wsgi ledger keygen' or set CARBON_CHECKPOINT_KEY")
    return load_signer(path)


def verifier_key() -> str:
    """The verifier key auditors check checkpoints with."""
    return verifier_from_signer(signer_key())


class NotYetSigned(CheckpointError):
    """No signed checkpoint covers what was asked for yet: the worker signs one within
    ``--checkpoint`` seconds (``RETRY_SECONDS`` is what the registry tells clients to wait)."""


RETRY_SECONDS = 5
SIGNING_MODES = ("worker", "request")


def signs_on_request(app: Flask | None = None) -> bool:
    """Whether registry reads may sign a checkpoint themselves (``CARBON_CHECKPOINT_SIGNING``
    ``request``: for running without a worker, and for tests). The default, ``worker``, leaves
    all signing to ``flask worker``, so every registry GET is read-only."""
    app = app or current_app
    return str(app.config.get("CHECKPOINT_SIGNING", "worker")) == "request"


def published_checkpoint(session: Session) -> SignedCheckpoint:
    """The newest signed checkpoint: what a registry read serves. Read-only unless
    ``signs_on_request``, in which case a checkpoint behind the journal is re-signed first.

    Raises ``ChainError`` if the journal is empty, ``NotYetSigned`` if entries exist but no
    checkpoint was signed yet."""
    if signs_on_request():
        return current_checkpoint(session)
    latest = tree.latest_checkpoint(session)
    if latest is not None:
        return latest
    if tree.size(session) == 0:
        raise ChainError("the journal is empty")
    signer_key()  # no key: nothing will ever sign it, a 503 rather than "retry shortly"
    raise NotYetSigned("no checkpoint is signed yet")


def checkpoint_for(session: Session, seq: int, *, sign: bool | None = None) -> SignedCheckpoint:
    """The oldest signed checkpoint covering entry ``seq``. When none does yet, one is signed
    if ``sign`` (the worker, the CLI; default: ``signs_on_request``), otherwise
    ``NotYetSigned`` is raised and the caller answers "retry shortly"."""
    found = tree.checkpoint_covering(session, seq)
    if found is not None:
        return found
    if sign if sign is not None else signs_on_request():
        return current_checkpoint(session)
    signer_key()  # no key: nothing will ever sign it, a 503 rather than "retry shortly"
    raise NotYetSigned(f"entry {seq} is not covered by a signed checkpoint yet")


def current_checkpoint(session: Session) -> SignedCheckpoint:
    """A checkpoint covering the whole journal, signing a new one if the last is behind.

    Runs in the caller's transaction (it takes the chain-head lock only to sign)."""
    latest = tree.latest_checkpoint(session)
    if latest is not None and latest.size == tree.size(session):
        return latest
    return tree.sign_checkpoint(session, signer_key(), ledger_origin())


def export_bundle(directory: Path) -> dict[str, object]:
    """Sign a checkpoint, then export exactly the entries it covers, with it and the key."""
    from .database import db

    session = db.new_session()
    try:
        with session.begin():
            checkpoint = current_checkpoint(session)
            size, note = checkpoint.size, checkpoint.note
        with session.begin():
            return export(session, directory, up_to=size, extra_files={
                bundle.CHECKPOINT: note.encode("utf-8"),
                bundle.KEY: (verifier_key() + "\n").encode("utf-8"),
            })
    finally:
        session.close()
