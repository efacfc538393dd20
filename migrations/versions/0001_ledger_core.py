"""Ledger core: accounts, projects, batches, blocks, the journal and its chain head.

Revision ID: 0001
Revises: 
Create Date: 2026-11-21 05:13:21.688006
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

from ledger import guards
from ledger.journal import genesis_values

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ledger_accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('issuer', 'inventory', 'customer', 'organisation', 'buffer')", name=op.f('ck_ledger_accounts_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_accounts')),
    sa.UniqueConstraint('name', name=op.f('uq_ledger_accounts_name'))
    )
    op.create_table('ledger_chain_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('blocks', sa.BigInteger(), nullable=False),
    sa.Column('batches', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_ledger_chain_head_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_chain_head'))
    )
    op.create_table('ledger_entries',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('record', sa.LargeBinary(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.CheckConstraint("kind IN ('issue', 'transfer', 'retire', 'cancel')", name=op.f('ck_ledger_entries_kind')),
    sa.CheckConstraint('length(hash) = 64', name=op.f('ck_ledger_entries_hash_length')),
    sa.CheckConstraint('seq >= 1', name=op.f('ck_ledger_entries_seq_positive')),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_ledger_entries')),
    sa.UniqueConstraint('hash', name=op.f('uq_ledger_entries_hash'))
    )
    op.create_table('ledger_projects',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('registry_name', sa.String(length=10), nullable=False),
    sa.Column('registry_id', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('standards', sa.String(length=200), nullable=False),
    sa.Column('methodology', sa.String(length=200), nullable=False),
    sa.Column('sector', sa.String(length=100), nullable=False),
    sa.CheckConstraint('length(country) = 2', name=op.f('ck_ledger_projects_country')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_projects')),
    sa.UniqueConstraint('registry_name', 'registry_id', name='uq_ledger_projects_registry_id')
    )
    op.create_table('ledger_batches',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('vintage_start', sa.Date(), nullable=False),
    sa.Column('vintage_end', sa.Date(), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('first_serial', sa.BigInteger(), nullable=False),
    sa.Column('last_serial', sa.BigInteger(), nullable=False),
    sa.Column('origin', sa.String(length=200), nullable=True),
    sa.Column('scheme', sa.String(length=10), nullable=False),
    sa.Column('verra_issuance', sa.BigInteger(), nullable=True),
    sa.Column('verra_code', sa.Integer(), nullable=True),
    sa.Column('verra_scope', sa.Integer(), nullable=True),
    sa.Column('verra_flag', sa.Integer(), nullable=True),
    sa.Column('buffer_quantity', sa.BigInteger(), nullable=False),
    sa.Column('issued_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.CheckConstraint("scheme IN ('verra', 'native')", name=op.f('ck_ledger_batches_scheme')),
    sa.CheckConstraint('buffer_quantity >= 0 AND buffer_quantity < last_serial - first_serial + 1', name=op.f('ck_ledger_batches_buffer')),
    sa.CheckConstraint('first_serial >= 1 AND first_serial <= last_serial', name=op.f('ck_ledger_batches_range')),
    sa.CheckConstraint('vintage_start <= vintage_end', name=op.f('ck_ledger_batches_vintage')),
    sa.ForeignKeyConstraint(['issued_by'], ['ledger_entries.seq'], name=op.f('fk_ledger_batches_issued_by_ledger_entries')),
    sa.ForeignKeyConstraint(['project_id'], ['ledger_projects.id'], name=op.f('fk_ledger_batches_project_id_ledger_projects')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_batches')),
    sa.UniqueConstraint('origin', name=op.f('uq_ledger_batches_origin'))
    )
    with op.batch_alter_table('ledger_batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_batches_project_id'), ['project_id'], unique=False)

    op.create_table('ledger_beneficiaries',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('salt', sa.String(length=64), nullable=True),
    sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['seq'], ['ledger_entries.seq'], name=op.f('fk_ledger_beneficiaries_seq_ledger_entries')),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_ledger_beneficiaries'))
    )
    op.create_table('ledger_blocks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('batch_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('first_serial', sa.BigInteger(), nullable=False),
    sa.Column('last_serial', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('created_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('spent_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.CheckConstraint("spent_by IS NULL OR state = 'tradable'", name=op.f('ck_ledger_blocks_final_states')),
    sa.CheckConstraint("state IN ('tradable', 'retired', 'cancelled')", name=op.f('ck_ledger_blocks_state')),
    sa.CheckConstraint('first_serial >= 1 AND first_serial <= last_serial', name=op.f('ck_ledger_blocks_range')),
    sa.CheckConstraint('spent_by IS NULL OR spent_by > created_by', name=op.f('ck_ledger_blocks_spent_after')),
    sa.ForeignKeyConstraint(['account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_blocks_account_id_ledger_accounts')),
    sa.ForeignKeyConstraint(['batch_id'], ['ledger_batches.id'], name=op.f('fk_ledger_blocks_batch_id_ledger_batches')),
    sa.ForeignKeyConstraint(['created_by'], ['ledger_entries.seq'], name=op.f('fk_ledger_blocks_created_by_ledger_entries')),
    sa.ForeignKeyConstraint(['spent_by'], ['ledger_entries.seq'], name=op.f('fk_ledger_blocks_spent_by_ledger_entries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_blocks'))
    )
    with op.batch_alter_table('ledger_blocks', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_blocks_batch_range', ['batch_id', 'first_serial'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_blocks_created_by'), ['created_by'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_blocks_spent_by'), ['spent_by'], unique=False)
        batch_op.create_index('ix_ledger_blocks_unspent', ['account_id', 'state', 'batch_id', 'first_serial'], unique=False)

    head = sa.table('ledger_chain_head', *(sa.column(c) for c in genesis_values()))
    op.bulk_insert(head, [genesis_values()])
    guards.install(op.get_bind(), ('core',))



def downgrade() -> None:
    guards.drop(op.get_bind(), ('core',))
    with op.batch_alter_table('ledger_blocks', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_blocks_unspent')
        batch_op.drop_index(batch_op.f('ix_ledger_blocks_spent_by'))
        batch_op.drop_index(batch_op.f('ix_ledger_blocks_created_by'))
        batch_op.drop_index('ix_ledger_blocks_batch_range')

    op.drop_table('ledger_blocks')
    op.drop_table('ledger_beneficiaries')
    with op.batch_alter_table('ledger_batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_batches_project_id'))

    op.drop_table('ledger_batches')
    op.drop_table('ledger_projects')
    op.drop_table('ledger_entries')
    op.drop_table('ledger_chain_head')
    op.drop_table('ledger_accounts')
