"""The platform's tables as SQLAlchemy models: its columns behind readable names.

The platform owns these tables; nothing here is ever created, altered or dropped
by wcperf (no `create_all`, no Alembic autogenerate: the migrations' metadata is
`STATE` below, wcperf's own schema). Columns are the platform's quoted camelCase
(`"studentId"`), keys are UUIDs the application generates, vocabularies are
UPPER CASE, grades are strings, and most tables are soft-deleted: `live()` is the
`"deletedAt" IS NULL` every read adds. Every name, date of birth, phone, note,
diagnosis and free-text reason is PHI.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ENUM, JSONB, UUID
from sqlalchemy.orm import (
    DeclarativeBase,
    InstrumentedAttribute,
    Mapped,
    mapped_column,
    relationship,
)
from sqlalchemy.sql.elements import ColumnElement

from wcperf.platform import WCPERF_SCHEMA

RECORD_TYPES = (
    "CHECKUP",
    "VACCINATION",
    "ILLNESS",
    "INJURY",
    "SCREENING",
    "PHYSICAL_EXAM",
    "MENTAL_HEALTH",
    "DENTAL",
    "VISION",
    "HEARING",
    "EXAMINATION",
    "ALLERGY_DOCUMENTATION",
    "CHRONIC_CONDITION_REVIEW",
    "GROWTH_ASSESSMENT",
    "VITAL_SIGNS_CHECK",
    "EMERGENCY_VISIT",
    "FOLLOW_UP",
    "CONSULTATION",
    "DIAGNOSTIC_TEST",
    "PROCEDURE",
    "HOSPITALIZATION",
    "SURGERY",
    "COUNSELING",
    "THERAPY",
    "NUTRITION",
    "MEDICATION_REVIEW",
    "IMMUNIZATION",
    "LAB_RESULT",
    "RADIOLOGY",
    "OTHER",
)
ROLES = ("ADMIN", "NURSE", "SCHOOL_ADMIN", "DISTRICT_ADMIN", "VIEWER", "COUNSELOR")
DEA_SCHEDULES = ("I", "II", "III", "IV", "V")

# The platform's enum types exist already; never CREATE TYPE them.
RecordType = ENUM(*RECORD_TYPES, name="enum_health_records_recordType", create_type=False)
Role = ENUM(*ROLES, name="enum_users_role", create_type=False)
DeaSchedule = ENUM(*DEA_SCHEDULES, name="enum_medications_deaSchedule", create_type=False)

TZ = DateTime(timezone=True)


class Base(DeclarativeBase):
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads it as a class attribute
        uuid.UUID: UUID(as_uuid=True),
        str: String,
        datetime: TZ,
    }


def _col(name: str, *args: Any, **kw: Any) -> Any:
    return mapped_column(name, *args, **kw)


class _Stamped:
    """`"createdAt"`/`"updatedAt"`: the ORM sets both; so must every writer here."""

    created_at: Mapped[datetime | None] = _col("createdAt", TZ)
    updated_at: Mapped[datetime | None] = _col("updatedAt", TZ)


class District(_Stamped, Base):
    __tablename__ = "districts"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str]
    code: Mapped[str]
    is_active: Mapped[bool] = _col("isActive")
    deleted_at: Mapped[datetime | None] = _col("deletedAt")


class School(_Stamped, Base):
    __tablename__ = "schools"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str]
    code: Mapped[str]
    district_id: Mapped[uuid.UUID] = _col("districtId", ForeignKey("districts.id"))
    is_active: Mapped[bool] = _col("isActive")
    deleted_at: Mapped[datetime | None] = _col("deletedAt")


class User(_Stamped, Base):
    """Staff; nurses are `role = 'NURSE'`. The platform keeps no workload limit."""

    __tablename__ = "users"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    email: Mapped[str]
    first_name: Mapped[str] = _col("firstName")
    last_name: Mapped[str] = _col("lastName")
    role: Mapped[str] = mapped_column(Role)
    is_active: Mapped[bool] = _col("isActive")
    school_id: Mapped[uuid.UUID | None] = _col("schoolId", ForeignKey("schools.id"))
    district_id: Mapped[uuid.UUID | None] = _col("districtId")
    deleted_at: Mapped[datetime | None] = _col("deletedAt")


class Student(_Stamped, Base):
    __tablename__ = "students"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    student_number: Mapped[str] = _col("studentNumber")
    first_name: Mapped[str] = _col("firstName")
    last_name: Mapped[str] = _col("lastName")
    date_of_birth: Mapped[date] = _col("dateOfBirth")
    grade: Mapped[str]  # 'Pre-K', 'K', '1' ... '12', 'Graduate'
    gender: Mapped[str]
    medical_record_num: Mapped[str | None] = _col("medicalRecordNum")
    is_active: Mapped[bool] = _col("isActive")
    enrollment_date: Mapped[datetime] = _col("enrollmentDate")
    nurse_id: Mapped[uuid.UUID | None] = _col("nurseId", ForeignKey("users.id"))
    school_id: Mapped[uuid.UUID | None] = _col("schoolId", ForeignKey("schools.id"))
    district_id: Mapped[uuid.UUID | None] = _col("districtId", ForeignKey("districts.id"))
    created_by: Mapped[uuid.UUID | None] = _col("createdBy")
    updated_by: Mapped[uuid.UUID | None] = _col("updatedBy")
    deleted_at: Mapped[datetime | None] = _col("deletedAt")

    nurse: Mapped[User | None] = relationship(
        lazy="raise",
        primaryjoin="and_(Student.nurse_id == User.id, User.deleted_at.is_(None))",
    )
    school: Mapped[School | None] = relationship(lazy="raise")


class HealthRecord(_Stamped, Base):
    __tablename__ = "health_records"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    student_id: Mapped[uuid.UUID] = _col("studentId", ForeignKey("students.id"))
    record_type: Mapped[str] = _col("recordType", RecordType)
    title: Mapped[str]
    description: Mapped[str] = mapped_column(Text)
    record_date: Mapped[datetime] = _col("recordDate")
    provider: Mapped[str | None]
    diagnosis: Mapped[str | None] = mapped_column(Text)
    diagnosis_code: Mapped[str | None] = _col("diagnosisCode")
    is_confidential: Mapped[bool | None] = _col("isConfidential")
    notes: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[uuid.UUID | None] = _col("createdBy")
    updated_by: Mapped[uuid.UUID | None] = _col("updatedBy")
    deleted_at: Mapped[datetime | None] = _col("deletedAt")


class Appointment(_Stamped, Base):
    __tablename__ = "appointments"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    student_id: Mapped[uuid.UUID] = _col("studentId", ForeignKey("students.id"))
    nurse_id: Mapped[uuid.UUID | None] = _col("nurseId", ForeignKey("users.id"))
    type: Mapped[str]
    scheduled_at: Mapped[datetime] = _col("scheduledAt")
    duration: Mapped[int] = mapped_column(Integer)
    status: Mapped[str]
    reason: Mapped[str]
    notes: Mapped[str | None] = mapped_column(Text)
    recurring_group_id: Mapped[uuid.UUID | None] = _col("recurringGroupId")
    deleted_at: Mapped[datetime | None] = _col("deletedAt")


class Medication(_Stamped, Base):
    """The drug catalogue."""

    __tablename__ = "medications"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str]
    generic_name: Mapped[str | None] = _col("genericName")
    dosage_form: Mapped[str] = _col("dosageForm")
    strength: Mapped[str]
    is_controlled: Mapped[bool | None] = _col("isControlled")
    dea_schedule: Mapped[str | None] = _col("deaSchedule", DeaSchedule)
    is_active: Mapped[bool | None] = _col("isActive")
    deleted_at: Mapped[datetime | None] = _col("deletedAt")


class EmergencyContact(_Stamped, Base):
    """Not soft-deleted by the platform."""

    __tablename__ = "emergency_contacts"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    student_id: Mapped[uuid.UUID] = _col("studentId", ForeignKey("students.id"))
    first_name: Mapped[str] = _col("firstName")
    last_name: Mapped[str] = _col("lastName")
    relationship: Mapped[str]
    phone_number: Mapped[str] = _col("phoneNumber")
    priority: Mapped[str]  # PRIMARY | SECONDARY | EMERGENCY_ONLY
    is_active: Mapped[bool] = _col("isActive")
    verification_status: Mapped[str | None] = _col("verificationStatus")


def live(model: Any) -> ColumnElement[bool]:
    """The soft-delete filter the platform adds to every read of a paranoid table."""
    deleted_at: InstrumentedAttribute[datetime | None] = model.deleted_at
    return deleted_at.is_(None)


# -- wcperf's own state, in its own schema (as 0001_wcperf_state creates it) ----------

STATE = MetaData(schema=WCPERF_SCHEMA)

bulk_jobs = Table(
    "bulk_jobs",
    STATE,
    Column("id", BigInteger, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("params", JSONB, nullable=False),
    Column("status", Text, nullable=False),
    Column("checkpoint", JSONB),
    Column("rows_total", BigInteger),
    Column("rows_done", BigInteger, nullable=False),
    Column("batch_size", BigInteger),
    Column("error", Text),
    Column("requested", Text),
    Column("throttle", JSONB),
    Column("owner", Text),
    Column("reverts", BigInteger),  # the job this one reverts
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
    Column("started_at", TZ),
    Column("finished_at", TZ),
)
audit_log = Table(
    "audit_log",
    STATE,
    Column("id", BigInteger, primary_key=True),
    Column("occurred_at", TZ, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("job_id", BigInteger, ForeignKey("wcperf.bulk_jobs.id")),
    Column("counts", JSONB, nullable=False),
    Column("details", JSONB, nullable=False),
)
# One row per student and school year the transition changed; what it was before.
promotions = Table(
    "promotions",
    STATE,
    Column("student_id", UUID(as_uuid=True), nullable=False),
    Column("school_year", BigInteger, nullable=False),
    Column("job_id", BigInteger, ForeignKey("wcperf.bulk_jobs.id"), nullable=False),
    Column("from_grade", Text, nullable=False),
    Column("to_grade", Text, nullable=False),
    Column("applied_at", TZ, nullable=False),
    Column("prev_updated_at", TZ),
    Column("prev_updated_by", UUID(as_uuid=True)),
    Column("reverted_by", BigInteger),
    Index(
        "promotions_once_per_year",
        "student_id",
        "school_year",
        unique=True,
        postgresql_where=text("reverted_by IS NULL"),
    ),
    Index("promotions_job", "job_id", "student_id"),
)
# One row per student a reassignment or transfer moved; what it was before.
student_moves = Table(
    "student_moves",
    STATE,
    Column("job_id", BigInteger, ForeignKey("wcperf.bulk_jobs.id"), primary_key=True),
    Column("student_id", UUID(as_uuid=True), primary_key=True),
    Column("from_school_id", UUID(as_uuid=True)),
    Column("to_school_id", UUID(as_uuid=True)),
    Column("from_district_id", UUID(as_uuid=True)),
    Column("to_district_id", UUID(as_uuid=True)),
    Column("from_nurse_id", UUID(as_uuid=True)),
    Column("to_nurse_id", UUID(as_uuid=True)),
    Column("applied_at", TZ, nullable=False),
    Column("prev_updated_at", TZ),
    Column("prev_updated_by", UUID(as_uuid=True)),
    Column("reason", Text),  # free text an operator typed: may be PHI, never shown
    Column("metadata", JSONB),
    Column("reverted_by", BigInteger),
)
built_indexes = Table(
    "built_indexes",
    STATE,
    Column("name", Text, primary_key=True),
    Column("table_name", Text, nullable=False),
    Column("definition", Text, nullable=False),
    Column("replaced_definition", Text),  # the platform's own, swapped on request
    Column("built_at", TZ, nullable=False),
)
seeds = Table(
    "seeds",
    STATE,
    Column("id", BigInteger, primary_key=True),
    Column("mode", Text, nullable=False),
    Column("created_schema", Boolean, nullable=False),
    Column("students", BigInteger, nullable=False),
    Column("random_seed", BigInteger, nullable=False),
    Column("rows", JSONB, nullable=False),
    Column("seeded_at", TZ, nullable=False),
)
