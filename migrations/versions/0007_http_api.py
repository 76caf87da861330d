"""The HTTP API: jobs record their origin (telegram | api) with the API's public id, Idempotency-Key and request
hash, progress and a result blob; uploads and results live in ``blobs`` (every process reads the database);
API keys in ``api_clients`` (hashed).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'blobs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('content_type', sa.String(length=64), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_blobs_expires_at', 'blobs', ['expires_at'])
    op.create_table(
        'api_clients',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
        sa.UniqueConstraint('key_hash'),
        sqlite_autoincrement=True,
    )
    # images is a parent table: only ADD COLUMN, no foreign key (a SQLite rebuild would cascade into jobs)
    with op.batch_alter_table('images') as batch:
        batch.add_column(sa.Column('blob_id', sa.Integer(), nullable=True))
    with op.batch_alter_table('jobs', table_kwargs={'sqlite_autoincrement': True}) as batch:
        batch.add_column(sa.Column('origin', sa.String(length=16), server_default='telegram', nullable=False))
        batch.add_column(sa.Column('public_id', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('idempotency_key', sa.String(length=128), nullable=True))
        batch.add_column(sa.Column('request_hash', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('progress', sa.Float(), nullable=True))
        batch.add_column(sa.Column('result_blob_id', sa.Integer(), nullable=True))
        batch.create_unique_constraint('uq_jobs_public_id', ['public_id'])
        batch.create_foreign_key('fk_jobs_result_blob_id_blobs', 'blobs', ['result_blob_id'], ['id'],
                                 ondelete='SET NULL')
        batch.create_index('ix_jobs_user_idempotency', ['user_id', 'idempotency_key'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('jobs', table_kwargs={'sqlite_autoincrement': True}) as batch:
        batch.drop_index('ix_jobs_user_idempotency')
        batch.drop_constraint('fk_jobs_result_blob_id_blobs', type_='foreignkey')
        batch.drop_constraint('uq_jobs_public_id', type_='unique')
        for column in ('result_blob_id', 'progress', 'request_hash', 'idempotency_key', 'public_id', 'origin'):
            batch.drop_column(column)
    if op.get_bind().dialect.name != 'sqlite':  # SQLite keeps the (nullable) column: a rebuild would cascade
        op.drop_column('images', 'blob_id')
    op.drop_table('api_clients')
    op.drop_index('ix_blobs_expires_at', table_name='blobs')
    op.drop_table('blobs')
