"""A load run's report: its metadata, its figures over time, CSV, and the HTML page as
a real browser (Debian's chromium, headless) renders it."""

from __future__ import annotations

import csv
import html
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import RUN_ID, run_cli
from tests.test_loadtest import scenario
from wcperf.db import admin


@dataclass
class Run:
    result: dict  # type: ignore[type-arg]
    folder: Path


@pytest.fixture(scope="module")
def two_process_run(bulk_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    url = admin.with_database(bulk_template, f"wcperf_rep_{RUN_ID}_{uuid.uuid4().hex[:6]}")
    admin.clone_database(bulk_template, url)
    folder = tmp_path_factory.mktemp("report")
    path = scenario(folder, "points", users=4, duration="4s", think=5)
    try:
        run = run_cli("-q", "--database-url", url, "loadtest", str(path), "--processes", "2",
                      "--warmup", "1s", "--json", str(folder / "r.json"),
                      "--html", str(folder / "r.html"), "--csv", str(folder / "r"))  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        # the command itself never imports locust (gevent would patch it after psycopg)
        assert "MonkeyPatchWarning" not in run.stderr, run.stderr
        yield Run(json.loads((folder / "r.json").read_text()), folder)
    finally:
        admin.drop_database(url)


def test_the_result_says_what_the_run_was_and_how_it_went_over_time(two_process_run: Run) -> None:
    r = two_process_run.result
    meta = r["meta"]
    assert meta["scenario"] == "points" and len(meta["scenario_digest"]) == 16
    assert (meta["users"], meta["processes"]) == (4, 2)
    assert meta["server_version"][:2].isdigit() and meta["wcperf_version"]
    assert meta["dataset"]["students"] == 5_000  # the district the fixture seeded
    assert meta["started_at"] < meta["finished_at"]
    timeline = r["timeline"]
    # both workers' steps merged: every measured operation in exactly one step
    assert sum(p["count"] for p in timeline) == r["overall"]["count"] > 100
    assert 4 <= len(timeline) <= 7 and r["timeline_step_s"] == 1
    assert [p["at"] for p in timeline] == list(range(timeline[0]["at"], timeline[-1]["at"] + 1))
    full = [p for p in timeline[1:-1] if p["count"]]
    assert full and all(p["p50_ms"] <= p["p95_ms"] <= p["p99_ms"] for p in full)
    assert r["errors"] == []


def test_csv_holds_the_same_figures(two_process_run: Run) -> None:
    r, folder = two_process_run.result, two_process_run.folder
    with (folder / "r_history.csv").open() as fh:
        history = list(csv.DictReader(fh))
    assert [int(row["count"]) for row in history] == [p["count"] for p in r["timeline"]]
    with (folder / "r_stats.csv").open() as fh:
        stats = list(csv.DictReader(fh))
    overall = next(row for row in stats if row["kind"] == "overall")
    assert int(overall["count"]) == r["overall"]["count"]
    statements = [row for row in stats if row["kind"] == "statement"]
    assert {row["statement"] for row in statements} == {q["normalized"] for q in r["queries"]}
    assert (folder / "r_failures.csv").read_text().splitlines() == ["operation,kind,count"]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    pytest.skip("chromium is not installed: apt-get install chromium (Debian's package)")


def _render(page: Path) -> tuple[str, list[str]]:
    """The DOM after the page loaded, and every message it logged to the console."""
    shown = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-2000:]
    return shown.stdout, [line for line in shown.stderr.splitlines() if ":CONSOLE" in line]


def test_the_console_check_can_fail(tmp_path: Path) -> None:
    page = tmp_path / "noisy.html"
    page.write_text('<!doctype html><script>console.error("wcperf-probe")</script>')
    _, console = _render(page)
    assert any("wcperf-probe" in line for line in console)


def test_the_html_report_renders_in_a_browser_with_its_charts(two_process_run: Run) -> None:
    dom, console = _render(two_process_run.folder / "r.html")
    assert console == []
    assert dom.count('<svg class="chart"') == 3  # throughput, percentiles, per operation
    assert dom.count('class="series"') >= 5  # per s, errors, P50, P95, P99
    r = two_process_run.result
    for q in r["queries"]:  # the full normalised SQL and its fingerprint, never cut
        assert html.escape(q["normalized"], quote=False) in dom and q["fingerprint"] in dom
    for shown in ("started (UTC)", "scenario digest", "PostgreSQL", "rows in students",
                  "Errors", r["meta"]["scenario_digest"]):  # fmt: skip
        assert shown in dom
