"""The 14 performance indexes the platform's models declare, as wcperf finds or builds them.

The names, tables and columns are the platform's (quoted camelCase where it says
so). They are plain btree indexes, not unique, without predicate or INCLUDE: an
index of that name with any other definition is the platform's business and is
never dropped unless the operator asks (`--replace-differing`).
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql


@dataclass(frozen=True)
class IndexSpec:
    name: str
    table: str
    columns: tuple[str, ...]
    method: str = "btree"

    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.name)

    def columns_sql(self) -> sql.Composable:
        return sql.SQL(", ").join(map(sql.Identifier, self.columns))

    def create_sql(self, name: str | None = None) -> sql.Composed:
        """Built online; IF NOT EXISTS because a re-run after a crash may find it built."""
        return sql.SQL("CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} USING {} ({})").format(
            sql.Identifier(name or self.name),
            sql.Identifier(self.table),
            sql.SQL(self.method),
            self.columns_sql(),
        )

    def definition(self) -> str:
        """What wcperf records of an index it built (as pg_get_indexdef would print it)."""
        return (
            sql.SQL("CREATE INDEX {} ON {} USING {} ({})")
            .format(
                sql.Identifier(self.name),
                sql.Identifier(self.table),
                sql.SQL(self.method),
                self.columns_sql(),
            )
            .as_string(None)
        )

    def drop_sql(self, name: str | None = None) -> sql.Composed:
        return sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
            sql.Identifier(name or self.name)
        )

    @property
    def temporary_name(self) -> str:
        """Where `--replace-differing` builds the expected index before the swap."""
        return (self.name[:50] + "_wcperf_new")[:63]


PERFORMANCE_INDEXES = (
    IndexSpec(
        "idx_health_records_student_type_date",
        "health_records",
        ("studentId", "recordType", "recordDate"),
    ),
    IndexSpec(
        "idx_health_records_student_confidential", "health_records", ("studentId", "isConfidential")
    ),
    IndexSpec(
        "idx_health_records_type_confidential_date",
        "health_records",
        ("recordType", "isConfidential", "recordDate"),
    ),
    IndexSpec("idx_health_records_provider_date", "health_records", ("provider", "recordDate")),
    IndexSpec("idx_health_records_diagnosis_code", "health_records", ("diagnosisCode",)),
    IndexSpec("idx_appointments_student_scheduled", "appointments", ("studentId", "scheduledAt")),
    IndexSpec("idx_appointments_nurse_scheduled", "appointments", ("nurseId", "scheduledAt")),
    IndexSpec("idx_appointments_status_scheduled", "appointments", ("status", "scheduledAt")),
    IndexSpec(
        "idx_appointments_student_status_scheduled",
        "appointments",
        ("studentId", "status", "scheduledAt"),
    ),
    IndexSpec(
        "idx_appointments_type_status_scheduled", "appointments", ("type", "status", "scheduledAt")
    ),
    IndexSpec("idx_appointments_recurring_group", "appointments", ("recurringGroupId",)),
    IndexSpec("idx_medications_active_name", "medications", ("isActive", "name")),
    IndexSpec(
        "idx_medications_controlled_schedule", "medications", ("isControlled", "deaSchedule")
    ),
    IndexSpec("idx_medications_form_active", "medications", ("dosageForm", "isActive")),
)
BY_NAME = {spec.name: spec for spec in PERFORMANCE_INDEXES}
