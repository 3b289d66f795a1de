"""One load-test process: locust's users running the scenario's operations.

    python -m wcperf.load.worker local SCENARIO.toml RESULT.json USERS SPAWN_RATE DURATION_S \
        WARMUP_S SEED
    python -m wcperf.load.worker join SCENARIO.toml MASTER_HOST MASTER_PORT SEED

`local` runs alone with locust's local runner and writes its result. `join` is a
locust worker: it connects to a `wcperf.load.master`, which spawns its users,
tells it when the measurement starts and asks for its result at the end.

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

from wcperf.load import orphan

orphan.arm()  # before the slow imports: a parent that dies meanwhile is still cleaned up
os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_poll")

import locust  # noqa: I001 - patches the standard library: first, before psycopg
import gevent

import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram
from locust.env import Environment
from sqlalchemy.orm import Session

from wcperf.cache.keys import load_secret
from wcperf.cache.tiered import QueryCache
from wcperf.db.engine import Database, PoolFigures
from wcperf.db.servers import resolve_redis
from wcperf.errors import error_cause
from wcperf.load import scenario as scenarios
from wcperf.load.operations import OPERATIONS, WRITES, Sample
from wcperf.observe import histogram as hdr
from wcperf.observe import phases
from wcperf.observe.observer import Observer
from wcperf.observe.timeline import Timeline, step_for
from wcperf.observe.snapshot import (
    Faults,
    LoadPool,
    LoadRun,
    OperationStats,
    QueryStats,
    Snapshot,
)
from wcperf.settings import Settings


# The master's messages to its workers, and their answers.
CHECK, CHECKED = "wcperf_check", "wcperf_checked"
MEASURE, REPORT, RESULT = "wcperf_measure", "wcperf_report", "wcperf_result"
FAILED = "wcperf_failed"  # a worker that cannot take part says why before it leaves


class Phase:
    """Warming up, users read as fast as they can and write nothing: in seconds the cache
    holds what a day's traffic would have left in it (about one TTL of reads), without
    the scenario's writes changing the data first. Then the users settle (start nothing
    until the warm-up's operations have finished, so none of its queueing is measured),
    and the measured phase starts."""

    warming = True
    settling = False
    done = False
    in_flight = 0

    def settle(self, timeout_s: float = 10.0) -> None:
        self.warming, self.settling = False, True
        self.drain(timeout_s)

    def drain(self, timeout_s: float = 10.0) -> None:
        """Wait for the operations under way: stopping users mid-query kills connections."""
        deadline = time.monotonic() + timeout_s
        while self.in_flight and time.monotonic() < deadline:
            gevent.sleep(0.005)

    def measure(self) -> None:
        self.settling = False


USER_CLASS = "ScenarioUser"  # the master dispatches users by class name
LAG_PROBE_S = 0.01  # between two timings of the scheduling lag (`Load._probe_lag`)


@dataclass
class Measures:
    """What a process's users measure: per operation, and over time."""

    histograms: dict[str, HdrHistogram]
    errors: dict[str, int]
    causes: dict[str, str]  # each operation's first error, as a report may show it
    kinds: dict[str, dict[str, int]]  # operation -> error kind -> count
    timeline: Timeline
    # where each operation's time went: nanoseconds per phase (phases.NAMES, then the
    # rest), summed; for writes also one HDR per phase (µs per operation). Reads keep
    # the sums alone: five histogram writes would be a tenth of a point read.
    spent: dict[str, list[int]]
    phase_hdr: dict[str, list[HdrHistogram]]

    @classmethod
    def of(cls, s: scenarios.Scenario) -> Measures:
        ops = [t.op for t in s.tasks]
        width = len(phases.ALL)
        return cls(
            {op: hdr.new_histogram() for op in ops},
            dict.fromkeys(ops, 0),
            {},
            {op: {} for op in ops},
            Timeline(step_for(s.duration_s)),
            {op: [0] * width for op in ops},
            {op: [hdr.new_histogram() for _ in range(width)] for op in ops if op in WRITES},
        )

    def reset(self) -> None:
        for h in self.histograms.values():
            h.reset()
        self.errors.update(dict.fromkeys(self.errors, 0))
        for kinds in self.kinds.values():
            kinds.clear()
        self.timeline.reset()
        for sums in self.spent.values():
            sums[:] = [0] * len(sums)
        for hists in self.phase_hdr.values():
            for h in hists:
                h.reset()

    def phases_of(self, op: str) -> tuple[dict[str, int], dict[str, str]]:
        """One operation's phases as OperationStats holds them."""
        sums = dict(zip(phases.ALL, self.spent[op], strict=True))
        hists = self.phase_hdr.get(op)
        encoded = (
            {n: hdr.encode(h) for n, h in zip(phases.ALL, hists, strict=True)} if hists else {}
        )
        return sums, encoded


