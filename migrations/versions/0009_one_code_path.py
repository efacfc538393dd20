"""One code path: test mode on its own target, one idempotency store, accounts by name, the
``refund_pending`` order state.

- The API's sandbox goes: its four tables, and the quotes' link to sandbox orders.
- Every Idempotency-Key lives in ``api_idempotency_keys`` (orders' keys move there); the mode
  is the target the row lives in, so the ``livemode`` column goes.
- Users and organisations no longer point into a ledger (each mode's ledger names their
  accounts ``user:<id>`` and ``org:<id>``).
- Orders may wait in ``refund_pending`` while the payment provider is asked for a refund.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from marketplace.migrate import shared_here

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

OLD_STATES = ("pending", "awaiting_payment", "paid", "fulfilled", "expired", "failed",
              "cancelled", "refunded")
NEW_STATES = OLD_STATES + ("refund_pending",)
NO_FKS = {"resolve_fks": False}
"""Test-mode tables point at shared tables that live in the other target: do not load those."""
SANDBOX = ("api_sandbox_retirements", "api_sandbox_order_lines", "api_sandbox_holdings")


def _states(values: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    with op.batch_alter_table("api_quotes", reflect_kwargs=NO_FKS) as batch:
        batch.drop_constraint(op.f("ck_api_quotes_one_order"), type_="check")
        batch.drop_constraint(op.f("uq_api_quotes_sandbox_order_id"), type_="unique")
        batch.drop_constraint(op.f("fk_api_quotes_sandbox_order_id_api_sandbox_orders"),
                              type_="foreignkey")
        batch.drop_column("sandbox_order_id")
        batch.drop_column("livemode")
        batch.alter_column("order_id", existing_type=sa.BigInteger().with_variant(
            sa.Integer(), "sqlite"), nullable=False)
    for table in SANDBOX:
        op.drop_table(table)
    op.drop_index("ix_api_sandbox_orders_active", table_name="api_sandbox_orders")
    op.drop_index("ix_api_sandbox_orders_organisation_id", table_name="api_sandbox_orders")
    op.drop_table("api_sandbox_orders")

    op.execute("DELETE FROM api_idempotency_keys WHERE livemode = false")
    with op.batch_alter_table("api_idempotency_keys", reflect_kwargs=NO_FKS) as batch:
        batch.drop_constraint(op.f("uq_api_idempotency_keys_key"), type_="unique")
        batch.drop_column("livemode")
        batch.create_unique_constraint(op.f("uq_api_idempotency_keys_key"),
                                       ["organisation_id", "endpoint", "key"])
    op.execute(
        "INSERT INTO api_idempotency_keys (organisation_id, endpoint, key, request_hash, "
        "resource_id, created_at) SELECT organisation_id, 'orders', idempotency_key, "
        "request_hash, reference, created_at FROM orders "
        "WHERE idempotency_key IS NOT NULL AND organisation_id IS NOT NULL")
    with op.batch_alter_table("orders", reflect_kwargs=NO_FKS) as batch:
        batch.drop_constraint(op.f("uq_orders_idempotency"), type_="unique")
        batch.drop_column("idempotency_key")
        batch.drop_column("request_hash")
        batch.drop_constraint(op.f("ck_orders_status"), type_="check")
        batch.create_check_constraint(op.f("ck_orders_status"), sa.text(_states(NEW_STATES)))

    if shared_here():
        with op.batch_alter_table("organisations", reflect_kwargs=NO_FKS) as batch:
            batch.drop_constraint(op.f("uq_organisations_ledger_account_id"), type_="unique")
            batch.drop_constraint(op.f("fk_organisations_ledger_account_id_ledger_accounts"),
                                  type_="foreignkey")
            batch.drop_column("ledger_account_id")
        with op.batch_alter_table("users", reflect_kwargs=NO_FKS) as batch:
            batch.drop_constraint(op.f("fk_users_ledger_account_id_ledger_accounts"),
                                  type_="foreignkey")
            batch.drop_column("ledger_account_id")


def downgrade() -> None:
    """Back to 0008: the sandbox tables come back empty (test mode's data stays in its own
    target), orders take their Idempotency-Keys back, and users and organisations point at
    their ledger accounts again (found by name, as ``marketplace.accounts`` finds them)."""
    big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    if shared_here():
        op.execute("INSERT INTO ledger_accounts (name, kind, created_at) "
                   "SELECT 'org:' || o.id, 'organisation', o.created_at FROM organisations o "
                   "WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts a "
                   "WHERE a.name = 'org:' || o.id)")
        with op.batch_alter_table("organisations", reflect_kwargs=NO_FKS) as batch:
            batch.add_column(sa.Column("ledger_account_id", sa.Integer(), nullable=True))
        op.execute("UPDATE organisations SET ledger_account_id = (SELECT a.id FROM "
                   "ledger_accounts a WHERE a.name = 'org:' || organisations.id)")
        with op.batch_alter_table("organisations", reflect_kwargs=NO_FKS) as batch:
            batch.alter_column("ledger_account_id", existing_type=sa.Integer(), nullable=False)
            batch.create_unique_constraint(op.f("uq_organisations_ledger_account_id"),
                                           ["ledger_account_id"])
            batch.create_foreign_key(op.f("fk_organisations_ledger_account_id_ledger_accounts"),
                                     "ledger_accounts", ["ledger_account_id"], ["id"])
        with op.batch_alter_table("users", reflect_kwargs=NO_FKS) as batch:
            batch.add_column(sa.Column("ledger_account_id", sa.Integer(), nullable=True))
            batch.create_foreign_key(op.f("fk_users_ledger_account_id_ledger_accounts"),
                                     "ledger_accounts", ["ledger_account_id"], ["id"])
        op.execute("UPDATE users SET ledger_account_id = (SELECT a.id FROM ledger_accounts a "
                   "WHERE a.name = 'user:' || users.id)")

    op.execute("UPDATE orders SET status = 'paid' WHERE status = 'refund_pending'")
    with op.batch_alter_table("orders", reflect_kwargs=NO_FKS) as batch:
        batch.drop_constraint(op.f("ck_orders_status"), type_="check")
        batch.create_check_constraint(op.f("ck_orders_status"), sa.text(_states(OLD_STATES)))
        batch.add_column(sa.Column("idempotency_key", sa.String(255), nullable=True))
        batch.add_column(sa.Column("request_hash", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_orders_idempotency",
                                       ["organisation_id", "idempotency_key"])
    op.execute("UPDATE orders SET (idempotency_key, request_hash) = (SELECT k.key, "
               "k.request_hash FROM api_idempotency_keys k WHERE k.endpoint = 'orders' "
               "AND k.resource_id = orders.reference AND k.organisation_id = "
               "orders.organisation_id)")
    op.execute("DELETE FROM api_idempotency_keys WHERE endpoint = 'orders'")
    with op.batch_alter_table("api_idempotency_keys", reflect_kwargs=NO_FKS) as batch:
        batch.drop_constraint(op.f("uq_api_idempotency_keys_key"), type_="unique")
        batch.add_column(sa.Column("livemode", sa.Boolean(), nullable=False,
                                   server_default=sa.true()))
        batch.create_unique_constraint("uq_api_idempotency_keys_key",
                                       ["organisation_id", "livemode", "endpoint", "key"])

    op.create_table(
        "api_sandbox_orders",
        sa.Column("id", big, nullable=False),
        sa.Column("reference", sa.String(30), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("payment_method", sa.String(10), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("total_minor", sa.Integer(), nullable=False),
        sa.Column("beneficiary", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=True),
        sa.Column("period_end", sa.Date(), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fulfilled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure", sa.String(300), nullable=True),
        sa.CheckConstraint("action IN ('retire', 'hold')", name=op.f("ck_api_sandbox_orders_action")),
        sa.CheckConstraint("status IN ('quoted', 'pending', 'awaiting_payment', 'fulfilled', "
                           "'expired', 'failed', 'cancelled')",
                           name=op.f("ck_api_sandbox_orders_status")),
        sa.CheckConstraint("total_minor > 0", name=op.f("ck_api_sandbox_orders_total_positive")),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"],
                                name=op.f("fk_api_sandbox_orders_organisation_id_organisations"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_sandbox_orders")),
        sa.UniqueConstraint("organisation_id", "idempotency_key",
                            name="uq_api_sandbox_orders_idempotency"),
        sa.UniqueConstraint("reference", name=op.f("uq_api_sandbox_orders_reference")))
    op.create_index("ix_api_sandbox_orders_active", "api_sandbox_orders", ["status", "expires_at"])
    op.create_index(op.f("ix_api_sandbox_orders_organisation_id"), "api_sandbox_orders",
                    ["organisation_id"])
    op.create_table(
        "api_sandbox_holdings",
        sa.Column("id", big, nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", big, nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.CheckConstraint("quantity >= 0",
                           name=op.f("ck_api_sandbox_holdings_quantity_not_negative")),
        sa.ForeignKeyConstraint(["batch_id"], ["ledger_batches.id"],
                                name=op.f("fk_api_sandbox_holdings_batch_id_ledger_batches")),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"],
                                name=op.f("fk_api_sandbox_holdings_organisation_id_organisations"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_sandbox_holdings")),
        sa.UniqueConstraint("organisation_id", "batch_id", name="uq_api_sandbox_holdings_batch"))
    op.create_table(
        "api_sandbox_order_lines",
        sa.Column("id", big, nullable=False),
        sa.Column("order_id", big, nullable=False),
        sa.Column("listing_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", big, nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_minor", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("allocation", sa.Text(), nullable=False),
        sa.CheckConstraint("quantity > 0",
                           name=op.f("ck_api_sandbox_order_lines_quantity_positive")),
        sa.ForeignKeyConstraint(["batch_id"], ["ledger_batches.id"],
                                name=op.f("fk_api_sandbox_order_lines_batch_id_ledger_batches")),
        sa.ForeignKeyConstraint(["listing_id"], ["listings.id"],
                                name=op.f("fk_api_sandbox_order_lines_listing_id_listings")),
        sa.ForeignKeyConstraint(["order_id"], ["api_sandbox_orders.id"],
                                name=op.f("fk_api_sandbox_order_lines_order_id_api_sandbox_orders"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["ledger_projects.id"],
                                name=op.f("fk_api_sandbox_order_lines_project_id_ledger_projects")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_sandbox_order_lines")))
    op.create_index(op.f("ix_api_sandbox_order_lines_order_id"), "api_sandbox_order_lines",
                    ["order_id"])
    op.create_table(
        "api_sandbox_retirements",
        sa.Column("id", big, nullable=False),
        sa.Column("public_id", sa.String(40), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("allocation", sa.Text(), nullable=False),
        sa.Column("beneficiary", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("order_id", big, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("quantity > 0",
                           name=op.f("ck_api_sandbox_retirements_quantity_positive")),
        sa.ForeignKeyConstraint(["order_id"], ["api_sandbox_orders.id"],
                                name=op.f("fk_api_sandbox_retirements_order_id_api_sandbox_orders"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"],
                                name=op.f("fk_api_sandbox_retirements_organisation_id_organisations"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_sandbox_retirements")),
        sa.UniqueConstraint("public_id", name=op.f("uq_api_sandbox_retirements_public_id")))
    op.create_index(op.f("ix_api_sandbox_retirements_organisation_id"), "api_sandbox_retirements",
                    ["organisation_id"])
    with op.batch_alter_table("api_quotes", reflect_kwargs=NO_FKS) as batch:
        batch.alter_column("order_id", existing_type=big, nullable=True)
        batch.add_column(sa.Column("livemode", sa.Boolean(), nullable=False,
                                   server_default=sa.true()))
        batch.add_column(sa.Column("sandbox_order_id", big, nullable=True))
        batch.create_foreign_key(op.f("fk_api_quotes_sandbox_order_id_api_sandbox_orders"),
                                 "api_sandbox_orders", ["sandbox_order_id"], ["id"],
                                 ondelete="CASCADE")
        batch.create_unique_constraint(op.f("uq_api_quotes_sandbox_order_id"),
                                       ["sandbox_order_id"])
        batch.create_check_constraint(op.f("ck_api_quotes_one_order"),
                                      sa.text("(order_id IS NULL) <> (sandbox_order_id IS NULL)"))
