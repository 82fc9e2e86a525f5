"""core tables

Revision ID: 0001_core
Revises: 
Create Date: 2026-11-27 06:18:06.624754
"""
from alembic import op
import sqlalchemy as sa


revision = '0001_core'
down_revision = None
branch_labels = ('core',)
depends_on = None


def upgrade():
    op.create_table('core_audit_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('table_name', sa.String(length=120), nullable=False),
    sa.Column('record_id', sa.String(length=120), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_audit_event'))
    )
    with op.batch_alter_table('core_audit_event', schema=None) as batch_op:
        batch_op.create_index('ix_core_audit_event_actor_at', ['actor_id', 'at'], unique=False)
        batch_op.create_index('ix_core_audit_event_at', ['at'], unique=False)
        batch_op.create_index('ix_core_audit_event_table_record', ['table_name', 'record_id'], unique=False)

    op.create_table('core_known_permission',
    sa.Column('code', sa.String(length=120), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_core_known_permission'))
    )
    op.create_table('core_login_attempt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('success', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_login_attempt'))
    )
    with op.batch_alter_table('core_login_attempt', schema=None) as batch_op:
        batch_op.create_index('ix_core_login_attempt_address_at', ['address', 'at'], unique=False)
        batch_op.create_index('ix_core_login_attempt_username_at', ['username', 'at'], unique=False)

    op.create_table('core_org_unit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('path', sa.String(length=512), nullable=False),
    sa.Column('leader_id', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['core_org_unit.id'], name=op.f('fk_core_org_unit_parent_id_core_org_unit'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_org_unit')),
    sa.UniqueConstraint('parent_id', 'name', name='uq_core_org_unit_parent_name')
    )
    with op.batch_alter_table('core_org_unit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_org_unit_leader_id'), ['leader_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_core_org_unit_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_core_org_unit_path'), ['path'], unique=False)

    op.create_table('core_role',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('read_scope', sa.String(length=8), nullable=False),
    sa.Column('write_scope', sa.String(length=8), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('duties', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_role')),
    sa.UniqueConstraint('code', name=op.f('uq_core_role_code'))
    )
    op.create_table('core_setting',
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_core_setting'))
    )
    op.create_table('core_role_permission',
    sa.Column('role_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=120), nullable=False),
    sa.ForeignKeyConstraint(['role_id'], ['core_role.id'], name=op.f('fk_core_role_permission_role_id_core_role'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('role_id', 'code', name=op.f('pk_core_role_permission'))
    )
    op.create_table('core_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=120), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('title', sa.String(length=120), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('session_token', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('locale', sa.String(length=16), nullable=True),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('password_changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['core_org_unit.id'], name=op.f('fk_core_user_unit_id_core_org_unit'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_user')),
    sa.UniqueConstraint('email', name=op.f('uq_core_user_email')),
    sa.UniqueConstraint('session_token', name=op.f('uq_core_user_session_token')),
    sa.UniqueConstraint('username', name=op.f('uq_core_user_username'))
    )
    with op.batch_alter_table('core_user', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_user_unit_id'), ['unit_id'], unique=False)

    # Units and people refer to each other (unit leader, person's unit): the second
    # foreign key can only be added once both tables exist.
    with op.batch_alter_table('core_org_unit', schema=None) as batch_op:
        batch_op.create_foreign_key(
            op.f('fk_core_org_unit_leader_id_core_user'), 'core_user', ['leader_id'], ['id'],
            ondelete='SET NULL')

    op.create_table('core_api_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['core_user.id'], name=op.f('fk_core_api_token_user_id_core_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_api_token')),
    sa.UniqueConstraint('digest', name=op.f('uq_core_api_token_digest'))
    )
    with op.batch_alter_table('core_api_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_api_token_user_id'), ['user_id'], unique=False)

    op.create_table('core_user_role',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['role_id'], ['core_role.id'], name=op.f('fk_core_user_role_role_id_core_role'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['core_user.id'], name=op.f('fk_core_user_role_user_id_core_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'role_id', name=op.f('pk_core_user_role'))
    )


def downgrade():
    op.drop_table('core_user_role')
    with op.batch_alter_table('core_api_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_core_api_token_user_id'))

    op.drop_table('core_api_token')
    with op.batch_alter_table('core_user', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_core_user_unit_id'))

    with op.batch_alter_table('core_org_unit', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('fk_core_org_unit_leader_id_core_user'), type_='foreignkey')
    op.drop_table('core_user')
    op.drop_table('core_role_permission')
    op.drop_table('core_setting')
    op.drop_table('core_role')
    with op.batch_alter_table('core_org_unit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_core_org_unit_path'))
        batch_op.drop_index(batch_op.f('ix_core_org_unit_parent_id'))
        batch_op.drop_index(batch_op.f('ix_core_org_unit_leader_id'))

    op.drop_table('core_org_unit')
    with op.batch_alter_table('core_login_attempt', schema=None) as batch_op:
        batch_op.drop_index('ix_core_login_attempt_username_at')
        batch_op.drop_index('ix_core_login_attempt_address_at')

    op.drop_table('core_login_attempt')
    op.drop_table('core_known_permission')
    with op.batch_alter_table('core_audit_event', schema=None) as batch_op:
        batch_op.drop_index('ix_core_audit_event_table_record')
        batch_op.drop_index('ix_core_audit_event_at')
        batch_op.drop_index('ix_core_audit_event_actor_at')

    op.drop_table('core_audit_event')
