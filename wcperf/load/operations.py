"""The named operations a load scenario mixes: the platform's hot paths, reads and writes.

Each operation draws its parameters from a `Sample` of the district (keys,
nurses, appointment days), read once at the start, so a simulated user spends
its time in the operation and not in choosing one. Writes invent no PHI: no
names, notes or diagnosis codes.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from wcperf.cache.tiered import QueryCache
from wcperf.errors import WcperfError
from wcperf.platform import APPOINTMENT_TYPES
from wcperf.seed import names
from wcperf.workload import hot_paths as hp

SAMPLE_SIZE = 50_000  # keys per table a load process draws from
PREFIXES = tuple(sorted({m[0][:3] for m in names.MEDICATIONS}))  # what a nurse types


@dataclass(frozen=True)
class Sample:
    """Keys drawn once from the district, in random order (no arithmetic on UUIDs)."""

    students: tuple[uuid.UUID, ...]
    schools: tuple[uuid.UUID, ...]
    appointments: tuple[uuid.UUID, ...]
    nurses: tuple[uuid.UUID, ...]
    first_day: date
    days: int
    dosage_forms: tuple[str, ...]
    todays: tuple[uuid.UUID, ...]  # the appointments on `today`

    @property
    def today(self) -> date:
        """The scenario's "today": the middle of the seeded calendar."""
        return self.first_day + timedelta(days=self.days // 2)

    @classmethod
    def read(cls, session: Session, size: int = SAMPLE_SIZE) -> Sample:
        def ids(sql: str, **params: Any) -> tuple[uuid.UUID, ...]:
            return tuple(session.scalars(text(sql), {"n": size, **params}))

        students = ids(
            'select id from students where "deletedAt" is null and "isActive"'
            " order by random() limit :n"
        )
        appointments = ids(
            'select id from appointments where "deletedAt" is null order by random() limit :n'
        )
        if not students or not appointments:
            raise WcperfError("no district to load-test: run `wcperf seed` first")
        row = session.execute(
            text(
                'select min("scheduledAt")::date, max("scheduledAt")::date from appointments'
                ' where "deletedAt" is null'
            )
        ).one()
        schools = ids('select id from schools where "deletedAt" is null order by id')
        nurses = ids(
            "select id from users where role = 'NURSE' and \"isActive\""
            ' and "deletedAt" is null order by id'
        )
        forms = tuple(
            session.scalars(
                text('select distinct "dosageForm" from medications where "deletedAt" is null')
            )
        )
        days = max((row[1] - row[0]).days, 1)
        today = row[0] + timedelta(days=days // 2)
        todays = ids(
            'select id from appointments where "scheduledAt" >= :day'
            ' and "scheduledAt" < :day + 1 and "deletedAt" is null order by id',
            day=today,
        )
        session.rollback()
        return cls(
            students,
            schools,
            appointments,
            nurses,
            row[0],
            days,
            forms or ("tablet",),
            todays,
        )

    def student(self, rng: random.Random) -> uuid.UUID:
        """Most reads are of the day's students (0.5 % of them), the rest of anyone."""
        return self._draw(rng, self.students)

    def school(self, rng: random.Random) -> uuid.UUID:
        return self._draw(rng, self.schools)

    def nurse(self, rng: random.Random) -> uuid.UUID:
        return self._draw(rng, self.nurses)

    @staticmethod
    def _draw(rng: random.Random, keys: tuple[uuid.UUID, ...]) -> uuid.UUID:
        if rng.random() < HOT_SHARE:
            # The sample is in random order: its first share is as good a "today" as any.
            return keys[rng.randrange(max(1, int(len(keys) * HOT_FRACTION)))]
        return keys[rng.randrange(len(keys))]

    def day(self, rng: random.Random) -> date:
        """The calendar a nurse opens: mostly today's, else any day's."""
        if rng.random() < HOT_SHARE:
            return self.today
        return self.first_day + timedelta(days=rng.randrange(self.days))

    def booking_day(self, rng: random.Random) -> date:
        """A new appointment: a follow-up booked over the next two weeks (records are
        written on the day of the visit: `today`)."""
        return self.today + timedelta(days=rng.randrange(14))

    def appointment(self, rng: random.Random) -> uuid.UUID:
        """A status change: mostly one of today's appointments (seen, missed), else any."""
        if self.todays and rng.random() < HOT_SHARE:
            return rng.choice(self.todays)
        return rng.choice(self.appointments)


HOT_SHARE = 0.8  # reads that go to the day's students: check-ins, follow-ups
HOT_FRACTION = 0.005  # students a nurse's office sees in a day, and their schools

Operation = Callable[[Session, QueryCache | None, random.Random, Sample], Any]


# The driver's own paramstyle: run with `exec_driver_sql`, the statement skips SQLAlchemy's
# compiled-cache lookup and bind processing (9 % of a point read's instructions) and is
# the same text the engine's events and the query monitor see from `text(...)`.
_POINT = 'select id, "schoolId", grade, "isActive" from students where id = %(id)s'


def _point_read(s: Session, c: QueryCache | None, r: random.Random, x: Sample) -> Any:
    """One student row by primary key, uncached: what a pgbench run compares, in the same
    shape (one statement in autocommit: no BEGIN and COMMIT round trips around it).

    On a connection of the session's engine, not through the session: the session's
    transaction bookkeeping was a third of the operation's CPU, for one statement
    that needs none. The engine's events (the query monitor) see it all the same."""
    bind = s.get_bind()
    with (bind if isinstance(bind, Engine) else bind.engine).connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn.exec_driver_sql(_POINT, {"id": x.student(r)}).first()


def _create_appointment(s: Session, c: QueryCache | None, r: random.Random, x: Sample) -> Any:
    when = datetime.combine(x.booking_day(r), datetime.min.time()) + timedelta(
        minutes=15 * r.randrange(32)
    )
    kind = r.choice(APPOINTMENT_TYPES)
    return hp.create_appointment(s, x.student(r), x.nurse(r), when, kind)


def _add_health_record(s: Session, c: QueryCache | None, r: random.Random, x: Sample) -> Any:
    return hp.add_health_record(s, x.student(r), r.choice(names.RECORD_TYPES), x.today)


OPERATIONS: dict[str, Operation] = {
    "student_dashboard": lambda s, c, r, x: hp.student_dashboard(
        s, x.nurse(r), page=r.randint(1, 3), cache=c
    ),
    "health_timeline": lambda s, c, r, x: hp.health_timeline(s, x.student(r), cache=c),
    "graduating_students": lambda s, c, r, x: hp.graduating_students(s, x.school(r), cache=c),
    "emergency_contact_stats": lambda s, c, r, x: hp.emergency_contact_stats(s, cache=c),
    "appointment_calendar": lambda s, c, r, x: hp.appointment_calendar(
        s, x.day(r), r.choice((None, x.nurse(r))), cache=c
    ),
    "medication_search": lambda s, c, r, x: (
        hp.medication_search(s, name_prefix=r.choice(PREFIXES), cache=c)
        if r.random() < 0.5
        else hp.medication_search(s, dosage_form=r.choice(x.dosage_forms), cache=c)
    ),
    "student_detail": lambda s, c, r, x: hp.student_detail(s, x.student(r), cache=c),
    "point_read": _point_read,
    "create_appointment": _create_appointment,
    "add_health_record": _add_health_record,
    "change_appointment_status": lambda s, c, r, x: hp.change_appointment_status(
        s, x.appointment(r), r.choice(hp.STATUSES)
    ),
    # The harness's own check: 200 ms in the server, nothing else.
    "sleep_200ms": lambda s, c, r, x: s.execute(text("select pg_sleep(0.2)")).first(),
}
WRITES = frozenset({"create_appointment", "add_health_record", "change_appointment_status"})
