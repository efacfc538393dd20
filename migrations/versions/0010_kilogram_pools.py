"""Kilogram pools: the ``pool`` and ``allocate`` entry kinds and their tables, order lines in
grams, and each listing's pool stock and allocations.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger import guards

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NO_FKS = {"resolve_fks": False}

OLD_KINDS = "kind IN ('issue', 'transfer', 'retire', 'cancel', 'origin', 'label')"
NEW_KINDS = "kind IN ('issue', 'transfer', 'retire', 'cancel', 'origin', 'label', 'pool', 'allocate')"
OLD_LINE = "quantity > 0"
NEW_LINE = "(grams IS NULL AND quantity > 0) OR (grams > 0 AND quantity = 0)"


def _kinds(old: str, new: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        guards.sqlite_widen_check(bind, "ledger_entries", old, new)
        return
    op.drop_constraint(op.f("ck_ledger_entries_kind"), "ledger_entries", type_="check")
    op.create_check_constraint("kind", "ledger_entries", sa.text(new))


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    ref_table, ref_column = target.split(".")
    return sa.ForeignKeyConstraint([column], [target],
                                   name=op.f(f"fk_{table}_{column}_{ref_table}"))


def upgrade() -> None:
    op.create_table(
        "ledger_pool_retirements",
        sa.Column("seq", Id, autoincrement=False, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("pool", sa.String(32), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("quantity > 0",
                           name=op.f("ck_ledger_pool_retirements_quantity_positive")),
        _fk("ledger_pool_retirements", "seq", "ledger_entries.seq"),
        _fk("ledger_pool_retirements", "project_id", "ledger_projects.id"),
        _fk("ledger_pool_retirements", "account_id", "ledger_accounts.id"),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ledger_pool_retirements")),
    )
    op.create_index("ix_ledger_pool_retirements_project", "ledger_pool_retirements",
                    ["project_id", "seq"])
    op.create_table(
        "ledger_allocations",
        sa.Column("seq", Id, autoincrement=False, nullable=False),
        sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("grams", sa.BigInteger(), nullable=False),
        sa.Column("commitment", sa.String(64), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("salt", sa.String(64), nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.CheckConstraint("grams > 0", name=op.f("ck_ledger_allocations_grams_positive")),
        sa.CheckConstraint("idx >= 0", name=op.f("ck_ledger_allocations_idx")),
        _fk("ledger_allocations", "seq", "ledger_entries.seq"),
        sa.PrimaryKeyConstraint("seq", "idx", name=op.f("pk_ledger_allocations")),
    )
    op.create_table(
        "ledger_allocation_draws",
        sa.Column("seq", Id, autoincrement=False, nullable=False),
        sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("pool_seq", Id, autoincrement=False, nullable=False),
        sa.Column("grams", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("grams > 0", name=op.f("ck_ledger_allocation_draws_grams_positive")),
        _fk("ledger_allocation_draws", "seq", "ledger_entries.seq"),
        _fk("ledger_allocation_draws", "pool_seq", "ledger_pool_retirements.seq"),
        sa.PrimaryKeyConstraint("seq", "idx", "pool_seq", name=op.f("pk_ledger_allocation_draws")),
    )
    op.create_index("ix_ledger_allocation_draws_pool", "ledger_allocation_draws", ["pool_seq"])
    _kinds(OLD_KINDS, NEW_KINDS)

    with op.batch_alter_table("order_lines", reflect_kwargs=NO_FKS) as batch:
        batch.add_column(sa.Column("grams", sa.BigInteger(), nullable=True))
        batch.drop_constraint(op.f("ck_order_lines_quantity_positive"), type_="check")
        batch.create_check_constraint(op.f("ck_order_lines_quantity_positive"), sa.text(NEW_LINE))

    op.create_table(
        "kg_pool_stock",
        sa.Column("seq", Id, autoincrement=False, nullable=False),
        sa.Column("listing_id", sa.Integer(), nullable=False),
        sa.Column("grams", sa.BigInteger(), nullable=False),
        sa.Column("taken", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("taken >= 0 AND taken <= grams", name=op.f("ck_kg_pool_stock_within")),
        _fk("kg_pool_stock", "seq", "ledger_entries.seq"),
        _fk("kg_pool_stock", "listing_id", "listings.id"),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_kg_pool_stock")),
    )
    op.create_index("ix_kg_pool_stock_listing", "kg_pool_stock", ["listing_id", "seq"])
    op.create_table(
        "kg_allocations",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("reference", sa.String(24), nullable=False),
        sa.Column("order_id", Id, nullable=False),
        sa.Column("line_id", Id, nullable=False),
        sa.Column("listing_id", sa.Integer(), nullable=False),
        sa.Column("grams", sa.BigInteger(), nullable=False),
        sa.Column("draws", sa.String(400), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("returned", sa.Boolean(), nullable=False),
        sa.Column("seq", Id, nullable=True),
        sa.Column("idx", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("allocated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("grams > 0", name=op.f("ck_kg_allocations_grams_positive")),
        sa.CheckConstraint("state IN ('reserved', 'allocated', 'sealed', 'released')",
                           name=op.f("ck_kg_allocations_state")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], ondelete="CASCADE",
                                name=op.f("fk_kg_allocations_order_id_orders")),
        sa.ForeignKeyConstraint(["line_id"], ["order_lines.id"], ondelete="CASCADE",
                                name=op.f("fk_kg_allocations_line_id_order_lines")),
        _fk("kg_allocations", "listing_id", "listings.id"),
        _fk("kg_allocations", "seq", "ledger_entries.seq"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kg_allocations")),
        sa.UniqueConstraint("reference", name=op.f("uq_kg_allocations_reference")),
    )
    op.create_index("ix_kg_allocations_order_id", "kg_allocations", ["order_id"])
    op.create_index("ix_kg_allocations_listing", "kg_allocations", ["listing_id", "state"])
    op.create_index("ix_kg_allocations_sealed", "kg_allocations", ["seq", "idx"])
    op.create_index("ix_kg_allocations_waiting", "kg_allocations", ["state", "id"],
                    postgresql_where=sa.text("state = 'allocated'"),
                    sqlite_where=sa.text("state = 'allocated'"))


def downgrade() -> None:
    bind = op.get_bind()
    used = bind.execute(sa.text(
        "SELECT count(*) FROM ledger_entries WHERE kind IN ('pool', 'allocate')")).scalar_one()
    if used:
        raise RuntimeError("the journal holds pool or allocate entries: an append-only journal "
                           "cannot be downgraded past them")
    op.execute("DELETE FROM order_lines WHERE grams IS NOT NULL")
    op.drop_table("kg_allocations")
    op.drop_table("kg_pool_stock")
    with op.batch_alter_table("order_lines", reflect_kwargs=NO_FKS) as batch:
        batch.drop_constraint(op.f("ck_order_lines_quantity_positive"), type_="check")
        batch.create_check_constraint(op.f("ck_order_lines_quantity_positive"), sa.text(OLD_LINE))
        batch.drop_column("grams")
    _kinds(NEW_KINDS, OLD_KINDS)
    op.drop_table("ledger_allocation_draws")
    op.drop_table("ledger_allocations")
    op.drop_index("ix_ledger_pool_retirements_project", table_name="ledger_pool_retirements")
    op.drop_table("ledger_pool_retirements")
