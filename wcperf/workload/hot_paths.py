"""The platform's hot paths: what load scenarios run and the cache serves.

Each read runs the statement `queries` declares for it, over a Session and an
optional QueryCache. Related rows come in the same statement (JOINs) or one
aggregate: none of these makes a query per row (tests run them under the N+1
detector's strict mode). Results are plain dicts, so they cache and serialise as
they are. A cached read is keyed by its kind, model, the statement's compiled
text and its parameters (HMAC'd in Redis); the text is compiled once per
operation, not per call.

Writes follow the platform's ORM: the application makes the UUID, sets
`"createdAt"`/`"updatedAt"`, never touches a soft-deleted row, and invents no PHI.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from wcperf.cache import scopes
from wcperf.cache.tiered import QueryCache
from wcperf.db.schema import Appointment, HealthRecord, Student, User, live
from wcperf.platform import APPOINTMENT_STATUSES
from wcperf.workload import queries as q

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
    query: q.HotQuery,
    model: str,
    op: str,
    build: Callable[[], Any],
    params: dict[str, Any],
    tables: tuple[str, ...],
    load: Callable[[], T],
) -> T:
    if cache_ is None:
        return load()
    return cache_.get_or_load(
        query.kind, model, _text(op, build), params, tables, load, read=query.name
    )


def _student(s: Student) -> dict[str, Any]:
    return {
        "id": s.id,
        "student_number": s.student_number,
        "first_name": s.first_name,
        "last_name": s.last_name,
        "grade": s.grade,
        "is_active": s.is_active,
        "school_id": s.school_id,
        "nurse_id": s.nurse_id,
    }


def _nurse(u: User | None) -> dict[str, Any] | None:
    if u is None:
        return None
    return {"id": u.id, "first_name": u.first_name, "last_name": u.last_name}


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    """A calendar day in the session's time zone, as the platform's BETWEEN asks for it."""
    start = datetime.combine(day, time.min)
    return start, start + timedelta(days=1) - timedelta(microseconds=1)


# -- reads ------------------------------------------------------------------------


def student_dashboard(
    session: Session,
    nurse_id: uuid.UUID,
    page: int = 1,
    page_size: int = 25,
    cache: QueryCache | None = None,
) -> dict[str, Any]:
    """A page of a nurse's active students, each with their nurse, and the total."""

    def load() -> dict[str, Any]:
        rows = session.execute(q.student_list(nurse_id, page_size, (page - 1) * page_size)).all()
        total = session.scalar(q.student_list_count(nurse_id))
        return {
            "total": int(total or 0),
            "page": page,
            "students": [{**_student(s), "nurse": _nurse(n)} for s, n in rows],
        }

    return _cached(
        cache,
        q.BY_NAME["student list"],
        "Student",
        "dashboard",
        q.student_list,
        {"nurse_id": nurse_id, "page": page, "size": page_size},
        (*scopes.rows("students", nurseId=nurse_id), "users"),
        load,
    )


def health_timeline(
    session: Session,
    student_id: uuid.UUID,
    record_type: str | None = None,
    page: int = 1,
    page_size: int = 20,
    cache: QueryCache | None = None,
) -> list[dict[str, Any]]:
    """A student's health records, newest first, optionally of one type, paginated."""

    def load() -> list[dict[str, Any]]:
        rows = session.scalars(
            q.health_timeline(student_id, record_type, page_size, (page - 1) * page_size)
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

    typed = record_type is not None
    return _cached(
        cache,
        q.BY_NAME["student health history by type" if typed else "student health timeline"],
        "HealthRecord",
        "timeline_type" if typed else "timeline",
        (lambda: q.health_timeline(None, "")) if typed else q.health_timeline,
        {"student_id": student_id, "type": record_type, "page": page, "size": page_size},
        (
            *scopes.rows("health_records", studentId=student_id),
            *scopes.rows("students", "live", id=student_id),  # the records, not the student
        ),
        load,
    )


def graduating_students(
    session: Session, school_id: uuid.UUID, cache: QueryCache | None = None
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
            for r in session.execute(q.graduating(school_id))
        ]

    return _cached(
        cache,
        q.BY_NAME["graduating students"],
        "Student",
        "graduating",
        q.graduating,
        {"school_id": school_id},
        (*scopes.rows("students", schoolId=school_id), "health_records", "appointments"),
        load,
    )


def emergency_contact_stats(session: Session, cache: QueryCache | None = None) -> dict[str, int]:
    """Active emergency contacts by priority (counts only, no names)."""

    def load() -> dict[str, int]:
        return {str(p): int(n) for p, n in session.execute(q.contact_stats())}

    return _cached(
        cache,
        q.BY_NAME["emergency-contact statistics"],
        "EmergencyContact",
        "contact_stats",
        q.contact_stats,
        {},
        ("emergency_contacts",),
        load,
    )


def appointment_calendar(
    session: Session,
    day: date,
    nurse_id: uuid.UUID | None = None,
    cache: QueryCache | None = None,
) -> list[dict[str, Any]]:
    """One day's open appointments (optionally one nurse's), with student and nurse."""
    by_nurse = nurse_id is not None

    def load() -> list[dict[str, Any]]:
        start, end = _day_bounds(day)
        return [
            {
                "id": a.id,
                "scheduled_at": a.scheduled_at,
                "type": a.type,
                "status": a.status,
                "duration": a.duration,
                "student": _student(s),
                "nurse": _nurse(n),
            }
            for a, s, n in session.execute(q.calendar(start, end, nurse_id, by_nurse))
        ]

    scope: dict[str, Any] = {"scheduledAt": day}
    students: tuple[str, ...] = ("students",)  # a day's calendar shows any school's
    if by_nurse:
        scope["nurseId"] = nurse_id
        students = scopes.rows("students", appointmentNurseId=nurse_id)
    return _cached(
        cache,
        q.BY_NAME["nurse daily calendar" if by_nurse else "daily appointment schedule"],
        "Appointment",
        "calendar_nurse" if by_nurse else "calendar",
        (lambda: q.calendar(by_nurse=True)) if by_nurse else q.calendar,
        {"day": day.isoformat(), "nurse_id": nurse_id},
        (*scopes.rows("appointments", **scope), *students, "users"),
        load,
    )


def medication_search(
    session: Session,
    name_prefix: str | None = None,
    dosage_form: str | None = None,
    schedule: str | None = None,
    cache: QueryCache | None = None,
) -> list[dict[str, Any]]:
    """Active medications by name (`ILIKE 'Ibu%'`), by dosage form, or controlled by schedule."""
    pattern = None
    if name_prefix is not None:
        escaped = name_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = escaped + "%"

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
            for m in session.scalars(q.medications(pattern, dosage_form, schedule))
        ]

    shape = (pattern is not None, dosage_form is not None, schedule is not None)
    declared = (
        "medication search by name"
        if shape[0]
        else "controlled medications"
        if shape[2]
        else "medications by form"
    )
    return _cached(
        cache,
        q.BY_NAME[declared],
        "Medication",
        f"medications{shape}",
        lambda: q.medications(*("" if on else None for on in shape)),
        {"pattern": pattern, "form": dosage_form, "schedule": schedule},
        ("medications",),
        load,
    )


