"""A load run as a library call: replay a scenario, judge it, derive its document, and
write its reports; progress comes from the workers' published Snapshots.

`wcperf loadtest run` parses its flags, calls `run` (or `join` for a worker of a master
elsewhere) and renders the `Outcome`; tests and Python code call the same functions.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wcperf.errors import ConfigError
from wcperf.load.meta import describe, finish
from wcperf.load.replay import Master, faults_line, replay
from wcperf.load.replay import join as join_master
from wcperf.load.report import csv_files, html
from wcperf.load.result import document
from wcperf.load.scenario import Scenario
from wcperf.load.verdict import Verdict, judge
from wcperf.observe import histogram as hdr
from wcperf.observe.collect import published
from wcperf.observe.snapshot import Snapshot, merge
from wcperf.redact import mask, shown


@dataclass(frozen=True)
class Outcome:
    snapshot: Snapshot  # every worker's measured window, merged exactly
    verdict: Verdict
    document: dict[str, Any]  # what --json writes

    @property
    def faults(self) -> str | None:
        return faults_line(self.snapshot.load.faults) if self.snapshot.load else None


def writable(flag: str, path: Path | None) -> None:
    """Refuse an output path that cannot be written, before the work that fills it."""
    if path is None:
        return
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ConfigError(f"{flag} {shown(path)} is a folder; give a file name")
    if not folder.is_dir():
        raise ConfigError(f"{flag} {shown(path)}: the folder {shown(folder)} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"{flag} {shown(path)}: not writable")


def run(
    scenario: Scenario,
    database_url: str,
    *,
    processes: int = 1,
    seed: int = 1,
    master: Master | None = None,
    redis_url: str | None = None,
    redis_prefix: str = "wcperf:",
    progress: Callable[[str], None] | None = None,
) -> Outcome:
    """Replay `scenario` (here, or under `master`), then judge the merged Snapshot against
    the scenario's targets. The workers use `redis_url`'s cache and publish there; with
    `progress`, a line of live figures every two seconds."""
    # The children resolve nothing themselves: they use the Redis the caller chose.
    env = {"REDIS_URL": redis_url} if redis_url else {}
    meta = describe(scenario, database_url, processes=processes, seed=seed)
    ticker = Ticker(
        redis_url, redis_prefix, scenario, progress, timed=master is None
    )  # a master's clock starts when its workers have come: no total to count towards
    try:
        snap = replay(
            scenario,
            database_url,
            processes=processes,
            seed=seed,
            tick=ticker if progress else None,
            master=master,
            env=env,
        )
    finally:
        ticker.close()
    verdict = judge(snap, scenario.targets, scenario.judged)
    if snap.load is not None:  # what the master gathered: users and processes it had
        meta |= {"users": snap.load.users, "processes": snap.load.processes}
    return Outcome(snap, verdict, document(snap, verdict, finish(meta)))


def join(
    scenario: Scenario,
    database_url: str,
    master: tuple[str, int],
    *,
    processes: int = 1,
    seed: int = 1,
    redis_url: str | None = None,
) -> None:
    """Run `processes` workers for a master elsewhere (it judges), until it ends the test."""
    env = {"REDIS_URL": redis_url} if redis_url else {}
    join_master(scenario, database_url, master, processes=processes, seed=seed, env=env)


def write_reports(
    outcome: Outcome,
    json_path: Path | None,
    html_path: Path | None,
    csv_prefix: Path | None = None,
) -> None:
    """Reports pass through the same masking as everything printed."""
    if json_path is not None:
        json_path.write_text(mask(json.dumps(outcome.document, indent=1)), encoding="utf-8")
    if html_path is not None:
        html_path.write_text(mask(html(outcome.document)), encoding="utf-8")
    if csv_prefix is not None:
        for path, body in csv_files(outcome.document, csv_prefix).items():
            path.write_text(mask(body), encoding="utf-8")


class Ticker:
    """A compact live line from the workers' published Snapshots, every two seconds."""

    def __init__(
        self,
        redis_url: str | None,
        prefix: str,
        s: Scenario,
        say: Callable[[str], None] | None,
        *,
        timed: bool = True,
    ) -> None:
        self.prefix, self.scenario, self.say, self.timed = prefix, s, say, timed
        self.command = f"loadtest:{s.name}"
        self.client: Any = None
        if redis_url and say is not None:
            import redis

            self.client = redis.Redis.from_url(redis_url, socket_timeout=0.5)
        self.last = (0.0, 0)

    def __call__(self, elapsed: float) -> None:
        if self.say is None or elapsed - self.last[0] < 2:
            return
        total = self.scenario.warmup_s + self.scenario.duration_s
        if self.timed:
            phase = " warming up" if elapsed < self.scenario.warmup_s else ""
            line = f"{elapsed:5.0f}/{total:.0f} s{phase}"
        else:
            line = f"{elapsed:5.0f} s"
        if self.client is not None:
            try:
                line += self._figures(elapsed)
            except Exception as exc:
                line += f" · (no live figures: {type(exc).__name__})"
        else:
            self.last = (elapsed, 0)
        self.say(line)

    def _figures(self, elapsed: float) -> str:
        snaps = [
            s
            for s in published(self.client, self.prefix)
            if any(src.command == self.command for src in s.sources)
        ]
        snap = merge(snaps, time.time())
        overall = snap.overall()
        count = overall.get_total_count()
        rate = (count - self.last[1]) / max(elapsed - self.last[0], 0.001)
        waiting = sum(p.waiting for p in snap.pools)
        self.last = (elapsed, count)
        return (
            f" · {rate:,.0f} queries/s · P99 {hdr.percentile_ms(overall, 99):.1f} ms"
            f" · pool waiting {waiting}"
        )

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
