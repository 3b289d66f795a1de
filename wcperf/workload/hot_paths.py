"""The hot paths of SPEC.md: what load scenarios run and the cache serves.

Each read is a plain function over a Session and an optional QueryCache. Related
rows are loaded eagerly (selectinload/joinedload) or in one aggregate query: none
of these makes a query per row (tests run them under the N+1 detector's strict
mode). Results are plain dicts, so they cache and serialise as they are.

A cached read is keyed by its kind, model, the statement's normalised text and
its parameters (HMAC'd in Redis); the statement text is compiled once per
operation, not per call.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, and_, distinct, func, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, joinedload

from wcperf.cache import scopes
from wcperf.cache.tiered import QueryCache
from wcperf.db.schema import (
    Appointment,
    EmergencyContact,
    HealthRecord,
    Medication,
    Student,
    User,
)

T = TypeVar("T")


_compiled: dict[str, str] = {}


def _text(op: str, build: Callable[[], Any]) -> str:
    """The operation's SQL, compiled once per operation: the key's 'normalised statement'."""
    found = _compiled.get(op)
    if found is None:
        found = _compiled[op] = str(build().compile(dialect=postgresql.dialect()))
    return found


def _cached(
    cache_: QueryCache | None,
    kind: str,
    model: str,
    op: str,
    build: Callable[[], Any],
    params: dict[str, Any],
    tables: tuple[str, ...],
    load: Callable[[], T],
) -> T:
    if cache_ is None:
        return load()
    return cache_.get_or_load(kind, model, _text(op, build), params, tables, load)


def _student(s: Student) -> dict[str, Any]:
    return {
        "id": s.id,
        "student_number": s.student_number,
        "first_name": s.first_name,
        "last_name": s.last_name,
        "grade": s.grade,
        "status": s.status,
        "school_id": s.school_id,
        "nurse_id": s.nurse_id,
    }


def _nurse(u: User | None) -> dict[str, Any] | None:
    if u is None:
        return None
    return {"id": u.id, "first_name": u.first_name, "last_name": u.last_name}


# -- reads ------------------------------------------------------------------------


def _dashboard_stmt(school_id: int = 0, limit: int = 25, offset: int = 0) -> Select[Any]:
    return (
        select(Student)
        .options(joinedload(Student.nurse))
        .where(Student.school_id == school_id, Student.status == "active")
        .order_by(Student.last_name, Student.id)
        .limit(limit)
        .offset(offset)
    )


def student_dashboard(
    session: Session,
    school_id: int,
    page: int = 1,
    page_size: int = 25,
    cache: QueryCache | None = None,
) -> dict[str, Any]:
    """A page of a school's active students, each with their nurse, and the total."""

    def load() -> dict[str, Any]:
        rows = (
            session.scalars(_dashboard_stmt(school_id, page_size, (page - 1) * page_size))
            .unique()
            .all()
        )
        total = session.scalar(
            select(func.count(distinct(Student.id))).where(
                Student.school_id == school_id, Student.status == "active"
            )
        )
        return {
            "total": int(total or 0),
            "page": page,
            "students": [{**_student(s), "nurse": _nurse(s.nurse)} for s in rows],
        }

    return _cached(
        cache,
        "grade_list",
        "Student",
        "dashboard",
        _dashboard_stmt,
        {"school_id": school_id, "page": page, "size": page_size},
        ("students", "users"),
        load,
    )


def _timeline_stmt(
    student_id: int = 0, record_type: str | None = None, limit: int = 20, offset: int = 0
) -> Select[Any]:
    stmt = select(HealthRecord).where(HealthRecord.student_id == student_id)
    if record_type is not None:
        stmt = stmt.where(HealthRecord.record_type == record_type)
    return (
        stmt.order_by(HealthRecord.record_date.desc(), HealthRecord.id.desc())
        .limit(limit)
        .offset(offset)
    )


def health_timeline(
    session: Session,
    student_id: int,
    record_type: str | None = None,
    page: int = 1,
    page_size: int = 20,
    cache: QueryCache | None = None,
) -> list[dict[str, Any]]:
    """A student's health records, newest first, optionally of one type, paginated."""

    def load() -> list[dict[str, Any]]:
        rows = session.scalars(
            _timeline_stmt(student_id, record_type, page_size, (page - 1) * page_size)
        ).all()
        return [
            {
                "id": r.id,
                "record_type": r.record_type,
                "record_date": r.record_date,
                "provider": r.provider,
                "diagnosis_code": r.diagnosis_code,
                "is_confidential": r.is_confidential,
            }
            for r in rows
        ]

    return _cached(
        cache,
        "health_summary",
        "HealthRecord",
        "timeline" if record_type is None else "timeline_type",
        (lambda: _timeline_stmt(0, None))
        if record_type is None
        else (lambda: _timeline_stmt(0, "")),
        {"student_id": student_id, "type": record_type, "page": page, "size": page_size},
        scopes.rows("health_records", student_id=student_id),
        load,
    )