def user_class(
    s: scenarios.Scenario,
    db: Database,
    cache: QueryCache | None,
    sample: Sample,
    seed: int,
    phase: Phase,
) -> tuple[type[locust.User], Measures]:
    measures = Measures.of(s)
    histograms, errors, causes = measures.histograms, measures.errors, measures.causes
    kinds, timeline = measures.kinds, measures.timeline
    spent_by_op, phase_hdr = measures.spent, measures.phase_hdr
    measured_phases = len(phases.NAMES)
    seeds = random.Random(seed)
    think_s = (s.think_time_ms[0] / 1000, s.think_time_ms[1] / 1000)

    def task_for(op_name: str) -> Any:
        operation = OPERATIONS[op_name]
        writes = op_name in WRITES
        spent = spent_by_op[op_name]
        hists = phase_hdr.get(op_name)

        def task(user: Any) -> None:
            if phase.settling or phase.done or (writes and phase.warming):
                return
            measured = not phase.warming
            error: BaseException | None = None
            phase.in_flight += 1
            started = time.perf_counter_ns()
            try:
                with phases.measured() as parts, Session(db.engine) as session:
                    operation(session, cache, user.rng, sample)
            except Exception as exc:  # never the raw message: it may quote a value
                cause = error_cause(exc)
                error = RuntimeError(cause)
                causes.setdefault(op_name, cause)
                if measured:
                    errors[op_name] += 1
                    kinds[op_name][cause] = kinds[op_name].get(cause, 0) + 1
            finally:
                phase.in_flight -= 1
            if not measured:
                return
            ns = time.perf_counter_ns() - started
            us = max(1, ns // 1000)
            histograms[op_name].record_value(min(us, hdr.HIGHEST_US))
            rest = ns
            for i in range(measured_phases):
                spent[i] += parts[i]
                rest -= parts[i]
            spent[measured_phases] += rest
            if hists is not None:
                for i in range(measured_phases):
                    hists[i].record_value(parts[i] // 1000)
                hists[measured_phases].record_value(max(rest, 0) // 1000)
            timeline.record(us, error is not None)
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
        # locust takes {task: weight} as well as a list; its annotation names only the list
        tasks = {task_for(t.op): t.weight for t in s.tasks}  # type: ignore[assignment]  # noqa: RUF012

        def on_start(self) -> None:
            self.rng = random.Random(seeds.random())

        def wait_time(self) -> float:
            return 0.0 if phase.warming else self.rng.uniform(*think_s)

    ScenarioUser.__name__ = USER_CLASS

    return ScenarioUser, measures


def warm_pool(db: Database) -> None:
    """Open every pool connection before measuring: steady state, not connection setup."""
    held = [gevent.spawn(db.pool.getconn) for _ in range(db.pool.max_size)]
    gevent.joinall(held)
    for g in held:
        if g.value is not None:
            db.pool.putconn(g.value)


class Load:
    """This process's share of a scenario: its pool, cache, users and measurements."""

    def __init__(self, path: Path, seed: int) -> None:
        self.scenario = s = scenarios.load(path)
        settings = replace(Settings.from_env(), command=f"loadtest:{s.name}")
        redis_url = resolve_redis(settings, start=False).url
        self.db = Database(settings.database_url or "", settings)
        self.cache: QueryCache | None = None
        self._outages_before = {"count": 0, "seconds": 0.0}
        if redis_url:
            secret = load_secret(settings.cache_secret, settings.home)
            self.cache = QueryCache(redis_url, secret=secret, prefix=settings.redis_prefix)
            self.cache.attach(self.db)
        with Session(self.db.engine) as session:
            sample = Sample.read(session)
        warm_pool(self.db)
        self.observer = Observer(
            self.db,
            settings,
            redis_url=redis_url,
            cache_stats=self.cache.stats if self.cache else None,
        )
        self.phase = Phase()
        self.user, self.measures = user_class(s, self.db, self.cache, sample, seed, self.phase)
        self.peak = {"in_use": 0, "waiting": 0}
        self.users = 0
        self.warmup_s = 0.0
        self._watcher: Any = None
        self._prober: Any = None
        self.lag = hdr.new_histogram()
        self._before: dict[str, QueryStats] = {}
        self._pool_before = self.db.figures()
        self._started = time.monotonic()
        self._started_at = time.time()

    def __enter__(self) -> Load:
        self.observer.__enter__()
        self._watcher = gevent.spawn(self._watch_pool)
        self._prober = gevent.spawn(self._probe_lag)
        return self

    def __exit__(self, *exc: object) -> None:
        self._watcher.kill()
        self._prober.kill()
        self.observer.__exit__(*exc)
        if self.cache is not None:
            self.cache.close()
        self.db.close()

    def _probe_lag(self) -> None:
        """How long a greenlet that is ready now waits before it runs: a yield to the
        back of the queue, timed, every LAG_PROBE_S. Each statement's answer meets
        the same wait before its user runs again."""
        while True:
            t0 = time.perf_counter_ns()
            gevent.sleep(0)
            self.lag.record_value((time.perf_counter_ns() - t0) // 1000)
            gevent.sleep(LAG_PROBE_S)

    def _watch_pool(self) -> None:
        while True:
            f = self.db.figures()
            self.peak["in_use"] = max(self.peak["in_use"], f.in_use)
            self.peak["waiting"] = max(self.peak["waiting"], f.waiting)
            gevent.sleep(0.05)

    def measure(self) -> None:
        """The warm-up ends: settle, forget what it did, and start measuring."""
        self.phase.settle()
        self.measures.reset()
        if self.cache is not None:
            self.cache.reset_counts()
            self._outages_before = self.cache.outage_figures()
        self.peak.update(in_use=0, waiting=0)
        self.lag.reset()
        self._before = {q.fingerprint: q for q in self.observer.snapshot().queries}
        self._pool_before = self.db.figures()
        self._started = time.monotonic()
        self._started_at = time.time()
        self.phase.measure()

    def result(self) -> Snapshot:
        """The measurement ends: users start nothing more; what was measured, as a Snapshot
        of the measured window (its queries, cache and pool counted from `measure`)."""
        elapsed = time.monotonic() - self._started
        self.phase.done = True
        snap = self.observer.snapshot()
        figures = self.db.figures()
        queries = [q.since(self._before.get(q.fingerprint)) for q in snap.queries]
        before = self._pool_before
        m = self.measures
        steps, step_errors = m.timeline.encoded()
        snap.queries = [q for q in queries if q.count]
        snap.load = LoadRun(
            self.scenario.name,
            users=self.users,
            seconds=round(elapsed, 3),
            warmup_s=self.warmup_s,
            operations={
                op: OperationStats(
                    op,
                    m.errors[op],
                    m.causes.get(op),
                    hdr.encode(h),
                    dict(m.kinds[op]),
                    *m.phases_of(op),
                )
                for op, h in m.histograms.items()
            },
            pool=LoadPool(
                max_size=figures.max_size,
                peak_in_use=self.peak["in_use"],
                peak_waiting=self.peak["waiting"],
                requests=figures.requests - before.requests,
                requests_queued=figures.requests_queued - before.requests_queued,
                wait_ms_total=figures.wait_ms_total - before.wait_ms_total,
                timeouts=figures.timeouts - before.timeouts,
            ),
            faults=self._faults(figures),
            started_at=self._started_at,
            step_s=m.timeline.step_s,
            timeline=steps,
            timeline_errors=step_errors,
            scheduling=hdr.encode(self.lag),
        )
        return snap

    def _faults(self, figures: PoolFigures) -> Faults:
        """What the run rode through while measured: Redis outages, database reconnects."""
        before = self._pool_before
        outages = {"count": 0, "seconds": 0.0}
        if self.cache is not None:
            now, then = self.cache.outage_figures(), self._outages_before
            outages = {k: now[k] - then[k] for k in outages}
        return Faults(
            redis_outages=int(outages["count"]),
            redis_outage_s=round(outages["seconds"], 3),
            db_connections_lost=figures.connections_lost - before.connections_lost,
            db_connection_errors=figures.connections_errors - before.connections_errors,
        )


def run(
    path: Path, users: int, spawn_rate: float, duration_s: float, warmup_s: float, seed: int
) -> Snapshot:
    """Alone, with locust's local runner."""
    with Load(path, seed) as load:
        load.users, load.warmup_s = users, warmup_s
        env = Environment(user_classes=[load.user], events=locust.events)
        runner = env.create_local_runner()
        runner.start(users, spawn_rate=spawn_rate)
        gevent.sleep(warmup_s)
        load.measure()
        gevent.sleep(duration_s)
        result = load.result()
        load.phase.drain()
        runner.quit()
        return result


class _Absent(locust.User):
    """Stands in for the scenario's users when a worker joins only to say it failed."""

    @locust.task
    def nothing(self) -> None:  # pragma: no cover - never spawned
        raise RuntimeError("a failed worker runs no users")


_Absent.__name__ = USER_CLASS


def tell_master(master_host: str, master_port: int, error: str) -> None:
    """Join just long enough to pass on why this worker cannot run; then the master stops
    at once with these words instead of waiting out its timeout for a worker that died."""
    try:
        env = Environment(user_classes=[_Absent], events=locust.events)
        runner = env.create_worker_runner(master_host, master_port)
        runner.send_message(FAILED, {"error": error})
        gevent.sleep(0.5)  # the message is sent from a greenlet; let it leave
        runner.quit()
    except Exception:
        pass


def join(path: Path, master_host: str, master_port: int, seed: int) -> None:
    """As a locust worker of a `wcperf.load.master`, until it says quit."""
    try:
        load = Load(path, seed)
    except Exception as exc:
        tell_master(master_host, master_port, error_cause(exc))
        raise
    with load:
        env = Environment(user_classes=[load.user], events=locust.events)
        runner = env.create_worker_runner(master_host, master_port)

        def on_measure(environment: Any, msg: Any) -> None:
            load.warmup_s = float(msg.data["warmup_s"])
            load.measure()

        def on_check(environment: Any, msg: Any) -> None:
            runner.send_message(CHECKED, {"same": msg.data["digest"] == load.scenario.digest})

        def on_report(environment: Any, msg: Any) -> None:
            load.users = runner.user_count  # what locust gave this worker, all spawned by now
            result = load.result()
            load.phase.drain()  # before the master's quit stops the users
            runner.send_message(RESULT, result.to_dict())

        runner.register_message(CHECK, on_check)
        runner.register_message(MEASURE, on_measure, concurrent=True)
        runner.register_message(REPORT, on_report, concurrent=True)
        runner.greenlet.join()


def main() -> None:
    orphan.guard()
    role, path = sys.argv[1], Path(sys.argv[2])
    if role == "join":
        join(path, sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    out = Path(sys.argv[3])
    users, spawn_rate = int(sys.argv[4]), float(sys.argv[5])
    duration_s, warmup_s, seed = float(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8])
    out.write_text(run(path, users, spawn_rate, duration_s, warmup_s, seed).to_json())


if __name__ == "__main__":
    main()
