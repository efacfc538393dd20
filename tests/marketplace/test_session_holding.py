"""Inside one transaction a web session holds every object it loaded or wrote, so asking for
one again (``session.get``, a lazy relationship) costs no second read; once the transaction
ends it lets go, and the next transaction reads afresh."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select

from marketplace.database import db
from marketplace.models import Listing


@pytest.fixture
def statements(app: Flask) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = app.extensions["selva_engine"]

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):  # not the tests' savepoints
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_an_object_read_once_is_not_read_again_in_the_same_transaction(
        app: Flask, statements: list[str]) -> None:
    with app.app_context():
        with db.session.begin():
            listing_id = db.session.scalars(select(Listing).order_by(Listing.id).limit(1)).one().id
            gc.collect()  # nothing else holds the listing now
            statements.clear()
            listing = db.session.get(Listing, listing_id)
            assert listing is not None and listing.id == listing_id
            assert statements == []
            assert "selva_held" in db.session.info
        assert "selva_held" not in db.session.info
        del listing
        gc.collect()
        with db.session.begin():
            statements.clear()
            assert db.session.get(Listing, listing_id) is not None
            assert len(statements) == 1 and "FROM listings" in statements[0]  # afresh