def _graduating_stmt(school_id: int = 0) -> Select[Any]:
    records = (
        select(
            HealthRecord.student_id,
            func.count().label("records"),
            func.max(HealthRecord.record_date).label("last_record"),
        )
        .group_by(HealthRecord.student_id)
        .subquery()
    )
    visits = (
        select(Appointment.student_id, func.count().label("appointments"))
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
        .where(Student.school_id == school_id, Student.grade == 12, Student.status == "active")
        .order_by(Student.last_name, Student.id)
    )


def graduating_students(
    session: Session, school_id: int, cache: QueryCache | None = None
) -> list[dict[str, Any]]:
    """A school's seniors with their record history, in one batch query."""

    def load() -> list[dict[str, Any]]:
        return [
            {
                "id": r[0],
                "student_number": r[1],
                "first_name": r[2],
                "last_name": r[3],
                "enrollment_date": r[4],
                "records": int(r[5]),
                "last_record": r[6],
                "appointments": int(r[7]),
            }
            for r in session.execute(_graduating_stmt(school_id))
        ]

    return _cached(
        cache,
        "grade_list",
        "Student",
        "graduating",
        _graduating_stmt,
        {"school_id": school_id},
        ("students", "health_records", "appointments"),
        load,
    )


def _contact_stats_stmt(school_id: int = 0) -> Select[Any]:
    return (
        select(
            EmergencyContact.relationship,
            func.count(),
            func.count().filter(EmergencyContact.is_primary),
            func.count(distinct(EmergencyContact.student_id)),
        )
        .join(Student, Student.id == EmergencyContact.student_id)
        .where(Student.school_id == school_id)
        .group_by(EmergencyContact.relationship)
        .order_by(EmergencyContact.relationship)
    )


def emergency_contact_stats(
    session: Session, school_id: int, cache: QueryCache | None = None
) -> dict[str, Any]:
    """GROUP BY aggregates of a school's emergency contacts (counts only, no names)."""

    def load() -> dict[str, Any]:
        rows = session.execute(_contact_stats_stmt(school_id)).all()
        without = session.scalar(
            select(func.count())
            .select_from(Student)
            .where(
                Student.school_id == school_id, ~Student.id.in_(select(EmergencyContact.student_id))
            )
        )
        return {
            "by_relationship": {
                r[0]: {"contacts": r[1], "primary": r[2], "students": r[3]} for r in rows
            },
            "students_without_contact": int(without or 0),
        }

    return _cached(
        cache,
        "emergency_contact_stats",
        "EmergencyContact",
        "contact_stats",
        _contact_stats_stmt,
        {"school_id": school_id},
        ("emergency_contacts", "students"),
        load,
    )


def _calendar_stmt(day: date = date(2000, 1, 1), nurse_id: int | None = None) -> Select[Any]:
    start = datetime.combine(day, datetime.min.time())
    stmt = (
        select(Appointment, Student, User)
        .join(Student, Student.id == Appointment.student_id)
        .outerjoin(User, User.id == Appointment.nurse_id)
        .where(
            Appointment.scheduled_at >= start,
            Appointment.scheduled_at < start + timedelta(days=1),
            Appointment.status != "cancelled",
        )
    )
    if nurse_id is not None:
        stmt = stmt.where(Appointment.nurse_id == nurse_id)
    return stmt.order_by(Appointment.scheduled_at, Appointment.id).limit(500)


def appointment_calendar(
    session: Session, day: date, nurse_id: int | None = None, cache: QueryCache | None = None
) -> list[dict[str, Any]]:
    """One day's appointments (optionally one nurse's), not cancelled, with student and nurse."""

    def load() -> list[dict[str, Any]]:
        return [
            {
                "id": a.id,
                "scheduled_at": a.scheduled_at,
                "type": a.type,
                "status": a.status,
                "duration_minutes": a.duration_minutes,
                "student": _student(s),
                "nurse": _nurse(u),
            }
            for a, s, u in session.execute(_calendar_stmt(day, nurse_id))
        ]

    scope: dict[str, Any] = {"scheduled_at": day}
    if nurse_id is not None:
        scope["nurse_id"] = nurse_id
    return _cached(
        cache,
        "appointment_calendar",
        "Appointment",
        "calendar" if nurse_id is None else "calendar_nurse",
        (lambda: _calendar_stmt()) if nurse_id is None else (lambda: _calendar_stmt(nurse_id=0)),
        {"day": day.isoformat(), "nurse_id": nurse_id},
        (*scopes.rows("appointments", **scope), "students", "users"),
        load,
    )


def _medication_stmt(
    name_prefix: str | None = None, dosage_form: str | None = None, schedule: str | None = None
) -> Select[Any]:
    stmt = select(Medication).where(Medication.is_active.is_(True))
    if name_prefix is not None:
        stmt = stmt.where(
            and_(Medication.name >= name_prefix, Medication.name < name_prefix + "\uffff")
        )
    if dosage_form is not None:
        stmt = stmt.where(Medication.dosage_form == dosage_form)
    if schedule is not None:
        stmt = stmt.where(Medication.is_controlled.is_(True), Medication.dea_schedule == schedule)
    return stmt.order_by(Medication.name, Medication.id).limit(100)


