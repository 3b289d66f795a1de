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
        session.rollback()
        return cls(
            (row[0], row[1]),
            (row[2], row[3]),
            (row[4], row[5]),
            nurses or (0,),
            row[6],
            max((row[7] - row[6]).days, 1),
            forms or ("tablet",),
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
        """Mostly the days around the middle of the calendar ("this week"), else any."""
        if rng.random() < HOT_SHARE:
            return self.first_day + timedelta(days=self.days // 2 + rng.randrange(3))
        return self.first_day + timedelta(days=rng.randrange(self.days))


HOT_SHARE = 0.8  # reads that go to the day's students: check-ins, follow-ups
HOT_FRACTION = 0.005  # students a nurse's office sees in a day, and their schools

Operation = Callable[[Session, QueryCache | None, random.Random, Sample], Any]


def _point_read(s: Session, c: QueryCache | None, r: random.Random, x: Sample) -> Any:
    """One student row by primary key, uncached: the floor a pgbench run compares."""
    return s.execute(
        text("select id, school_id, grade, status from students where id = :id"),
        {"id": x.student(r)},
    ).first()


def _create_appointment(s: Session, c: QueryCache | None, r: random.Random, x: Sample) -> Any:
    when = datetime.combine(x.day(r), datetime.min.time()) + timedelta(minutes=15 * r.randrange(32))
    kind = r.choice(names.APPOINTMENT_TYPES)
    return hp.create_appointment(s, x.student(r), r.choice(x.nurses), when, kind)


def _add_health_record(s: Session, c: QueryCache | None, r: random.Random, x: Sample) -> Any:
    return hp.add_health_record(s, x.student(r), r.choice(names.RECORD_TYPES), x.day(r))


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
        s, r.randint(*x.appointments), r.choice(hp.STATUSES)
    ),
    # The harness's own check: 200 ms in the server, nothing else.
    "sleep_200ms": lambda s, c, r, x: s.execute(text("select pg_sleep(0.2)")).first(),
}
WRITES = frozenset({"create_appointment", "add_health_record", "change_appointment_status"})
