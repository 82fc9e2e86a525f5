"""rule versions and decisions

Revision ID: 0002_rules
Revises: 0001_core
Create Date: 2026-11-27 06:52:23.765888
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_rules'
down_revision = '0001_core'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('core_ruleset_status',
    sa.Column('ruleset', sa.String(length=64), nullable=False),
    sa.Column('file_sha', sa.String(length=64), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('ruleset', name=op.f('pk_core_ruleset_status'))
    )
    op.create_table('core_rule_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ruleset', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('sha', sa.String(length=64), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('author', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['author_id'], ['core_user.id'], name=op.f('fk_core_rule_version_author_id_core_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_rule_version')),
    sa.UniqueConstraint('ruleset', 'version', name='uq_core_rule_version_ruleset_version')
    )
    with op.batch_alter_table('core_rule_version', schema=None) as batch_op:
        batch_op.create_index('ix_core_rule_version_ruleset_status', ['ruleset', 'status'], unique=False)

    op.create_table('core_rule_decision',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ruleset', sa.String(length=64), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('sha', sa.String(length=64), nullable=False),
    sa.Column('clause', sa.String(length=32), nullable=False),
    sa.Column('rule', sa.String(length=80), nullable=False),
    sa.Column('row', sa.Integer(), nullable=True),
    sa.Column('line', sa.Integer(), nullable=True),
    sa.Column('subject_table', sa.String(length=120), nullable=False),
    sa.Column('subject_id', sa.String(length=120), nullable=False),
    sa.Column('inputs', sa.JSON(), nullable=False),
    sa.Column('outputs', sa.JSON(), nullable=False),
    sa.Column('actions', sa.JSON(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['version_id'], ['core_rule_version.id'], name=op.f('fk_core_rule_decision_version_id_core_rule_version'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_rule_decision'))
    )
    with op.batch_alter_table('core_rule_decision', schema=None) as batch_op:
        batch_op.create_index('ix_core_rule_decision_ruleset_at', ['ruleset', 'at'], unique=False)
        batch_op.create_index('ix_core_rule_decision_subject', ['subject_table', 'subject_id'], unique=False)



def downgrade():
    with op.batch_alter_table('core_rule_decision', schema=None) as batch_op:
        batch_op.drop_index('ix_core_rule_decision_subject')
        batch_op.drop_index('ix_core_rule_decision_ruleset_at')

    op.drop_table('core_rule_decision')
    with op.batch_alter_table('core_rule_version', schema=None) as batch_op:
        batch_op.drop_index('ix_core_rule_version_ruleset_status')

    op.drop_table('core_rule_version')
    op.drop_table('core_ruleset_status')