def student_detail(
    session: Session, student_id: uuid.UUID, cache: QueryCache | None = None
) -> dict[str, Any] | None:
    """One student with nurse and school, and their emergency contacts, in two queries."""

    def load() -> dict[str, Any] | None:
        row = session.execute(q.student_detail(student_id)).one_or_none()
        if row is None:
            return None
        s, nurse, school = row
        contacts = session.scalars(q.student_contacts(student_id)).all()
        return {
            **_student(s),
            "date_of_birth": s.date_of_birth,
            "nurse": _nurse(nurse),
            "school": {"id": school.id, "name": school.name} if school else None,
            "contacts": [
                {
                    "first_name": c.first_name,
                    "last_name": c.last_name,
                    "relationship": c.relationship,
                    "phone_number": c.phone_number,
                    "priority": c.priority,
                }
                for c in contacts
            ],
        }

    return _cached(
        cache,
        q.BY_NAME["student detail"],
        "Student",
        "detail",
        q.student_detail,
        {"student_id": student_id},
        (*scopes.rows("students", id=student_id), "users", "schools", "emergency_contacts"),
        load,
    )


# -- writes: commit here; the cache bumps after the commit, by itself ---------------

APPOINTMENT_REASON = "Scheduled by the nurse's office"  # invented text, no PHI
RECORD_TITLE = "Nurse office visit"


def _now() -> datetime:
    return datetime.now(UTC)


def create_appointment(
    session: Session,
    student_id: uuid.UUID,
    nurse_id: uuid.UUID | None,
    scheduled_at: datetime,
    type_: str = "ROUTINE_CHECKUP",
    duration: int = 30,
    recurring_group_id: uuid.UUID | None = None,
) -> uuid.UUID:
    now, key = _now(), uuid.uuid4()
    appt = Appointment(
        id=key,
        student_id=student_id,
        nurse_id=nurse_id,
        type=type_,
        status="SCHEDULED",
        scheduled_at=scheduled_at,
        duration=duration,
        reason=APPOINTMENT_REASON,
        recurring_group_id=recurring_group_id,
        created_at=now,
        updated_at=now,
    )
    session.add(appt)
    session.commit()
    # Not `appt.id`: the commit expired the object, and reading it back cost a BEGIN, a
    # SELECT and a ROLLBACK (three round trips) for a key made here.
    return key


def add_health_record(
    session: Session,
    student_id: uuid.UUID,
    record_type: str,
    record_date: datetime | date,
    provider: str | None = None,
    diagnosis_code: str | None = None,
    notes: str | None = None,
    is_confidential: bool = False,
) -> uuid.UUID:
    now = _now()
    if not isinstance(record_date, datetime):
        record_date = datetime.combine(record_date, time(12), tzinfo=UTC)
    key = uuid.uuid4()
    record = HealthRecord(
        id=key,
        student_id=student_id,
        record_type=record_type,
        title=RECORD_TITLE,
        description=RECORD_TITLE,
        record_date=record_date,
        provider=provider,
        diagnosis_code=diagnosis_code,
        notes=notes,
        is_confidential=is_confidential,
        created_at=now,
        updated_at=now,
    )
    session.add(record)
    session.commit()
    return key  # not `record.id`: see create_appointment


STATUSES = APPOINTMENT_STATUSES


def change_appointment_status(session: Session, appointment_id: uuid.UUID, status: str) -> bool:
    """The UPDATE names the appointment's time and nurse as read: the cache then drops
    only that day's calendars (that nurse's and the day's), and a concurrent reschedule
    makes this a no-op, not a blind write."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    seen = session.execute(
        select(Appointment.scheduled_at, Appointment.nurse_id).where(
            Appointment.id == appointment_id, live(Appointment)
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
            live(Appointment),
        )
        .values(status=status, updated_at=func.now())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(cast(CursorResult[Any], changed).rowcount)  # an UPDATE's result is a cursor's
