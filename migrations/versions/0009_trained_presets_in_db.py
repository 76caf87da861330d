"""Admin-trained presets live in the database, so every worker and replica has them: presets.spec (the preset's
fields), weights_blob_id, thumbnail_blob_id, updated_at; training runs are claimed by whichever process trains
(training_runs.style_blob_id: the admin's picture for a worker elsewhere; heartbeat_at; cancel_requested).
API keys get their own limits (api_clients.requests_per_minute, jobs_at_once, jobs_per_minute, queue_share;
NULL: the settings' defaults).

Only ADD COLUMN without constraints: presets and training_runs keep their tables (no SQLite rebuild).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRESET_COLUMNS = ('spec', 'weights_blob_id', 'thumbnail_blob_id', 'updated_at')
RUN_COLUMNS = ('style_blob_id', 'heartbeat_at', 'cancel_requested')
KEY_COLUMNS = ('requests_per_minute', 'jobs_at_once', 'jobs_per_minute', 'queue_share')


def upgrade() -> None:
    op.add_column('presets', sa.Column('spec', sa.JSON(), nullable=True))
    op.add_column('presets', sa.Column('weights_blob_id', sa.Integer(), nullable=True))
    op.add_column('presets', sa.Column('thumbnail_blob_id', sa.Integer(), nullable=True))
    op.add_column('presets', sa.Column('updated_at', sa.DateTime(), nullable=True))
    op.add_column('training_runs', sa.Column('style_blob_id', sa.Integer(), nullable=True))
    op.add_column('training_runs', sa.Column('heartbeat_at', sa.DateTime(), nullable=True))
    op.add_column('training_runs', sa.Column('cancel_requested', sa.Boolean(), server_default=sa.false(),
                                             nullable=False))
    for column in KEY_COLUMNS:
        op.add_column('api_clients', sa.Column(column, sa.Float() if column == 'queue_share' else sa.Integer(),
                                               nullable=True))


def downgrade() -> None:
    for table, columns in (('api_clients', KEY_COLUMNS), ('training_runs', RUN_COLUMNS), ('presets', PRESET_COLUMNS)):
        with op.batch_alter_table(table, table_kwargs={'sqlite_autoincrement': True}) as batch:
            for column in columns:
                batch.drop_column(column)
