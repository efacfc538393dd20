"""Origin registry evidence and quality labels: the ``origin`` and ``label`` entry kinds, the
``frozen`` block state, and the tables they fill.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger import guards

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

OLD_KINDS = "kind IN ('issue', 'transfer', 'retire', 'cancel')"
NEW_KINDS = "kind IN ('issue', 'transfer', 'retire', 'cancel', 'origin', 'label')"
OLD_STATES = "state IN ('tradable', 'retired', 'cancelled')"
NEW_STATES = "state IN ('tradable', 'retired', 'cancelled', 'frozen')"


def _checks(kinds: str, states: str, old_kinds: str, old_states: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        guards.sqlite_widen_check(bind, "ledger_entries", old_kinds, kinds)
        guards.sqlite_widen_check(bind, "ledger_blocks", old_states, states)
        return
    op.drop_constraint(op.f("ck_ledger_entries_kind"), "ledger_entries", type_="check")
    op.create_check_constraint("kind", "ledger_entries", sa.text(kinds))
    op.drop_constraint(op.f("ck_ledger_blocks_state"), "ledger_blocks", type_="check")
    op.create_check_constraint("state", "ledger_blocks", sa.text(states))


def upgrade() -> None:
    op.create_table(
        "ledger_origin_records",
        sa.Column("seq", Id, autoincrement=False, nullable=False),
        sa.Column("batch_id", Id, nullable=False),
        sa.Column("registry_name", sa.String(20), nullable=False),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("first_serial", sa.BigInteger(), nullable=False),
        sa.Column("last_serial", sa.BigInteger(), nullable=False),
        sa.Column("origin_date", sa.Date(), nullable=False),
        sa.Column("beneficiary", sa.String(500), nullable=False),
        sa.Column("account", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("reference", sa.String(500), nullable=False),
        sa.Column("ours", sa.Boolean(), nullable=False),
        sa.CheckConstraint("first_serial >= 1 AND first_serial <= last_serial",
                           name=op.f("ck_ledger_origin_records_range")),
        sa.CheckConstraint("action IN ('retired', 'cancelled')",
                           name=op.f("ck_ledger_origin_records_action")),
        sa.ForeignKeyConstraint(["seq"], ["ledger_entries.seq"],
                                name=op.f("fk_ledger_origin_records_seq_ledger_entries")),
        sa.ForeignKeyConstraint(["batch_id"], ["ledger_batches.id"],
                                name=op.f("fk_ledger_origin_records_batch_id_ledger_batches")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ledger_origin_records")),
    )
    op.create_index("ix_ledger_origin_records_batch_range", "ledger_origin_records",
                    ["batch_id", "first_serial"])
    op.create_table(
        "ledger_batch_labels",
        sa.Column("seq", Id, autoincrement=False, nullable=False),
        sa.Column("batch_id", Id, nullable=False),
        sa.Column("effective", sa.Date(), nullable=False),
        sa.Column("ccp", sa.Boolean(), nullable=False),
        sa.Column("ccp_since", sa.Date(), nullable=True),
        sa.Column("article6_authorized", sa.Boolean(), nullable=False),
        sa.Column("ca_declaration", sa.String(20), nullable=False),
        sa.Column("ca_status", sa.String(20), nullable=False),
        sa.Column("corsia", sa.String(20), nullable=True),
        sa.Column("mitigation", sa.String(20), nullable=True),
        sa.Column("note", sa.String(500), nullable=False),
        sa.ForeignKeyConstraint(["seq"], ["ledger_entries.seq"],
                                name=op.f("fk_ledger_batch_labels_seq_ledger_entries")),
        sa.ForeignKeyConstraint(["batch_id"], ["ledger_batches.id"],
                                name=op.f("fk_ledger_batch_labels_batch_id_ledger_batches")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ledger_batch_labels")),
    )
    op.create_index("ix_ledger_batch_labels_batch", "ledger_batch_labels", ["batch_id", "seq"])
    _checks(NEW_KINDS, NEW_STATES, OLD_KINDS, OLD_STATES)
    guards.install(op.get_bind(), ("origin",))


def downgrade() -> None:
    bind = op.get_bind()
    used = bind.execute(sa.text(
        "SELECT count(*) FROM ledger_entries WHERE kind IN ('origin', 'label')")).scalar_one()
    if used:
        raise RuntimeError("the journal holds origin or label entries: an append-only journal "
                           "cannot be downgraded past them")
    guards.drop(bind, ("origin",))
    _checks(OLD_KINDS, OLD_STATES, NEW_KINDS, NEW_STATES)
    op.drop_index("ix_ledger_batch_labels_batch", table_name="ledger_batch_labels")
    op.drop_table("ledger_batch_labels")
    op.drop_index("ix_ledger_origin_records_batch_range", table_name="ledger_origin_records")
    op.drop_table("ledger_origin_records")
