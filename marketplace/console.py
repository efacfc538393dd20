"""``selva``: the app's commands from an installed package, in any folder.

    selva serve [--host 127.0.0.1 --port 8000 --workers 2]   # gunicorn
    selva worker                                             # the scheduled work
    selva db upgrade | selva demo load | selva ledger verify | selva pool status | ...

Configured like any deployment, by ``CARBON_*`` variables (``CARBON_DATABASE_URL``, and
``CARBON_INSTANCE_PATH`` for the instance folder, ``./instance`` by default).
"""

from __future__ import annotations

from typing import Any

import click
from flask import Flask
from flask.cli import FlaskGroup


def _app() -> Flask:
    from . import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_app, add_version_option=False,
             help="Selva: the carbon credit marketplace and its ledger.")
def cli() -> None:
    """The Flask commands of the app (db, ledger, demo, users, api, pool, worker...)."""


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--threads", type=click.IntRange(1, 64), default=4, show_default=True)
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the app with gunicorn (gthread workers)."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", threads)

        def load(self) -> Any:
            return _app()

    click.echo(f"Serving Selva on http://{host}:{port}")
    Server().run()


def main() -> None:
    cli()
