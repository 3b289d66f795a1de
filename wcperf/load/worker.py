"""One load-test process: locust's users running the scenario's operations.

    python -m wcperf.load.worker SCENARIO.toml RESULT.json USERS SPAWN_RATE DURATION_S WARMUP_S SEED

Run as a process of its own because of import order: gevent must patch the
standard library before psycopg is imported, or psycopg keeps its C wait function
and every simulated user waits for the others (measured: ~5 requests/s instead
of ~240 with 50 users). Importing locust patches; PSYCOPG_WAIT_FUNC picks the
poll-based wait, which the patched `select` makes cooperative.

Each operation is timed here into an HDR histogram at microsecond resolution
(locust's own statistics round to two significant figures) and also fired as a
locust request event. The process publishes its Snapshot like any working wcperf
process, so `wcperf monitor live` shows the load while it runs.
"""

from __future__ import annotations

import os

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_poll")

import locust  # noqa: I001 - patches the standard library: first, before psycopg
import gevent

import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from locust.env import Environment
from sqlalchemy.orm import Session

from wcperf.cache.keys import load_secret
from wcperf.cache.tiered import QueryCache
from wcperf.db.engine import Database
from wcperf.db.servers import resolve_redis
from wcperf.load import scenario as scenarios
from wcperf.load.operations import OPERATIONS, WRITES, Sample
from wcperf.observe import histogram as hdr
from wcperf.observe.observer import Observer
from wcperf.settings import Settings


class Phase:
    """Warming up, users read as fast as they can and write nothing: in seconds the cache
    holds what a day's traffic would have left in it (about one TTL of reads), without
    the scenario's writes changing the data first. Then the users settle (start nothing
    until the warm-up's operations have finished, so none of its queueing is measured),
    and the measured phase starts."""

    warming = True
    settling = False
    in_flight = 0

    def settle(self, timeout_s: float = 10.0) -> None:
        self.warming, self.settling = False, True
        deadline = time.monotonic() + timeout_s
        while self.in_flight and time.monotonic() < deadline:
            gevent.sleep(0.005)

    def measure(self) -> None:
        self.settling = False


