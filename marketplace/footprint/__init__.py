"""Individuals: the footprint calculator, saved footprints, public pages and monthly offsetting.

``register(app)`` loads and validates the emission factor files (refusing to start with
``FactorFileError`` if one is missing its source, year or unit), then registers the
calculator's blueprint, and the demo subscription page when the demo gateway is configured.
Settings (all optional): ``FOOTPRINT_FACTORS_DIR`` points the loader at another directory
of factor files; ``FOOTPRINT_OFFERS_TTL`` is how many seconds the result page reuses its list
of projects on sale (default 10).
"""

from __future__ import annotations

from flask import Flask

from .factors import FactorFileError, FactorSet, load

__all__ = ["FactorFileError", "init_app", "register"]


def init_app(app: Flask) -> FactorSet:
    """Load and validate the factor files once, at start-up, and keep them on the app."""
    factors = load(app.config.get("FOOTPRINT_FACTORS_DIR"))
    app.extensions["footprint_factors"] = factors
    return factors


def register(app: Flask) -> None:
    """Everything this package adds to the app; call it once, from the app factory."""
    from ..payments import webhooks
    from . import demo, subscriptions, views

    init_app(app)
    webhooks.handles("invoice.paid", subscriptions.handle_invoice_paid)
    app.register_blueprint(views.bp)
    if app.config["PAYMENT_GATEWAY"] == "demo":
        app.register_blueprint(demo.bp)
