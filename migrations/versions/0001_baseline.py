"""Baseline: the platform's tables and wcperf's audit and checkpoint tables.

Primary and foreign keys only; the performance indexes come in their own revision.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "0001_baseline"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True)


def _now(name: str) -> sa.Column:
    return sa.Column(name, TZ, server_default=sa.func.now(), nullable=False)


def _fk(column: str, target: str, nullable: bool) -> sa.Column:
    return sa.Column(column, sa.BigInteger, sa.ForeignKey(target), nullable=nullable)


def _table(name: str, *columns: sa.Column) -> None:
    op.create_table(name, *columns, if_not_exists=True)


def upgrade() -> None:
    # New, empty tables take no lock anyone waits on, but say so explicitly: a
    # baseline run against a database that is in use must not queue behind it.
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute("SET LOCAL statement_timeout = '60s'")
    _table(
        "schools",
        _id(),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("district", sa.Text, nullable=False),
        _now("created_at"),
    )
    _table(
        "users",
        _id(),
        _fk("school_id", "schools.id", nullable=True),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("first_name", sa.Text, nullable=False),
        sa.Column("last_name", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("is_active", sa.Boolean, server_default="true", nullable=False),
        sa.Column("max_workload", sa.SmallInteger),
        _now("created_at"),
    )
    _table(
        "students",
        _id(),
        _fk("school_id", "schools.id", nullable=False),
        _fk("nurse_id", "users.id", nullable=True),
        sa.Column("student_number", sa.Text, nullable=False),
        sa.Column("first_name", sa.Text, nullable=False),
        sa.Column("last_name", sa.Text, nullable=False),
        sa.Column("date_of_birth", sa.Date, nullable=False),
        sa.Column("grade", sa.SmallInteger, nullable=False),
        sa.Column("status", sa.Text, server_default="active", nullable=False),
        sa.Column("enrollment_date", sa.Date, nullable=False),
        sa.Column("graduation_date", sa.Date),
        sa.Column("transferred_at", TZ),
        sa.Column("transfer_metadata", JSONB),
        _now("created_at"),
        _now("updated_at"),
    )
    _table(
        "health_records",
        _id(),
        _fk("student_id", "students.id", nullable=False),
        sa.Column("record_type", sa.Text, nullable=False),
        sa.Column("record_date", sa.Date, nullable=False),
        sa.Column("provider", sa.Text),
        sa.Column("diagnosis_code", sa.Text),
        sa.Column("is_confidential", sa.Boolean, server_default="false", nullable=False),
        sa.Column("notes", sa.Text),
        _now("created_at"),
    )
    _table(
        "appointments",
        _id(),
        _fk("student_id", "students.id", nullable=False),
        _fk("nurse_id", "users.id", nullable=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("scheduled_at", TZ, nullable=False),
        sa.Column("duration_minutes", sa.SmallInteger, server_default="15", nullable=False),
        sa.Column("recurring_group_id", UUID(as_uuid=True)),
        _now("created_at"),
        _now("updated_at"),
    )
    _table(
        "medications",
        _id(),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("dosage_form", sa.Text, nullable=False),
        sa.Column("strength", sa.Text),
        sa.Column("is_active", sa.Boolean, server_default="true", nullable=False),
        sa.Column("is_controlled", sa.Boolean, server_default="false", nullable=False),
        sa.Column("dea_schedule", sa.Text),
    )
    _table(
        "emergency_contacts",
        _id(),
        _fk("student_id", "students.id", nullable=False),
        sa.Column("first_name", sa.Text, nullable=False),
        sa.Column("last_name", sa.Text, nullable=False),
        sa.Column("relationship", sa.Text, nullable=False),
        sa.Column("phone", sa.Text, nullable=False),
        sa.Column("priority", sa.SmallInteger, nullable=False),
        sa.Column("is_primary", sa.Boolean, server_default="false", nullable=False),
    )
    _table(
        "bulk_jobs",
        _id(),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("params", JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("checkpoint", JSONB),
        sa.Column("rows_total", sa.BigInteger),
        sa.Column("rows_done", sa.BigInteger, server_default="0", nullable=False),
        sa.Column("batch_size", sa.BigInteger),
        sa.Column("error", sa.Text),
        _now("created_at"),
        _now("updated_at"),
        sa.Column("finished_at", TZ),
    )
    _table(
        "audit_log",
        _id(),
        _now("occurred_at"),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        _fk("job_id", "bulk_jobs.id", nullable=True),
        sa.Column("counts", JSONB, server_default="{}", nullable=False),
        sa.Column("details", JSONB, server_default="{}", nullable=False),
    )


def downgrade() -> None:
    for table in (
        "audit_log",
        "bulk_jobs",
        "emergency_contacts",
        "medications",
        "appointments",
        "health_records",
        "students",
        "users",
        "schools",
    ):
        op.drop_table(table, if_exists=True)
