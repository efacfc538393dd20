"""Selva's web edge: the Flask app factory, blueprints, payments, API and CLI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask


def instance_path() -> str:
    """Where the instance folder is (the SQLite database, development keys and secrets):
    ``CARBON_INSTANCE_PATH``, or ``./instance`` in the folder the app is started from."""
    configured = os.environ.get("CARBON_INSTANCE_PATH", "").strip()
    return str(Path(configured or "instance").resolve())


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then CARBON_* environment, then ``test_config``."""

    from . import (
        auth,
        cart,
        catalogue,
        cli,
        config,
        errors,
        footprint,
        formatting,
        inputs,
        operator,
        origin_views,
        orders,
        orgs,
        pagecache,
        registry,
        security,
    )
    from .database import db
    from .extensions import csrf, limiter, login_manager
    from .payments import demo, webhooks

    here = Path(__file__).parent  # templates/, static/ and migrations/ ship inside it
    app = Flask(
        __name__,
        instance_path=instance_path(),
        template_folder=str(here / "templates"),
        static_folder=str(here / "static"),
    )
    inputs.register_converters(app)
    config.load(app, test_config)
    db.init_app(app)
    pagecache.init_app(app)
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    errors.register(app)
    security.register(app)
    inputs.register(app)
    formatting.register(app)
    catalogue.register(app)
    registry.register(app)
    footprint.register(app)
    for blueprint in (auth.bp, cart.bp, orders.bp, orgs.bp, operator.bp, origin_views.bp,
                      webhooks.bp):
        app.register_blueprint(blueprint)
    if app.config["PAYMENT_GATEWAY"] == "demo":
        app.register_blueprint(demo.bp)
    if app.config["ENV"] != "production":
        from .mail import dev_bp

        app.register_blueprint(dev_bp)
    cli.register(app)
    from .api import register as register_api

    register_api(app)
    return app
