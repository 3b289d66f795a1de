"""The platform's 14 performance indexes, found or built online.

Each is classified against the live database first: present (valid and
equivalent, under its name or another) runs nothing; missing is built with
CREATE INDEX CONCURRENTLY under a short lock_timeout with retries; an INVALID
leftover is dropped concurrently and rebuilt; one of that name with another
definition is the platform's and is left alone (swapped online only with
`--replace-differing`). What wcperf builds it records in `wcperf.built_indexes`,
and the downgrade drops exactly that, never an index it found. The mechanism lives
in wcperf.migrate.online_index; the indexes in wcperf.platform.indexes.

Revision ID: 0002_performance_indexes
Revises: 0001_wcperf_state
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import context, op

from wcperf.migrate.online_index import run_revision
from wcperf.platform.indexes import PERFORMANCE_INDEXES

revision: str = "0002_performance_indexes"
down_revision: str | None = "0001_wcperf_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = PERFORMANCE_INDEXES


def upgrade() -> None:
    run_revision(context, op, INDEXES, "upgrade")


def downgrade() -> None:
    run_revision(context, op, INDEXES, "downgrade")
