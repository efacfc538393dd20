"""Users confirm their email address (``email_confirmed_at``); accounts made before this
revision count as confirmed.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from marketplace.migrate import shared_here

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if not shared_here():
        return
    with op.batch_alter_table("users", reflect_kwargs={"resolve_fks": False}) as batch:
        batch.add_column(sa.Column("email_confirmed_at", sa.DateTime(timezone=True),
                                   nullable=True))
    op.execute("UPDATE users SET email_confirmed_at = created_at")


def downgrade() -> None:
    if not shared_here():
        return
    with op.batch_alter_table("users", reflect_kwargs={"resolve_fks": False}) as batch:
        batch.drop_column("email_confirmed_at")
