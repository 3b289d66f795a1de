"""The 14 performance indexes of SPEC.md, built online.

Each is built with CREATE INDEX CONCURRENTLY outside a transaction, after dropping
an INVALID leftover of the same name; lock waits time out and retry. The mechanism
lives in wcperf.migrate.online_index; this revision fixes what is built.

Revision ID: 0002_performance_indexes
Revises: 0001_baseline
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import context, op

from wcperf.migrate.online_index import IndexSpec, run_revision

revision: str = "0002_performance_indexes"
down_revision: str | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    IndexSpec(
        "idx_health_records_student_type_date",
        "health_records",
        ("student_id", "record_type", "record_date"),
    ),
    IndexSpec(
        "idx_health_records_student_confidential",
        "health_records",
        ("student_id", "is_confidential"),
    ),
    IndexSpec(
        "idx_health_records_type_confidential_date",
        "health_records",
        ("record_type", "is_confidential", "record_date"),
    ),
    IndexSpec("idx_health_records_provider_date", "health_records", ("provider", "record_date")),
    IndexSpec("idx_health_records_diagnosis_code", "health_records", ("diagnosis_code",)),
    IndexSpec("idx_appointments_student_scheduled", "appointments", ("student_id", "scheduled_at")),
    IndexSpec("idx_appointments_nurse_scheduled", "appointments", ("nurse_id", "scheduled_at")),
    IndexSpec("idx_appointments_status_scheduled", "appointments", ("status", "scheduled_at")),
    IndexSpec(
        "idx_appointments_student_status_scheduled",
        "appointments",
        ("student_id", "status", "scheduled_at"),
    ),
    IndexSpec(
        "idx_appointments_type_status_scheduled", "appointments", ("type", "status", "scheduled_at")
    ),
    IndexSpec("idx_appointments_recurring_group", "appointments", ("recurring_group_id",)),
    IndexSpec("idx_medications_active_name", "medications", ("is_active", "name")),
    IndexSpec(
        "idx_medications_controlled_schedule", "medications", ("is_controlled", "dea_schedule")
    ),
    IndexSpec("idx_medications_form_active", "medications", ("dosage_form", "is_active")),
)


def upgrade() -> None:
    run_revision(context, op, INDEXES, "upgrade")


def downgrade() -> None:
    run_revision(context, op, INDEXES, "downgrade")
