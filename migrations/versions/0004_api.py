"""The API for companies: API keys, quotes, API orders, the test-mode sandbox, idempotency
records, saved payment methods, outbound webhook endpoints, events, deliveries and attempts.

Only new tables: the storefront's tables are untouched (a live quote is a pending order plus
an ``api_quotes`` row, so the orders table needs no new status).

Revision ID: 0004api
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from marketplace.migrate import shared_here

revision = "0004api"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_idempotency_keys',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('endpoint', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=60), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_api_idempotency_keys_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_idempotency_keys')),
    sa.UniqueConstraint('organisation_id', 'livemode', 'endpoint', 'key', name='uq_api_idempotency_keys_key')
    )
    if shared_here():
        op.create_table('api_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('prefix', sa.String(length=20), nullable=False),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('livemode', sa.Boolean(), nullable=False),
        sa.Column('scope', sa.String(length=10), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_by', sa.Integer(), nullable=True),
        sa.CheckConstraint("scope IN ('write', 'read')", name=op.f('ck_api_keys_scope')),
        sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_api_keys_created_by_users')),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_api_keys_organisation_id_organisations'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['revoked_by'], ['users.id'], name=op.f('fk_api_keys_revoked_by_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
        sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash')),
        sa.UniqueConstraint('prefix', name=op.f('uq_api_keys_prefix'))
        )
        with op.batch_alter_table('api_keys', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_api_keys_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('api_sandbox_holdings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.CheckConstraint('quantity >= 0', name=op.f('ck_api_sandbox_holdings_quantity_not_negative')),
    sa.ForeignKeyConstraint(['batch_id'], ['ledger_batches.id'], name=op.f('fk_api_sandbox_holdings_batch_id_ledger_batches')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_api_sandbox_holdings_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_sandbox_holdings')),
    sa.UniqueConstraint('organisation_id', 'batch_id', name='uq_api_sandbox_holdings_batch')
    )
    op.create_table('api_sandbox_orders',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reference', sa.String(length=30), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('action', sa.String(length=10), nullable=False),
    sa.Column('payment_method', sa.String(length=10), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('total_minor', sa.Integer(), nullable=False),
    sa.Column('beneficiary', sa.String(length=200), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=True),
    sa.Column('period_end', sa.Date(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('fulfilled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failure', sa.String(length=300), nullable=True),
    sa.CheckConstraint("action IN ('retire', 'hold')", name=op.f('ck_api_sandbox_orders_action')),
    sa.CheckConstraint("status IN ('quoted', 'pending', 'awaiting_payment', 'fulfilled', 'expired', 'failed', 'cancelled')", name=op.f('ck_api_sandbox_orders_status')),
    sa.CheckConstraint('total_minor > 0', name=op.f('ck_api_sandbox_orders_total_positive')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_api_sandbox_orders_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_sandbox_orders')),
    sa.UniqueConstraint('organisation_id', 'idempotency_key', name='uq_api_sandbox_orders_idempotency'),
    sa.UniqueConstraint('reference', name=op.f('uq_api_sandbox_orders_reference'))
    )
    with op.batch_alter_table('api_sandbox_orders', schema=None) as batch_op:
        batch_op.create_index('ix_api_sandbox_orders_active', ['status', 'expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_api_sandbox_orders_organisation_id'), ['organisation_id'], unique=False)

    if shared_here():
        op.create_table('api_saved_payment_methods',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('customer', sa.String(length=255), nullable=False),
        sa.Column('payment_method', sa.String(length=255), nullable=False),
        sa.Column('label', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_api_saved_payment_methods_organisation_id_organisations'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_saved_payment_methods')),
        sa.UniqueConstraint('organisation_id', name=op.f('uq_api_saved_payment_methods_organisation_id'))
        )
        op.create_table('api_webhook_endpoints',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('url', sa.String(length=500), nullable=False),
        sa.Column('secret', sa.String(length=100), nullable=False),
        sa.Column('livemode', sa.Boolean(), nullable=False),
        sa.Column('events', sa.String(length=200), nullable=False),
        sa.Column('description', sa.String(length=200), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_api_webhook_endpoints_created_by_users')),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_api_webhook_endpoints_organisation_id_organisations'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_webhook_endpoints'))
        )
        with op.batch_alter_table('api_webhook_endpoints', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_api_webhook_endpoints_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('api_webhook_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_api_webhook_events_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_webhook_events')),
    sa.UniqueConstraint('public_id', name=op.f('uq_api_webhook_events_public_id'))
    )
    with op.batch_alter_table('api_webhook_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_webhook_events_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('api_orders',
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('api_key_id', sa.Integer(), nullable=False),
    sa.Column('payment_method', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("payment_method IN ('saved', 'invoice')", name=op.f('ck_api_orders_payment_method')),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_api_orders_api_key_id_api_keys')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_api_orders_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('order_id', name=op.f('pk_api_orders'))
    )
    with op.batch_alter_table('api_orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_orders_api_key_id'), ['api_key_id'], unique=False)

    op.create_table('api_quotes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('sandbox_order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ordered_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('(order_id IS NULL) <> (sandbox_order_id IS NULL)', name=op.f('ck_api_quotes_one_order')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_api_quotes_order_id_orders')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_api_quotes_organisation_id_organisations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sandbox_order_id'], ['api_sandbox_orders.id'], name=op.f('fk_api_quotes_sandbox_order_id_api_sandbox_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_quotes')),
    sa.UniqueConstraint('order_id', name=op.f('uq_api_quotes_order_id')),
    sa.UniqueConstraint('public_id', name=op.f('uq_api_quotes_public_id')),
    sa.UniqueConstraint('sandbox_order_id', name=op.f('uq_api_quotes_sandbox_order_id'))
    )
    with op.batch_alter_table('api_quotes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_quotes_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('api_sandbox_order_lines',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('listing_id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_price_minor', sa.Integer(), nullable=False),
    sa.Column('amount_minor', sa.Integer(), nullable=False),
    sa.Column('allocation', sa.Text(), nullable=False),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_api_sandbox_order_lines_quantity_positive')),
    sa.ForeignKeyConstraint(['batch_id'], ['ledger_batches.id'], name=op.f('fk_api_sandbox_order_lines_batch_id_ledger_batches')),
    sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], name=op.f('fk_api_sandbox_order_lines_listing_id_listings')),
    sa.ForeignKeyConstraint(['order_id'], ['api_sandbox_orders.id'], name=op.f('fk_api_sandbox_order_lines_order_id_api_sandbox_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['ledger_projects.id'], name=op.f('fk_api_sandbox_order_lines_project_id_ledger_projects')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_sandbox_order_lines'))
    )
    with op.batch_alter_table('api_sandbox_order_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_sandbox_order_lines_order_id'), ['order_id'], unique=False)

    op.create_table('api_sandbox_retirements',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('allocation', sa.Text(), nullable=False),
    sa.Column('beneficiary', sa.String(length=200), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_api_sandbox_retirements_quantity_positive')),
    sa.ForeignKeyConstraint(['order_id'], ['api_sandbox_orders.id'], name=op.f('fk_api_sandbox_retirements_order_id_api_sandbox_orders'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_api_sandbox_retirements_organisation_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_sandbox_retirements')),
    sa.UniqueConstraint('public_id', name=op.f('uq_api_sandbox_retirements_public_id'))
    )
    with op.batch_alter_table('api_sandbox_retirements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_sandbox_retirements_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('api_webhook_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.String(length=300), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name=op.f('ck_api_webhook_deliveries_status')),
    sa.ForeignKeyConstraint(['endpoint_id'], ['api_webhook_endpoints.id'], name=op.f('fk_api_webhook_deliveries_endpoint_id_api_webhook_endpoints'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['event_id'], ['api_webhook_events.id'], name=op.f('fk_api_webhook_deliveries_event_id_api_webhook_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_webhook_deliveries')),
    sa.UniqueConstraint('event_id', 'endpoint_id', name='uq_api_webhook_deliveries_endpoint')
    )
    with op.batch_alter_table('api_webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_api_webhook_deliveries_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_api_webhook_deliveries_endpoint_id'), ['endpoint_id'], unique=False)

    op.create_table('api_webhook_attempts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('delivery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=300), nullable=True),
    sa.Column('response_excerpt', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['api_webhook_deliveries.id'], name=op.f('fk_api_webhook_attempts_delivery_id_api_webhook_deliveries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_webhook_attempts'))
    )
    with op.batch_alter_table('api_webhook_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_webhook_attempts_delivery_id'), ['delivery_id'], unique=False)


def downgrade() -> None:
    op.drop_table('api_webhook_attempts')
    op.drop_table('api_webhook_deliveries')
    op.drop_table('api_sandbox_retirements')
    op.drop_table('api_sandbox_order_lines')
    op.drop_table('api_quotes')
    op.drop_table('api_orders')
    op.drop_table('api_webhook_events')
    if shared_here():
        op.drop_table('api_webhook_endpoints')
        op.drop_table('api_saved_payment_methods')
    op.drop_table('api_sandbox_orders')
    op.drop_table('api_sandbox_holdings')
    if shared_here():
        op.drop_table('api_keys')
    op.drop_table('api_idempotency_keys')
