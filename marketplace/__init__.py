"""Selva's web edge: the Flask app factory, blueprints, payments, API and CLI."""

from __future__ import annotations

from typing import Any

from flask import Flask


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then CARBON_* environment, then ``test_config``."""
    from pathlib import Path

    from . import cli, config, errors, views
    from .database import db

    root = Path(__file__).resolve().parent.parent
    app = Flask(
        __name__,
        instance_path=str(root / "instance"),
        template_folder=str(root / "templates"),
        static_folder=str(root / "static"),
    )
    config.load(app, test_config)
    db.init_app(app)
    errors.register(app)
    app.register_blueprint(views.bp)
    cli.register(app)
    return app
