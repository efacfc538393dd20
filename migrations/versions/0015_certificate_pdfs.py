"""Rendered certificate PDFs, stored once per certificate (per mode, like the certificates).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "certificate_pdfs",
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("ref", sa.String(40), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("stamp", sa.String(300), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('retirement', 'allocation')",
                           name=op.f("ck_certificate_pdfs_kind")),
        sa.PrimaryKeyConstraint("kind", "ref", name=op.f("pk_certificate_pdfs")),
    )


def downgrade() -> None:
    op.drop_table("certificate_pdfs")
