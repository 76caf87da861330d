"""Hardening: an album's one menu is claimed in its row (albums.menu_sent_at), webhook updates are claimed before they run (processed_updates.claimed_at, processed_at NULL while
in flight), and on SQLite the tables nothing references get AUTOINCREMENT, so a deleted row's id is never given
to another row (a render or a button holding an old job id cannot reach someone else's job).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: rebuilt with AUTOINCREMENT on SQLite (children only: dropping a parent inside the migration would cascade)
NEVER_REUSED = ('jobs', 'events', 'presets', 'training_runs')


def upgrade() -> None:
    with op.batch_alter_table('albums') as batch:
        batch.add_column(sa.Column('menu_sent_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('processed_updates') as batch:
        batch.add_column(sa.Column('claimed_at', sa.DateTime(), nullable=True))
        batch.alter_column('processed_at', existing_type=sa.DateTime(), nullable=True)
    if op.get_bind().dialect.name == 'sqlite':
        for table in NEVER_REUSED:
            with op.batch_alter_table(table, recreate='always', table_kwargs={'sqlite_autoincrement': True}):
                pass


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for table in NEVER_REUSED:
            with op.batch_alter_table(table, recreate='always', table_kwargs={'sqlite_autoincrement': False}):
                pass
    op.execute('DELETE FROM processed_updates WHERE processed_at IS NULL')
    with op.batch_alter_table('processed_updates') as batch:
        batch.alter_column('processed_at', existing_type=sa.DateTime(), nullable=False)
        batch.drop_column('claimed_at')
    with op.batch_alter_table('albums') as batch:
        batch.drop_column('menu_sent_at')
