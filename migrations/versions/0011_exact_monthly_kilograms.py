"""Monthly offsets retire exact kilograms: each invoice and subscription records the grams it
retired (``retired_grams``), and nothing is carried any more (earlier months keep their carried
grams, which the next month retires). API orders may be billed on the organisation's monthly
statement (``payment_method`` ``account``, for kilograms). Each listing's pool gets its own
lock row (``kg_pools``).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from marketplace.migrate import shared_here

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

NO_FKS = {"resolve_fks": False}
OLD = "carried_out_grams = due_grams - retired_tonnes * 1000000"
NEW = "carried_out_grams = due_grams - retired_grams"


PAID_OLD = "payment_method IN ('saved', 'invoice')"
PAID_NEW = "payment_method IN ('saved', 'invoice', 'account')"


def _paid(check: str) -> None:
    with op.batch_alter_table("api_orders", reflect_kwargs=NO_FKS) as batch:
        batch.drop_constraint(op.f("ck_api_orders_payment_method"), type_="check")
        batch.create_check_constraint(op.f("ck_api_orders_payment_method"), sa.text(check))


def upgrade() -> None:
    op.create_table(
        "kg_pools",
        sa.Column("listing_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["listing_id"], ["listings.id"],
                                name=op.f("fk_kg_pools_listing_id_listings")),
        sa.PrimaryKeyConstraint("listing_id", name=op.f("pk_kg_pools")),
    )
    _paid(PAID_NEW)
    with op.batch_alter_table("kg_allocations", reflect_kwargs=NO_FKS) as batch:
        batch.alter_column("draws", type_=sa.Text(), existing_type=sa.String(400),
                           existing_nullable=False)
    if not shared_here():
        return
    with op.batch_alter_table("offset_invoices", reflect_kwargs=NO_FKS) as batch:
        batch.add_column(sa.Column("retired_grams", sa.BigInteger(), nullable=False,
                                   server_default="0"))
    op.execute("UPDATE offset_invoices SET retired_grams = retired_tonnes * 1000000")
    with op.batch_alter_table("offset_invoices", reflect_kwargs=NO_FKS) as batch:
        batch.drop_constraint(op.f("ck_offset_invoices_carried"), type_="check")
        batch.create_check_constraint(op.f("ck_offset_invoices_carried"), sa.text(NEW))
        batch.create_check_constraint(op.f("ck_offset_invoices_retired_grams"),
                                      sa.text("retired_grams >= 0"))
    with op.batch_alter_table("offset_subscriptions", reflect_kwargs=NO_FKS) as batch:
        batch.add_column(sa.Column("retired_grams", sa.BigInteger(), nullable=False,
                                   server_default="0"))
    op.execute("UPDATE offset_subscriptions SET retired_grams = retired_tonnes * 1000000")


def downgrade() -> None:
    if op.get_bind().execute(sa.text(
            "SELECT count(*) FROM api_orders WHERE payment_method = 'account'")).scalar_one():
        raise RuntimeError("some API orders were billed on account: they cannot be written "
                           "with the older payment methods")
    _paid(PAID_OLD)
    with op.batch_alter_table("kg_allocations", reflect_kwargs=NO_FKS) as batch:
        batch.alter_column("draws", type_=sa.String(400), existing_type=sa.Text(),
                           existing_nullable=False)
    op.drop_table("kg_pools")
    if not shared_here():
        return
    with op.batch_alter_table("offset_subscriptions", reflect_kwargs=NO_FKS) as batch:
        batch.drop_column("retired_grams")
    used = op.get_bind().execute(sa.text(
        "SELECT count(*) FROM offset_invoices WHERE retired_grams <> retired_tonnes * 1000000"
    )).scalar_one()
    if used:
        raise RuntimeError("some monthly offsets retired exact kilograms: they cannot be "
                           "written as whole tonnes")
    with op.batch_alter_table("offset_invoices", reflect_kwargs=NO_FKS) as batch:
        batch.drop_constraint(op.f("ck_offset_invoices_retired_grams"), type_="check")
        batch.drop_constraint(op.f("ck_offset_invoices_carried"), type_="check")
        batch.create_check_constraint(op.f("ck_offset_invoices_carried"), sa.text(OLD))
        batch.drop_column("retired_grams")
