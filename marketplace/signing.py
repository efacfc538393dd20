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
