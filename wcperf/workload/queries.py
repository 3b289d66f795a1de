"""The platform's hot queries, each declared once, in the shape the platform sends them.

One declaration feeds three users: the hot-path operation that runs it under load
(`hot_paths`), the cache (its kind, hence TTL; the tables and row scopes it reads)
and `migrate verify`, which proves its plan on the user's own data. Each says
which of the 14 performance indexes should serve it, or that none does and what
would, as advice (wcperf never builds an index it was not asked for).

The shape follows what Sequelize emits for the platform's services: soft-deleted
rows excluded on every table read (`"deletedAt" IS NULL`, in the JOIN for an
included model), UPPER-CASE statuses, the nurse LEFT JOINed into a student list,
the ILIKE medication search.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeAlias

from sqlalchemy import Select, and_, distinct, func, select
from sqlalchemy.orm import aliased

from wcperf.db.schema import (
    Appointment,
    EmergencyContact,
    HealthRecord,
    Medication,
    School,
    Student,
    User,
    live,
)
from wcperf.platform import APPOINTMENT_STATUSES

# Every status but CANCELLED, as an IN list: a btree on (status, "scheduledAt") serves
# `status = ANY(...)` where `status <> 'CANCELLED'` would scan it whole.
OPEN_STATUSES = tuple(s for s in APPOINTMENT_STATUSES if s != "CANCELLED")
Nurse = aliased(User, name="nurse")
Statement: TypeAlias = "Select[*tuple[Any, ...]]"  # a SELECT of any columns


@dataclass(frozen=True)
class HotQuery:
    name: str
    build: Callable[..., Statement]  # the statement, from the named parameters
    params: Callable[[dict[str, Any]], dict[str, Any]]  # from a district sample
    index: str | None  # the performance index that should serve it
    kind: str = ""  # cache kind (TTL); "" for a query nothing caches
    also: tuple[str, ...] = ()  # platform model indexes that serve it as well
    advice: str = ""  # when no performance index serves it: what would


def _day(at: datetime) -> tuple[datetime, datetime]:
    start = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


# -- the statements ----------------------------------------------------------------


def student_list(nurse: uuid.UUID | None = None, limit: int = 25, offset: int = 0) -> Statement:
    """A nurse's active students with the nurse included (findAndCountAll's page)."""
    return (
        select(Student, Nurse)
        .outerjoin(Nurse, and_(Nurse.id == Student.nurse_id, Nurse.deleted_at.is_(None)))
        .where(live(Student), Student.is_active.is_(True), Student.nurse_id == nurse)
        .order_by(Student.last_name, Student.first_name, Student.id)
        .limit(limit)
        .offset(offset)
    )


def student_list_count(nurse: uuid.UUID | None = None) -> Statement:
    return select(func.count(distinct(Student.id))).where(
        live(Student), Student.is_active.is_(True), Student.nurse_id == nurse
    )


def health_timeline(
    student: uuid.UUID | None = None,
    record_type: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> Statement:
    """A student's records, newest first, the student included (getStudentHealthRecords)."""
    stmt = (
        select(HealthRecord)
        .join(Student, and_(Student.id == HealthRecord.student_id, live(Student)))
        .where(live(HealthRecord), HealthRecord.student_id == student)
    )
    if record_type is not None:
        stmt = stmt.where(HealthRecord.record_type == record_type)
    return (
        stmt.order_by(HealthRecord.record_date.desc(), HealthRecord.id.desc())
        .limit(limit)
        .offset(offset)
    )


def graduating(school: uuid.UUID | None = None) -> Statement:
    """A school's seniors with their record and visit history, in one batch query.

    The aggregates are restricted to those seniors first (by `"studentId"`, which the
    platform indexes): aggregating every record of the district and then joining took
    14 s at 1 M students."""
    seniors = (
        select(Student.id)
        .where(
            live(Student),
            Student.is_active.is_(True),
            Student.school_id == school,
            Student.grade == "12",
        )
        .scalar_subquery()
    )
    records = (
        select(
            HealthRecord.student_id.label("student_id"),
            func.count().label("records"),
            func.max(HealthRecord.record_date).label("last_record"),
        )
        .where(live(HealthRecord), HealthRecord.student_id.in_(seniors))
        .group_by(HealthRecord.student_id)
        .subquery()
    )
    visits = (
        select(Appointment.student_id.label("student_id"), func.count().label("appointments"))
        .where(live(Appointment), Appointment.student_id.in_(seniors))
        .group_by(Appointment.student_id)
        .subquery()
    )
    return (
        select(
            Student.id,
            Student.student_number,
            Student.first_name,
            Student.last_name,
            Student.enrollment_date,
            func.coalesce(records.c.records, 0),
            records.c.last_record,
            func.coalesce(visits.c.appointments, 0),
        )
        .outerjoin(records, records.c.student_id == Student.id)
        .outerjoin(visits, visits.c.student_id == Student.id)
        .where(
            live(Student),
            Student.is_active.is_(True),
            Student.school_id == school,
            Student.grade == "12",
        )
        .order_by(Student.last_name, Student.first_name, Student.id)
    )


