"""daily management tables

Revision ID: 0001_daily
Revises: 
Create Date: 2026-11-27 15:14:47.913813
"""
from alembic import op
import sqlalchemy as sa


revision = '0001_daily'
down_revision = None
branch_labels = ('daily',)
depends_on = '0004_loops'


def upgrade():
    op.create_table('daily_holiday',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('is_workday', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_daily_holiday'))
    )
    op.create_table('daily_leave_type',
    sa.Column('code', sa.String(length=30), nullable=False),
    sa.Column('name_en', sa.String(length=80), nullable=False),
    sa.Column('name_zh', sa.String(length=80), nullable=False),
    sa.Column('paid', sa.Boolean(), nullable=False),
    sa.Column('uses_balance', sa.Boolean(), nullable=False),
    sa.Column('yearly_half_days', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_daily_leave_type'))
    )
    op.create_table('daily_work_schedule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('start_minute', sa.Integer(), nullable=False),
    sa.Column('end_minute', sa.Integer(), nullable=False),
    sa.Column('latest_start_minute', sa.Integer(), nullable=True),
    sa.Column('required_minutes', sa.Integer(), nullable=False),
    sa.Column('workdays', sa.String(length=20), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_work_schedule')),
    sa.UniqueConstraint('name', name=op.f('uq_daily_work_schedule_name'))
    )
    op.create_table('daily_expense_budget',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('month', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=20), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['core_org_unit.id'], name=op.f('fk_daily_expense_budget_unit_id_core_org_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_expense_budget')),
    sa.UniqueConstraint('unit_id', 'year', 'month', 'category', name='uq_daily_expense_budget')
    )
    op.create_table('daily_attendance_day',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('check_in_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('check_out_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('check_in_note', sa.String(length=200), nullable=False),
    sa.Column('check_out_note', sa.String(length=200), nullable=False),
    sa.Column('corrected', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('penalty_points', sa.Integer(), nullable=False),
    sa.Column('absence_half_days', sa.Integer(), nullable=False),
    sa.Column('minutes_late', sa.Integer(), nullable=False),
    sa.Column('minutes_early', sa.Integer(), nullable=False),
    sa.Column('worked_minutes', sa.Integer(), nullable=False),
    sa.Column('rule_version', sa.Integer(), nullable=True),
    sa.Column('classified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_daily_attendance_day_owner_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_attendance_day')),
    sa.UniqueConstraint('owner_id', 'day', name='uq_daily_attendance_day_owner_day')
    )
    with op.batch_alter_table('daily_attendance_day', schema=None) as batch_op:
        batch_op.create_index('ix_daily_attendance_day_day_status', ['day', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_daily_attendance_day_owner_id'), ['owner_id'], unique=False)

    op.create_table('daily_attendance_month',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('month', sa.Integer(), nullable=False),
    sa.Column('workdays', sa.Integer(), nullable=False),
    sa.Column('late_count', sa.Integer(), nullable=False),
    sa.Column('early_leave_count', sa.Integer(), nullable=False),
    sa.Column('missed_punch_count', sa.Integer(), nullable=False),
    sa.Column('absence_half_days', sa.Integer(), nullable=False),
    sa.Column('leave_half_days', sa.Integer(), nullable=False),
    sa.Column('longest_absence_streak', sa.Integer(), nullable=False),
    sa.Column('penalty_points', sa.Integer(), nullable=False),
    sa.Column('appraisal_deduction', sa.Integer(), nullable=False),
    sa.Column('follow_ups', sa.JSON(), nullable=False),
    sa.Column('rule_version', sa.Integer(), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_daily_attendance_month_owner_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_attendance_month')),
    sa.UniqueConstraint('owner_id', 'year', 'month', name='uq_daily_attendance_month')
    )
    with op.batch_alter_table('daily_attendance_month', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_daily_attendance_month_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index('ix_daily_attendance_month_year_month', ['year', 'month'], unique=False)

    op.create_table('daily_attendance_period',
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('month', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reviewed_by_id', sa.Integer(), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('locked_by_id', sa.Integer(), nullable=True),
    sa.Column('locked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['locked_by_id'], ['core_user.id'], name=op.f('fk_daily_attendance_period_locked_by_id_core_user')),
    sa.ForeignKeyConstraint(['reviewed_by_id'], ['core_user.id'], name=op.f('fk_daily_attendance_period_reviewed_by_id_core_user')),
    sa.PrimaryKeyConstraint('year', 'month', name=op.f('pk_daily_attendance_period'))
    )
    op.create_table('daily_leave_balance',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('leave_type', sa.String(length=30), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('granted_half_days', sa.Integer(), nullable=False),
    sa.Column('used_half_days', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['leave_type'], ['daily_leave_type.code'], name=op.f('fk_daily_leave_balance_leave_type_daily_leave_type')),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_daily_leave_balance_owner_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_leave_balance')),
    sa.UniqueConstraint('owner_id', 'leave_type', 'year', name='uq_daily_leave_balance')
    )
    with op.batch_alter_table('daily_leave_balance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_daily_leave_balance_owner_id'), ['owner_id'], unique=False)

    op.create_table('daily_meeting',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('cadence', sa.String(length=20), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('location', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('minutes', sa.Text(), nullable=False),
    sa.Column('materials_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_daily_meeting_owner_id_core_user')),
    sa.ForeignKeyConstraint(['unit_id'], ['core_org_unit.id'], name=op.f('fk_daily_meeting_unit_id_core_org_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_meeting'))
    )
    with op.batch_alter_table('daily_meeting', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_daily_meeting_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index('ix_daily_meeting_status_due', ['status', 'materials_due_at'], unique=False)
        batch_op.create_index('ix_daily_meeting_owner_starts', ['owner_id', 'starts_at'], unique=False)
        batch_op.create_index('ix_daily_meeting_unit_starts', ['unit_id', 'starts_at'], unique=False)

    op.create_table('daily_person_schedule',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('schedule_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['schedule_id'], ['daily_work_schedule.id'], name=op.f('fk_daily_person_schedule_schedule_id_daily_work_schedule')),
    sa.ForeignKeyConstraint(['user_id'], ['core_user.id'], name=op.f('fk_daily_person_schedule_user_id_core_user')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_daily_person_schedule'))
    )
    with op.batch_alter_table('daily_person_schedule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_daily_person_schedule_schedule_id'), ['schedule_id'], unique=False)

    op.create_table('daily_won_deal',
    sa.Column('source', sa.String(length=60), nullable=False),
    sa.Column('record_id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('won_on', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_daily_won_deal_owner_id_core_user')),
    sa.PrimaryKeyConstraint('source', 'record_id', name=op.f('pk_daily_won_deal'))
    )
    with op.batch_alter_table('daily_won_deal', schema=None) as batch_op:
        batch_op.create_index('ix_daily_won_deal_owner_won', ['owner_id', 'won_on'], unique=False)

    op.create_table('daily_expense_claim',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=30), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('total_cents', sa.BigInteger(), nullable=False),
    sa.Column('approval_id', sa.Integer(), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('paid_by_id', sa.Integer(), nullable=True),
    sa.Column('payment_reference', sa.String(length=80), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['approval_id'], ['core_approval_request.id'], name=op.f('fk_daily_expense_claim_approval_id_core_approval_request')),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_daily_expense_claim_owner_id_core_user')),
    sa.ForeignKeyConstraint(['paid_by_id'], ['core_user.id'], name=op.f('fk_daily_expense_claim_paid_by_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_expense_claim')),
    sa.UniqueConstraint('number', name=op.f('uq_daily_expense_claim_number'))
    )
    with op.batch_alter_table('daily_expense_claim', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_daily_expense_claim_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index('ix_daily_expense_claim_owner_status', ['owner_id', 'status'], unique=False)
        batch_op.create_index('ix_daily_expense_claim_status_submitted', ['status', 'submitted_at'], unique=False)

    op.create_table('daily_leave_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('leave_type', sa.String(length=30), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('start_half', sa.String(length=2), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=False),
    sa.Column('end_half', sa.String(length=2), nullable=False),
    sa.Column('half_days', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('approval_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['approval_id'], ['core_approval_request.id'], name=op.f('fk_daily_leave_request_approval_id_core_approval_request')),
    sa.ForeignKeyConstraint(['leave_type'], ['daily_leave_type.code'], name=op.f('fk_daily_leave_request_leave_type_daily_leave_type')),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_daily_leave_request_owner_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_leave_request'))
    )
    with op.batch_alter_table('daily_leave_request', schema=None) as batch_op:
        batch_op.create_index('ix_daily_leave_request_owner_dates', ['owner_id', 'starts_on', 'ends_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_daily_leave_request_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index('ix_daily_leave_request_status_starts', ['status', 'starts_on'], unique=False)

    op.create_table('daily_meeting_attendee',
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['meeting_id'], ['daily_meeting.id'], name=op.f('fk_daily_meeting_attendee_meeting_id_daily_meeting')),
    sa.ForeignKeyConstraint(['user_id'], ['core_user.id'], name=op.f('fk_daily_meeting_attendee_user_id_core_user')),
    sa.PrimaryKeyConstraint('meeting_id', 'user_id', name=op.f('pk_daily_meeting_attendee'))
    )
    with op.batch_alter_table('daily_meeting_attendee', schema=None) as batch_op:
        batch_op.create_index('ix_daily_meeting_attendee_user', ['user_id', 'meeting_id'], unique=False)

    op.create_table('daily_punch_correction',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=3), nullable=False),
    sa.Column('punch_minute', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('approval_id', sa.Integer(), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['approval_id'], ['core_approval_request.id'], name=op.f('fk_daily_punch_correction_approval_id_core_approval_request')),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_daily_punch_correction_owner_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_punch_correction'))
    )
    with op.batch_alter_table('daily_punch_correction', schema=None) as batch_op:
        batch_op.create_index('ix_daily_punch_correction_owner_day', ['owner_id', 'day'], unique=False)
        batch_op.create_index(batch_op.f('ix_daily_punch_correction_owner_id'), ['owner_id'], unique=False)

    op.create_table('daily_resolution',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('loop_id', sa.Integer(), nullable=True),
    sa.Column('closed', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['loop_id'], ['core_loop_item.id'], name=op.f('fk_daily_resolution_loop_id_core_loop_item')),
    sa.ForeignKeyConstraint(['meeting_id'], ['daily_meeting.id'], name=op.f('fk_daily_resolution_meeting_id_daily_meeting')),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_daily_resolution_owner_id_core_user')),
    sa.ForeignKeyConstraint(['unit_id'], ['core_org_unit.id'], name=op.f('fk_daily_resolution_unit_id_core_org_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_resolution'))
    )
    with op.batch_alter_table('daily_resolution', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_daily_resolution_loop_id'), ['loop_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_daily_resolution_meeting_id'), ['meeting_id'], unique=False)
        batch_op.create_index('ix_daily_resolution_unit_open', ['unit_id', 'closed'], unique=False)

    op.create_table('daily_agenda_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('presenter_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('resolution_id', sa.Integer(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['meeting_id'], ['daily_meeting.id'], name=op.f('fk_daily_agenda_item_meeting_id_daily_meeting')),
    sa.ForeignKeyConstraint(['presenter_id'], ['core_user.id'], name=op.f('fk_daily_agenda_item_presenter_id_core_user')),
    sa.ForeignKeyConstraint(['resolution_id'], ['daily_resolution.id'], name=op.f('fk_daily_agenda_item_resolution_id_daily_resolution')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_agenda_item')),
    sa.UniqueConstraint('meeting_id', 'resolution_id', name='uq_daily_agenda_resolution')
    )
    with op.batch_alter_table('daily_agenda_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_daily_agenda_item_meeting_id'), ['meeting_id'], unique=False)

    op.create_table('daily_expense_line',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('claim_id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('spent_on', sa.Date(), nullable=False),
    sa.Column('category', sa.String(length=20), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('city', sa.String(length=80), nullable=False),
    sa.Column('city_tier', sa.Integer(), nullable=False),
    sa.Column('vendor', sa.String(length=120), nullable=False),
    sa.Column('purpose', sa.String(length=300), nullable=False),
    sa.Column('link_kind', sa.String(length=60), nullable=True),
    sa.Column('link_id', sa.Integer(), nullable=True),
    sa.Column('link_label', sa.String(length=200), nullable=False),
    sa.Column('decision', sa.String(length=20), nullable=True),
    sa.Column('decision_reason', sa.String(length=300), nullable=False),
    sa.Column('rule_version', sa.Integer(), nullable=True),
    sa.Column('duplicate_of_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['claim_id'], ['daily_expense_claim.id'], name=op.f('fk_daily_expense_line_claim_id_daily_expense_claim')),
    sa.ForeignKeyConstraint(['duplicate_of_id'], ['daily_expense_line.id'], name=op.f('fk_daily_expense_line_duplicate_of_id_daily_expense_line')),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_daily_expense_line_owner_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_expense_line'))
    )
    with op.batch_alter_table('daily_expense_line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_daily_expense_line_claim_id'), ['claim_id'], unique=False)
        batch_op.create_index('ix_daily_expense_line_duplicate_key', ['amount_cents', 'spent_on', 'vendor'], unique=False)
        batch_op.create_index('ix_daily_expense_line_owner_spent', ['owner_id', 'spent_on'], unique=False)
        batch_op.create_index('ix_daily_expense_line_spent_category', ['spent_on', 'category'], unique=False)
        batch_op.create_index('ix_daily_expense_line_analysis', ['spent_on', 'claim_id', 'owner_id', 'category', 'amount_cents'], unique=False)

    op.create_table('daily_leave_document',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('stored_name', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=120), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['daily_leave_request.id'], name=op.f('fk_daily_leave_document_request_id_daily_leave_request')),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['core_user.id'], name=op.f('fk_daily_leave_document_uploaded_by_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_leave_document'))
    )
    with op.batch_alter_table('daily_leave_document', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_daily_leave_document_request_id'), ['request_id'], unique=False)

    op.create_table('daily_expense_receipt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('line_id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('stored_name', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=120), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['line_id'], ['daily_expense_line.id'], name=op.f('fk_daily_expense_receipt_line_id_daily_expense_line')),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['core_user.id'], name=op.f('fk_daily_expense_receipt_uploaded_by_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_expense_receipt'))
    )
    with op.batch_alter_table('daily_expense_receipt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_daily_expense_receipt_line_id'), ['line_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_daily_expense_receipt_sha256'), ['sha256'], unique=False)

    op.create_table('daily_meeting_material',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('agenda_item_id', sa.Integer(), nullable=True),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('stored_name', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=120), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['agenda_item_id'], ['daily_agenda_item.id'], name=op.f('fk_daily_meeting_material_agenda_item_id_daily_agenda_item')),
    sa.ForeignKeyConstraint(['meeting_id'], ['daily_meeting.id'], name=op.f('fk_daily_meeting_material_meeting_id_daily_meeting')),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['core_user.id'], name=op.f('fk_daily_meeting_material_uploaded_by_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_meeting_material'))
    )
    with op.batch_alter_table('daily_meeting_material', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_daily_meeting_material_meeting_id'), ['meeting_id'], unique=False)



def downgrade():
    with op.batch_alter_table('daily_meeting_material', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_daily_meeting_material_meeting_id'))

    op.drop_table('daily_meeting_material')
    with op.batch_alter_table('daily_expense_receipt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_daily_expense_receipt_sha256'))
        batch_op.drop_index(batch_op.f('ix_daily_expense_receipt_line_id'))

    op.drop_table('daily_expense_receipt')
    with op.batch_alter_table('daily_leave_document', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_daily_leave_document_request_id'))

    op.drop_table('daily_leave_document')
    with op.batch_alter_table('daily_expense_line', schema=None) as batch_op:
        batch_op.drop_index('ix_daily_expense_line_analysis')
        batch_op.drop_index('ix_daily_expense_line_spent_category')
        batch_op.drop_index('ix_daily_expense_line_owner_spent')
        batch_op.drop_index('ix_daily_expense_line_duplicate_key')
        batch_op.drop_index(batch_op.f('ix_daily_expense_line_claim_id'))

    op.drop_table('daily_expense_line')
    with op.batch_alter_table('daily_agenda_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_daily_agenda_item_meeting_id'))

    op.drop_table('daily_agenda_item')
    with op.batch_alter_table('daily_resolution', schema=None) as batch_op:
        batch_op.drop_index('ix_daily_resolution_unit_open')
        batch_op.drop_index(batch_op.f('ix_daily_resolution_meeting_id'))
        batch_op.drop_index(batch_op.f('ix_daily_resolution_loop_id'))

    op.drop_table('daily_resolution')
    with op.batch_alter_table('daily_punch_correction', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_daily_punch_correction_owner_id'))
        batch_op.drop_index('ix_daily_punch_correction_owner_day')

    op.drop_table('daily_punch_correction')
    with op.batch_alter_table('daily_meeting_attendee', schema=None) as batch_op:
        batch_op.drop_index('ix_daily_meeting_attendee_user')

    op.drop_table('daily_meeting_attendee')
    with op.batch_alter_table('daily_leave_request', schema=None) as batch_op:
        batch_op.drop_index('ix_daily_leave_request_status_starts')
        batch_op.drop_index(batch_op.f('ix_daily_leave_request_owner_id'))
        batch_op.drop_index('ix_daily_leave_request_owner_dates')

    op.drop_table('daily_leave_request')
    with op.batch_alter_table('daily_expense_claim', schema=None) as batch_op:
        batch_op.drop_index('ix_daily_expense_claim_status_submitted')
        batch_op.drop_index('ix_daily_expense_claim_owner_status')
        batch_op.drop_index(batch_op.f('ix_daily_expense_claim_owner_id'))

    op.drop_table('daily_expense_claim')
    with op.batch_alter_table('daily_won_deal', schema=None) as batch_op:
        batch_op.drop_index('ix_daily_won_deal_owner_won')

    op.drop_table('daily_won_deal')
    with op.batch_alter_table('daily_person_schedule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_daily_person_schedule_schedule_id'))

    op.drop_table('daily_person_schedule')
    with op.batch_alter_table('daily_meeting', schema=None) as batch_op:
        batch_op.drop_index('ix_daily_meeting_unit_starts')
        batch_op.drop_index('ix_daily_meeting_status_due')
        batch_op.drop_index('ix_daily_meeting_owner_starts')
        batch_op.drop_index(batch_op.f('ix_daily_meeting_owner_id'))

    op.drop_table('daily_meeting')
    with op.batch_alter_table('daily_leave_balance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_daily_leave_balance_owner_id'))

    op.drop_table('daily_leave_balance')
    op.drop_table('daily_attendance_period')
    with op.batch_alter_table('daily_attendance_month', schema=None) as batch_op:
        batch_op.drop_index('ix_daily_attendance_month_year_month')
        batch_op.drop_index(batch_op.f('ix_daily_attendance_month_owner_id'))

    op.drop_table('daily_attendance_month')
    with op.batch_alter_table('daily_attendance_day', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_daily_attendance_day_owner_id'))
        batch_op.drop_index('ix_daily_attendance_day_day_status')

    op.drop_table('daily_attendance_day')
    op.drop_table('daily_expense_budget')
    op.drop_table('daily_work_schedule')
    op.drop_table('daily_leave_type')
    op.drop_table('daily_holiday')
