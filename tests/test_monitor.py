"""Publishing and merging across processes, Prometheus, and `wcperf monitor`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis as redis_lib
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, run_cli
from wcperf.db import admin
from wcperf.errors import ConfigError
from wcperf.observe.collect import collect
from wcperf.observe.fingerprint import fingerprint
from wcperf.observe.prometheus import check_bind, exposition, server
from wcperf.observe.query_monitor import QueryMonitor
from wcperf.observe.snapshot import CacheFigures, CacheTier, Snapshot
from wcperf.observe.targets import Targets

PUBLISHER = """
import sys
from sqlalchemy import text
from wcperf.db.engine import Database
from wcperf.observe.observer import Observer
from wcperf.settings import Settings

url, redis_url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
settings = Settings.from_env(command="test-publisher")
with Database(url, settings) as db:
    observer = Observer(db, settings, redis_url=redis_url).start()
    with db.engine.connect() as conn:
        for i in range(n):
            conn.execute(text("select CAST(:i AS int) + 1"), {"i": i})
    observer.publish()  # its figures now hold every statement above
    print(observer.source, flush=True)
    sys.stdin.read()  # still running (and publishing) until the test has looked
    observer.stop()
"""
STATEMENT = fingerprint("select CAST(%(i)s AS int) + 1")


@contextmanager
def _publishing(database_url: str, redis_url: str, prefix: str, n: int) -> Iterator[str]:
    """A live process that ran `n` statements and keeps publishing while the test looks.

    Its snapshot key lives a few seconds past each publish, so a process that had
    already exited could vanish before a slow CLI child started; this one does not.
    """
    env = {**os.environ, "WCPERF_REDIS_PREFIX": prefix}
    child = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, database_url, redis_url, str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert child.stdout is not None
    source = child.stdout.readline().strip()  # empty when the child failed: its stderr says why
    try:
        if source:
            yield source
    finally:
        _, errors = child.communicate(timeout=60)  # closes stdin: the child stops
    assert source and child.returncode == 0, errors


def test_two_publishing_processes_are_merged(
    database_url: str, redis_url: str, redis_prefix: str
) -> None:
    with (
        _publishing(database_url, redis_url, redis_prefix, 30) as one,
        _publishing(database_url, redis_url, redis_prefix, 45) as two,
    ):
        sources = {one, two}
        assert len(sources) == 2
        client = redis_lib.Redis.from_url(redis_url)
        with admin.connect(database_url, autocommit=True) as conn:
            snap = collect(conn, client, redis_prefix, Targets())
        client.close()
    assert {s.name for s in snap.sources} == sources
    assert len(snap.pools) == 2
    (stats,) = [q for q in snap.queries if q.fingerprint == STATEMENT.id]
    assert stats.count == 75
    assert stats.hdr.get_total_count() == 75  # histograms merged, not averaged
    assert stats.buckets["fast"] + stats.buckets["medium"] == 75
    assert snap.database is not None and snap.database.redis is not None
    # Each process ran its loop from one call site: an N+1 pattern in both.
    assert {d.source for d in snap.n_plus_one} == sources


def test_exposition_parses_and_carries_the_figures() -> None:
    m = QueryMonitor()
    for us in (400, 900, 1_500, 120_000, 2_000_000, 11_000_000):
        m.record("select * from students where id = %(id)s", us)
    snap = Snapshot(
        taken_at=0,
        queries=m.queries(),
        cache=CacheFigures(hits=9, misses=1, tiers={"l1": CacheTier(hits=9, misses=1)}),
    )
    families = {f.name: f for f in text_string_to_metric_families(exposition(lambda: snap))}
    (count,) = families["wcperf_queries"].samples
    assert count.name == "wcperf_queries_total" and count.value == 6
    assert count.labels["table"] == "students"
    samples = families["wcperf_query_duration_seconds"].samples
    buckets = {s.labels["le"]: s.value for s in samples if s.name.endswith("_bucket")}
    assert buckets == {  # 0.5 ms to 10 s, cumulative, the 11 s statement only in +Inf
        "0.0005": 1, "0.001": 2, "0.0025": 3, "0.005": 3, "0.01": 3, "0.025": 3,
        "0.05": 3, "0.1": 3, "0.25": 4, "0.5": 4, "1.0": 4, "2.5": 5, "5.0": 5,
        "10.0": 5, "+Inf": 6,
    }  # fmt: skip
    (total,) = [s for s in samples if s.name.endswith("_sum")]
    assert total.value == pytest.approx(13.1228, rel=0.001)  # seconds, the base unit
    assert "wcperf_query_latency_seconds" not in families  # no quantile label on a gauge
    lookups = {s.labels["result"]: s.value for s in families["wcperf_cache_lookups"].samples}
    assert lookups == {"hit": 9, "miss": 1}
    (info,) = families["wcperf_build_info"].samples
    assert info.value == 1 and info.labels["version"]


def test_serve_requires_a_token_off_localhost_and_checks_it() -> None:
    with pytest.raises(ConfigError, match="--token"):
        check_bind("0.0.0.0", None)
    check_bind("127.0.0.1", None)
    httpd = server(lambda: Snapshot(taken_at=0), "127.0.0.1", 0, "s3cret")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_port}/metrics"
    try:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(url, timeout=5)
        assert info.value.code == 401
        request = urllib.request.Request(url, headers={"Authorization": "Bearer s3cret"})
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read().decode()
        assert "wcperf_publishers" in {f.name for f in text_string_to_metric_families(body)}
    finally:
        httpd.shutdown()
        httpd.server_close()
    refused = run_cli("monitor", "serve", "--host", "0.0.0.0")
    assert refused.returncode == 2 and "--token" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_monitor_live_once_renders_the_tables(
    database_url: str, redis_url: str, redis_prefix: str
) -> None:
    with _publishing(database_url, redis_url, redis_prefix, 12) as source:
        result = run_cli(
            "--database-url",
            database_url,
            "--redis-url",
            redis_url,
            "monitor",
            "live",
            "--once",
            env={"WCPERF_REDIS_PREFIX": redis_prefix},
        )
    assert result.returncode == 0, result.stderr
    for title in (
        "connection pools",
        "query percentiles",
        "query cache",
        "alerts",
        "connections as the server sees them",
    ):
        assert title in result.stdout
    assert source in result.stdout
    assert STATEMENT.normalized in result.stdout
    assert "\x1b[" not in result.stdout  # NO_COLOR and not a terminal: plain text


def test_snapshot_json_without_redis_still_shows_the_database(database_url: str) -> None:
    result = run_cli(
        "--database-url",
        database_url,
        "--redis-url",
        "redis://127.0.0.1:1/0",
        "monitor",
        "snapshot",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert any("Redis unreachable" in n for n in data["notes"])
    assert data["database"]["activity"] is not None
    assert data["sources"] == []
    assert data["trends"]["p99_ms"]["trend"] == "unknown"  # a fresh monitor, no history
    assert data["trend_rule"].startswith("the mean of the last 5 minutes")


def test_the_server_side_pool_names_each_application_and_client(scratch_url: str) -> None:
    """Idle, idle in transaction (and for how long), waiting on a lock, and the
    headroom left to max_connections, as pg_stat_activity says."""
    opened = []
    blocked: threading.Thread | None = None

    def session(app: str):
        conn = admin.connect(scratch_url, application_name=app, autocommit=True)
        opened.append(conn)
        return conn

    try:
        session("clinic-idle"), session("clinic-idle")
        holder = session("clinic-holder")
        holder.execute("create table wcperf_lock_probe (id int)")
        holder.autocommit = False
        holder.execute("lock table wcperf_lock_probe in access exclusive mode")  # idle in xact
        waiter = session("clinic-waiter")
        blocked = threading.Thread(
            target=lambda: waiter.execute("select count(*) from wcperf_lock_probe"), daemon=True
        )
        blocked.start()
        monitor = admin.connect(scratch_url, autocommit=True)
        opened.append(monitor)
        deadline = time.monotonic() + 10
        while True:
            view = collect(monitor, None, "x:", Targets()).database
            assert view is not None
            clients = {c.application: c for c in view.clients}
            waiting = clients.get("clinic-waiter")
            if waiting is not None and waiting.waiting_on_locks == 1:
                break
            assert time.monotonic() < deadline, view.clients
            time.sleep(0.1)
        time.sleep(1.0)
        view = collect(monitor, None, "x:", Targets()).database
        clients = {c.application: c for c in view.clients}
        assert (clients["clinic-idle"].sessions, clients["clinic-idle"].idle) == (2, 2)
        assert clients["clinic-idle"].client in ("127.0.0.1", "::1", "local")
        holder_row = clients["clinic-holder"]
        assert holder_row.idle_in_transaction == 1
        assert holder_row.longest_idle_in_transaction_s >= 1.0
        assert clients["clinic-waiter"].waiting_on_locks == 1
        assert clients["clinic-waiter"].active == 0  # waiting is not working
        assert view.max_connections > 0 and view.connections >= 5
        assert view.headroom == view.max_connections - view.reserved_connections - view.connections
        snap = Snapshot.from_json(Snapshot(taken_at=0, database=view).to_json())
        assert snap.database is not None and snap.database.clients == view.clients
    finally:
        for conn in opened[2:3]:  # the holder: let the waiter through first
            conn.rollback()
        if blocked is not None:
            blocked.join(10)
        for conn in opened:
            conn.close()
