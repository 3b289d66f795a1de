"""The platform's own ORM (Sequelize 6, as the platform runs it) as a client beside wcperf.

The database is built by `sync()` of the platform's models, seeded, two of the 14
indexes dropped (a production database that lacks some), migrated, put through a
grade transition and its revert; then the ORM must still read and write it, and a
second `sync()` must find nothing to create: wcperf built its indexes under the
models' own names and definitions and added nothing to the platform's tables.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, RUN_ID, run_cli
from tests.platform_dump import schema
from wcperf.db import admin

HERE = REPO / "tests" / "platform_orm"
CACHE = Path(
    os.environ.get("WCPERF_NODE_CACHE", Path.home() / ".cache" / "wcperf" / "platform-orm")
)


def _node_modules() -> Path:
    """sequelize and pg, installed once into a cache folder (never into the project)."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are not on PATH: the platform's ORM cannot run here")
    CACHE.mkdir(parents=True, exist_ok=True)
    wanted = (HERE / "package.json").read_text()
    marker = CACHE / "package.json"
    if not (CACHE / "node_modules" / "sequelize").exists() or marker.read_text() != wanted:
        marker.write_text(wanted)
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CACHE,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, f"npm install failed: {done.stderr[-2000:]}"
    return CACHE / "node_modules"


def orm(command: str, url: str) -> dict:
    modules = _node_modules()
    done = subprocess.run(
        ["node", str(HERE / "client.js"), command, admin.libpq_url(url)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "NODE_PATH": str(modules)},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def synced_by_the_orm(server_url: str) -> Iterator[str]:
    _node_modules()  # skip before creating anything when node is missing
    url = admin.with_database(server_url, f"wcperf_orm_{RUN_ID}_{uuid.uuid4().hex[:6]}")
    admin.ensure_database(url)
    yield url
    admin.drop_database(url)


def test_the_platforms_orm_and_wcperf_share_a_database(synced_by_the_orm: str) -> None:
    url = synced_by_the_orm
    first = orm("sync", url)
    assert any("CREATE TABLE" in s for s in first["ddl"])
    seeded = run_cli("--database-url", url, "seed", "--students", "2000", "--json")
    assert seeded.returncode == 0, seeded.stderr
    assert json.loads(seeded.stdout)["created_schema"] is False  # loaded into the ORM's tables
    with admin.connect(url, autocommit=True) as conn:  # as a migration-built database may be
        conn.execute("drop index idx_appointments_nurse_scheduled, idx_medications_form_active")

    migrated = run_cli("--database-url", url, "migrate", "--json")
    assert migrated.returncode == 0, migrated.stderr
    summary = json.loads(migrated.stdout)
    assert summary["present"] == 14 and summary["built_by_wcperf"] == 2

    with admin.connect(url) as conn:
        before = conn.execute('select id, grade, "updatedAt" from students order by id').fetchall()
    job = run_cli(
        "--database-url", url, "bulk", "grade-transition", "--school-year", "2026", "--json"
    )
    assert job.returncode == 0, job.stderr
    undo = run_cli("--database-url", url, "bulk", "revert", "1", "--json")
    assert undo.returncode == 0, undo.stderr
    with admin.connect(url) as conn:
        after = conn.execute('select id, grade, "updatedAt" from students order by id').fetchall()
    assert after == before

    used = orm("use", url)
    assert used["students"] == 25 and used["withNurse"] == 25
    assert used["paranoidCount"] < used["allCount"]  # the ORM hides the soft-deleted
    assert used["timelineHasNew"] and used["afterSoftDelete"] == used["timelineBefore"] - 1

    dump = schema(url)
    second = orm("sync", url)
    assert [s for s in second["ddl"] if not s.startswith("CREATE TABLE IF NOT EXISTS")] == []
    assert schema(url) == dump  # and those CREATE TABLE IF NOT EXISTS changed nothing
