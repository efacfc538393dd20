"""The database guards the kilogram pools itself: pool retirements and draws are append-only,
an allocation changes only to erase its beneficiary, and no draw may take a pool retirement
past the grams its tonnes hold (``ledger.guards``, part "pools").

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

from ledger import guards

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    guards.install(op.get_bind(), ("pools",))


def downgrade() -> None:
    guards.drop(op.get_bind(), ("pools",))
