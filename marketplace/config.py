"""Configuration: defaults, then the environment (``CARBON_*``), then a test mapping."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from flask import Flask


class ConfigError(RuntimeError):
    """The configuration is unsafe or incomplete; the app refuses to start."""


def defaults(instance_path: str) -> dict[str, Any]:
    return {
        "ENV": "development",
        "DATABASE_URL": f"sqlite:///{Path(instance_path) / 'selva.db'}",
        "SECRET_KEY": None,
        "SITE_NAME": "Selva",
        "LEDGER_ORIGIN": "selva.example/ledger",
        "SITE_URL": None,
        "ORIGIN_NAMES": "Selva",
        "TEST_SCHEMA": "selva_test",
        "TEST_PAYMENT_GATEWAY": "demo",
        "TEST_CHECKPOINT_KEY": None,
        "PAYMENT_GATEWAY": "demo",
        "STRIPE_SECRET_KEY": None,
        "STRIPE_API_BASE": None,
        "STRIPE_WEBHOOK_SECRET": None,
        "WEBHOOK_TOLERANCE": 300,
        "CHECKPOINT_KEY": None,
        "RATELIMIT_STORAGE_URI": "memory://",
        "RATELIMIT_HEADERS_ENABLED": True,
        "WTF_CSRF_TIME_LIMIT": None,
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        "POOL_REFILL_BELOW_KG": 1_000,
        "POOL_REFILL_TONNES": 2,
        "POOL_SEAL_SECONDS": 1.0,
        # "worker": only `flask worker` signs checkpoints and registry reads are read-only;
        # "request": a registry read signs when the journal is ahead (no worker needed).
        "CHECKPOINT_SIGNING": "worker",
        # Rendered pages (marketplace.pagecache): Redis at CACHE_URL, else in each process.
        "CACHE_URL": None,
        "PAGE_CACHE": True,
        "PAGE_STOCK_SECONDS": 5.0,
        "PAGE_CACHE_ENTRIES": 2048,
    }


def load(app: Flask, test_config: dict[str, Any] | None) -> None:
    app.config.from_mapping(defaults(app.instance_path))
    app.config.from_prefixed_env("CARBON")
    if test_config:
        app.config.update(test_config)
    production = app.config["ENV"] == "production"
    if not app.config.get("SECRET_KEY"):
        if production:
            raise ConfigError("CARBON_SECRET_KEY must be set in production")
        app.config["SECRET_KEY"] = _development_secret(Path(app.instance_path), "secret_key")
    gateway = app.config["PAYMENT_GATEWAY"]
    if gateway not in ("demo", "stripe"):
        raise ConfigError(f"CARBON_PAYMENT_GATEWAY must be demo or stripe, not {gateway!r}")
    signing = app.config["CHECKPOINT_SIGNING"]
    if signing not in ("worker", "request"):
        raise ConfigError(f"CARBON_CHECKPOINT_SIGNING must be worker or request, not {signing!r}")
    if production and gateway == "demo":
        raise ConfigError("the demo payment gateway is refused in production: "
                          "set CARBON_PAYMENT_GATEWAY=stripe")
    if gateway == "stripe" and not (app.config["STRIPE_SECRET_KEY"]
                                    and app.config["STRIPE_WEBHOOK_SECRET"]):
        raise ConfigError("the stripe gateway needs CARBON_STRIPE_SECRET_KEY and "
                          "CARBON_STRIPE_WEBHOOK_SECRET")
    if not app.config["STRIPE_WEBHOOK_SECRET"]:
        # The demo gateway signs its webhooks with a per-checkout secret, like the session key.
        app.config["STRIPE_WEBHOOK_SECRET"] = "whsec_" + _development_secret(
            Path(app.instance_path), "webhook_secret")
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=production,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=production,
    )


def _development_secret(instance: Path, name: str) -> str:
    """A per-checkout secret kept in instance/, so development sessions survive restarts."""
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / name
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()
