"""Individuals: saved footprints (their history), public profile pages, monthly offset
subscriptions and the invoices that fulfil them.

Only new tables; nothing of the storefront changes.

Revision ID: 0004calc
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from marketplace.migrate import shared_here

revision = "0004calc"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_LIVE = "status IN ('pending', 'active')"


def upgrade() -> None:
    if not shared_here():
        return  # footprints belong to users: the live target only
    op.create_table(
        "saved_footprints",
        sa.Column("id", _ID, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("lines", sa.Text(), nullable=False),
        sa.Column("total_grams", sa.BigInteger(), nullable=False),
        sa.Column("factor_versions", sa.String(length=400), nullable=False),
        sa.CheckConstraint("total_grams >= 0", name=op.f("ck_saved_footprints_total_not_negative")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_saved_footprints_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_footprints")),
    )
    op.create_index(op.f("ix_saved_footprints_user_id"), "saved_footprints", ["user_id"])

    op.create_table(
        "footprint_profiles",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=32), nullable=False),
        sa.Column("display_name", sa.String(length=120), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_footprint_profiles_user_id_users")),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_footprint_profiles")),
        sa.UniqueConstraint("slug", name=op.f("uq_footprint_profiles_slug")),
    )

    op.create_table(
        "offset_subscriptions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("reference", sa.String(length=24), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("footprint_id", _ID, nullable=False),
        sa.Column("listing_id", sa.Integer(), nullable=False),
        sa.Column("annual_grams", sa.BigInteger(), nullable=False),
        sa.Column("monthly_grams", sa.BigInteger(), nullable=False),
        sa.Column("price_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("beneficiary", sa.String(length=200), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("gateway", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("checkout_session_id", sa.String(length=255), nullable=True),
        sa.Column("checkout_url", sa.Text(), nullable=True),
        sa.Column("provider_subscription_id", sa.String(length=255), nullable=True),
        sa.Column("months_paid", sa.Integer(), nullable=False),
        sa.Column("retired_tonnes", sa.BigInteger(), nullable=False),
        sa.Column("carried_grams", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'active', 'cancelled')",
                           name=op.f("ck_offset_subscriptions_status")),
        sa.CheckConstraint("annual_grams > 0 AND monthly_grams > 0",
                           name=op.f("ck_offset_subscriptions_grams_positive")),
        sa.CheckConstraint("price_minor > 0", name=op.f("ck_offset_subscriptions_price_positive")),
        sa.CheckConstraint("carried_grams >= 0 AND retired_tonnes >= 0 AND months_paid >= 0",
                           name=op.f("ck_offset_subscriptions_counters_not_negative")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_offset_subscriptions_user_id_users")),
        sa.ForeignKeyConstraint(["footprint_id"], ["saved_footprints.id"],
                                name=op.f("fk_offset_subscriptions_footprint_id_saved_footprints")),
        sa.ForeignKeyConstraint(["listing_id"], ["listings.id"],
                                name=op.f("fk_offset_subscriptions_listing_id_listings")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offset_subscriptions")),
        sa.UniqueConstraint("reference", name=op.f("uq_offset_subscriptions_reference")),
        sa.UniqueConstraint("checkout_session_id",
                            name=op.f("uq_offset_subscriptions_checkout_session_id")),
        sa.UniqueConstraint("provider_subscription_id",
                            name=op.f("uq_offset_subscriptions_provider_subscription_id")),
    )
    op.create_index(op.f("ix_offset_subscriptions_user_id"), "offset_subscriptions", ["user_id"])
    op.create_index("uq_offset_subscriptions_live_user", "offset_subscriptions", ["user_id"],
                    unique=True, sqlite_where=sa.text(_LIVE), postgresql_where=sa.text(_LIVE))

    op.create_table(
        "offset_invoices",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("subscription_id", _ID, nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("carried_in_grams", sa.BigInteger(), nullable=False),
        sa.Column("monthly_grams", sa.BigInteger(), nullable=False),
        sa.Column("due_grams", sa.BigInteger(), nullable=False),
        sa.Column("retired_tonnes", sa.BigInteger(), nullable=False),
        sa.Column("carried_out_grams", sa.BigInteger(), nullable=False),
        sa.Column("order_id", _ID, nullable=True),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.CheckConstraint("due_grams = carried_in_grams + monthly_grams",
                           name=op.f("ck_offset_invoices_due")),
        sa.CheckConstraint("carried_out_grams = due_grams - retired_tonnes * 1000000",
                           name=op.f("ck_offset_invoices_carried")),
        sa.CheckConstraint("carried_out_grams >= 0 AND retired_tonnes >= 0",
                           name=op.f("ck_offset_invoices_not_negative")),
        sa.ForeignKeyConstraint(
            ["subscription_id"], ["offset_subscriptions.id"],
            name=op.f("fk_offset_invoices_subscription_id_offset_subscriptions")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"],
                                name=op.f("fk_offset_invoices_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offset_invoices")),
        sa.UniqueConstraint("subscription_id", "month", name="uq_offset_invoices_month"),
    )
    op.create_index(op.f("ix_offset_invoices_subscription_id"), "offset_invoices",
                    ["subscription_id"])


def downgrade() -> None:
    if not shared_here():
        return
    op.drop_index(op.f("ix_offset_invoices_subscription_id"), table_name="offset_invoices")
    op.drop_table("offset_invoices")
    op.drop_index("uq_offset_subscriptions_live_user", table_name="offset_subscriptions")
    op.drop_index(op.f("ix_offset_subscriptions_user_id"), table_name="offset_subscriptions")
    op.drop_table("offset_subscriptions")
    op.drop_table("footprint_profiles")
    op.drop_index(op.f("ix_saved_footprints_user_id"), table_name="saved_footprints")
    op.drop_table("saved_footprints")
