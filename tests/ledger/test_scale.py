"""An operation's cost does not grow with the tonnes it touches: retiring 1 t from a
64,688,764 t block (Madre de Dios' whole crediting period) writes the same rows and runs the
same SQL as retiring 1 t from a 10 t block. Blocks are ranges, never one row per tonne.

Structural only: rows and statements are counted, nothing is timed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from ledger import audit, operations

from .helpers import counts, issue_verra, make_world, retire_args, tx

HUGE = 64_688_764


@contextmanager
def statements(session: Session) -> Iterator[list[str]]:
    """Collect every SQL statement the session's connection sends while the block runs."""
    sent: list[str] = []
    connection = session.connection()

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(re.sub(r"sa_savepoint_\d+", "sa_savepoint_N", statement))

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(connection, "before_cursor_execute", record)


def retire_one(session: Session, account: int) -> tuple[list[str], tuple[int, int],
                                                         operations.Receipt]:
    """Retire 1 t from the account, from a cold session; return the SQL sent and the rows added
    (entries, blocks)."""
    session.commit()
    session.expunge_all()  # both runs start with nothing cached
    before = counts(session)
    with statements(session) as sent:
        with tx(session):
            receipt = operations.retire(session, account_id=account, quantity=1,
                                        **retire_args())
    after = counts(session)
    return sent, (after[0] - before[0], after[1] - before[1]), receipt


def test_retiring_from_a_huge_block_costs_what_a_small_one_does(session: Session) -> None:
    big = make_world(session, "868")
    small = make_world(session, "944")
    issue_verra(session, big, first=40_118_702, quantity=HUGE, issuance=3675)
    issue_verra(session, small, first=1_000_001, quantity=10, issuance=9660)

    big_sql, big_rows, big_receipt = retire_one(session, big.inventory)
    small_sql, small_rows, small_receipt = retire_one(session, small.inventory)

    # One entry; two new blocks (the retired tonne and the remainder); one block spent.
    assert big_rows == small_rows == (1, 2)
    assert len(big_receipt.spent) == len(small_receipt.spent) == 1
    assert [b.quantity for b in big_receipt.created] == [1, HUGE - 1]
    assert [b.quantity for b in small_receipt.created] == [1, 9]
    # The very same statements, in the same order; only their parameters differ.
    assert len(big_sql) == len(small_sql) > 0
    assert big_sql == small_sql
    assert audit.verify(session).entries == 4
