"""The master of a distributed load test: locust's MasterRunner, and wcperf's timing.

    python -m wcperf.load.master SCENARIO.toml RESULT.json USERS SPAWN_RATE DURATION_S \
        WARMUP_S EXPECT_WORKERS BIND_HOST BIND_PORT WAIT_S

Workers (`python -m wcperf.load.worker join ...`, here or on other machines) connect
to it; locust spreads the users over them. The master runs no users and opens no
database connection: it waits for EXPECT_WORKERS, checks that they all run the
same tasks and think time as it was given, starts the users, tells every
worker when the warm-up ends (each then settles and starts measuring) and, after
DURATION_S, asks each for its result: histograms, not locust's rounded figures,
so the caller merges them exactly. RESULT.json is the list of the workers' parts.
"""

from __future__ import annotations

from wcperf.load import orphan

orphan.arm()  # before the slow imports, as in wcperf.load.worker

import json
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import locust  # patches the standard library before wcperf's modules bring psycopg
from locust.env import Environment
from locust.runners import STATE_MISSING

from wcperf.load import scenario as scenarios
from wcperf.load.worker import CHECK, CHECKED, FAILED, MEASURE, REPORT, RESULT, USER_CLASS


class _Placeholder(locust.User):
    """The master dispatches users by class name and weight; it never runs one."""

    abstract = False

    @locust.task
    def nothing(self) -> None:  # pragma: no cover - only workers run users
        raise RuntimeError("the master runs no users")


_Placeholder.__name__ = USER_CLASS


def say(text: str) -> None:
    print(f"wcperf master: {text}", file=sys.stderr, flush=True)


class _Roll:
    """Which workers came, which left, and what a failing one said before it went.

    locust drops a worker that sends "quit" at once and one that stops sending
    heartbeats within about three seconds; either way it leaves `runner.clients`.
    """

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.seen: set[str] = set()
        self.failures: dict[str, str] = {}

    def on_failed(self, environment: Any, msg: Any) -> None:
        self.failures[msg.node_id] = str(msg.data.get("error") or "no message")

    def check(self, when: str) -> None:
        """Stop the run at once, with the worker's own words, if one has failed or left."""
        present = {c.id for c in self.runner.clients.all if c.state != STATE_MISSING}
        self.seen |= present
        failed = next(iter(self.failures.items()), None)
        if failed is not None:
            self.runner.quit()
            raise SystemExit(f"a worker failed {when}: {failed[1]}")
        gone = self.seen - present
        if gone:
            self.runner.quit()
            raise SystemExit(
                f"{len(gone)} of {len(self.seen)} worker(s) left {when} (killed, or lost"
                " their connection); their figures would be missing, so the run fails"
            )

    def sleep(self, seconds: float, when: str) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.check(when)
            gevent.sleep(min(0.1, left))


def run(
    path: Path,
    users: int,
    spawn_rate: float,
    duration_s: float,
    warmup_s: float,
    expect: int,
    bind_host: str,
    bind_port: int,
    wait_s: float,
) -> list[dict[str, Any]]:
    s = scenarios.load(path)
    env = Environment(user_classes=[_Placeholder], events=locust.events, stop_timeout=5)
    runner = env.create_master_runner(bind_host, bind_port)
    parts: dict[str, dict[str, Any]] = {}

    def on_result(environment: Any, msg: Any) -> None:
        parts[msg.node_id] = msg.data

    checked: dict[str, bool] = {}

    def on_checked(environment: Any, msg: Any) -> None:
        checked[msg.node_id] = bool(msg.data["same"])

    roll = _Roll(runner)
    runner.register_message(RESULT, on_result)
    runner.register_message(CHECKED, on_checked)
    runner.register_message(FAILED, roll.on_failed)
    say(f"waiting for {expect} worker(s) on {bind_host}:{bind_port}")
    deadline = time.monotonic() + wait_s
    while runner.worker_count < expect:
        roll.check("before the start")
        if time.monotonic() > deadline:
            runner.quit()
            raise SystemExit(f"only {runner.worker_count} of {expect} workers connected")
        gevent.sleep(0.1)
    # Asked again each second until all answer: a worker counts as connected before it
    # has registered its handler, and a check that reaches it earlier is dropped.
    deadline = time.monotonic() + 30
    asked = 0.0
    while len(checked) < runner.worker_count and time.monotonic() < deadline:
        roll.check("before the start")
        if time.monotonic() - asked >= 1.0:
            runner.send_message(CHECK, {"digest": s.digest})
            asked = time.monotonic()
        gevent.sleep(0.05)
    if not all(checked.values()):
        runner.quit()
        raise SystemExit("a worker's scenario differs from the master's (tasks or think time)")
    if len(checked) < runner.worker_count:
        runner.quit()
        raise SystemExit(f"{runner.worker_count - len(checked)} worker(s) did not answer")
    workers = runner.worker_count  # a worker lost from here on fails the run, not its figures
    say(f"{workers} worker(s) connected; starting {users} users")
    runner.start(users, spawn_rate=spawn_rate)
    roll.sleep(warmup_s, "mid-run")
    runner.send_message(MEASURE, {"warmup_s": warmup_s})
    roll.sleep(duration_s, "mid-run")
    runner.send_message(REPORT)
    deadline = time.monotonic() + 60
    while len(parts) < min(workers, runner.worker_count) and time.monotonic() < deadline:
        gevent.sleep(0.05)  # locust drops a worker that missed its heartbeats
    runner.quit()
    if len(parts) < workers:
        raise SystemExit(f"only {len(parts)} of {workers} workers sent their result")
    return list(parts.values())


def main() -> None:
    orphan.guard()
    a = sys.argv[1:]
    try:
        parts = run(
            Path(a[0]),
            int(a[2]),
            float(a[3]),
            float(a[4]),
            float(a[5]),
            int(a[6]),
            a[7],
            int(a[8]),
            float(a[9]),
        )
    except SystemExit as stop:
        if isinstance(stop.code, str):
            say(stop.code)
            raise SystemExit(2) from None
        raise
    Path(a[1]).write_text(json.dumps(parts))


if __name__ == "__main__":
    main()
