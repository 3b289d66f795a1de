"""`wcperf.demo.run`, called as a library: on an empty database it seeds, builds the 14
indexes online and measures; run again it seeds nothing and builds nothing."""

from __future__ import annotations

import uuid
from dataclasses import replace

from tests.conftest import RUN_ID
from wcperf import demo
from wcperf.db import admin
from wcperf.db.engine import Database
from wcperf.settings import Settings


def test_the_demo_seeds_builds_and_measures_then_reruns_as_a_no_op(
    server_url: str, settings: Settings, redis_url: str, redis_prefix: str, database_url: str
) -> None:
    url = admin.with_database(server_url, f"wcperf_demo_{RUN_ID}_{uuid.uuid4().hex[:6]}")
    admin.ensure_database(url)
    said: list[str] = []
    built: list[str] = []
    mine = replace(settings, command="demo", redis_prefix=redis_prefix)
    try:
        with Database(url, mine) as db:
            assert demo.foreign_tables(db) == 0  # empty: the demo's to fill
            first = demo.run(
                db,
                redis_url,
                say=said.append,
                on_index=lambda e: built.append(e.spec.name) if e.kind == "done" else None,
            )
            assert demo.foreign_tables(db) == 0  # seeded by wcperf: still the demo's
            second = demo.run(db, redis_url, say=said.append)
        with Database(database_url, mine) as other:
            assert demo.foreign_tables(other) > 0  # platform tables wcperf did not seed
    finally:
        admin.drop_database(url)
    assert first.seeded is not None and first.seeded.created_schema
    students = first.summary.rows["students"]
    assert students == first.seeded.rows["students"] > 0
    assert (first.indexes.present, first.indexes.built, first.indexes.total) == (14, 14, 14)
    assert len(built) == 14 and not first.indexes.differing
    assert first.burst.peak.in_use == first.burst.peak.max_size  # the burst filled the pool
    assert first.burst.peak_waiting > 0 and first.burst.after.requests_queued > 0
    assert first.seen.queries and first.seen.cache is not None
    assert first.seen.cache.tiers["l1"].hits > 0
    assert len(first.tour) == 7 and all(p.cached_us > 0 for p in first.tour)
    assert first.cache_mode == "L1 + Redis"
    active = sum(a for _, _, a in first.summary.grades)
    assert first.plan.total == active  # every active student moves up a grade (or graduates)
    assert second.seeded is None and second.students_found == students
    assert (second.indexes.present, second.indexes.built) == (14, 14)
    assert any("district already present" in line for line in said)