def contact_stats() -> Statement:
    """Emergency contacts by priority (the platform's statistics, on the real table)."""
    return (
        select(EmergencyContact.priority, func.count())
        .where(EmergencyContact.is_active.is_(True))
        .group_by(EmergencyContact.priority)
        .order_by(EmergencyContact.priority)
    )


def calendar(
    start: datetime | None = None,
    end: datetime | None = None,
    nurse: uuid.UUID | None = None,
    by_nurse: bool = False,
) -> Statement:
    """One day's open appointments, optionally one nurse's, with student and nurse."""
    stmt = (
        select(Appointment, Student, Nurse)
        .join(Student, and_(Student.id == Appointment.student_id, live(Student)))
        .outerjoin(Nurse, and_(Nurse.id == Appointment.nurse_id, Nurse.deleted_at.is_(None)))
        .where(
            live(Appointment),
            Appointment.scheduled_at.between(start, end),
            Appointment.status.in_(OPEN_STATUSES),
        )
    )
    if by_nurse:
        stmt = stmt.where(Appointment.nurse_id == nurse)
    return stmt.order_by(Appointment.scheduled_at, Appointment.id).limit(500)


def medications(
    pattern: str | None = None, form: str | None = None, schedule: str | None = None
) -> Statement:
    """Active medications by name (ILIKE), by dosage form, or controlled by schedule."""
    stmt = select(Medication).where(live(Medication), Medication.is_active.is_(True))
    if pattern is not None:
        stmt = stmt.where(Medication.name.ilike(pattern))
    if form is not None:
        stmt = stmt.where(Medication.dosage_form == form)
    if schedule is not None:
        stmt = stmt.where(Medication.is_controlled.is_(True), Medication.dea_schedule == schedule)
    return stmt.order_by(Medication.name, Medication.id).limit(100)


def student_detail(student: uuid.UUID | None = None) -> Statement:
    return (
        select(Student, Nurse, School)
        .outerjoin(Nurse, and_(Nurse.id == Student.nurse_id, Nurse.deleted_at.is_(None)))
        .outerjoin(School, and_(School.id == Student.school_id, live(School)))
        .where(live(Student), Student.id == student)
    )


def student_contacts(student: uuid.UUID | None = None) -> Statement:
    return (
        select(EmergencyContact)
        .where(EmergencyContact.student_id == student, EmergencyContact.is_active.is_(True))
        .order_by(EmergencyContact.priority, EmergencyContact.id)
    )


def _records(*where: Any, limit: int | None = None, count: bool = False) -> Statement:
    cols = (func.count(),) if count else (HealthRecord.id, HealthRecord.record_date)
    stmt = select(*cols).where(live(HealthRecord), *where)
    if not count:
        stmt = stmt.order_by(HealthRecord.record_date).limit(limit)
    return stmt


def _appointments(*where: Any, desc: bool = False, limit: int | None = None) -> Statement:
    order = Appointment.scheduled_at.desc() if desc else Appointment.scheduled_at
    return (
        select(Appointment.id, Appointment.scheduled_at, Appointment.status)
        .where(live(Appointment), *where)
        .order_by(order)
        .limit(limit)
    )


# -- the declarations ------------------------------------------------------------------

TRIGRAM_ADVICE = (
    "none of the 14 serves an ILIKE; a trigram index would: "
    "CREATE EXTENSION pg_trgm; "
    "CREATE INDEX CONCURRENTLY ON medications USING gin (name gin_trgm_ops)"
)

