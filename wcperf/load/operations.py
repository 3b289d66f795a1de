"""The named operations a load scenario mixes: the platform's hot paths, reads and writes.

Each operation draws its parameters from a `Sample` of the district (id ranges,
nurses, appointment days), read once at the start, so a simulated user spends
its time in the operation and not in choosing one. Writes invent no PHI: no
names, notes or diagnosis codes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from wcperf.cache.tiered import QueryCache
from wcperf.errors import WcperfError
from wcperf.seed import names
from wcperf.workload import hot_paths as hp


@dataclass(frozen=True)
class Sample:
    students: tuple[int, int]
    schools: tuple[int, int]
    appointments: tuple[int, int]
    nurses: tuple[int, ...]
    first_day: date
    days: int
    dosage_forms: tuple[str, ...]
    todays: tuple[int, ...]  # ids of the appointments on `today`

    @property
    def today(self) -> date:
        """The scenario's "today": the middle of the seeded calendar."""
        return self.first_day + timedelta(days=self.days // 2)

    @classmethod
    def read(cls, session: Session) -> Sample:
        row = session.execute(
            text(
                "select (select min(id) from students), (select max(id) from students),"
                " (select min(id) from schools), (select max(id) from schools),"
                " (select min(id) from appointments), (select max(id) from appointments),"
                " (select min(scheduled_at)::date from appointments),"
                " (select max(scheduled_at)::date from appointments)"
            )
        ).one()
        if row[0] is None or row[4] is None:
            raise WcperfError("no district to load-test: run `wcperf seed` first")
        nurses = tuple(
            session.scalars(text("select id from users where role = 'nurse' order by id"))
        )
        forms = tuple(session.scalars(text("select distinct dosage_form from medications")))
        days = max((row[7] - row[6]).days, 1)
        today = row[6] + timedelta(days=days // 2)
        todays = tuple(
            session.scalars(
                text(
                    "select id from appointments where scheduled_at >= :day"
                    " and scheduled_at < :day + 1 order by id"
                ),
                {"day": today},
            )
        )
        session.rollback()
        return cls(
            (row[0], row[1]),
            (row[2], row[3]),
            (row[4], row[5]),
            nurses or (0,),
            row[6],
            days,
            forms or ("tablet",),
            todays,
        )

    def student(self, rng: random.Random) -> int:
        """Most reads are of the day's students (0.5 % of them), the rest of anyone."""
        if rng.random() < HOT_SHARE:
            return self._hot(rng, self.students)
        return rng.randint(*self.students)

    def school(self, rng: random.Random) -> int:
        if rng.random() < HOT_SHARE:
            return self._hot(rng, self.schools)
        return rng.randint(*self.schools)

    @staticmethod
    def _hot(rng: random.Random, bounds: tuple[int, int]) -> int:
        low, high = bounds
        span = high - low + 1
        hot = max(1, int(span * HOT_FRACTION))
        # Spread over the range (every k-th id), so no school or id block is favoured.
        return low + (rng.randrange(hot) * (span // hot)) % span

    def day(self, rng: random.Random) -> date:
        """The calendar a nurse opens: mostly today's, else any day's."""
        if rng.random() < HOT_SHARE:
            return self.today
        return self.first_day + timedelta(days=rng.randrange(self.days))

    def booking_day(self, rng: random.Random) -> date:
        """A new appointment: a follow-up booked over the next two weeks (records are
        written on the day of the visit: `today`)."""
        return self.today + timedelta(days=rng.randrange(14))

    def appointment(self, rng: random.Random) -> int:
        """A status change: mostly one of today's appointments (seen, missed), else any."""
        if self.todays and rng.random() < HOT_SHARE:
            return rng.choice(self.todays)
        return rng.randint(*self.appointments)


HOT_SHARE = 0.8  # reads that go to the day's students: check-ins, follow-ups
HOT_FRACTION = 0.005  # students a nurse's office sees in a day, and their schools

Operation = Callable[[Session, QueryCache | None, random.Random, Sample], Any]


_POINT = text("select id, school_id, grade, status from students where id = :id")


def _point_read(s: Session, c: QueryCache | None, r: random.Random, x: Sample) -> Any:
    """One student row by primary key, uncached: what a pgbench run compares, in the same
    shape (one statement in autocommit: no BEGIN and COMMIT round trips around it)."""
    conn = s.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    return conn.execute(_POINT, {"id": x.student(r)}).first()


def _create_appointment(s: Session, c: QueryCache | None, r: random.Random, x: Sample) -> Any:
    when = datetime.combine(x.booking_day(r), datetime.min.time()) + timedelta(
        minutes=15 * r.randrange(32)
    )
    kind = r.choice(names.APPOINTMENT_TYPES)
    return hp.create_appointment(s, x.student(r), r.choice(x.nurses), when, kind)


def _add_health_record(s: Session, c: QueryCache | None, r: random.Random, x: Sample) -> Any:
    return hp.add_health_record(s, x.student(r), r.choice(names.RECORD_TYPES), x.today)


OPERATIONS: dict[str, Operation] = {
    "student_dashboard": lambda s, c, r, x: hp.student_dashboard(
        s, x.school(r), page=r.randint(1, 3), cache=c
    ),
    "health_timeline": lambda s, c, r, x: hp.health_timeline(s, x.student(r), cache=c),
    "graduating_students": lambda s, c, r, x: hp.graduating_students(s, x.school(r), cache=c),
    "emergency_contact_stats": lambda s, c, r, x: hp.emergency_contact_stats(
        s, x.school(r), cache=c
    ),
    "appointment_calendar": lambda s, c, r, x: hp.appointment_calendar(
        s, x.day(r), r.choice((None, r.choice(x.nurses))), cache=c
    ),
    "medication_search": lambda s, c, r, x: hp.medication_search(
        s, dosage_form=r.choice(x.dosage_forms), cache=c
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
