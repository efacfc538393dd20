"""Index only the blocks a spend or an overlap check can touch.

A holder's spendable blocks and a batch's unspent blocks are found through partial indexes, so
operations cost the same however long the history of spent blocks grows; SQLite's overlap
trigger probes the one neighbouring block instead of scanning the batch.

Revision ID: 0005
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger import guards

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None

SPENDABLE = "spent_by IS NULL AND state = 'tradable'"
UNSPENT = "spent_by IS NULL"


def upgrade() -> None:
    op.drop_index("ix_ledger_blocks_unspent", table_name="ledger_blocks")
    op.create_index("ix_ledger_blocks_spendable", "ledger_blocks",
                    ["account_id", "batch_id", "first_serial"],
                    postgresql_where=sa.text(SPENDABLE), sqlite_where=sa.text(SPENDABLE))
    op.create_index("ix_ledger_blocks_batch_unspent", "ledger_blocks",
                    ["batch_id", "first_serial"],
                    postgresql_where=sa.text(UNSPENT), sqlite_where=sa.text(UNSPENT))
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS ledger_blocks_no_overlap")
        op.execute(guards.SQLITE_NO_OVERLAP)


def downgrade() -> None:
    op.drop_index("ix_ledger_blocks_batch_unspent", table_name="ledger_blocks")
    op.drop_index("ix_ledger_blocks_spendable", table_name="ledger_blocks")
    op.create_index("ix_ledger_blocks_unspent", "ledger_blocks",
                    ["account_id", "state", "batch_id", "first_serial"])
