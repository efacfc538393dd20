"""The API for companies: ``/api/v1`` (JSON only, API keys, problem details, cursors, rate
limits, idempotency, OpenAPI 3.1), the browser pages where organisation admins manage keys and
webhook endpoints, the developer page, outbound webhooks and the ``flask api`` commands.

``register(app)`` wires it all into an app; the app factory calls it once.
"""

from __future__ import annotations

from flask import Flask

DEFAULTS = {
    "API_QUOTE_TTL": 900,
    "API_INVOICE_DAYS": 30,
    "API_RATE_LIMIT": "120 per minute",
    "API_PUBLIC_RATE_LIMIT": "60 per minute",
    "API_WEBHOOK_TIMEOUT": 10,
    "API_WEBHOOK_ALLOW_PRIVATE": None,
}
"""Settings (each can be set as CARBON_<NAME>): a quote's hold in seconds, how long an
invoice holds its tonnes, the rate limits (per key; per address for public calls and bad
keys), the webhook timeout in seconds, and whether webhooks may go to private addresses (by
default only outside production)."""


def register(app: Flask) -> None:
    """Register the API blueprint (CSRF-exempt: keys, not cookies), the admin and developer
    pages, the error handlers for /api/, the webhook outbox and the CLI. Idempotent."""
    if "api" in app.blueprints:
        return
    from ..extensions import csrf
    from . import admin, cli, developers, problems, views

    for name, value in DEFAULTS.items():
        app.config.setdefault(name, value)
    csrf.exempt(views.bp)
    app.register_blueprint(views.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(developers.bp)
    problems.register(app)

    cli.register(app)
