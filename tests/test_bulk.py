"""Bulk jobs against a real seeded PostgreSQL: every row checked, control, backpressure."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from rich.console import Console

from tests.conftest import DISTRICT, EXTRA_NURSES, every_connection_held
from wcperf.cache.tiered import QueryCache
from wcperf.db import admin
from wcperf.db.engine import Database
from wcperf.errors import ConfigError, RefusedError
from wcperf.jobs import launch, signals, store
from wcperf.jobs.base import Plan
from wcperf.jobs.grade_transition import GradeTransition
from wcperf.jobs.nurse_reassign import NurseReassign, balance
from wcperf.jobs.revert import Revert
from wcperf.jobs.runner import Outcome, Progress, Runner, RunOptions, Throttled
from wcperf.jobs.signals import SignalReader, table_oids
from wcperf.jobs.throttle import Thresholds, decide
from wcperf.jobs.transfer import Transfer
from wcperf.observe.observer import Observer
from wcperf.observe.snapshot import Snapshot
from wcperf.platform import NEXT_GRADE
from wcperf.settings import Settings
from wcperf.views.tables import frame
from wcperf.workload.hot_paths import student_detail

STUDENTS = (
    'select id, "schoolId", "nurseId", grade, "isActive", "deletedAt" is not null,'
    ' "updatedAt", "updatedBy", "districtId" from students order by id'
)
# The same, without "updatedAt": what two runs at different moments must agree on.
STATE = (
    'select id, "schoolId", "nurseId", grade, "isActive", "deletedAt" is not null,'
    ' "updatedBy" from students order by id'
)
SCHOOL = [DISTRICT.uuid_of("schools", i) for i in range(4)]
NURSE = DISTRICT.uuid_of("users", 0)  # the first school's nurse


def rows(url: str, sql: str = STUDENTS, params: Any = None) -> list[tuple[Any, ...]]:
    with admin.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def eligible(r: tuple[Any, ...]) -> bool:
    return bool(r[4]) and not r[5]


@pytest.fixture
def bulk_db(bulk_url: str, settings: Settings) -> Iterator[Database]:
    with Database(bulk_url, replace(settings, command="bulk-test")) as db:
        yield db


def start(db: Database, plan: Plan) -> int:
    job, resumed = launch.open_job(db, plan, "test")
    assert not resumed
    return job.id


def grade_plan(
    db: Database, schools: list[uuid.UUID] | None = None, year: int = 2026, user: Any = None
) -> Plan:
    kind = GradeTransition()
    args = kind.args(year, schools, user)
    return launch.plan(db, lambda c: kind.plan(c, args))


def run(db: Database, kind: Any, job_id: int, **options: Any) -> Outcome:
    return Runner(db, kind, job_id, RunOptions(**options)).run()


def rows_by_id(url: str, sql: str = STUDENTS) -> dict[uuid.UUID, tuple[Any, ...]]:
    return {r[0]: r for r in rows(url, sql)}


# -- grade transition ---------------------------------------------------------------------
def test_grade_transition_changes_every_eligible_student_once(bulk_db: Database) -> None:
    before = rows_by_id(bulk_db.url)
    plan = grade_plan(bulk_db)
    moving = [r for r in before.values() if eligible(r)]
    assert plan.total == len(moving) and 0 < plan.total < len(before)
    outcome = run(bulk_db, GradeTransition(), start(bulk_db, plan), batch_size=700)
    # Keyset batches of 700 eligible students, then the one that finds none left.
    assert outcome.status == "done" and outcome.batches == math.ceil(len(moving) / 700) + 1
    after = rows_by_id(bulk_db.url)
    steps = set()
    for sid, old in before.items():
        new = after[sid]
        if not eligible(old):
            assert new == old  # soft-deleted and inactive students are never touched
            continue
        assert new[3] == NEXT_GRADE[old[3]]
        steps.add((old[3], new[3]))
        assert new[:3] == old[:3] and new[4:6] == old[4:6] and new[8] == old[8]
        assert new[6] > old[6] and new[7] is None  # "updatedAt" set; "updatedBy" NULL
    assert {("Pre-K", "K"), ("K", "1"), ("11", "12"), ("12", "Graduate")} <= steps
    graduated = sum(1 for r in moving if r[3] == "12")
    assert outcome.job.counts == {"promoted": plan.total - graduated, "graduated": graduated}
    ledger = rows(bulk_db.url, "select count(*), count(distinct student_id) from wcperf.promotions")
    assert ledger == [(plan.total, plan.total)]

    # The ledger makes the same year a no-op: the plan is empty and a job changes nothing.
    again = grade_plan(bulk_db)
    assert again.total == 0 and "nothing to do" in again.notes[0]
    assert run(bulk_db, GradeTransition(), start(bulk_db, again)).rows == 0
    assert rows(bulk_db.url) == list(after.values())


def test_as_user_goes_into_updated_by_and_must_exist(bulk_db: Database) -> None:
    with pytest.raises(ConfigError, match="not an existing user"):
        grade_plan(bulk_db, user=uuid.uuid4())
    with pytest.raises(ConfigError, match="must be a UUID"):
        grade_plan(bulk_db, user="system")  # the platform's own bug: never written
    run(bulk_db, GradeTransition(), start(bulk_db, grade_plan(bulk_db, user=NURSE)))
    by = {r[7] for r in rows(bulk_db.url) if eligible(r)}
    assert by == {NURSE}


def test_one_school_first_then_all_never_promotes_twice(bulk_db: Database) -> None:
    before = rows_by_id(bulk_db.url)
    run(bulk_db, GradeTransition(), start(bulk_db, grade_plan(bulk_db, [SCHOOL[0]])), batch_size=50)
    rest = grade_plan(bulk_db)
    assert rest.total == sum(1 for r in before.values() if eligible(r) and r[1] != SCHOOL[0])
    run(bulk_db, GradeTransition(), start(bulk_db, rest))
    for sid, r in rows_by_id(bulk_db.url).items():
        if eligible(before[sid]):
            assert r[3] == NEXT_GRADE[before[sid][3]]  # once, not twice, for school 1 too


def test_atomic_and_batched_end_in_the_same_state(
    bulk_template: str, bulk_url: str, bulk_db: Database, settings: Settings
) -> None:
    run(bulk_db, GradeTransition(), start(bulk_db, grade_plan(bulk_db)), atomic=True)
    atomic_state = rows(bulk_url, STATE)
    other = admin.with_database(bulk_url, admin.database_name(bulk_url) + "_b")
    admin.clone_database(bulk_template, other)
    try:
        with Database(other, settings) as db2:
            outcome = run(db2, GradeTransition(), start(db2, grade_plan(db2)), batch_size=333)
            assert outcome.batches > 10
        assert rows(other, STATE) == atomic_state
    finally:
        admin.drop_database(other)


def test_unknown_school_is_refused_before_anything_is_written(bulk_db: Database) -> None:
    with pytest.raises(ConfigError, match="unknown school"):
        grade_plan(bulk_db, [SCHOOL[0], uuid.uuid4()])
    with pytest.raises(ConfigError, match="must be a UUID"):
        grade_plan(bulk_db, ["1"])  # type: ignore[list-item]
    assert rows(bulk_db.url, "select count(*) from wcperf.bulk_jobs") == [(0,)]


def test_revert_of_a_transition_restores_the_exact_rows_and_spares_an_edited_one(
    bulk_db: Database,
) -> None:
    before = rows(bulk_db.url)
    job = start(bulk_db, grade_plan(bulk_db))
    run(bulk_db, GradeTransition(), job, batch_size=900)
    edited = next(r[0] for r in before if eligible(r) and r[3] == "5")
    with admin.connect(bulk_db.url) as conn:  # a nurse corrects one student since
        conn.execute(
            "update students set grade = '7', \"updatedAt\" = now() where id = %s", (edited,)
        )
    kind = Revert()
    plan = launch.plan(bulk_db, lambda c: kind.plan(c, kind.args(job)))
    moved = sum(1 for r in before if eligible(r))
    assert plan.total == moved - 1 and "1 rows changed after job" in plan.notes[0]
    outcome = run(bulk_db, kind, start(bulk_db, plan), batch_size=700)
    assert outcome.job.counts == {"restored": moved - 1, "changed_since": 1}
    after = rows_by_id(bulk_db.url)
    for r in before:
        if r[0] == edited:
            assert after[r[0]][3] == "7"  # left alone
        else:
            assert after[r[0]] == r  # exactly as it was, "updatedAt" and "updatedBy" too
    # Reverted, the year may run again: everyone but the edited student moves.
    again = grade_plan(bulk_db)
    assert again.total == moved - 1


# -- nurse reassignment ---------------------------------------------------------------------
def reassign_plan(db: Database, to: uuid.UUID | None, max_workload: int | None = None) -> Plan:
    kind = NurseReassign()
    args = kind.args(NURSE, to, to is None, max_workload)
    return launch.plan(db, lambda c: kind.plan(c, args))


def _launch_together(db: Database, pair: list[Plan]) -> list[Any]:
    """Both plans launched at the same instant: (job, resumed) or the refusal, each."""
    gate = threading.Barrier(2)
    got: list[Any] = [None, None]

    def launch_one(i: int) -> None:
        gate.wait()
        try:
            got[i] = launch.open_job(db, pair[i], "test")
        except RefusedError as exc:
            got[i] = exc

    threads = [threading.Thread(target=launch_one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return got


def test_overlapping_jobs_started_together_make_one_job_50_rounds(bulk_db: Database) -> None:
    """Two launchers at the same instant: the look and the insert are under one lock, so
    the second always sees the first and is refused with its id (or resumes it)."""
    one, two, _ = EXTRA_NURSES
    plans = [reassign_plan(bulk_db, None, 900), reassign_plan(bulk_db, one, 900)]
    same = [plans[0], reassign_plan(bulk_db, None, 900)]
    for round_ in range(50):
        got = _launch_together(bulk_db, same if round_ % 5 == 4 else plans)
        jobs = launch.with_conn(bulk_db, lambda c: store.unfinished(c, "nurse-reassign"))
        assert len(jobs) == 1, (round_, got)
        job_id = jobs[0].id
        made = [g for g in got if isinstance(g, tuple) and not g[1]]
        assert len(made) == 1 and made[0][0].id == job_id
        (other,) = [g for g in got if g is not made[0]]
        if isinstance(other, RefusedError):
            assert f"bulk job {job_id} (nurse-reassign" in str(other)
            assert f"nurse {NURSE}" in str(other) and "nothing written" in str(other)
        else:  # the same arguments: the second resumes the first's job, never a new one
            assert other[1] and other[0].id == job_id
        launch.with_conn(bulk_db, lambda c, job_id=job_id: store.request(c, job_id, "abort"))
    start(bulk_db, reassign_plan(bulk_db, None, 900))
    kind = NurseReassign()
    # Balancing another nurse of the same school gives to the same nurses: refused.
    same_school = kind.args(str(two), None, True, 900)
    with pytest.raises(RefusedError, match="works on nurse"):
        launch.open_job(bulk_db, launch.plan(bulk_db, lambda c: kind.plan(c, same_school)), "t")
    # Nurses of other schools share nobody with it: that job runs beside it.
    elsewhere = kind.args(
        str(DISTRICT.uuid_of("users", 1)), DISTRICT.uuid_of("users", 2), False, 5000
    )
    _, resumed = launch.open_job(
        bulk_db, launch.plan(bulk_db, lambda c: kind.plan(c, elsewhere)), "t"
    )
    assert (
        not resumed
        and len(launch.with_conn(bulk_db, lambda c: store.unfinished(c, kind.name))) == 2
    )


def test_claims_say_which_jobs_overlap() -> None:
    from wcperf.jobs.claims import Claims

    school_a = Claims.of({"school:a"})
    listed = Claims.of({"student:1", "student:2"}, {"school:a"})
    assert school_a.overlaps(listed) and listed.overlaps(school_a)
    assert not listed.overlaps(Claims.of({"student:3"}, {"school:a"}))  # same school, others
    assert Claims().overlaps(Claims.of({"school:z"}))  # the district meets everything
    assert not Claims.of({"nurse:x"}).overlaps(Claims.of({"nurse:y"}))
    assert Claims.from_params({}) == Claims()  # a row from before claims: the district


def test_finished_jobs_refuse_control(bulk_db: Database) -> None:
    job_id = start(bulk_db, grade_plan(bulk_db, [DISTRICT.uuid_of("schools", 1)]))
    run(bulk_db, GradeTransition(), job_id, batch_size=500)
    before = launch.with_conn(bulk_db, lambda c: store.get(c, job_id))
    assert before.status == "done"
    for what in ("pause", "abort", "run"):
        with pytest.raises(RefusedError, match=f"bulk job {job_id} is done"):
            launch.with_conn(bulk_db, lambda c, what=what: store.request(c, job_id, what))
    with pytest.raises(RefusedError, match="batch size is left as it was"):
        launch.with_conn(bulk_db, lambda c: store.set_batch_size(c, job_id, 5))
    after = launch.with_conn(bulk_db, lambda c: store.get(c, job_id))
    assert (after.batch_size, after.requested, after.updated_at) == (
        before.batch_size,
        before.requested,
        before.updated_at,
    )


def test_balance_spreads_students_by_load_within_max_workload(bulk_db: Database) -> None:
    one, two, gone = EXTRA_NURSES
    before = rows_by_id(bulk_db.url)
    mine = [s for s, r in before.items() if r[2] == NURSE and eligible(r)]
    not_moving = [s for s, r in before.items() if r[2] == NURSE and not eligible(r)]
    assert not_moving  # soft-deleted or inactive students of that nurse
    # Nurse `two` already has 10 students: balancing evens the load out.
    with admin.connect(bulk_db.url) as conn:
        conn.execute(
            'update students set "nurseId" = %s where id in (select id from students'
            ' where "schoolId" = %s and "isActive" and "deletedAt" is null order by id limit 10)',
            (two, SCHOOL[1]),
        )
    plan = reassign_plan(bulk_db, None, max_workload=300)
    assert plan.total == len(mine)
    outcome = run(bulk_db, NurseReassign(), start(bulk_db, plan), batch_size=40)
    assert outcome.status == "done" and outcome.job.counts == {"moved": len(mine)}
    after = rows_by_id(bulk_db.url)
    assert all(after[s][2] in (one, two) for s in mine)
    loads = {n: sum(1 for r in after.values() if r[2] == n and eligible(r)) for n in (one, two)}
    assert abs(loads[one] - loads[two]) <= 1 and sum(loads.values()) == len(mine) + 10
    assert all(load <= 300 for load in loads.values())
    assert not any(r[2] == gone for r in after.values())  # the inactive nurse gets nobody
    assert all(after[s] == before[s] for s in not_moving)  # never reassigned
    history = rows(bulk_db.url, "select count(*) from wcperf.student_moves")
    assert history == [(len(mine),)]


def test_reassign_over_max_workload_is_refused_saying_by_how_much(bulk_db: Database) -> None:
    one = EXTRA_NURSES[0]
    moving = len([r for r in rows(bulk_db.url) if r[2] == NURSE and eligible(r)])
    assert moving > 300
    with pytest.raises(RefusedError, match=f"{moving - 300} over the maximum workload"):
        reassign_plan(bulk_db, one, max_workload=300)
    with pytest.raises(RefusedError, match=f"{moving - 2 * 100} over"):
        reassign_plan(bulk_db, None, max_workload=100)
    with pytest.raises(ConfigError, match="is not active"):
        reassign_plan(bulk_db, EXTRA_NURSES[2])
    assert rows(bulk_db.url, "select count(*) from wcperf.bulk_jobs") == [(0,)]


def test_balance_gives_the_least_loaded_first() -> None:
    assert balance(5, {"a": 3, "b": 0, "c": 1}, {"a": None, "b": None, "c": 2}) == [
        ("a", 1),
        ("b", 3),
        ("c", 1),
    ]


def test_revert_of_a_reassignment_restores_the_nurses(bulk_db: Database) -> None:
    before = rows(bulk_db.url)
    job = start(bulk_db, reassign_plan(bulk_db, EXTRA_NURSES[0]))
    run(bulk_db, NurseReassign(), job, batch_size=100)
    assert rows(bulk_db.url) != before
    kind = Revert()
    outcome = run(
        bulk_db, kind, start(bulk_db, launch.plan(bulk_db, lambda c: kind.plan(c, kind.args(job))))
    )
    assert outcome.job.counts["changed_since"] == 0
    assert rows(bulk_db.url) == before


# -- transfer ------------------------------------------------------------------------------
def _transfer_ids(url: str) -> tuple[list[uuid.UUID], uuid.UUID]:
    found = rows(
        url,
        'select id from students where "isActive" and "deletedAt" is null and "schoolId" <> %s'
        " order by id limit 6",
        (SCHOOL[2],),
    )
    already = rows(
        url,
        'select id from students where "isActive" and "deletedAt" is null and "schoolId" = %s'
        " order by id limit 1",
        (SCHOOL[2],),
    )
    return [r[0] for r in found], already[0][0]


def test_transfer_moves_unassigns_and_records_history(bulk_db: Database) -> None:
    before = rows_by_id(bulk_db.url)
    ids, already = _transfer_ids(bulk_db.url)
    kind = Transfer()
    listed = sorted([*ids, already])
    args = kind.args(SCHOOL[2], listed, None, None)
    plan = launch.plan(bulk_db, lambda c: kind.plan(c, args, listed, "moved: canary Zelda"))
    assert plan.total == len(ids) and "already at school" in plan.notes[0]
    job_id = start(bulk_db, plan)
    outcome = run(bulk_db, kind, job_id, batch_size=4)
    assert outcome.job.counts == {"moved": len(ids), "skipped": 1}
    after = rows_by_id(bulk_db.url)
    for sid in ids:
        assert after[sid][1:3] == (SCHOOL[2], None)
        assert after[sid][3:6] == before[sid][3:6] and after[sid][6] > before[sid][6]
    assert after[already] == before[already]
    history = rows(
        bulk_db.url,
        "select student_id, from_school_id, to_school_id, from_nurse_id, job_id, reason,"
        " metadata from wcperf.student_moves order by student_id",
    )
    assert history == [
        (
            s,
            before[s][1],
            SCHOOL[2],
            before[s][2],
            job_id,
            "moved: canary Zelda",
            {"job_id": job_id, "kind": "transfer"},
        )
        for s in sorted(ids)
    ]
    # The reason is in the history only: not in the job's arguments or its audit row.
    audit = launch.with_conn(bulk_db, lambda c: store.audit_row(c, job_id))
    assert "Zelda" not in str(audit) and "Zelda" not in str(outcome.job.args)


def test_transfer_naming_an_unknown_or_deleted_student_writes_nothing(bulk_db: Database) -> None:
    kind = Transfer()
    deleted = next(r[0] for r in rows(bulk_db.url) if r[5])
    ids, _ = _transfer_ids(bulk_db.url)
    listed = sorted([*ids[:2], uuid.uuid4(), deleted])
    before = rows(bulk_db.url)
    with pytest.raises(ConfigError, match=r"2 of 4 student ids are not active students"):
        launch.plan(
            bulk_db, lambda c: kind.plan(c, kind.args(SCHOOL[2], listed, None, None), listed)
        )
    assert rows(bulk_db.url, "select count(*) from wcperf.bulk_jobs") == [(0,)]
    assert rows(bulk_db.url) == before


def test_transfer_from_a_school_spares_deleted_and_inactive_and_reverts(
    bulk_db: Database,
) -> None:
    before = rows_by_id(bulk_db.url)
    kind = Transfer()
    args = kind.args(SCHOOL[3], None, SCHOOL[0], "K")
    plan = launch.plan(bulk_db, lambda c: kind.plan(c, args))
    movers = [s for s, r in before.items() if r[1] == SCHOOL[0] and r[3] == "K" and eligible(r)]
    assert plan.total == len(movers) > 0
    job = start(bulk_db, plan)
    run(bulk_db, kind, job, batch_size=10)
    after = rows_by_id(bulk_db.url)
    for s, r in before.items():
        assert after[s][1] == (SCHOOL[3] if s in movers else r[1])
    revert = Revert()
    run(
        bulk_db,
        revert,
        start(bulk_db, launch.plan(bulk_db, lambda c: revert.plan(c, revert.args(job)))),
    )
    assert rows_by_id(bulk_db.url) == before


# -- the same command again, audit, cache ------------------------------------------------
def test_same_arguments_resume_the_unfinished_job_and_audit_has_one_row(
    bulk_db: Database,
) -> None:
    plan = grade_plan(bulk_db)
    job_id = start(bulk_db, plan)
    stop_after = threading.Event()

    def progress(p: Progress) -> None:
        if p.rows_done >= 1000 and not stop_after.is_set():
            stop_after.set()
            launch.with_conn(bulk_db, lambda c: store.request(c, job_id, "abort"))

    first = Runner(
        bulk_db, GradeTransition(), job_id, RunOptions(batch_size=250), on_progress=progress
    ).run()
    assert first.status == "aborted" and 1000 <= first.job.rows_done < plan.total
    # Aborted jobs are not picked up by the same command; a resume continues them.
    assert (
        launch.with_conn(bulk_db, lambda c: store.find_unfinished(c, plan.kind, plan.args)) is None
    )
    second = run(bulk_db, GradeTransition(), job_id)
    assert second.status == "done" and second.job.rows_done == plan.total
    assert second.rows == plan.total - first.job.rows_done
    audit = launch.with_conn(bulk_db, lambda c: store.audit_row(c, job_id))
    assert audit["action"] == "bulk grade-transition" and audit["actor"] == store.actor()
    assert audit["details"]["parameters"] == {
        "school_year": 2026,
        "schools": [],
        "as_user": None,
    }
    assert audit["details"]["outcome"] == "done" and audit["details"]["runs"] == 2
    assert audit["counts"] == second.job.counts
    assert rows(
        bulk_db.url, "select count(*) from wcperf.audit_log where job_id = %s", (job_id,)
    ) == [(1,)]


def test_each_commit_bumps_the_cache(bulk_db: Database, redis_url: str, redis_prefix: str) -> None:
    cache = QueryCache(redis_url, secret=b"k" * 32, prefix=redis_prefix)
    try:
        # Not attached to the engine: only the job's own bumps can make the read fresh.
        from sqlalchemy.orm import Session

        with Session(bulk_db.engine) as session:
            sid = next(r[0] for r in rows(bulk_db.url) if eligible(r))
            old = student_detail(session, sid, cache)
            assert student_detail(session, sid, cache) == old  # cached
            bumps = cache.counts["bumps"]
            job_id = start(bulk_db, grade_plan(bulk_db))
            runner = Runner(
                bulk_db, GradeTransition(), job_id, RunOptions(batch_size=1000), bump=cache.bump
            )
            outcome = runner.run()
            assert cache.counts["bumps"] - bumps >= outcome.batches - 1
            session.rollback()
            fresh = student_detail(session, sid, cache)
        assert old is not None and fresh is not None
        assert fresh["grade"] == NEXT_GRADE[old["grade"]]
    finally:
        cache.close()


class Reads:
    """Cached hot-path reads through a cache that sees only the jobs' bumps: whether each
    read came from the cache or the database."""

    def __init__(self, db: Database, cache: QueryCache) -> None:
        from sqlalchemy.orm import Session

        self.session, self.cache = Session(db.engine), cache

    def loaded(self, read: Any, *args: Any) -> tuple[bool, Any]:
        self.session.rollback()  # a fresh snapshot: what a new request sees
        loads = self.cache.counts["loads"]
        value = read(self.session, *args, cache=self.cache)
        return self.cache.counts["loads"] > loads, value


def _bucket(table: str, **value: Any) -> str:
    from wcperf.cache import scopes

    return scopes.rows(table, **value)[1]


def test_a_batch_spares_the_cached_pages_of_students_it_did_not_change(
    bulk_db: Database, redis_url: str, redis_prefix: str
) -> None:
    """A transition of one school: every cached page that shows none of its students is
    still a hit; every page that shows one is read afresh with the new grade; a page
    not scoped to students (the day's calendar) is read afresh too."""
    from wcperf.workload.hot_paths import (
        appointment_calendar,
        graduating_students,
        health_timeline,
        student_dashboard,
    )

    cache = QueryCache(redis_url, secret=b"k" * 32, prefix=redis_prefix)
    reads = Reads(bulk_db, cache)
    try:
        before = rows_by_id(bulk_db.url)
        moving = [r for r in before.values() if eligible(r) and r[1] == SCHOOL[0]]
        others = [r for r in before.values() if eligible(r) and r[1] != SCHOOL[0]][:300]
        nurses = sorted({r[2] for r in others if r[2] is not None} - {r[2] for r in moving})
        day = rows(bulk_db.url, 'select min("scheduledAt")::date from appointments')[0][0]
        pages: list[tuple[str, Any, tuple[Any, ...], bool]] = []  # (what, read, args, moved)
        for r in moving[:40] + others:
            touched = r[1] == SCHOOL[0]
            pages += [("detail", student_detail, (r[0],), touched)]
            pages += [("timeline", health_timeline, (r[0],), touched)]
        pages += [("dashboard", student_dashboard, (NURSE,), True)]
        pages += [("dashboard", student_dashboard, (n,), False) for n in nurses]
        pages += [("graduating", graduating_students, (SCHOOL[0],), True)]
        pages += [("graduating", graduating_students, (s,), False) for s in SCHOOL[1:]]
        # A nurse's calendar shows her appointments' students: the school's nurse's is
        # read afresh, the others' (none of whose appointments are with them) are not.
        pages += [("calendar", appointment_calendar, (day, NURSE), True)]
        pages += [("calendar", appointment_calendar, (day, n), False) for n in nurses]
        for _, read, args, _ in pages:
            reads.loaded(read, *args)
        assert not any(reads.loaded(read, *args)[0] for _, read, args, _ in pages)  # cached
        reads.loaded(appointment_calendar, day)

        job_id = start(bulk_db, grade_plan(bulk_db, [SCHOOL[0]]))
        outcome = Runner(
            bulk_db, GradeTransition(), job_id, RunOptions(batch_size=100), bump=cache.bump
        ).run()
        assert outcome.job.rows_done == len(moving) and outcome.batches > 2

        # Buckets are the cache's precision: a spared page shares none with a moved one.
        moved_buckets = {_bucket("students", id=r[0]) for r in moving}
        moved_buckets |= {_bucket("students", nurseId=r[2]) for r in moving}
        moved_buckets |= {_bucket("students", schoolId=SCHOOL[0])}
        seen_by = rows(
            bulk_db.url,
            'select distinct "nurseId" from appointments where "studentId" = any(%s)',
            ([r[0] for r in moving],),
        )
        moved_buckets |= {_bucket("students", appointmentNurseId=n) for (n,) in seen_by}
        assert not {n for (n,) in seen_by} & set(nurses)
        spared = 0
        for what, read, args, touched in pages:
            scope, value = {
                "detail": ("id", args[0]),
                "timeline": ("id", args[0]),
                "dashboard": ("nurseId", args[0]),
                "calendar": ("appointmentNurseId", args[-1]),
            }.get(what, ("schoolId", args[0]))
            shares = _bucket("students", **{scope: value}) in moved_buckets
            loaded, value = reads.loaded(read, *args)
            if what == "timeline":  # it shows the records: a grade is none of its business
                assert not loaded, (what, args)
                spared += 1
            elif touched:
                assert loaded, (what, args)
            elif not shares:
                assert not loaded, (what, args)  # still the cached page
                spared += 1
            if what == "detail" and touched:
                assert value["grade"] == NEXT_GRADE[before[args[0]][3]]
        assert spared > len(pages) / 2  # the precision is worth something
        assert reads.loaded(appointment_calendar, day)[0]
    finally:
        reads.session.close()
        cache.close()


def test_a_district_wide_transition_goes_school_by_school(bulk_db: Database) -> None:
    """Each batch holds one school's students or the next few schools', never a slice of
    every school; a job begun in key order by an earlier wcperf resumes safely."""
    bumps: list[dict[str, Any]] = []
    plan = grade_plan(bulk_db)
    job_id = start(bulk_db, plan)
    # An earlier wcperf's checkpoint: key order, far along. School order starts afresh.
    with admin.connect(bulk_db.url, autocommit=True) as conn:
        top = conn.execute("select id from students order by id desc limit 1").fetchone()
        assert top is not None
        conn.execute(
            "update wcperf.bulk_jobs set checkpoint = %s where id = %s",
            (psycopg.types.json.Jsonb({"last_id": str(top[0])}), job_id),
        )
    outcome = Runner(
        bulk_db,
        GradeTransition(),
        job_id,
        RunOptions(batch_size=150),
        bump=lambda *tables, placed, changed: bumps.append(placed),
    ).run()
    assert outcome.job.rows_done == plan.total
    schools_per_batch = [len({r["schoolId"] for r in b["students"]}) for b in bumps]
    assert len(bumps) == math.ceil(plan.total / 150) and max(schools_per_batch) <= 2
    moved = rows(
        bulk_db.url,
        "select count(*), count(distinct student_id) from wcperf.promotions where job_id = %s",
        (job_id,),
    )
    assert moved == [(plan.total, plan.total)]  # everyone once


def test_a_reassignment_and_its_revert_refresh_both_nurses_pages(
    bulk_db: Database, redis_url: str, redis_prefix: str
) -> None:
    """A student who changes nurse leaves one dashboard and joins another: both are read
    afresh (the batch places the rows where they were and where they are), a third
    nurse's page stays cached; and again when the revert moves them back."""
    from wcperf.workload.hot_paths import student_dashboard

    cache = QueryCache(redis_url, secret=b"k" * 32, prefix=redis_prefix)
    reads = Reads(bulk_db, cache)
    to, third = EXTRA_NURSES[0], EXTRA_NURSES[1]
    assert len({_bucket("students", nurseId=n) for n in (NURSE, to, third)}) == 3
    try:

        def ids(nurse: uuid.UUID) -> tuple[bool, set[Any]]:
            loaded, page = reads.loaded(student_dashboard, nurse, 1, 1000)
            return loaded, {s["id"] for s in page["students"]}

        mine, theirs = ids(NURSE)[1], ids(to)[1]
        ids(third)
        assert mine and not ids(NURSE)[0]
        job = start(bulk_db, reassign_plan(bulk_db, to))
        Runner(bulk_db, NurseReassign(), job, RunOptions(batch_size=100), bump=cache.bump).run()
        assert ids(NURSE) == (True, set())
        assert ids(to) == (True, theirs | mine)
        assert not ids(third)[0]
        kind = Revert()
        plan = launch.plan(bulk_db, lambda c: kind.plan(c, kind.args(job)))
        Runner(
            bulk_db, kind, start(bulk_db, plan), RunOptions(batch_size=100), bump=cache.bump
        ).run()
        assert ids(NURSE) == (True, mine)
        assert ids(to) == (True, theirs)
        assert not ids(third)[0]
    finally:
        reads.session.close()
        cache.close()


# -- control and backpressure --------------------------------------------------------------
class Watch:
    """Progress reports as the display gets them, and a way to wait for one."""

    def __init__(self) -> None:
        self.seen: list[Progress] = []
        self.cond = threading.Condition()

    def __call__(self, p: Progress) -> None:
        with self.cond:
            self.seen.append(p)
            self.cond.notify_all()

    def wait(self, test: Any, timeout: float = 20) -> Progress:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for p in self.seen:
                    if test(p):
                        return p
                left = deadline - time.monotonic()
                assert left > 0, f"never seen; last: {self.seen[-1:] or None}"
                self.cond.wait(left)


def in_thread(
    db: Database, job_id: int, **options: Any
) -> tuple[Runner, Watch, threading.Thread, dict[str, Any]]:
    """A grade transition running in a thread, its progress watched."""
    watch = Watch()
    runner = Runner(db, GradeTransition(), job_id, RunOptions(**options), on_progress=watch)
    result: dict[str, Any] = {}

    def go() -> None:
        try:
            result["outcome"] = runner.run()
        except BaseException as exc:
            result["error"] = exc

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return runner, watch, t, result


def test_all_pool_connections_held_pauses_with_the_reason_then_resumes(
    bulk_db: Database, bulk_url: str
) -> None:
    job_id = start(bulk_db, grade_plan(bulk_db))
    runner, watch, thread, result = in_thread(bulk_db, job_id, batch_size=100, sleep_ms=30)
    watch.wait(lambda p: p.state == "running" and p.rows_done > 0)
    with every_connection_held(bulk_db, waiters=3):
        # Each wait re-reads the signals: the reason comes to count all three waiters
        # (the first read may land before the last of them has queued).
        paused = watch.wait(lambda p: p.state == "paused" and "3 requests" in p.reason)
        assert "our pool: 3 requests waiting (pause at 1)" in paused.reason
        assert "our pool: 100 % in use (pause at 80)" in paused.reason
        # Another terminal sees why, in the job row; the Snapshot carries it too.
        with admin.connect(bulk_url) as conn:  # the pool is full: a direct connection
            shown = store.get(conn, job_id)
        assert shown.shown_status == "paused" and "requests waiting" in shown.throttle["reason"]
        assert runner.snapshot_state()[f"job {job_id}"].state == "paused"
        done_while_held = paused.rows_done
        time.sleep(0.5)
        assert watch.seen[-1].rows_done == done_while_held  # no batch ran meanwhile
    thread.join(60)
    outcome = result["outcome"]
    assert outcome.status == "done" and outcome.pauses >= 1
    assert outcome.job.rows_done == outcome.job.rows_total


def test_operator_pause_set_abort_and_resume_from_another_terminal(
    bulk_db: Database, bulk_template: str, settings: Settings
) -> None:
    job_id = start(bulk_db, grade_plan(bulk_db))
    _, watch, thread, result = in_thread(bulk_db, job_id, batch_size=100, sleep_ms=20)
    watch.wait(lambda p: p.rows_done >= 200)
    launch.with_conn(bulk_db, lambda c: store.request(c, job_id, "pause"))
    paused = watch.wait(lambda p: p.reason.startswith("paused by operator"))
    time.sleep(0.6)
    assert watch.seen[-1].rows_done == paused.rows_done
    launch.with_conn(bulk_db, lambda c: store.set_batch_size(c, job_id, 37))
    launch.with_conn(bulk_db, lambda c: store.request(c, job_id, "run"))
    watch.wait(
        lambda p: p.state == "running" and p.batch_size == 37 and p.rows_done > paused.rows_done
    )
    launch.with_conn(bulk_db, lambda c: store.request(c, job_id, "abort"))
    thread.join(30)
    stopped = result["outcome"]
    assert stopped.status == "aborted" and stopped.job.rows_done < stopped.job.rows_total
    assert launch.with_conn(bulk_db, lambda c: store.get(c, job_id)).status == "aborted"
    finished = run(bulk_db, GradeTransition(), job_id)
    assert finished.status == "done"
    # Pause, smaller batches, abort and resume changed nothing about the result.
    clean = admin.with_database(bulk_db.url, admin.database_name(bulk_db.url) + "_c")
    admin.clone_database(bulk_template, clean)
    try:
        with Database(clean, settings) as db2:
            run(db2, GradeTransition(), start(db2, grade_plan(db2)))
        assert rows(clean, STATE) == rows(bulk_db.url, STATE)
    finally:
        admin.drop_database(clean)


def test_lock_waits_on_the_jobs_tables_pause_it(bulk_db: Database, bulk_url: str) -> None:
    job_id = start(bulk_db, grade_plan(bulk_db))
    holder = psycopg.connect(admin.libpq_url(bulk_url))
    waiter = psycopg.connect(admin.libpq_url(bulk_url), autocommit=True)
    last = rows(bulk_url, "select id from students order by id desc limit 1")[0][0]
    touch = 'update students set "updatedAt" = now() where id = %s'
    holder.execute(touch, (last,))
    blocked = threading.Thread(target=lambda: waiter.execute(touch, (last,)), daemon=True)
    try:
        blocked.start()
        _, watch, thread, result = in_thread(bulk_db, job_id, batch_size=100, sleep_ms=30)
        paused = watch.wait(lambda p: p.state == "paused")
        assert "1 sessions waiting on locks on the job's tables (pause at 1)" in paused.reason
        holder.rollback()
        blocked.join(10)
        thread.join(60)
        assert result["outcome"].status == "done"
    finally:
        holder.close()
        waiter.close()


def test_lock_waits_in_a_clone_of_the_database_are_not_this_jobs(
    bulk_db: Database, bulk_template: str
) -> None:
    """A database cloned on the same server has the same table OIDs; its lock waits (and
    vacuums, and index builds) must not pause a job here."""
    twin = admin.with_database(bulk_template, f"wcperf_twin_{uuid.uuid4().hex[:6]}")
    admin.clone_database(bulk_template, twin)
    holder = psycopg.connect(admin.libpq_url(twin))
    waiter = psycopg.connect(admin.libpq_url(twin), autocommit=True)
    touch = 'update students set "updatedAt" = now() where id = %s'
    try:
        last = rows(twin, "select id from students order by id desc limit 1")[0][0]
        holder.execute(touch, (last,))
        blocked = threading.Thread(target=lambda: waiter.execute(touch, (last,)), daemon=True)
        blocked.start()
        time.sleep(0.5)
        here = admin.connect(bulk_db.url, autocommit=True)
        there = admin.connect(twin, autocommit=True)
        try:
            assert table_oids(here, ("students",)) == table_oids(there, ("students",))
            read_here = SignalReader(bulk_db, here, ("students",)).read()
            with Database(twin, bulk_db.settings) as twin_db:
                read_there = SignalReader(twin_db, there, ("students",)).read()
        finally:
            here.close()
            there.close()
        assert read_there["lock_waits"] == 1  # the wait is real, and seen where it is
        assert read_here["lock_waits"] == 0
        holder.rollback()
        blocked.join(10)
    finally:
        holder.close()
        waiter.close()
        admin.drop_database(twin)


def test_abort_threshold_stops_and_atomic_refuses_under_pressure(bulk_db: Database) -> None:
    job_id = start(bulk_db, grade_plan(bulk_db))
    abort_now = Thresholds.parse("pool_util_pct=-:0.001")  # any use of our pool at all
    with every_connection_held(bulk_db, waiters=0):
        outcome = run(bulk_db, GradeTransition(), job_id, thresholds=abort_now)
        assert outcome.status == "aborted" and "our pool: 100 % in use (abort at" in outcome.reason
        with pytest.raises(Throttled, match="not starting the atomic run: our pool"):
            run(bulk_db, GradeTransition(), job_id, atomic=True)
    assert rows(bulk_db.url, "select count(*) from wcperf.promotions") == [(0,)]
    assert run(bulk_db, GradeTransition(), job_id, atomic=True).status == "done"


def test_throttle_state_reaches_the_published_snapshot(
    bulk_db: Database, settings: Settings
) -> None:
    job_id = start(bulk_db, grade_plan(bulk_db))
    runner = Runner(bulk_db, GradeTransition(), job_id, RunOptions(batch_size=2000))
    observer = Observer(bulk_db, settings)
    observer.throttle_state = runner.snapshot_state
    runner.run()
    snap = observer.snapshot()
    entry = snap.throttle[f"job {job_id}"]
    assert entry.kind == "grade-transition" and entry.state == "running"
    assert entry.rows_done == entry.rows_total > 0
    assert set(entry.signals) >= {"pool_waiting", "active_backends", "lock_waits"}
    # Through JSON (as published) and into `monitor live`'s frame.
    again = Snapshot.from_json(snap.to_json())
    assert again.throttle == snap.throttle  # typed both ways
    paused = again.throttle[f"job {job_id}"]
    paused.state, paused.reason = "paused", "our pool: 4 requests waiting"
    console = Console(record=True, width=200)
    console.print(frame(again))
    text = console.export_text()
    assert "bulk jobs" in text and f"job {job_id}" in text
    assert "our pool: 4 requests waiting" in text


def test_thresholds_decide_slow_pause_and_abort() -> None:
    t = Thresholds.parse("active_backends=10:40")
    assert decide({"active_backends": 2.0}, t).state == "go"
    slow = decide({"active_backends": 7.5}, t)
    assert slow.state == "slow" and slow.rest_s(0.1) == pytest.approx(0.2)  # halfway: 2x
    assert slow.target_ms(200) == pytest.approx(125)  # halfway to a quarter
    assert decide({"active_backends": 10.0}, t).state == "pause"
    assert decide({"active_backends": 40.0, "lock_waits": 0.0}, t).state == "abort"
    assert decide({"replica_lag_s": None}, t).state == "go"  # no replicas: no signal
    with pytest.raises(ConfigError, match="unknown throttle signal 'nope'"):
        Thresholds.parse("nope=1:2")
    with pytest.raises(ConfigError, match="not a number"):
        Thresholds.parse("lock_waits=x")


@pytest.mark.alone  # a latency ratio
def test_live_latency_is_judged_against_its_level_before_the_job(
    bulk_db: Database,
    settings: Settings,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another wcperf process's queries slow down tenfold: the job pauses and says so."""
    import redis

    from wcperf.jobs.signals import SignalReader

    other_settings = replace(settings, redis_prefix=redis_prefix, command="nurses")
    client = redis.Redis.from_url(redis_url)
    with (
        Database(bulk_db.url, other_settings) as other,
        Observer(other, other_settings, redis_url=redis_url, interval_s=60) as observer,
        admin.connect(bulk_db.url, autocommit=True) as lease,
    ):

        def traffic(sql: str, params: tuple[float, ...] = (), times: int = 300) -> None:
            with other.engine.connect() as conn:
                for _ in range(times):
                    conn.exec_driver_sql(sql, params)
            assert observer.publish()

        reader = SignalReader(
            bulk_db, lease, ("students",), redis_client=client, prefix=redis_prefix
        )
        traffic("select 1")
        assert reader.others(force=True)["live_p99_ratio"] is None  # a first reading
        traffic("select 1")
        # The level before the job; until the job's effect is seen, it counts as felt.
        assert reader.others(force=True)["live_p99_ratio"] == 1.0
        baseline_us = reader.baseline_p99_us
        assert baseline_us is not None and baseline_us > 0
        # Slower than the baseline by construction, whatever this machine's noise made
        # the baseline: every query now takes at least three times its P99.
        traffic("select pg_sleep(%s)", (max(0.003, 3 * baseline_us / 1e6),), times=220)
        ratio = reader.others(force=True)["live_p99_ratio"]
        assert ratio is not None and ratio > 1.5
        assert reader.others(force=True)["live_p99_ratio"] == ratio  # nothing new: kept
        decision = decide(reader.read(), Thresholds())
        assert decision.state == "pause"
        assert "other wcperf processes' P99" in decision.reason
        # The nurses' load ends: nothing new for QUIET_S, and the job is not held for good.
        monkeypatch.setattr(signals, "QUIET_S", 0.0)
        quiet = reader.others(force=True)
        assert quiet["live_p99_ratio"] is None and quiet["live_p99_ms"] is None
        assert decide(reader.read(), Thresholds()).state == "go"
        traffic("select pg_sleep(%s)", (max(0.003, 3 * baseline_us / 1e6),), times=220)
        assert (reader.others(force=True)["live_p99_ratio"] or 0) > 1.5  # back when they are
    client.close()


@pytest.mark.alone  # latency figures
def test_no_baseline_is_taken_from_a_degraded_window_and_the_target_holds_alone(
    bulk_db: Database, settings: Settings, redis_url: str, redis_prefix: str
) -> None:
    """Started while the nurses are already slow, the job takes no baseline from it
    (the ratio stays unknown) and the absolute P99 signal pauses it; once they are
    fast again, that is the baseline."""
    import redis

    from wcperf.jobs.signals import SignalReader

    other_settings = replace(settings, redis_prefix=redis_prefix, command="nurses")
    client = redis.Redis.from_url(redis_url)
    limits = Thresholds.parse("live_p99_ms=3")
    with (
        Database(bulk_db.url, other_settings) as other,
        Observer(other, other_settings, redis_url=redis_url, interval_s=60) as observer,
        admin.connect(bulk_db.url, autocommit=True) as lease,
    ):

        def traffic(sql: str, times: int = 220) -> None:
            with other.engine.connect() as conn:
                for _ in range(times):
                    conn.exec_driver_sql(sql)
            assert observer.publish()

        reader = SignalReader(bulk_db, lease, ("students",), redis_client=client,
                              prefix=redis_prefix, baseline_limit_ms=3.0)  # fmt: skip
        traffic("select pg_sleep(0.006)")
        assert reader.others(force=True)["live_p99_ms"] is None  # a first reading
        traffic("select pg_sleep(0.006)")
        seen = reader.others(force=True)
        assert seen["live_p99_ms"] is not None and seen["live_p99_ms"] >= 6
        assert seen["live_p99_ratio"] is None and reader.baseline_p99_us is None
        assert any("no latency baseline yet" in n for n in reader.notes)
        decision = decide(reader.read(), limits)
        assert decision.state == "pause" and "other wcperf processes' P99" in decision.reason
        traffic("select 1", times=400)
        fast = reader.others(force=True)
        assert fast["live_p99_ms"] is not None and fast["live_p99_ms"] < 3
        assert fast["live_p99_ratio"] == 1.0 and reader.baseline_p99_us is not None
        assert reader.baseline_p99_us < 3_000 and reader.notes == []
    client.close()


def test_reassign_atomic_gives_out_what_batches_give(
    bulk_template: str, bulk_db: Database, settings: Settings
) -> None:
    outcome = run(
        bulk_db,
        NurseReassign(),
        start(bulk_db, reassign_plan(bulk_db, None, max_workload=300)),
        atomic=True,
    )
    assert outcome.status == "done" and outcome.job.counts["moved"] == outcome.job.rows_total > 0
    other = admin.with_database(bulk_db.url, admin.database_name(bulk_db.url) + "_r")
    admin.clone_database(bulk_template, other)
    try:
        with Database(other, settings) as db2:
            plan = reassign_plan(db2, None, max_workload=300)
            run(db2, NurseReassign(), start(db2, plan), batch_size=17)
        assert rows(other, STATE) == rows(bulk_db.url, STATE)
    finally:
        admin.drop_database(other)


def test_the_baseline_is_carried_from_the_history_when_the_load_is_already_slow(
    bulk_db: Database, settings: Settings, redis_url: str, redis_prefix: str
) -> None:
    """The monitor's history remembers a normal hour at a low P99; a job that starts while
    the nurses are slower than that (but under the target) measures them against the
    history, not against the slow window, and pauses."""
    import json
    from dataclasses import asdict

    import redis

    from wcperf.observe.snapshot import MinutePoint

    client = redis.Redis.from_url(redis_url)
    now = int(time.time() // 60)
    # An hour of minutes: mostly 0.05 ms, some over the target (an incident), some older.
    p99s = [0.05, 0.04, 0.06, 0.05, 0.05, 0.07, 5000.0, 5000.0]
    points = [MinutePoint(now - 1 - i, {"p99_ms": v}) for i, v in enumerate(p99s)]
    points += [MinutePoint(now - 90, {"p99_ms": 0.001})] * 10  # beyond the hour: not used
    assert signals.remembered_p99(points, 500.0, now) == 0.05
    assert signals.remembered_p99(points[:4], 500.0, now) is None  # too few minutes
    assert signals.remembered_p99(points, None, now) == 0.06  # no target: every minute
    for p in points:
        client.rpush(f"{redis_prefix}history", json.dumps(asdict(p)))
    runner = Runner(bulk_db, GradeTransition(), 0, RunOptions(), redis_client=client,
                    prefix=redis_prefix)  # fmt: skip
    remembered = runner._remembered_p99()  # the default target, 1000 ms, leaves out the incident
    assert remembered == 0.05
    other_settings = replace(settings, redis_prefix=redis_prefix, command="nurses")
    with (
        Database(bulk_db.url, other_settings) as other,
        Observer(other, other_settings, redis_url=redis_url, interval_s=60) as observer,
        admin.connect(bulk_db.url, autocommit=True) as lease,
    ):

        def traffic() -> None:
            with other.engine.connect() as conn:
                for _ in range(220):
                    conn.exec_driver_sql("select pg_sleep(0.002)")
            assert observer.publish()

        reader = SignalReader(bulk_db, lease, ("students",), redis_client=client,
                              prefix=redis_prefix, baseline_limit_ms=500.0,
                              remembered_p99_ms=remembered)  # fmt: skip
        traffic()
        reader.others(force=True)
        traffic()
        seen = reader.others(force=True)
        assert seen["live_p99_ms"] is not None and seen["live_p99_ms"] >= 2
        assert reader.baseline_p99_us == 50  # the history's, not the slow window's
        assert seen["live_p99_ratio"] is not None and seen["live_p99_ratio"] > 20
        assert any("from the history" in n for n in reader.notes)
        decision = decide(reader.read(), Thresholds())
        assert decision.state == "pause" and "P99" in decision.reason
    client.close()
