"""Public pages: until the storefront lands, a home page listing the projects, their batches
and the latest journal entries."""

from __future__ import annotations

from flask import Blueprint, render_template

from ledger import queries
from ledger.queries import BatchTotals

from .database import db

bp = Blueprint("public", __name__)


@bp.get("/")
def home() -> str:
    session = db.session
    with session.begin():
        projects = queries.projects(session)
        totals = queries.batch_totals(session)
        per_project = queries.project_totals(session)
        entries = queries.recent_entries(session, 15)
        return render_template(
            "home.html",
            projects=projects,
            totals=totals,
            per_project=per_project,
            empty=BatchTotals(),
            entries=entries,
        )
