"""Prometheus: the exposition promtool accepts, counters that survive process exits, the
shipped rules and dashboard, and a real Prometheus scraping `monitor serve` under load."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, SERVER_VARS, run_cli
from tests.test_loadtest import scenario
from tests.test_monitor import STATEMENT, _publishing
from wcperf.db import admin
from wcperf.load.replay import _free_port
from wcperf.observe.carry import Carry
from wcperf.observe.collect import Collector
from wcperf.observe.observer import snapshot_key
from wcperf.observe.prometheus import BUCKETS_S, Exporter, exposition
from wcperf.observe.query_monitor import QueryMonitor
from wcperf.observe.rules import render, rules
from wcperf.observe.snapshot import (
    Alert,
    CacheFigures,
    CacheTier,
    DatabaseView,
    JobState,
    NPlusOne,
    PoolStats,
    RedisServer,
    ServerLog,
    ServerQuery,
    Sessions,
    Snapshot,
    Source,
)
from wcperf.observe.targets import Targets

DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "wcperf-rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "wcperf-rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "wcperf-dashboard.json"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed: apt-get install prometheus (Debian's package)")
    return path


def _every_section() -> Snapshot:
    """A Snapshot with something in every section the exposition reads."""
    m = QueryMonitor()
    for us in (300, 800, 4_000, 70_000, 3_000_000):
        m.record("select * from students where id = %(id)s", us)
    now = time.time()
    return Snapshot(
        taken_at=now,
        sources=[Source("h:1", "loadtest:school-day", 1, now)],
        pools=[
            PoolStats(
                "h:1",
                10,
                2,
                3,
                2,
                1,
                0,
                20.0,
                100,
                0.1,
                0,
                "ok",
                0,
                None,
                requests_queued=3,
                wait_ms_total=12.5,
                role="loadtest school-day",
            )
        ],
        queries=m.queries(),
        n_plus_one=[NPlusOne("f", "select $1", "students", "x.py:1", 6, 1.0, now)],
        alerts=[Alert("warning", "p95", "P95 over target", 600, 500)],
        cache=CacheFigures(
            hits=9, misses=1, tiers={"l1": CacheTier(hits=9, misses=1, entries=3, bytes=100)}
        ),
        throttle={"job 12": JobState("grade_transition", "paused", "pool busy", 10, 100, 50)},
        database=DatabaseView(
            activity=[Sessions("platform", "active", 3)],
            connections=5,
            max_connections=100,
            reserved_connections=3,
            redis=RedisServer(used_memory=1024, keys=7),
            jobs={"aborted": 1, "done": 2},
            jobs_changed_at={"aborted": now, "done": now},
        ),
        server_log=ServerLog(
            "pg.json",
            queries=[
                ServerQuery(
                    "f",
                    "select $1",
                    "students",
                    "platform",
                    count=1,
                    total_us=2_000,
                    histogram=m.queries()[0].histogram,
                )
            ],
        ),
    )


def test_the_exposition_passes_promtool_check_metrics() -> None:
    promtool = _tool("promtool")
    body = exposition(lambda: _every_section())
    names = {f.name for f in text_string_to_metric_families(body)}
    assert {
        "wcperf_pool_wait_seconds",
        "wcperf_job_state",
        "wcperf_server_statement_duration_seconds",
        "wcperf_bulk_jobs",
        "wcperf_n_plus_one_patterns",
        "wcperf_redis_memory_bytes",
    } <= names
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == ""  # no lint at all
    # the check can fail: the old exposition's percentile gauge is what it refused
    gauge = "# HELP x_latency_seconds x\n# TYPE x_latency_seconds gauge\n"
    bad = body + gauge + 'x_latency_seconds{quantile="0.99"} 1\n'
    refused = subprocess.run(
        [promtool, "check", "metrics"], input=bad, capture_output=True, text=True, check=False
    )
    assert refused.returncode != 0


def test_carry_keeps_a_gone_process_counts_and_never_doubles_a_late_one() -> None:
    clock = [0.0]
    carry = Carry(forget_after_s=60, clock=lambda: clock[0])
    assert carry.update({"a": {"q": 10}, "b": {"q": 5}}) == {"q": 15}
    assert carry.update({"a": {"q": 12}}) == {"q": 17}  # b exited: its 5 stay
    assert carry.update({"a": {"q": 12}, "b": {"q": 8}}) == {"q": 20}  # b was only late
    assert carry.update({"a": {"q": 11}, "b": {"q": 8}}) == {"q": 20}  # a stale publish
    assert carry.update({"c": {"q": 1}}) == {"q": 21}  # a and b gone, c new
    clock[0] = 61
    assert carry.update({"c": {"q": 2}}) == {"q": 22}  # folded into the base for good
    assert carry.update({"a": {"q": 1}}) == {"q": 23}  # a new life of an old name adds


def test_counters_do_not_fall_when_a_publishing_process_exits(
    database_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis_lib.Redis.from_url(redis_url)
    with admin.connect(database_url, autocommit=True) as conn:
        collector = Collector(conn, client, redis_prefix, Targets())
        exporter = Exporter(collector.collect, lambda: collector.published)

        def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            return {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(exposition(exporter))
                if f.type in ("counter", "histogram")
                for s in f.samples
            }

        with _publishing(database_url, redis_url, redis_prefix, 40) as stays:
            with _publishing(database_url, redis_url, redis_prefix, 60) as leaves:
                both = scrape()
            client.delete(snapshot_key(redis_prefix, leaves))  # its key expired
            assert {s.name for s in collector.collect().sources} == {stays}
            after = scrape()
        client.close()
    statements = [k for k in both if k[0] == "wcperf_queries_total" and
                  ("fingerprint", STATEMENT.id) in k[1]]  # fmt: skip
    assert [both[k] for k in statements] == [100] == [after[k] for k in statements]
    fell = {k: (v, after.get(k)) for k, v in both.items() if after.get(k, -1) < v}
    assert fell == {}
    (count,) = [k for k in after if k[0] == "wcperf_query_duration_seconds_count"
                and ("fingerprint", STATEMENT.id) in k[1]]  # fmt: skip
    assert after[count] == 100


def test_the_shipped_rules_are_the_defaults_and_their_unit_tests_pass() -> None:
    promtool = _tool("promtool")
    assert RULES.read_text() == render(Targets()), "run: wcperf monitor rules -o " + str(RULES)
    checked = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", RULES_TEST.name],
        cwd=RULES_TEST.parent, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = {r["alert"] for g in rules(Targets())["groups"] for r in g["rules"] if "alert" in r}
    untested = {a for a in alerts if f"alertname: {a}\n" not in RULES_TEST.read_text()}
    assert untested <= {
        "WcperfServerStatementP95Slow",
        "WcperfServerStatementP99Slow",  # the same expression as P50's, one figure apart
    }


def test_monitor_rules_follows_the_targets_and_refuses_bad_ones(tmp_path: Path) -> None:
    written = tmp_path / "rules.yml"
    made = run_cli("monitor", "rules", "-o", str(written), env={"WCPERF_TARGETS": "p95_ms=300"})
    assert made.returncode == 0, made.stderr
    text = written.read_text()
    assert "wcperf:query_duration_seconds:p95_rate5m > 0.3\n" in text
    assert "p95_ms=300 (the rest SPEC.md's)" in text
    bad = run_cli("monitor", "rules", env={"WCPERF_TARGETS": "p95=3"})
    assert bad.returncode == 2 and "unknown target" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and bad.stdout == ""
    nowhere = run_cli("monitor", "rules", "-o", str(tmp_path / "no" / "such" / "r.yml"))
    assert nowhere.returncode == 2 and "--output" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr


# -- a real Prometheus ------------------------------------------------------------------


class _Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # Prometheus says why in its body
            raise AssertionError(f"{params}: {exc.read().decode()}") from None
        assert body["status"] == "success", body
        return body["data"]

    def value(self, expr: str, at: float | None = None) -> float | None:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        result = self.get("/api/v1/query", **params)["result"]
        if not result:
            return None
        assert len(result) == 1, (expr, result)
        return float(result[0]["value"][1])

    def wait(self, expr: str, until: Any, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.value(expr)
            if last is not None and until(last):
                return last
            time.sleep(0.5)
        raise AssertionError(f"{expr} never met the condition; last {last}")


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in SERVER_VARS}
    return {**base, "NO_COLOR": "1", **extra}


@contextmanager
def _child(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    with log.open("w") as out:
        child = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        try:
            yield
        finally:
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


@pytest.fixture
def prometheus_bin() -> str:
    return _tool("prometheus")


def test_a_real_prometheus_scrapes_serve_through_a_load_run(
    prometheus_bin: str, bulk_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    serve_port, prom_port = _free_port(), _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{json.dumps(str(RULES))}]\n"
        "scrape_configs:\n"
        f"  - job_name: wcperf\n    static_configs: [{{targets: ['127.0.0.1:{serve_port}']}}]\n"
    )
    env = _env(WCPERF_REDIS_PREFIX=redis_prefix)
    serve = [sys.executable, "-m", "wcperf", "-q", "--database-url", bulk_url,
             "--redis-url", redis_url, "monitor", "serve", "--port", str(serve_port)]  # fmt: skip
    prom = [prometheus_bin, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}"]  # fmt: skip
    api = _Prometheus(f"http://127.0.0.1:{prom_port}")
    with _child(serve, tmp_path / "serve.log", env), _child(prom, tmp_path / "prom.log"):
        deadline = time.monotonic() + 60
        while True:  # Prometheus up, and its first scrape of serve done
            try:
                if api.value('up{job="wcperf"}') == 1:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "prom.log").read_text()[-2000:]
            time.sleep(0.5)
        out = tmp_path / "result.json"
        path = scenario(tmp_path, "points", users=4, duration="8s", think=5)
        run = run_cli("-q", "--database-url", bulk_url, "--redis-url", redis_url, "loadtest",
                      str(path), "--processes", "2", "--warmup", "1s", "--json", str(out),
                      env={"WCPERF_REDIS_PREFIX": redis_prefix})  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        result = json.loads(out.read_text())
        query = result["queries"][0]  # the point read's statement
        fp = query["fingerprint"]
        total = f'sum(wcperf_queries_total{{fingerprint="{fp}"}})'
        # the workers exit; their keys expire (5 s); a few scrapes more without them
        api.wait('sum(wcperf_publishers{process="loadtest points"}) or vector(0)', lambda v: v == 0)
        time.sleep(3)
        end = time.time()
        final = api.value(total, end)
        assert final is not None and final >= query["count"]  # warm-up statements too
        assert api.value(f"max_over_time({total}[2m:1s])", end) == final  # it never fell
        cumulative = ("_total", "_bucket", "_count")
        names = api.get("/api/v1/label/__name__/values")
        counters = [n for n in names if n.startswith("wcperf_") and n.endswith(cumulative)]
        assert {"wcperf_queries_total", "wcperf_pool_acquisitions_total"} <= set(counters)
        fell = {n: api.value(f"sum(resets({n}[2m]))", end) for n in counters}
        assert set(fell.values()) <= {0.0, None}, fell  # no counter went backwards

        # rate(): where the counter grew, it grew at the rate the run itself measured
        series = api.get("/api/v1/query_range", query=total, start=end - 90, end=end, step=1)
        (points,) = [[(float(t), float(v)) for t, v in r["values"]] for r in series["result"]]
        growing = [
            t for (t, v), (_, before) in zip(points[1:], points[:-1], strict=True) if v > before
        ]
        middle = (growing[0] + growing[-1]) / 2
        rate = api.value(f'sum(rate(wcperf_queries_total{{fingerprint="{fp}"}}[4s]))', middle)
        assert rate is not None and rate == pytest.approx(query["rps"], rel=0.3), (rate, query)

        # histogram_quantile(): within a bucket of wcperf's exact (HDR) P99 over the run
        span = f"{int(end - growing[0] + 5)}s"
        p99 = api.value(
            "histogram_quantile(0.99, sum by (le) (increase("
            f'wcperf_query_duration_seconds_bucket{{fingerprint="{fp}"}}[{span}])))',
            end,
        )
        exact = query["p99_ms"] / 1000
        bounds = [0.0, *BUCKETS_S, math.inf]
        i = next(n for n, b in enumerate(bounds) if exact <= b)
        assert p99 is not None and bounds[max(i - 2, 0)] <= p99 <= bounds[i], (p99, exact)

        # every rule evaluates; every dashboard expression too, with data where a run shows
        groups = api.get("/api/v1/rules")["groups"]
        states = {r["name"]: r["health"] for g in groups for r in g["rules"]}
        assert len(states) == 23 and set(states.values()) == {"ok"}, states
        dashboard = json.loads(DASHBOARD.read_text())
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        assert len(exprs) > 25
        answered = 0
        for expr in exprs:
            text = expr.replace("$__rate_interval", "4s")
            data = api.get("/api/v1/query", query=text, time=middle)
            answered += bool(data["result"])
        assert answered >= len(exprs) // 2, answered  # pool, queries, cache, server all shown
        info = api.value("count(wcperf_build_info)", end)
        assert info == 1


def test_histogram_buckets_are_the_hdr_iterators_own_counts() -> None:
    """The vectorised buckets against HdrHistogram's recorded iterator, value by value."""
    import random

    from wcperf.observe import histogram as hdr
    from wcperf.observe.prometheus import bucket_counts

    rng = random.Random(16)
    for _ in range(10):
        h = hdr.new_histogram()
        values = [int(rng.lognormvariate(rng.uniform(4, 14), 2)) + 1 for _ in range(2_000)]
        for v in [*values, 500, 1_000, 2_500, 10_000_000, 11_000_000]:  # on the bounds too
            h.record_value(min(v, hdr.HIGHEST_US))
        expected = [0] * len(BUCKETS_S)
        for item in h.get_recorded_iterator():
            low = h.get_lowest_equivalent_value(item.value_iterated_to)
            for i, bound in enumerate(BUCKETS_S):
                if low <= bound * 1_000_000:
                    expected[i] += item.count_at_value_iterated_to
        assert bucket_counts(h) == expected


def test_a_monitoring_role_without_wcperfs_schema_still_gets_the_rest(bulk_url: str) -> None:
    """pg_monitor alone: wcperf's job rows are left out, nothing else fails."""
    import uuid

    role = f"wcperf_mon_{uuid.uuid4().hex[:8]}"
    with admin.connect(bulk_url, autocommit=True) as conn:
        assert conn.execute("select to_regclass('wcperf.bulk_jobs')").fetchone()[0]  # type: ignore[index]
        conn.execute(f"create role {role} login in role pg_monitor")
    try:
        url = bulk_url.replace("://postgres@", f"://{role}@")
        with admin.connect(url, autocommit=True) as conn:
            snap = Collector(conn, None, "x:", Targets()).collect()
        assert snap.database is not None and snap.database.jobs == {}
        assert snap.database.max_connections > 0
        body = exposition(lambda: snap)
        assert "wcperf_db_connections" in body and "wcperf_bulk_jobs{" not in body
    finally:
        with admin.connect(bulk_url, autocommit=True) as conn:
            conn.execute(f"drop role {role}")
