"""Migrations: up, down and up again on both backends, and the Merkle backfill of a journal
written before the tree existed."""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import text

from ledger import merkle
from ledger.db import make_engine
from marketplace.migrate import downgrade, upgrade


def test_down_and_up_again(fresh_url: str) -> None:
    downgrade(fresh_url, "base")
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT seq FROM ledger_chain_head")).scalar_one() == 0
    engine.dispose()


def test_merkle_backfill_of_an_existing_journal(fresh_url: str) -> None:
    downgrade(fresh_url, "0001")
    engine = make_engine(fresh_url)
    records = [f'{{"n":{n}}}'.encode() for n in range(11)]
    with engine.begin() as conn:
        for n, record in enumerate(records, start=1):
            conn.execute(
                text("INSERT INTO ledger_entries (seq, kind, created_at, record, hash) "
                     "VALUES (:seq, 'issue', :at, :record, :hash)"),
                {"seq": n, "at": dt.datetime.now(dt.UTC), "record": record,
                 "hash": hashlib.sha256(record).hexdigest()},
            )
    upgrade(fresh_url)
    leaves = [merkle.leaf_hash(r) for r in records]
    with engine.connect() as conn:
        blob = conn.execute(text("SELECT frontier FROM ledger_chain_head")).scalar_one()
        stored = conn.execute(text("SELECT count(*) FROM ledger_merkle_nodes")).scalar_one()
        trigger_count = conn.execute(text("SELECT count(*) FROM ledger_merkle_nodes WHERE level = 3")).scalar_one()
    engine.dispose()
    frontier = merkle.Frontier.from_bytes(len(records), bytes(blob))
    assert frontier.root() == merkle.root_from_leaf_hashes(leaves)
    assert stored == 2 * len(records) - bin(len(records)).count("1")
    assert trigger_count == 1
