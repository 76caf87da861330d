"""Bot round two: languages, albums, job kinds, replies, deep links, the own-style wait's expiry.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'albums',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.BigInteger(), nullable=False),
        sa.Column('media_group_id', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_albums_user_group', 'albums', ['user_id', 'media_group_id'], unique=True)
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locale', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('awaiting_since', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('next_preset', sa.String(length=64), nullable=True))
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('album_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_images_album_id', 'albums', ['album_id'], ['id'], ondelete='SET NULL')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='stylize', nullable=False))
        batch_op.add_column(sa.Column('inputs', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('reply_to', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('locale', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        for column in ('locale', 'reply_to', 'inputs', 'kind'):
            batch_op.drop_column(column)
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_constraint('fk_images_album_id', type_='foreignkey')
        batch_op.drop_column('album_id')
        batch_op.drop_column('message_id')
    with op.batch_alter_table('users', schema=None) as batch_op:
        for column in ('next_preset', 'awaiting_since', 'locale'):
            batch_op.drop_column(column)
    op.drop_index('ix_albums_user_group', table_name='albums')
    op.drop_table('albums')