HOT_QUERIES: tuple[HotQuery, ...] = (
    HotQuery(
        "student list",
        student_list,
        lambda s: {"nurse": s["nurse"]},
        None,
        kind="grade_list",
        also=("students_nurse_id",),
    ),
    HotQuery(
        "student health timeline",
        health_timeline,
        lambda s: {"student": s["student"]},
        None,
        kind="health_summary",
        also=("idx_health_records_student_date", "idx_health_records_student_type_date"),
    ),
    HotQuery(
        "student health history by type",
        health_timeline,
        lambda s: {"student": s["student"], "record_type": s["record_type"]},
        "idx_health_records_student_type_date",
        kind="health_summary",
    ),
    HotQuery(
        "graduating students",
        graduating,
        lambda s: {"school": s["school"]},
        None,
        kind="grade_list",
        also=("idx_students_school_grade_active", "students_school_id"),
    ),
    HotQuery(
        "emergency-contact statistics",
        contact_stats,
        lambda s: {},
        None,
        kind="emergency_contact_stats",
        advice="a district-wide GROUP BY reads every contact; the cache serves it",
    ),
    HotQuery(
        "nurse daily calendar",
        calendar,
        lambda s: {
            **dict(zip(("start", "end"), _day(s["at"]), strict=True)),
            "nurse": s["nurse"],
            "by_nurse": True,
        },
        "idx_appointments_nurse_scheduled",
        kind="appointment_calendar",
        also=("idx_appointments_nurse_scheduled_status",),
    ),
    HotQuery(
        "daily appointment schedule",
        calendar,
        lambda s: dict(zip(("start", "end"), _day(s["at"]), strict=True)),
        "idx_appointments_status_scheduled",
        kind="appointment_calendar",
    ),
    HotQuery(
        "medication search by name",
        medications,
        lambda s: {"pattern": s["medication"][:3] + "%"},
        None,
        kind="medication_catalogue",
        advice=TRIGRAM_ADVICE,
    ),
    HotQuery(
        "medication catalogue",
        medications,
        lambda s: {},
        "idx_medications_active_name",
        kind="medication_catalogue",
    ),
    HotQuery(
        "medications by form",
        medications,
        lambda s: {"form": s["form"]},
        "idx_medications_form_active",
        kind="medication_catalogue",
    ),
    HotQuery(
        "controlled medications",
        medications,
        lambda s: {"schedule": s["schedule"]},
        "idx_medications_controlled_schedule",
        kind="medication_catalogue",
    ),
    HotQuery(
        "student detail",
        student_detail,
        lambda s: {"student": s["student"]},
        None,
        kind="student_detail",
        also=("students_pkey",),
    ),
    HotQuery(
        "student confidential records",
        lambda student=None: _records(
            HealthRecord.student_id == student, HealthRecord.is_confidential.is_(True)
        ),
        lambda s: {"student": s["student"]},
        "idx_health_records_student_confidential",
    ),
    HotQuery(
        "recent records by type",
        lambda record_type=None, since=None: _records(
            HealthRecord.record_type == record_type,
            HealthRecord.is_confidential.is_(False),
            HealthRecord.record_date >= since,
            limit=50,
        ),
        lambda s: {"record_type": s["record_type"], "since": s["latest"] - timedelta(days=30)},
        "idx_health_records_type_confidential_date",
        also=("idx_health_records_type_date",),
    ),
    HotQuery(
        "provider queries",
        lambda provider=None, since=None, until=None: _records(
            HealthRecord.provider == provider,
            HealthRecord.record_date.between(since, until),
            count=True,
        ),
        lambda s: {
            "provider": s["provider"],
            "since": s["latest"] - timedelta(days=365),
            "until": s["latest"],
        },
        "idx_health_records_provider_date",
    ),
    HotQuery(
        "diagnosis lookup",
        lambda code=None: _records(HealthRecord.diagnosis_code == code, count=True),
        lambda s: {"code": s["code"]},
        "idx_health_records_diagnosis_code",
    ),
    HotQuery(
        "student appointments",
        lambda student=None: _appointments(Appointment.student_id == student, desc=True, limit=10),
        lambda s: {"student": s["appt_student"]},
        "idx_appointments_student_scheduled",
        also=("idx_appointments_student_status_scheduled",),
    ),
    HotQuery(
        "student appointments by status",
        lambda student=None, status=None, since=None: _appointments(
            Appointment.student_id == student,
            Appointment.status == status,
            Appointment.scheduled_at >= since,
        ),
        lambda s: {
            "student": s["appt_student"],
            "status": s["status"],
            "since": s["at"] - timedelta(days=120),
        },
        "idx_appointments_student_status_scheduled",
    ),
    HotQuery(
        "appointments by type",
        lambda type_=None, status=None, start=None, end=None: _appointments(
            Appointment.type == type_,
            Appointment.status == status,
            Appointment.scheduled_at.between(start, end),
        ),
        lambda s: {
            "type_": s["type"],
            "status": s["status"],
            **dict(zip(("start", "end"), _day(s["at"]), strict=True)),
        },
        "idx_appointments_type_status_scheduled",
    ),
    HotQuery(
        "recurring series",
        lambda group=None: _appointments(Appointment.recurring_group_id == group),
        lambda s: {"group": s["group"]},
        "idx_appointments_recurring_group",
    ),
)
BY_NAME = {q.name: q for q in HOT_QUERIES}
