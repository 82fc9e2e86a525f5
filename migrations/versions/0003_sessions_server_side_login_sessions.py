"""server-side login sessions

Revision ID: 0003_sessions
Revises: 0002_rules
Create Date: 2026-11-27 06:56:45.506629
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_sessions'
down_revision = '0002_rules'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('core_user_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('user_agent', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['core_user.id'], name=op.f('fk_core_user_session_user_id_core_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_user_session')),
    sa.UniqueConstraint('key', name=op.f('uq_core_user_session_key'))
    )
    with op.batch_alter_table('core_user_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_user_session_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('core_user', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_core_user_session_token'), type_='unique')
        batch_op.drop_column('session_token')


def downgrade():
    # Back to one token per person: every login session ends (people log in again).
    with op.batch_alter_table('core_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_token', sa.VARCHAR(length=64), nullable=True))
    op.execute("UPDATE core_user SET session_token = 'downgraded-' || CAST(id AS VARCHAR(20))")
    with op.batch_alter_table('core_user', schema=None) as batch_op:
        batch_op.alter_column('session_token', existing_type=sa.VARCHAR(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_core_user_session_token'), ['session_token'])

    with op.batch_alter_table('core_user_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_core_user_session_user_id'))

    op.drop_table('core_user_session')
