"""Production mode: jobs.update_id (one job per update, however often it is delivered), and pgqueuer's
queue tables (PostgreSQL only; SQLite deployments keep the in-process queue).

The schema is pgqueuer's own (``pgq install`` writes the same SQL), installed here so that
``python -m bot migrate`` is the only set-up step. It is taken from the pinned pgqueuer (1.6.0); a later
pgqueuer version gets a migration that runs its ``Queries.upgrade``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgqueuer.adapters.persistence.qb import QueryBuilderEnvironment
from sqlalchemy.util import await_only

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _run_script(sql: str) -> None:
    """A multi-statement script (functions with $$ bodies) through the raw asyncpg connection: SQLAlchemy's
    asyncpg cursor prepares every statement, and a prepared statement holds only one."""
    raw = op.get_bind().connection.driver_connection
    await_only(raw.execute(sql))  # type: ignore[union-attr]


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('update_id', sa.BigInteger(), nullable=True))
        batch.create_unique_constraint('uq_jobs_update_id', ['update_id'])
    if op.get_bind().dialect.name == 'postgresql':
        _run_script(QueryBuilderEnvironment().build_install_query())


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        _run_script(QueryBuilderEnvironment().build_uninstall_query())
    with op.batch_alter_table('jobs') as batch:
        batch.drop_constraint('uq_jobs_update_id', type_='unique')
        batch.drop_column('update_id')
