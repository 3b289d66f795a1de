"""The platform's data model as SQLAlchemy models.

A database at Alembic's head has exactly these tables and indexes (a test compares
the two): the baseline revision creates the tables with primary and foreign keys,
the index revision the 14 performance indexes.
Every name, date of birth, phone, note and diagnosis code is PHI.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    MetaData,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "pk": "%(table_name)s_pkey",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads it as a class attribute
        int: BigInteger,
        str: Text,
        dict[str, Any]: JSONB,
        datetime: DateTime(timezone=True),
    }


def _id() -> Mapped[int]:
    return mapped_column(BigInteger, Identity(), primary_key=True)


def _now() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


class School(Base):
    __tablename__ = "schools"
    id: Mapped[int] = _id()
    name: Mapped[str]
    district: Mapped[str]
    created_at: Mapped[datetime] = _now()


class User(Base):
    """Nurses and staff."""

    __tablename__ = "users"
    id: Mapped[int] = _id()
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"))
    email: Mapped[str]
    first_name: Mapped[str]
    last_name: Mapped[str]
    role: Mapped[str]  # nurse | staff | admin
    is_active: Mapped[bool] = mapped_column(server_default="true")
    max_workload: Mapped[int | None] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = _now()


class Student(Base):
    __tablename__ = "students"
    id: Mapped[int] = _id()
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"))
    nurse_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    student_number: Mapped[str]
    first_name: Mapped[str]
    last_name: Mapped[str]
    date_of_birth: Mapped[date]
    grade: Mapped[int] = mapped_column(SmallInteger)  # 0 = kindergarten .. 12
    status: Mapped[str] = mapped_column(server_default="active")
    enrollment_date: Mapped[date]
    graduation_date: Mapped[date | None]
    transferred_at: Mapped[datetime | None]
    transfer_metadata: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    # The school year whose grade transition this student has had (exactly once).
    last_promoted_year: Mapped[int | None] = mapped_column(SmallInteger)

    nurse: Mapped[User | None] = relationship(lazy="raise")
    school: Mapped[School] = relationship(lazy="raise")


class HealthRecord(Base):
    __tablename__ = "health_records"
    __table_args__ = (
        Index("idx_health_records_student_type_date", "student_id", "record_type", "record_date"),
        Index("idx_health_records_student_confidential", "student_id", "is_confidential"),
        Index(
            "idx_health_records_type_confidential_date",
            "record_type",
            "is_confidential",
            "record_date",
        ),
        Index("idx_health_records_provider_date", "provider", "record_date"),
        Index("idx_health_records_diagnosis_code", "diagnosis_code"),
    )
    id: Mapped[int] = _id()
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"))
    record_type: Mapped[str]
    record_date: Mapped[date]
    provider: Mapped[str | None]
    diagnosis_code: Mapped[str | None]
    is_confidential: Mapped[bool] = mapped_column(server_default="false")
    notes: Mapped[str | None]
    created_at: Mapped[datetime] = _now()


class Appointment(Base):
    __tablename__ = "appointments"
    __table_args__ = (
        Index("idx_appointments_student_scheduled", "student_id", "scheduled_at"),
        Index("idx_appointments_nurse_scheduled", "nurse_id", "scheduled_at"),
        Index("idx_appointments_status_scheduled", "status", "scheduled_at"),
        Index("idx_appointments_student_status_scheduled", "student_id", "status", "scheduled_at"),
        Index("idx_appointments_type_status_scheduled", "type", "status", "scheduled_at"),
        Index("idx_appointments_recurring_group", "recurring_group_id"),
    )
    id: Mapped[int] = _id()
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"))
    nurse_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    type: Mapped[str]
    status: Mapped[str]
    scheduled_at: Mapped[datetime]
    duration_minutes: Mapped[int] = mapped_column(SmallInteger, server_default="15")
    recurring_group_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Medication(Base):
    __tablename__ = "medications"
    __table_args__ = (
        Index("idx_medications_active_name", "is_active", "name"),
        Index("idx_medications_controlled_schedule", "is_controlled", "dea_schedule"),
        Index("idx_medications_form_active", "dosage_form", "is_active"),
    )
    id: Mapped[int] = _id()
    name: Mapped[str]
    dosage_form: Mapped[str]
    strength: Mapped[str | None]
    is_active: Mapped[bool] = mapped_column(server_default="true")
    is_controlled: Mapped[bool] = mapped_column(server_default="false")
    dea_schedule: Mapped[str | None]  # II..V for controlled substances


class EmergencyContact(Base):
    __tablename__ = "emergency_contacts"
    id: Mapped[int] = _id()
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"))
    first_name: Mapped[str]
    last_name: Mapped[str]
    relationship: Mapped[str]
    phone: Mapped[str]
    priority: Mapped[int] = mapped_column(SmallInteger)
    is_primary: Mapped[bool] = mapped_column(server_default="false")


class BulkJob(Base):
    """A bulk job's plan and checkpoint: each batch advances it in its own transaction."""

    __tablename__ = "bulk_jobs"
    id: Mapped[int] = _id()
    kind: Mapped[str]
    params: Mapped[dict[str, Any]]
    status: Mapped[str]  # planned | running | paused | interrupted | done | aborted | failed
    checkpoint: Mapped[dict[str, Any] | None]
    rows_total: Mapped[int | None]
    rows_done: Mapped[int] = mapped_column(server_default="0")
    batch_size: Mapped[int | None]  # fixed by the operator; NULL: adaptive
    error: Mapped[str | None]
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None]
    requested: Mapped[str | None]  # run | pause | abort, set from another terminal
    throttle: Mapped[dict[str, Any] | None]
    owner: Mapped[str | None]  # host:pid
    started_at: Mapped[datetime | None]


class StudentTransfer(Base):
    """One student moved by one transfer job (unique per job and student)."""

    __tablename__ = "student_transfers"
    __table_args__ = (
        UniqueConstraint("job_id", "student_id", name="student_transfers_job_student_key"),
    )
    id: Mapped[int] = _id()
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"))
    from_school_id: Mapped[int]
    to_school_id: Mapped[int]
    from_nurse_id: Mapped[int | None]
    job_id: Mapped[int] = mapped_column(ForeignKey("bulk_jobs.id"))
    transferred_at: Mapped[datetime] = _now()
    reason: Mapped[str | None]  # free text an operator typed: may be PHI, never logged


class AuditLog(Base):
    """Who did what, when, and how many rows: never which rows' values."""

    __tablename__ = "audit_log"
    id: Mapped[int] = _id()
    occurred_at: Mapped[datetime] = _now()
    actor: Mapped[str]
    action: Mapped[str]
    job_id: Mapped[int | None] = mapped_column(ForeignKey("bulk_jobs.id"))
    counts: Mapped[dict[str, Any]] = mapped_column(server_default="{}")
    details: Mapped[dict[str, Any]] = mapped_column(server_default="{}")


DISTRICT_TABLES = (
    "schools",
    "users",
    "students",
    "health_records",
    "appointments",
    "medications",
    "emergency_contacts",
)
