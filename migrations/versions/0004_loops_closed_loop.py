"""closed loop

Revision ID: 0004_loops
Revises: 0003_sessions
Create Date: 2026-11-27 09:24:19.992373
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_loops'
down_revision = '0003_sessions'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('core_job_state',
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_owner', sa.String(length=120), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.String(length=16), nullable=False),
    sa.Column('last_result', sa.Text(), nullable=False),
    sa.Column('run_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_core_job_state'))
    )
    op.create_table('core_approval_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=80), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('subject_table', sa.String(length=64), nullable=True),
    sa.Column('subject_id', sa.String(length=64), nullable=True),
    sa.Column('requester_id', sa.Integer(), nullable=False),
    sa.Column('subject_link', sa.String(length=500), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('current_position', sa.Integer(), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('facts', sa.JSON(), nullable=False),
    sa.Column('routes', sa.JSON(), nullable=False),
    sa.Column('ruleset', sa.String(length=64), nullable=False),
    sa.Column('rule_version', sa.Integer(), nullable=True),
    sa.Column('rule_sha', sa.String(length=64), nullable=False),
    sa.Column('rule_id', sa.String(length=120), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lock_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['requester_id'], ['core_user.id'], name=op.f('fk_core_approval_request_requester_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_approval_request'))
    )
    with op.batch_alter_table('core_approval_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_approval_request_kind'), ['kind'], unique=False)
        batch_op.create_index('ix_core_approval_request_requester_status', ['requester_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_core_approval_request_status'), ['status'], unique=False)
        batch_op.create_index('ix_core_approval_request_subject', ['subject_table', 'subject_id'], unique=False)

    op.create_table('core_delegation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('delegate_id', sa.Integer(), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['delegate_id'], ['core_user.id'], name=op.f('fk_core_delegation_delegate_id_core_user')),
    sa.ForeignKeyConstraint(['user_id'], ['core_user.id'], name=op.f('fk_core_delegation_user_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_delegation'))
    )
    with op.batch_alter_table('core_delegation', schema=None) as batch_op:
        batch_op.create_index('ix_core_delegation_delegate_dates', ['delegate_id', 'starts_on', 'ends_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_core_delegation_delegate_id'), ['delegate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_core_delegation_user_id'), ['user_id'], unique=False)

    op.create_table('core_loop_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=80), nullable=False),
    sa.Column('clause', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('subject_table', sa.String(length=64), nullable=True),
    sa.Column('subject_id', sa.String(length=64), nullable=True),
    sa.Column('subject_link', sa.String(length=500), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('raised_by_id', sa.Integer(), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('priority', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('closure_note', sa.Text(), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('verified_by_id', sa.Integer(), nullable=True),
    sa.Column('escalation_level', sa.Integer(), nullable=False),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reopen_count', sa.Integer(), nullable=False),
    sa.Column('reminded_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lock_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_core_loop_item_owner_id_core_user')),
    sa.ForeignKeyConstraint(['raised_by_id'], ['core_user.id'], name=op.f('fk_core_loop_item_raised_by_id_core_user')),
    sa.ForeignKeyConstraint(['verified_by_id'], ['core_user.id'], name=op.f('fk_core_loop_item_verified_by_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_loop_item'))
    )
    with op.batch_alter_table('core_loop_item', schema=None) as batch_op:
        batch_op.create_index('ix_core_loop_item_created_owner', ['created_at', 'owner_id'], unique=False)
        batch_op.create_index('ix_core_loop_item_owner_status_due', ['owner_id', 'status', 'due_at'], unique=False)
        batch_op.create_index('ix_core_loop_item_raised_status', ['raised_by_id', 'status'], unique=False)
        batch_op.create_index('ix_core_loop_item_status_due', ['status', 'due_at', 'id'], unique=False)
        batch_op.create_index('ix_core_loop_item_subject', ['subject_table', 'subject_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_core_loop_item_type'), ['type'], unique=False)

    op.create_table('core_notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=80), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('link', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['core_user.id'], name=op.f('fk_core_notification_user_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_notification'))
    )
    with op.batch_alter_table('core_notification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_notification_created_at'), ['created_at'], unique=False)
        batch_op.create_index('ix_core_notification_user_created', ['user_id', 'created_at'], unique=False)
        batch_op.create_index('ix_core_notification_user_read', ['user_id', 'read_at'], unique=False)

    op.create_table('core_notification_preference',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=80), nullable=False),
    sa.Column('email', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['core_user.id'], name=op.f('fk_core_notification_preference_user_id_core_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'kind', name=op.f('pk_core_notification_preference'))
    )
    op.create_table('core_approval_step',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('route', sa.String(length=64), nullable=False),
    sa.Column('approver_id', sa.Integer(), nullable=True),
    sa.Column('role_code', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('acted_by_id', sa.Integer(), nullable=True),
    sa.Column('on_behalf_of_id', sa.Integer(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('acted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['acted_by_id'], ['core_user.id'], name=op.f('fk_core_approval_step_acted_by_id_core_user')),
    sa.ForeignKeyConstraint(['approver_id'], ['core_user.id'], name=op.f('fk_core_approval_step_approver_id_core_user')),
    sa.ForeignKeyConstraint(['on_behalf_of_id'], ['core_user.id'], name=op.f('fk_core_approval_step_on_behalf_of_id_core_user')),
    sa.ForeignKeyConstraint(['request_id'], ['core_approval_request.id'], name=op.f('fk_core_approval_step_request_id_core_approval_request'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_approval_step')),
    sa.UniqueConstraint('request_id', 'position', name='uq_core_approval_step_position')
    )
    with op.batch_alter_table('core_approval_step', schema=None) as batch_op:
        batch_op.create_index('ix_core_approval_step_acted_by', ['acted_by_id', 'acted_at'], unique=False)
        batch_op.create_index('ix_core_approval_step_approver_status', ['approver_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_core_approval_step_request_id'), ['request_id'], unique=False)
        batch_op.create_index('ix_core_approval_step_role_status', ['role_code', 'status'], unique=False)

    op.create_table('core_loop_attachment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('loop_id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('stored_name', sa.String(length=80), nullable=False),
    sa.Column('content_type', sa.String(length=120), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['loop_id'], ['core_loop_item.id'], name=op.f('fk_core_loop_attachment_loop_id_core_loop_item'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['core_user.id'], name=op.f('fk_core_loop_attachment_uploaded_by_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_loop_attachment')),
    sa.UniqueConstraint('stored_name', name=op.f('uq_core_loop_attachment_stored_name'))
    )
    with op.batch_alter_table('core_loop_attachment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_loop_attachment_loop_id'), ['loop_id'], unique=False)

    op.create_table('core_loop_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('loop_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['core_user.id'], name=op.f('fk_core_loop_event_actor_id_core_user')),
    sa.ForeignKeyConstraint(['loop_id'], ['core_loop_item.id'], name=op.f('fk_core_loop_event_loop_id_core_loop_item'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_loop_event'))
    )
    with op.batch_alter_table('core_loop_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_loop_event_loop_id'), ['loop_id'], unique=False)

    op.create_table('core_outbound_email',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('notification_id', sa.Integer(), nullable=True),
    sa.Column('to_address', sa.String(length=254), nullable=False),
    sa.Column('subject', sa.String(length=250), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claim_token', sa.String(length=40), nullable=True),
    sa.ForeignKeyConstraint(['notification_id'], ['core_notification.id'], name=op.f('fk_core_outbound_email_notification_id_core_notification'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_outbound_email'))
    )
    with op.batch_alter_table('core_outbound_email', schema=None) as batch_op:
        batch_op.create_index('ix_core_outbound_email_status_next', ['status', 'next_attempt_at'], unique=False)



def downgrade():
    with op.batch_alter_table('core_outbound_email', schema=None) as batch_op:
        batch_op.drop_index('ix_core_outbound_email_status_next')

    op.drop_table('core_outbound_email')
    with op.batch_alter_table('core_loop_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_core_loop_event_loop_id'))

    op.drop_table('core_loop_event')
    with op.batch_alter_table('core_loop_attachment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_core_loop_attachment_loop_id'))

    op.drop_table('core_loop_attachment')
    with op.batch_alter_table('core_approval_step', schema=None) as batch_op:
        batch_op.drop_index('ix_core_approval_step_role_status')
        batch_op.drop_index(batch_op.f('ix_core_approval_step_request_id'))
        batch_op.drop_index('ix_core_approval_step_approver_status')
        batch_op.drop_index('ix_core_approval_step_acted_by')

    op.drop_table('core_approval_step')
    op.drop_table('core_notification_preference')
    with op.batch_alter_table('core_notification', schema=None) as batch_op:
        batch_op.drop_index('ix_core_notification_user_read')
        batch_op.drop_index('ix_core_notification_user_created')
        batch_op.drop_index(batch_op.f('ix_core_notification_created_at'))

    op.drop_table('core_notification')
    with op.batch_alter_table('core_loop_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_core_loop_item_type'))
        batch_op.drop_index('ix_core_loop_item_subject')
        batch_op.drop_index('ix_core_loop_item_status_due')
        batch_op.drop_index('ix_core_loop_item_raised_status')
        batch_op.drop_index('ix_core_loop_item_owner_status_due')
        batch_op.drop_index('ix_core_loop_item_created_owner')

    op.drop_table('core_loop_item')
    with op.batch_alter_table('core_delegation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_core_delegation_user_id'))
        batch_op.drop_index(batch_op.f('ix_core_delegation_delegate_id'))
        batch_op.drop_index('ix_core_delegation_delegate_dates')

    op.drop_table('core_delegation')
    with op.batch_alter_table('core_approval_request', schema=None) as batch_op:
        batch_op.drop_index('ix_core_approval_request_subject')
        batch_op.drop_index(batch_op.f('ix_core_approval_request_status'))
        batch_op.drop_index('ix_core_approval_request_requester_status')
        batch_op.drop_index(batch_op.f('ix_core_approval_request_kind'))

    op.drop_table('core_approval_request')
    op.drop_table('core_job_state')
