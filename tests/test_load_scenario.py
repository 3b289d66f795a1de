"""Load scenarios and the operations they name, against a real seeded district."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from wcperf.cache.tiered import QueryCache
from wcperf.db.engine import Database
from wcperf.errors import ConfigError
from wcperf.load import scenario
from wcperf.load.operations import OPERATIONS, WRITES, Sample
from wcperf.observe.query_monitor import QueryMonitor
from wcperf.settings import Settings


def test_bundled_scenarios_parse_and_name_known_operations() -> None:
    found = {p.stem: scenario.load(p) for p in scenario.available()}
    assert {"school-day", "year-end", "flu-season"} <= set(found)
    for stem, s in found.items():
        assert s.name == stem and s.users >= 1 and s.duration_s > 0 and s.tasks
        assert all(t.op in OPERATIONS for t in s.tasks)
    assert any(t.writes for t in found["school-day"].tasks)
    flu = found["flu-season"]
    write_weight = sum(t.weight for t in flu.tasks if t.writes)
    assert write_weight > sum(t.weight for t in flu.tasks) / 2  # writes heavy
    assert found["school-day"].targets.p95_ms == 500 and "p95_ms" in found["school-day"].judged
    assert scenario.resolve("school-day") == scenario.scenarios_path() / "school-day.toml"


GOOD = """
users = 5
duration = "10s"
think_time_ms = [10, 20]
[[tasks]]
op = "student_detail"
weight = 2
[targets]
p99_ms = 50
"""


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("users = 5", "users = 0"), "users: must be at least 1"),
        (("users = 5", "usres = 5"), "usres: unknown field"),
        (('duration = "10s"', 'duration = "soon"'), "duration: must be like 60s"),
        (("[10, 20]", "[20, 10]"), "think_time_ms: must be [min, max]"),
        (('op = "student_detail"', 'op = "student_detial"'), "tasks[0].op: unknown operation"),
        (("weight = 2", "weight = 0"), "tasks[0].weight: must be at least 1"),
        (("weight = 2", "wieght = 2"), "tasks[0].wieght: unknown field"),
        (("p99_ms = 50", "p77_ms = 50"), "targets.p77_ms: unknown target"),
        (("p99_ms = 50", 'p99_ms = "fast"'), "targets.p99_ms: must be a number"),
        (('duration = "10s"', ""), "duration: missing"),
        (("[[tasks]]", "[[tasks]"), "not valid TOML"),
    ],
)
def test_a_broken_scenario_is_refused_naming_the_field(
    tmp_path: Path, change: tuple[str, str], field: str
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(ConfigError) as refused:
        scenario.load(path)
    assert str(path) in str(refused.value) and field in str(refused.value)


def test_good_scenario_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(GOOD)
    s = scenario.load(path)
    assert (s.name, s.users, s.spawn_rate, s.duration_s) == ("mine", 5, 5.0, 10.0)
    assert s.with_overrides(users=7, duration_s=None).users == 7
    assert scenario.parse_duration("2m", "x") == 120 and scenario.parse_duration(1.5, "x") == 1.5


def test_every_operation_runs_on_a_district_without_n_plus_one(
    bulk_url: str, settings: Settings, redis_url: str, redis_prefix: str
) -> None:
    strict = QueryMonitor(strict=True)
    cache = QueryCache(redis_url, secret=b"s" * 32, prefix=redis_prefix)
    with Database(bulk_url, settings) as db, Session(db.engine) as session:
        cache.attach(db)
        strict.attach(db.engine)
        try:
            sample = Sample.read(session)
            before = session.scalar(text("select count(*) from appointments"))
            session.rollback()
            rng = random.Random(7)
            for op in OPERATIONS.values():
                for _ in range(3):
                    op(session, cache, rng, sample)
                    session.rollback()
            after = session.scalar(text("select count(*) from appointments"))
            assert after == before + 3  # create_appointment committed three times
            assert {"create_appointment", "add_health_record"} <= WRITES
        finally:
            strict.detach()
            cache.close()


def test_the_point_read_runs_in_autocommit_like_pgbench(bulk_url: str, settings: Settings) -> None:
    """No BEGIN/COMMIT round trips around it; the hot paths keep their transactions."""
    seen: dict[str, bool] = {}
    with Database(bulk_url, settings) as db, Session(db.engine) as session:
        sample = Sample.read(session)

        @event.listens_for(db.engine, "before_cursor_execute")
        def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            seen[op] = conn.connection.driver_connection.autocommit

        found = {}
        for op in ("point_read", "student_detail"):
            found[op] = OPERATIONS[op](session, None, random.Random(3), sample)
            session.rollback()
        assert db.figures().in_use == 0  # the point read's own connection went back
    assert seen == {"point_read": True, "student_detail": False}
    assert found["point_read"].id == found["student_detail"]["id"]  # the same draw, read


def test_a_create_sends_its_insert_and_reads_nothing_back(
    bulk_url: str, settings: Settings
) -> None:
    """The key is made here: reading the committed row back (the ORM's expired object)
    cost a BEGIN, a SELECT and a ROLLBACK after every create."""
    with Database(bulk_url, settings) as db, Session(db.engine) as session:
        sample = Sample.read(session)
        sent: list[str] = []

        @event.listens_for(db.engine, "before_cursor_execute")
        def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            sent.append(statement.split()[0].upper())

        for op in ("create_appointment", "add_health_record"):
            sent.clear()
            key = OPERATIONS[op](session, None, random.Random(5), sample)
            assert sent == ["INSERT"], (op, sent)
            table = "appointments" if op == "create_appointment" else "health_records"
            found = session.execute(text(f"select id from {table} where id = :k"), {"k": key})
            assert found.scalar_one() == key  # the key returned is the row written
            session.rollback()
