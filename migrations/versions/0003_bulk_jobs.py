"""Bulk jobs: a per-student promotion marker, transfer history, job control columns.

- `students.last_promoted_year`: the school year whose grade transition a student
  has had. The transition only touches students below the year it applies, so it
  happens once per student and year whatever is re-run, resumed or narrowed to a
  few schools (a marker, not a guess from grades or dates).
- `student_transfers`: one row per student moved by a transfer job; unique per
  (job, student), so a batch that is re-applied cannot record a move twice.
- `bulk_jobs`: the control surface (`requested`, set from another terminal), the
  throttle state last seen, who runs it and when it started.

Every column added to an existing table is nullable without a default: a catalog
change only, no table rewrite, no long lock on `students`.

Revision ID: 0003_bulk_jobs
Revises: 0002_performance_indexes
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0003_bulk_jobs"
down_revision: str | None = "0002_performance_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
JOB_COLUMNS = (
    ("requested", sa.Text),  # run | pause | abort, from `wcperf bulk pause|resume|abort`
    ("throttle", JSONB),  # the runner's last backpressure decision and signals
    ("owner", sa.Text),  # host:pid of the process that last ran it
    ("started_at", TZ),
)


def upgrade() -> None:
    # Each statement is a catalog change; do not queue nurses behind our lock request.
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    op.add_column("students", sa.Column("last_promoted_year", sa.SmallInteger), if_not_exists=True)
    for name, type_ in JOB_COLUMNS:
        op.add_column("bulk_jobs", sa.Column(name, type_), if_not_exists=True)
    op.create_table(
        "student_transfers",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("student_id", sa.BigInteger, sa.ForeignKey("students.id"), nullable=False),
        sa.Column("from_school_id", sa.BigInteger, nullable=False),
        sa.Column("to_school_id", sa.BigInteger, nullable=False),
        sa.Column("from_nurse_id", sa.BigInteger),
        sa.Column("job_id", sa.BigInteger, sa.ForeignKey("bulk_jobs.id"), nullable=False),
        sa.Column("transferred_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.Column("reason", sa.Text),
        sa.UniqueConstraint("job_id", "student_id", name="student_transfers_job_student_key"),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_table("student_transfers", if_exists=True)
    for name, _ in JOB_COLUMNS:
        op.drop_column("bulk_jobs", name, if_exists=True)
    op.drop_column("students", "last_promoted_year", if_exists=True)
