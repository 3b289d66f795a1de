"""Replaying a scenario: worker processes, and their Snapshots merged exactly into one.

The load runs in worker processes (`wcperf.load.worker`), never in the caller:
gevent must patch before psycopg is imported, and the caller has imported it.
One process runs alone; several run in locust's distributed mode, a
`wcperf.load.master` spreading the users over workers here (`--processes`) or on
other machines (`--master` / `--worker`). Each worker's HDR histograms (per
operation and per SQL fingerprint) are merged bucket by bucket, so percentiles
over all processes are exact, not averages (`wcperf.observe.snapshot.merge`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wcperf.errors import WcperfError
from wcperf.load import orphan
from wcperf.load.scenario import Scenario
from wcperf.observe.snapshot import Faults, Snapshot, merge
from wcperf.settings import PortSettings


def faults_line(faults: Faults) -> str | None:
    """What a run rode through, as one sentence of figures; None when nothing happened."""
    said = []
    if faults.redis_outages:
        said.append(
            f"Redis unreachable {faults.redis_outages:g} time(s), "
            f"{faults.redis_outage_s:.1f} s in all (served from L1 and the database)"
        )
    if faults.db_connections_lost or faults.db_connection_errors:
        said.append(
            f"{faults.db_connections_lost:g} database connection(s) lost and replaced, "
            f"{faults.db_connection_errors:g} failed connection attempt(s)"
        )
    return "rode through: " + "; ".join(said) if said else None


DEFAULT_PORT = PortSettings().load_master  # locust's


@dataclass(frozen=True)
class Master:
    """Where a master listens, and how many workers from other machines it waits for."""

    host: str
    port: int = DEFAULT_PORT
    expect: int = 1
    wait_s: float = 300.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Processes:
    """Child processes, each logging to a file; any failure stops them all."""

    def __init__(self, tmp: str, env: dict[str, str]) -> None:
        self.tmp, self.env = Path(tmp), orphan.child_env(env, Path(tmp))
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.relayed: dict[Path, int] = {}

    def start(self, module: str, *args: object, relay: bool = False) -> None:
        """`relay`: echo the child's own "wcperf ...:" lines (a master's progress) to stderr."""
        path = self.tmp / f"{module.rsplit('.', 1)[1]}-{len(self.procs)}.log"
        with path.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", module, *map(str, args)],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                preexec_fn=orphan.preexec(),
            )
        self.procs.append((proc, path))
        if relay:
            self.relayed[path] = 0

    def _relay(self) -> None:
        for path, seen in self.relayed.items():
            lines = path.read_text(errors="replace").splitlines()
            for line in lines[seen:]:
                if line.startswith("wcperf "):
                    print(line, file=sys.stderr, flush=True)
            self.relayed[path] = len(lines)

    def wait(self, tick: Callable[[float], None] | None) -> None:
        started = time.monotonic()
        try:
            while any(p.poll() is None for p, _ in self.procs):
                self._relay()
                failed = [(p, log) for p, log in self.procs if p.returncode not in (None, 0)]
                if failed:
                    self._raise(*failed[0])
                if tick is not None:
                    tick(time.monotonic() - started)
                time.sleep(0.25)
        finally:
            self.stop()
        failed = [(p, log) for p, log in self.procs if p.returncode != 0]
        if failed:
            self._raise(*failed[0])

    def _raise(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.stop()
        lines = log.read_text(errors="replace").strip().splitlines()
        raise WcperfError(
            f"a load process failed (exit {proc.returncode}): "
            + (lines[-1] if lines else "no message")
        )

    def stop(self) -> None:
        for p, _ in self.procs:
            if p.poll() is None:
                p.terminate()
        for p, _ in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def replay(
    scenario: Scenario,
    database_url: str,
    *,
    processes: int = 1,
    seed: int = 1,
    env: dict[str, str] | None = None,
    tick: Callable[[float], None] | None = None,
    master: Master | None = None,
) -> Snapshot:
    """Run the scenario and return the merged result: in one process, in `processes` local
    workers under a local master, or under a master that waits for workers elsewhere."""
    if scenario.path is None:
        raise WcperfError("a scenario to replay must come from a file")
    if master is None and not 1 <= processes <= scenario.users:
        raise WcperfError(f"--processes must be between 1 and the {scenario.users} users")
    child_env = {**os.environ, **(env or {}), "WCPERF_DATABASE_URL": database_url}
    s = scenario
    with tempfile.TemporaryDirectory(prefix="wcperf-load-") as tmp:
        out = Path(tmp) / "result.json"
        children = _Processes(tmp, child_env)
        if master is None and processes == 1:
            children.start(
                "wcperf.load.worker", "local", s.path, out, s.users, s.spawn_rate,
                s.duration_s, s.warmup_s, seed * 1000,
            )  # fmt: skip
            children.wait(tick)
            parts = [Snapshot.from_json(out.read_text())]
        else:
            local = master is None
            m = master or Master("127.0.0.1", _free_port(), processes, wait_s=60)
            children.start(
                "wcperf.load.master", s.path, out, s.users, s.spawn_rate, s.duration_s,
                s.warmup_s, m.expect, m.host, m.port, m.wait_s, relay=not local,
            )  # fmt: skip
            if local:
                for i in range(processes):
                    seed_i = seed * 1000 + i
                    children.start("wcperf.load.worker", "join", s.path, m.host, m.port, seed_i)
            children.wait(tick)
            parts = [Snapshot.from_dict(p) for p in json.loads(out.read_text())]
    merged = merge(parts, time.time())
    if merged.load is None:
        raise WcperfError("the load processes sent no measurement")
    return merged


def join(
    scenario: Scenario,
    database_url: str,
    master: tuple[str, int],
    *,
    processes: int = 1,
    seed: int = 1,
    env: dict[str, str] | None = None,
) -> None:
    """Run `processes` workers of a master on another machine, until it ends the test."""
    if scenario.path is None:
        raise WcperfError("a scenario to replay must come from a file")
    child_env = {**os.environ, **(env or {}), "WCPERF_DATABASE_URL": database_url}
    with tempfile.TemporaryDirectory(prefix="wcperf-load-") as tmp:
        children = _Processes(tmp, child_env)
        for i in range(processes):
            children.start("wcperf.load.worker", "join", scenario.path, *master, seed * 1000 + i)
        children.wait(None)
