"""Replaying a scenario: worker processes, their results merged exactly, figures, verdict.

The load runs in worker processes (`wcperf.load.worker`), never in the caller:
gevent must patch before psycopg is imported, and the caller has imported it.
One process runs alone; several run in locust's distributed mode, a
`wcperf.load.master` spreading the users over workers here (`--processes`) or on
other machines (`--master` / `--worker`). Each worker's HDR histograms (per
operation and per SQL fingerprint) are merged bucket by bucket, so percentiles
over all processes are exact, not averages.
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
from typing import Any

from hdrh.histogram import HdrHistogram

from wcperf.errors import WcperfError
from wcperf.load import orphan
from wcperf.load.scenario import Scenario
from wcperf.observe import histogram as hdr
from wcperf.settings import PortSettings

PERCENTILES = (50, 95, 99)


def _figures(h: HdrHistogram, count: int, errors: int, seconds: float) -> dict[str, Any]:
    return {
        "count": count,
        "errors": errors,
        "rps": round(count / seconds, 1) if seconds else 0.0,
        **{f"p{p}_ms": hdr.percentile_ms(h, p) for p in PERCENTILES},
        "max_ms": h.get_max_value() / 1000 if count else 0.0,
        "hdr": hdr.encode(h),
    }


def merge(parts: list[dict[str, Any]], scenario: Scenario, processes: int) -> dict[str, Any]:
    """The workers' results as one: histograms merged exactly, counts and peaks added."""
    seconds = max(p["seconds"] for p in parts)
    ops: dict[str, tuple[HdrHistogram, int]] = {}
    causes: dict[str, str] = {}
    for part in parts:
        for op, r in part["operations"].items():
            h, errs = ops.get(op, (hdr.new_histogram(), 0))
            h.add(hdr.decode(r["hdr"]))
            ops[op] = (h, errs + r["errors"])
            if r.get("cause"):
                causes.setdefault(op, r["cause"])
    operations = {
        op: _figures(h, h.get_total_count(), errs, seconds)
        | ({"first_error": causes[op]} if op in causes else {})
        for op, (h, errs) in ops.items()
    }
    overall = hdr.new_histogram()
    for h, _ in ops.values():
        overall.add(h)
    total_errors = sum(e for _, e in ops.values())
    queries: dict[str, dict[str, Any]] = {}
    for part in parts:
        for q in part["queries"]:
            into = queries.setdefault(
                q["fingerprint"],
                {"normalized": q["normalized"], "count": 0, "errors": 0, "h": hdr.new_histogram()},
            )
            into["count"] += q["count"]
            into["errors"] += q["errors"]
            into["h"].add(hdr.decode(q["hdr"]))
    cache = {"hits": 0, "misses": 0}
    for part in parts:
        for k in cache:
            cache[k] += int((part.get("cache") or {}).get(k, 0))
    lookups = cache["hits"] + cache["misses"]
    pool = {
        "processes": processes,
        "max_size": sum(p["pool"]["max_size"] for p in parts),
        "peak_in_use": sum(p["pool"]["peak_in_use"] for p in parts),
        "peak_waiting": sum(p["pool"]["peak_waiting"] for p in parts),
        "requests_queued": sum(p["pool"]["requests_queued"] for p in parts),
        "timeouts": sum(p["pool"]["timeouts"] for p in parts),
    }
    queued = pool["requests_queued"]
    pool["mean_wait_ms"] = (
        round(sum(p["pool"]["wait_ms_total"] for p in parts) / queued, 1) if queued else 0.0
    )
    pool["peak_utilisation_pct"] = round(100 * pool["peak_in_use"] / pool["max_size"], 1)
    count = overall.get_total_count()
    return {
        "scenario": scenario.name,
        "users": sum(p["users"] for p in parts),
        "processes": processes,
        "seconds": seconds,
        "warmup_s": scenario.warmup_s,
        "overall": {
            **_figures(overall, count, total_errors, seconds),
            "error_pct": round(100 * total_errors / count, 3) if count else 0.0,
        },
        "operations": operations,
        "queries": sorted(
            (
                {"fingerprint": fp, "normalized": q["normalized"]}
                | _figures(q["h"], q["count"], q["errors"], seconds)
                for fp, q in queries.items()
            ),
            key=lambda q: q["count"],
            reverse=True,
        ),
        "cache": {
            **cache,
            "hit_rate_pct": round(100 * cache["hits"] / lookups, 1) if lookups else None,
        },
        "pool": pool,
        "n_plus_one": [n for p in parts for n in p["n_plus_one"]],
        "faults": {
            key: round(sum(float((p.get("faults") or {}).get(key, 0)) for p in parts), 3)
            for key in FAULTS
        },
    }


FAULTS = ("redis_outages", "redis_outage_s", "db_connections_lost", "db_connection_errors")


def faults_line(faults: dict[str, float]) -> str | None:
    """What a run rode through, as one sentence of figures; None when nothing happened."""
    said = []
    if faults.get("redis_outages"):
        said.append(
            f"Redis unreachable {faults['redis_outages']:g} time(s), "
            f"{faults['redis_outage_s']:.1f} s in all (served from L1 and the database)"
        )
    if faults.get("db_connections_lost") or faults.get("db_connection_errors"):
        said.append(
            f"{faults['db_connections_lost']:g} database connection(s) lost and replaced, "
            f"{faults['db_connection_errors']:g} failed connection attempt(s)"
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
) -> dict[str, Any]:
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
            parts = [json.loads(out.read_text())]
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
            parts = json.loads(out.read_text())
    return merge(parts, scenario, len(parts))


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
