"""sales process tables

Revision ID: 0001_sales
Revises: 
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa


revision = '0001_sales'
down_revision = None
branch_labels = ('sales',)
depends_on = '0004_loops'


def upgrade():
    op.create_table('sales_counter',
    sa.Column('series', sa.String(length=20), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('series', 'year', name=op.f('pk_sales_counter'))
    )
    op.create_table('sales_product',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('category', sa.String(length=80), nullable=False),
    sa.Column('unit', sa.String(length=20), nullable=False),
    sa.Column('list_price_cents', sa.BigInteger(), nullable=False),
    sa.Column('cost_cents', sa.BigInteger(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_product')),
    sa.UniqueConstraint('code', name=op.f('uq_sales_product_code'))
    )
    op.create_table('sales_customer_import',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('stored_name', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('total_rows', sa.Integer(), nullable=False),
    sa.Column('processed_rows', sa.Integer(), nullable=False),
    sa.Column('created_count', sa.Integer(), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_sales_customer_import_owner_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_customer_import'))
    )
    with op.batch_alter_table('sales_customer_import', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sales_customer_import_owner_id'), ['owner_id'], unique=False)

    op.create_table('sales_market_note',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('industry', sa.String(length=80), nullable=False),
    sa.Column('region', sa.String(length=80), nullable=False),
    sa.Column('competitor', sa.String(length=200), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('observed_on', sa.Date(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_sales_market_note_owner_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_market_note'))
    )
    with op.batch_alter_table('sales_market_note', schema=None) as batch_op:
        batch_op.create_index('ix_sales_market_note_industry_region', ['industry', 'region'], unique=False)
        batch_op.create_index(batch_op.f('ix_sales_market_note_owner_id'), ['owner_id'], unique=False)

    op.create_table('sales_customer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('name_key', sa.String(length=200), nullable=False),
    sa.Column('phone', sa.String(length=40), nullable=False),
    sa.Column('phone_key', sa.String(length=40), nullable=True),
    sa.Column('tax_id', sa.String(length=40), nullable=True),
    sa.Column('email', sa.String(length=200), nullable=False),
    sa.Column('industry', sa.String(length=80), nullable=False),
    sa.Column('size', sa.String(length=20), nullable=False),
    sa.Column('region', sa.String(length=80), nullable=False),
    sa.Column('city', sa.String(length=80), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('need', sa.Text(), nullable=False),
    sa.Column('grade', sa.String(length=1), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('qualified', sa.Boolean(), nullable=False),
    sa.Column('credit_risk', sa.String(length=8), nullable=False),
    sa.Column('last_contact_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_follow_up_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('follow_up_loop_id', sa.Integer(), nullable=True),
    sa.Column('in_pool', sa.Boolean(), nullable=False),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('previous_owner_id', sa.Integer(), nullable=True),
    sa.Column('release_reason', sa.String(length=500), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('became_customer_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lock_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['core_user.id'], name=op.f('fk_sales_customer_created_by_id_core_user')),
    sa.ForeignKeyConstraint(['follow_up_loop_id'], ['core_loop_item.id'], name=op.f('fk_sales_customer_follow_up_loop_id_core_loop_item')),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_sales_customer_owner_id_core_user')),
    sa.ForeignKeyConstraint(['previous_owner_id'], ['core_user.id'], name=op.f('fk_sales_customer_previous_owner_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_customer'))
    )
    with op.batch_alter_table('sales_customer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sales_customer_name_key'), ['name_key'], unique=False)
        batch_op.create_index('ix_sales_customer_owner_last_contact', ['owner_id', 'last_contact_at'], unique=False)
        batch_op.create_index('ix_sales_customer_owner_name', ['owner_id', 'name'], unique=False)
        batch_op.create_index('ix_sales_customer_owner_next_follow_up', ['owner_id', 'next_follow_up_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_sales_customer_phone_key'), ['phone_key'], unique=False)
        batch_op.create_index('ix_sales_customer_pool', ['in_pool', 'released_at'], unique=False)
        batch_op.create_index('ix_sales_customer_stage_last_contact', ['stage', 'last_contact_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_sales_customer_tax_id'), ['tax_id'], unique=False)

    op.create_table('sales_contact_person',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('phone', sa.String(length=40), nullable=False),
    sa.Column('email', sa.String(length=200), nullable=False),
    sa.Column('is_primary', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['sales_customer.id'], name=op.f('fk_sales_contact_person_customer_id_sales_customer'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_contact_person'))
    )
    with op.batch_alter_table('sales_contact_person', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sales_contact_person_customer_id'), ['customer_id'], unique=False)

    op.create_table('sales_opportunity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('stage', sa.String(length=40), nullable=False),
    sa.Column('furthest_stage_index', sa.Integer(), nullable=False),
    sa.Column('probability_pct', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('expected_close_on', sa.Date(), nullable=True),
    sa.Column('need_analysis', sa.Text(), nullable=False),
    sa.Column('proposed_solution', sa.Text(), nullable=False),
    sa.Column('decision_maker', sa.String(length=200), nullable=False),
    sa.Column('competitors', sa.String(length=300), nullable=False),
    sa.Column('lost_reason', sa.String(length=40), nullable=False),
    sa.Column('lost_note', sa.Text(), nullable=False),
    sa.Column('stage_changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('lock_version', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['sales_customer.id'], name=op.f('fk_sales_opportunity_customer_id_sales_customer')),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_sales_opportunity_owner_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_opportunity'))
    )
    with op.batch_alter_table('sales_opportunity', schema=None) as batch_op:
        batch_op.create_index('ix_sales_opportunity_created', ['created_at'], unique=False)
        batch_op.create_index('ix_sales_opportunity_customer', ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sales_opportunity_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index('ix_sales_opportunity_owner_status_stage', ['owner_id', 'status', 'stage'], unique=False)

    op.create_table('sales_activity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('opportunity_id', sa.Integer(), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('summary', sa.String(length=300), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('location_note', sa.String(length=200), nullable=False),
    sa.Column('next_step', sa.String(length=300), nullable=False),
    sa.Column('next_follow_up_on', sa.Date(), nullable=True),
    sa.Column('follow_up_loop_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['sales_customer.id'], name=op.f('fk_sales_activity_customer_id_sales_customer')),
    sa.ForeignKeyConstraint(['follow_up_loop_id'], ['core_loop_item.id'], name=op.f('fk_sales_activity_follow_up_loop_id_core_loop_item')),
    sa.ForeignKeyConstraint(['opportunity_id'], ['sales_opportunity.id'], name=op.f('fk_sales_activity_opportunity_id_sales_opportunity')),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_sales_activity_owner_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_activity'))
    )
    with op.batch_alter_table('sales_activity', schema=None) as batch_op:
        batch_op.create_index('ix_sales_activity_customer_at', ['customer_id', 'occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_sales_activity_opportunity_id'), ['opportunity_id'], unique=False)
        batch_op.create_index('ix_sales_activity_owner_at', ['owner_id', 'occurred_at'], unique=False)

    op.create_table('sales_quotation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('root_id', sa.Integer(), nullable=True),
    sa.Column('opportunity_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('delivery_method', sa.String(length=20), nullable=False),
    sa.Column('delivery_note', sa.String(length=300), nullable=False),
    sa.Column('payment_terms', sa.String(length=300), nullable=False),
    sa.Column('payment_terms_days', sa.Integer(), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=False),
    sa.Column('list_total_cents', sa.BigInteger(), nullable=False),
    sa.Column('total_cents', sa.BigInteger(), nullable=False),
    sa.Column('cost_total_cents', sa.BigInteger(), nullable=False),
    sa.Column('discount_bp', sa.Integer(), nullable=False),
    sa.Column('margin_bp', sa.Integer(), nullable=False),
    sa.Column('approval_request_id', sa.Integer(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lock_version', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['approval_request_id'], ['core_approval_request.id'], name=op.f('fk_sales_quotation_approval_request_id_core_approval_request')),
    sa.ForeignKeyConstraint(['customer_id'], ['sales_customer.id'], name=op.f('fk_sales_quotation_customer_id_sales_customer')),
    sa.ForeignKeyConstraint(['opportunity_id'], ['sales_opportunity.id'], name=op.f('fk_sales_quotation_opportunity_id_sales_opportunity')),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_sales_quotation_owner_id_core_user')),
    sa.ForeignKeyConstraint(['root_id'], ['sales_quotation.id'], name=op.f('fk_sales_quotation_root_id_sales_quotation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_quotation')),
    sa.UniqueConstraint('number', 'version', name='uq_sales_quotation_number_version')
    )
    with op.batch_alter_table('sales_quotation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sales_quotation_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_sales_quotation_opportunity', ['opportunity_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sales_quotation_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index('ix_sales_quotation_owner_status', ['owner_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_sales_quotation_root_id'), ['root_id'], unique=False)

    op.create_table('sales_stage_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('opportunity_id', sa.Integer(), nullable=False),
    sa.Column('from_stage', sa.String(length=40), nullable=False),
    sa.Column('to_stage', sa.String(length=40), nullable=False),
    sa.Column('changed_by_id', sa.Integer(), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['changed_by_id'], ['core_user.id'], name=op.f('fk_sales_stage_change_changed_by_id_core_user')),
    sa.ForeignKeyConstraint(['opportunity_id'], ['sales_opportunity.id'], name=op.f('fk_sales_stage_change_opportunity_id_sales_opportunity'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_stage_change'))
    )
    with op.batch_alter_table('sales_stage_change', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sales_stage_change_opportunity_id'), ['opportunity_id'], unique=False)

    op.create_table('sales_contract',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('opportunity_id', sa.Integer(), nullable=True),
    sa.Column('quotation_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('payment_terms_days', sa.Integer(), nullable=False),
    sa.Column('non_standard_clauses', sa.Boolean(), nullable=False),
    sa.Column('clauses_note', sa.Text(), nullable=False),
    sa.Column('checklist', sa.JSON(), nullable=False),
    sa.Column('approval_request_id', sa.Integer(), nullable=True),
    sa.Column('signed_on', sa.Date(), nullable=True),
    sa.Column('starts_on', sa.Date(), nullable=True),
    sa.Column('ends_on', sa.Date(), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('satisfaction_loop_id', sa.Integer(), nullable=True),
    sa.Column('satisfaction_score', sa.Integer(), nullable=True),
    sa.Column('satisfaction_note', sa.Text(), nullable=False),
    sa.Column('cancel_reason', sa.Text(), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lock_version', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['approval_request_id'], ['core_approval_request.id'], name=op.f('fk_sales_contract_approval_request_id_core_approval_request')),
    sa.ForeignKeyConstraint(['customer_id'], ['sales_customer.id'], name=op.f('fk_sales_contract_customer_id_sales_customer')),
    sa.ForeignKeyConstraint(['opportunity_id'], ['sales_opportunity.id'], name=op.f('fk_sales_contract_opportunity_id_sales_opportunity')),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_sales_contract_owner_id_core_user')),
    sa.ForeignKeyConstraint(['quotation_id'], ['sales_quotation.id'], name=op.f('fk_sales_contract_quotation_id_sales_quotation')),
    sa.ForeignKeyConstraint(['satisfaction_loop_id'], ['core_loop_item.id'], name=op.f('fk_sales_contract_satisfaction_loop_id_core_loop_item')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_contract')),
    sa.UniqueConstraint('number', name=op.f('uq_sales_contract_number')),
    sa.UniqueConstraint('quotation_id', name=op.f('uq_sales_contract_quotation_id'))
    )
    with op.batch_alter_table('sales_contract', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sales_contract_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sales_contract_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index('ix_sales_contract_owner_status', ['owner_id', 'status'], unique=False)
        batch_op.create_index('ix_sales_contract_signed_on', ['signed_on'], unique=False)

    op.create_table('sales_negotiation_note',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('quotation_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['core_user.id'], name=op.f('fk_sales_negotiation_note_author_id_core_user')),
    sa.ForeignKeyConstraint(['quotation_id'], ['sales_quotation.id'], name=op.f('fk_sales_negotiation_note_quotation_id_sales_quotation'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_negotiation_note'))
    )
    with op.batch_alter_table('sales_negotiation_note', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sales_negotiation_note_quotation_id'), ['quotation_id'], unique=False)

    op.create_table('sales_quote_line',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('quotation_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=True),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_price_cents', sa.BigInteger(), nullable=False),
    sa.Column('unit_cost_cents', sa.BigInteger(), nullable=False),
    sa.Column('discount_bp', sa.Integer(), nullable=False),
    sa.Column('total_cents', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['sales_product.id'], name=op.f('fk_sales_quote_line_product_id_sales_product')),
    sa.ForeignKeyConstraint(['quotation_id'], ['sales_quotation.id'], name=op.f('fk_sales_quote_line_quotation_id_sales_quotation'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_quote_line'))
    )
    with op.batch_alter_table('sales_quote_line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sales_quote_line_quotation_id'), ['quotation_id'], unique=False)

    op.create_table('sales_feedback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('contract_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('first_response_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_responded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_response', sa.Text(), nullable=False),
    sa.Column('escalated_to', sa.String(length=20), nullable=False),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cause', sa.Text(), nullable=False),
    sa.Column('action_taken', sa.Text(), nullable=False),
    sa.Column('customer_confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('customer_confirmation', sa.Text(), nullable=False),
    sa.Column('customer_confirmed_by', sa.String(length=200), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('loop_item_id', sa.Integer(), nullable=True),
    sa.Column('corrective_loop_id', sa.Integer(), nullable=True),
    sa.Column('lock_version', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contract_id'], ['sales_contract.id'], name=op.f('fk_sales_feedback_contract_id_sales_contract')),
    sa.ForeignKeyConstraint(['corrective_loop_id'], ['core_loop_item.id'], name=op.f('fk_sales_feedback_corrective_loop_id_core_loop_item')),
    sa.ForeignKeyConstraint(['customer_id'], ['sales_customer.id'], name=op.f('fk_sales_feedback_customer_id_sales_customer')),
    sa.ForeignKeyConstraint(['loop_item_id'], ['core_loop_item.id'], name=op.f('fk_sales_feedback_loop_item_id_core_loop_item')),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_sales_feedback_owner_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_feedback')),
    sa.UniqueConstraint('number', name=op.f('uq_sales_feedback_number'))
    )
    with op.batch_alter_table('sales_feedback', schema=None) as batch_op:
        batch_op.create_index('ix_sales_feedback_category_received', ['category', 'received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_sales_feedback_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_sales_feedback_kind_status_received', ['kind', 'status', 'received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_sales_feedback_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index('ix_sales_feedback_owner_status', ['owner_id', 'status'], unique=False)

    op.create_table('sales_milestone',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contract_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('loop_item_id', sa.Integer(), nullable=True),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['contract_id'], ['sales_contract.id'], name=op.f('fk_sales_milestone_contract_id_sales_contract'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['loop_item_id'], ['core_loop_item.id'], name=op.f('fk_sales_milestone_loop_item_id_core_loop_item')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_milestone'))
    )
    with op.batch_alter_table('sales_milestone', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sales_milestone_contract_id'), ['contract_id'], unique=False)

    op.create_table('sales_payment_instalment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contract_id', sa.Integer(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('paid_cents', sa.BigInteger(), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('loop_item_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['contract_id'], ['sales_contract.id'], name=op.f('fk_sales_payment_instalment_contract_id_sales_contract'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['loop_item_id'], ['core_loop_item.id'], name=op.f('fk_sales_payment_instalment_loop_item_id_core_loop_item')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_payment_instalment'))
    )
    with op.batch_alter_table('sales_payment_instalment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sales_payment_instalment_contract_id'), ['contract_id'], unique=False)
        batch_op.create_index('ix_sales_payment_instalment_due', ['due_on', 'paid_at'], unique=False)



def downgrade():
    with op.batch_alter_table('sales_payment_instalment', schema=None) as batch_op:
        batch_op.drop_index('ix_sales_payment_instalment_due')
        batch_op.drop_index(batch_op.f('ix_sales_payment_instalment_contract_id'))

    op.drop_table('sales_payment_instalment')
    with op.batch_alter_table('sales_milestone', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sales_milestone_contract_id'))

    op.drop_table('sales_milestone')
    with op.batch_alter_table('sales_feedback', schema=None) as batch_op:
        batch_op.drop_index('ix_sales_feedback_owner_status')
        batch_op.drop_index(batch_op.f('ix_sales_feedback_owner_id'))
        batch_op.drop_index('ix_sales_feedback_kind_status_received')
        batch_op.drop_index(batch_op.f('ix_sales_feedback_customer_id'))
        batch_op.drop_index('ix_sales_feedback_category_received')

    op.drop_table('sales_feedback')
    with op.batch_alter_table('sales_quote_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sales_quote_line_quotation_id'))

    op.drop_table('sales_quote_line')
    with op.batch_alter_table('sales_negotiation_note', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sales_negotiation_note_quotation_id'))

    op.drop_table('sales_negotiation_note')
    with op.batch_alter_table('sales_contract', schema=None) as batch_op:
        batch_op.drop_index('ix_sales_contract_signed_on')
        batch_op.drop_index('ix_sales_contract_owner_status')
        batch_op.drop_index(batch_op.f('ix_sales_contract_owner_id'))
        batch_op.drop_index(batch_op.f('ix_sales_contract_customer_id'))

    op.drop_table('sales_contract')
    with op.batch_alter_table('sales_stage_change', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sales_stage_change_opportunity_id'))

    op.drop_table('sales_stage_change')
    with op.batch_alter_table('sales_quotation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sales_quotation_root_id'))
        batch_op.drop_index('ix_sales_quotation_owner_status')
        batch_op.drop_index(batch_op.f('ix_sales_quotation_owner_id'))
        batch_op.drop_index('ix_sales_quotation_opportunity')
        batch_op.drop_index(batch_op.f('ix_sales_quotation_customer_id'))

    op.drop_table('sales_quotation')
    with op.batch_alter_table('sales_activity', schema=None) as batch_op:
        batch_op.drop_index('ix_sales_activity_owner_at')
        batch_op.drop_index(batch_op.f('ix_sales_activity_opportunity_id'))
        batch_op.drop_index('ix_sales_activity_customer_at')

    op.drop_table('sales_activity')
    with op.batch_alter_table('sales_opportunity', schema=None) as batch_op:
        batch_op.drop_index('ix_sales_opportunity_owner_status_stage')
        batch_op.drop_index(batch_op.f('ix_sales_opportunity_owner_id'))
        batch_op.drop_index('ix_sales_opportunity_customer')
        batch_op.drop_index('ix_sales_opportunity_created')

    op.drop_table('sales_opportunity')
    with op.batch_alter_table('sales_contact_person', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sales_contact_person_customer_id'))

    op.drop_table('sales_contact_person')
    with op.batch_alter_table('sales_customer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sales_customer_tax_id'))
        batch_op.drop_index('ix_sales_customer_stage_last_contact')
        batch_op.drop_index('ix_sales_customer_pool')
        batch_op.drop_index(batch_op.f('ix_sales_customer_phone_key'))
        batch_op.drop_index('ix_sales_customer_owner_next_follow_up')
        batch_op.drop_index('ix_sales_customer_owner_name')
        batch_op.drop_index('ix_sales_customer_owner_last_contact')
        batch_op.drop_index(batch_op.f('ix_sales_customer_name_key'))

    op.drop_table('sales_customer')
    with op.batch_alter_table('sales_market_note', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sales_market_note_owner_id'))
        batch_op.drop_index('ix_sales_market_note_industry_region')

    op.drop_table('sales_market_note')
    with op.batch_alter_table('sales_customer_import', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sales_customer_import_owner_id'))

    op.drop_table('sales_customer_import')
    op.drop_table('sales_product')
    op.drop_table('sales_counter')
