"""The studio's share links: jobs.share_token (``/s/{token}`` shows the result to anyone holding it).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', table_kwargs={'sqlite_autoincrement': True}) as batch:
        batch.add_column(sa.Column('share_token', sa.String(length=32), nullable=True))
        batch.create_unique_constraint('uq_jobs_share_token', ['share_token'])


def downgrade() -> None:
    with op.batch_alter_table('jobs', table_kwargs={'sqlite_autoincrement': True}) as batch:
        batch.drop_constraint('uq_jobs_share_token', type_='unique')
        batch.drop_column('share_token')
