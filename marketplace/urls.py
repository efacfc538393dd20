"""Absolute addresses of the site's pages, also outside a request (CLI commands, the worker,
webhook payloads), taken from ``CARBON_SITE_URL``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app, has_request_context, url_for

DEVELOPMENT_SITE = "http://127.0.0.1:5000"


def site_url() -> str:
    """The site's public address: ``CARBON_SITE_URL``, or the development server's."""
    return str(current_app.config.get("SITE_URL") or DEVELOPMENT_SITE).rstrip("/")


def registry_blueprint() -> str:
    """The registry's blueprint for the current mode: the live registry, or the test ledger's
    (the same pages under ``/test``)."""
    from .database import db
    from .modes import LIVE

    return "registry" if db.mode() == LIVE else "test_registry"


def external_url(endpoint: str, **values: Any) -> str:
    """``url_for(endpoint, _external=True)``; outside a request, on the configured site."""
    if has_request_context():
        return url_for(endpoint, _external=True, **values)
    return site_link(endpoint, **values)


def site_link(endpoint: str, **values: Any) -> str:
    """An address on the configured site (``CARBON_SITE_URL``), whatever the request's host:
    for links that leave the site, in emails."""
    parts = urlsplit(site_url())
    adapter = current_app.url_map.bind(parts.netloc, script_name=parts.path or "/",
                                       url_scheme=parts.scheme or "https")
    return adapter.build(endpoint, values, force_external=True)
