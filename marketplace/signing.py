"""The operator's checkpoint key and the journal's published checkpoints."""

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


def default_key_path(app: Flask) -> Path:
    return Path(app.instance_path) / "keys" / f"{key_stem(app.config['LEDGER_ORIGIN'])}.key"


def signer_key() -> str:
    """The operator's signer key, from CARBON_CHECKPOINT_KEY (a file path)."""
    path = Path(current_app.config.get("CHECKPOINT_KEY") or default_key_path(current_app))
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
    return tree.sign_checkpoint(session, signer_key(), current_app.config["LEDGER_ORIGIN"])


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