def user_class(
    s: scenarios.Scenario,
    db: Database,
    cache: QueryCache | None,
    sample: Sample,
    seed: int,
    phase: Phase,
) -> tuple[type[locust.User], dict[str, Any], dict[str, int]]:
    histograms = {t.op: hdr.new_histogram() for t in s.tasks}
    errors = dict.fromkeys(histograms, 0)
    seeds = random.Random(seed)
    think_s = (s.think_time_ms[0] / 1000, s.think_time_ms[1] / 1000)

    def task_for(op_name: str) -> Any:
        operation = OPERATIONS[op_name]
        writes = op_name in WRITES

        def task(user: Any) -> None:
            if phase.settling or (writes and phase.warming):
                return
            measured = not phase.warming
            error: BaseException | None = None
            phase.in_flight += 1
            started = time.perf_counter_ns()
            try:
                with Session(db.engine) as session:
                    operation(session, cache, user.rng, sample)
            except Exception as exc:  # counted by type; a message may quote a value
                error = RuntimeError(type(exc).__name__)
                errors[op_name] += measured
            finally:
                phase.in_flight -= 1
            if not measured:
                return
            us = max(1, (time.perf_counter_ns() - started) // 1000)
            histograms[op_name].record_value(min(us, hdr.HIGHEST_US))
            user.environment.events.request.fire(
                request_type="db",
                name=op_name,
                response_time=us / 1000,
                response_length=0,
                exception=error,
                context={},
            )

        task.__name__ = op_name
        return task

    class ScenarioUser(locust.User):
        tasks = {task_for(t.op): t.weight for t in s.tasks}  # noqa: RUF012

        def on_start(self) -> None:
            self.rng = random.Random(seeds.random())

        def wait_time(self) -> float:
            return 0.0 if phase.warming else self.rng.uniform(*think_s)

    return ScenarioUser, histograms, errors


def warm_pool(db: Database) -> None:
    """Open every pool connection before measuring: steady state, not connection setup."""
    held = [gevent.spawn(db.pool.getconn) for _ in range(db.pool.max_size)]
    gevent.joinall(held)
    for g in held:
        db.pool.putconn(g.value)


def run(
    path: Path, users: int, spawn_rate: float, duration_s: float, warmup_s: float, seed: int
) -> dict[str, Any]:
    s = scenarios.load(path)
    settings = replace(Settings.from_env(), command=f"loadtest:{s.name}")
    redis_url = resolve_redis(settings, start=False).url
    with Database(settings.database_url or "", settings) as db:
        cache = None
        if redis_url:
            secret = load_secret(settings.cache_secret, settings.home)
            cache = QueryCache(redis_url, secret=secret, prefix=settings.redis_prefix)
            cache.attach(db)
        with Session(db.engine) as session:
            sample = Sample.read(session)
        warm_pool(db)
        observer = Observer(
            db, settings, redis_url=redis_url, cache_stats=cache.stats if cache else None
        )
        phase = Phase()
        klass, histograms, errors = user_class(s, db, cache, sample, seed, phase)
        env = Environment(user_classes=[klass], events=locust.events)
        runner = env.create_local_runner()
        peak = {"in_use": 0, "waiting": 0}

        def watch_pool() -> None:
            while True:
                f = db.figures()
                peak["in_use"] = max(peak["in_use"], f.in_use)
                peak["waiting"] = max(peak["waiting"], f.waiting)
                gevent.sleep(0.05)

        with observer:
            watcher = gevent.spawn(watch_pool)
            runner.start(users, spawn_rate=spawn_rate)
            gevent.sleep(warmup_s)
            phase.settle()
            # The measurement starts now: what the warm-up did is subtracted or reset.
            for h in histograms.values():
                h.reset()
            errors.update(dict.fromkeys(errors, 0))
            if cache is not None:
                cache.counts.update(dict.fromkeys(cache.counts, 0))
            peak.update(in_use=0, waiting=0)
            before = {q.fingerprint: q for q in observer.snapshot().queries}
            pool_before = db.figures()
            started = time.monotonic()
            phase.measure()
            gevent.spawn_later(duration_s, runner.quit)
            runner.greenlet.join()
            elapsed = time.monotonic() - started
            watcher.kill()
            snap = observer.snapshot()
        figures = db.figures()
        if cache is not None:
            cache.close()
    queries = []
    for q in snap.queries:
        old = before.get(q.fingerprint)
        counts = hdr.counts(q.hdr)
        if old is not None:
            counts = hdr.window(counts, hdr.counts(old.hdr))
        count = q.count - (old.count if old else 0)
        if count:
            queries.append(
                {
                    "fingerprint": q.fingerprint,
                    "normalized": q.normalized,
                    "count": count,
                    "errors": q.errors - (old.errors if old else 0),
                    "hdr": hdr.encode(hdr.from_counts(counts)),
                }
            )
    return {
        "scenario": s.name,
        "users": users,
        "seconds": round(elapsed, 3),
        "warmup_s": warmup_s,
        "operations": {
            op: {"errors": errors[op], "hdr": hdr.encode(h)} for op, h in histograms.items()
        },
        "queries": queries,
        "cache": snap.cache,
        "pool": {
            "max_size": figures.max_size,
            "peak_in_use": peak["in_use"],
            "peak_waiting": peak["waiting"],
            "requests": figures.requests - pool_before.requests,
            "requests_queued": figures.requests_queued - pool_before.requests_queued,
            "wait_ms_total": figures.wait_ms_total - pool_before.wait_ms_total,
            "timeouts": figures.timeouts - pool_before.timeouts,
        },
        "n_plus_one": [
            {"normalized": n.normalized, "call_site": n.call_site, "count": n.count}
            for n in snap.n_plus_one
        ],
    }


def main() -> None:
    path, out = Path(sys.argv[1]), Path(sys.argv[2])
    users, spawn_rate = int(sys.argv[3]), float(sys.argv[4])
    duration_s, warmup_s, seed = float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
    out.write_text(json.dumps(run(path, users, spawn_rate, duration_s, warmup_s, seed)))


if __name__ == "__main__":
    main()
