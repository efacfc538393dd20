"""Merkle tree of the journal: stored perfect subtrees, the frontier on the chain head, and
signed checkpoints. Existing journals are backfilled from their records.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger import guards
from ledger.merkle import Frontier, leaf_hash

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_merkle_nodes",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("level >= 0 AND level < 64 AND idx >= 0",
                           name=op.f("ck_ledger_merkle_nodes_position")),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_ledger_merkle_nodes")),
    )
    op.create_table(
        "ledger_checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("size >= 1", name=op.f("ck_ledger_checkpoints_size_positive")),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_ledger_checkpoints")),
    )
    # A plain ADD COLUMN: a batch (copy-and-move) alter would drop the table's triggers.
    op.add_column("ledger_chain_head", sa.Column("frontier", sa.LargeBinary(), nullable=False,
                                                 server_default=sa.text("''")))

    bind = op.get_bind()
    frontier = Frontier()
    nodes = sa.table("ledger_merkle_nodes", sa.column("level"), sa.column("idx"),
                     sa.column("hash"))
    pending: list[dict[str, object]] = []
    for (record,) in bind.execute(sa.text("SELECT record FROM ledger_entries ORDER BY seq")):
        for level, idx, value in frontier.append(leaf_hash(bytes(record))):
            pending.append({"level": level, "idx": idx, "hash": value})
        if len(pending) >= 5000:
            bind.execute(nodes.insert(), pending)
            pending.clear()
    if pending:
        bind.execute(nodes.insert(), pending)
    bind.execute(sa.text("UPDATE ledger_chain_head SET frontier = :f WHERE id = 1"),
                 {"f": frontier.to_bytes()})
    guards.install(bind, ("tree",))


def downgrade() -> None:
    guards.drop(op.get_bind(), ("tree",))
    op.drop_column("ledger_chain_head", "frontier")
    op.drop_table("ledger_checkpoints")
    op.drop_table("ledger_merkle_nodes")