def medication_search(
    session: Session,
    name_prefix: str | None = None,
    dosage_form: str | None = None,
    schedule: str | None = None,
    cache: QueryCache | None = None,
) -> list[dict[str, Any]]:
    """Active medications by name prefix, by dosage form, or controlled by schedule."""

    def load() -> list[dict[str, Any]]:
        return [
            {
                "id": m.id,
                "name": m.name,
                "dosage_form": m.dosage_form,
                "strength": m.strength,
                "is_controlled": m.is_controlled,
                "dea_schedule": m.dea_schedule,
            }
            for m in session.scalars(_medication_stmt(name_prefix, dosage_form, schedule))
        ]

    shape = (name_prefix is not None, dosage_form is not None, schedule is not None)
    return _cached(
        cache,
        "medication_catalogue",
        "Medication",
        f"medications{shape}",
        lambda: _medication_stmt(*("" if on else None for on in shape)),
        {"prefix": name_prefix, "form": dosage_form, "schedule": schedule},
        ("medications",),
        load,
    )


def _detail_stmt(student_id: int = 0) -> Select[Any]:
    return (
        select(Student)
        .options(joinedload(Student.nurse), joinedload(Student.school))
        .where(Student.id == student_id)
    )


def student_detail(
    session: Session, student_id: int, cache: QueryCache | None = None
) -> dict[str, Any] | None:
    """One student with nurse and school, and their emergency contacts, in two queries."""

    def load() -> dict[str, Any] | None:
        s = session.scalars(_detail_stmt(student_id)).unique().one_or_none()
        if s is None:
            return None
        contacts = session.scalars(
            select(EmergencyContact)
            .where(EmergencyContact.student_id == student_id)
            .order_by(EmergencyContact.priority)
        ).all()
        return {
            **_student(s),
            "date_of_birth": s.date_of_birth,
            "nurse": _nurse(s.nurse),
            "school": {"id": s.school.id, "name": s.school.name},
            "contacts": [
                {
                    "first_name": c.first_name,
                    "last_name": c.last_name,
                    "relationship": c.relationship,
                    "phone": c.phone,
                    "priority": c.priority,
                }
                for c in contacts
            ],
        }

    return _cached(
        cache,
        "student_detail",
        "Student",
        "detail",
        _detail_stmt,
        {"student_id": student_id},
        ("students", "users", "schools", "emergency_contacts"),
        load,
    )


# -- writes: commit here; the cache bumps after the commit, by itself ---------------


def create_appointment(
    session: Session,
    student_id: int,
    nurse_id: int | None,
    scheduled_at: datetime,
    type_: str = "checkup",
    duration_minutes: int = 15,
    recurring_group_id: uuid.UUID | None = None,
) -> int:
    appt = Appointment(
        student_id=student_id,
        nurse_id=nurse_id,
        type=type_,
        status="scheduled",
        scheduled_at=scheduled_at,
        duration_minutes=duration_minutes,
        recurring_group_id=recurring_group_id,
    )
    session.add(appt)
    session.flush()
    new_id = appt.id  # before the commit expires it: no SELECT to read it back
    session.commit()
    return new_id


def add_health_record(
    session: Session,
    student_id: int,
    record_type: str,
    record_date: date,
    provider: str | None = None,
    diagnosis_code: str | None = None,
    notes: str | None = None,
    is_confidential: bool = False,
) -> int:
    record = HealthRecord(
        student_id=student_id,
        record_type=record_type,
        record_date=record_date,
        provider=provider,
        diagnosis_code=diagnosis_code,
        notes=notes,
        is_confidential=is_confidential,
    )
    session.add(record)
    session.flush()
    new_id = record.id
    session.commit()
    return new_id


STATUSES = ("scheduled", "completed", "cancelled", "no_show")


def change_appointment_status(session: Session, appointment_id: int, status: str) -> bool:
    """The UPDATE names the appointment's time and nurse as read: the cache then drops
    only that day's calendars (that nurse's and the day's), and a concurrent reschedule
    makes this a no-op, not a blind write."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    seen = session.execute(
        select(Appointment.scheduled_at, Appointment.nurse_id).where(
            Appointment.id == appointment_id
        )
    ).first()
    if seen is None:
        session.rollback()
        return False
    at, nurse_id = seen
    changed = session.execute(
        update(Appointment)
        .where(
            Appointment.id == appointment_id,
            Appointment.scheduled_at == at,
            Appointment.nurse_id == nurse_id
            if nurse_id is not None
            else Appointment.nurse_id.is_(None),
        )
        .values(status=status, updated_at=func.now())
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    return bool(changed)
