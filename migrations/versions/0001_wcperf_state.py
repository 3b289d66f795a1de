"""wcperf's own state, in its own schema `wcperf`: jobs, audit, ledgers, what it built.

Nothing here touches a platform table. The platform's `sync({alter: true})` drops
any column its models do not declare, so every fact wcperf keeps about a
platform row (a student's promotion in a school year, a move and what it was
before) lives in these tables, keyed by the row's UUID, never in a platform column.

Revision ID: 0001_wcperf_state
Revises:
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001_wcperf_state"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "wcperf"
TZ = sa.DateTime(timezone=True)
ID = sa.Uuid(as_uuid=True)


def _now(name: str) -> sa.Column:
    return sa.Column(name, TZ, server_default=sa.func.now(), nullable=False)


def _table(name: str, *columns: object) -> None:
    op.create_table(name, *columns, schema=SCHEMA, if_not_exists=True)


def upgrade() -> None:
    # New, empty tables in a schema of wcperf's own: no lock anyone else waits on.
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    _table(
        "bulk_jobs",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("params", JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("checkpoint", JSONB),
        sa.Column("rows_total", sa.BigInteger),
        sa.Column("rows_done", sa.BigInteger, server_default="0", nullable=False),
        sa.Column("batch_size", sa.BigInteger),
        sa.Column("error", sa.Text),
        sa.Column("requested", sa.Text),  # run | pause | abort, from another terminal
        sa.Column("throttle", JSONB),  # the runner's last backpressure decision
        sa.Column("owner", sa.Text),  # host:pid of the process that last ran it
        sa.Column("reverts", sa.BigInteger),  # the job a revert job puts back
        _now("created_at"),
        _now("updated_at"),
        sa.Column("started_at", TZ),
        sa.Column("finished_at", TZ),
    )
    _table(
        "audit_log",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _now("occurred_at"),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("job_id", sa.BigInteger, sa.ForeignKey(f"{SCHEMA}.bulk_jobs.id")),
        sa.Column("counts", JSONB, server_default="{}", nullable=False),
        sa.Column("details", JSONB, server_default="{}", nullable=False),
    )
    # The grade transition's ledger: once per student and school year, revertible.
    _table(
        "promotions",
        sa.Column("student_id", ID, nullable=False),
        sa.Column("school_year", sa.BigInteger, nullable=False),
        sa.Column("job_id", sa.BigInteger, sa.ForeignKey(f"{SCHEMA}.bulk_jobs.id"), nullable=False),
        sa.Column("from_grade", sa.Text, nullable=False),
        sa.Column("to_grade", sa.Text, nullable=False),
        sa.Column("applied_at", TZ, nullable=False),  # the "updatedAt" the job set
        sa.Column("prev_updated_at", TZ),
        sa.Column("prev_updated_by", ID),
        sa.Column("reverted_by", sa.BigInteger),
    )
    # squawk-ignore require-concurrent-index-creation
    op.create_index(
        "promotions_once_per_year",
        "promotions",
        ["student_id", "school_year"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("reverted_by IS NULL"),
        if_not_exists=True,
    )
    # squawk-ignore require-concurrent-index-creation
    op.create_index(
        "promotions_job", "promotions", ["job_id", "student_id"], schema=SCHEMA, if_not_exists=True
    )
    # Reassignments and transfers: one row per student moved, with what it was before.
    _table(
        "student_moves",
        sa.Column("job_id", sa.BigInteger, sa.ForeignKey(f"{SCHEMA}.bulk_jobs.id"), nullable=False),
        sa.Column("student_id", ID, nullable=False),
        sa.Column("from_school_id", ID),
        sa.Column("to_school_id", ID),
        sa.Column("from_district_id", ID),
        sa.Column("to_district_id", ID),
        sa.Column("from_nurse_id", ID),
        sa.Column("to_nurse_id", ID),
        sa.Column("applied_at", TZ, nullable=False),  # the "updatedAt" the job set
        sa.Column("prev_updated_at", TZ),
        sa.Column("prev_updated_by", ID),
        sa.Column("reason", sa.Text),  # free text an operator typed: may be PHI
        sa.Column("metadata", JSONB),
        sa.Column("reverted_by", sa.BigInteger),
        sa.PrimaryKeyConstraint("job_id", "student_id", name="student_moves_pkey"),
    )
    _table(
        "built_indexes",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("table_name", sa.Text, nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("replaced_definition", sa.Text),  # the platform's own, swapped on request
        _now("built_at"),
    )
    # A district `wcperf seed` wrote: only such data may be replaced or load-tested with writes.
    _table(
        "seeds",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("created_schema", sa.Boolean, nullable=False),
        sa.Column("students", sa.BigInteger, nullable=False),
        sa.Column("random_seed", sa.BigInteger, nullable=False),
        sa.Column("rows", JSONB, nullable=False),
        _now("seeded_at"),
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    for table in ("seeds", "built_indexes", "student_moves", "promotions", "audit_log"):
        op.drop_table(table, schema=SCHEMA, if_exists=True)
    op.drop_table("bulk_jobs", schema=SCHEMA, if_exists=True)
