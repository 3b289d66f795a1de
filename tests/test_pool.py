"""The pool SPEC.md asks for, checked against a real server."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from psycopg_pool import PoolTimeout
from sqlalchemy import text

from tests.conftest import every_connection_held
from wcperf.db import admin
from wcperf.db.engine import Database
from wcperf.settings import Settings


def _sessions(db: Database, app: str) -> int:
    with db.pool.connection() as conn:
        row = conn.execute(
            "select count(*) from pg_stat_activity"
            " where application_name = %s and datname = current_database()",
            (app,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _gone(conn: object, pid: int) -> None:
    deadline = time.monotonic() + 5
    while conn.execute("select 1 from pg_stat_activity where pid = %s", (pid,)).fetchone():  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, f"backend {pid} still there"
        time.sleep(0.02)


def test_every_connection_carries_the_session_settings(db: Database) -> None:
    with db.engine.connect() as conn:
        row = conn.execute(
            text(
                "select current_setting('application_name'), current_setting('statement_timeout'),"
                " current_setting('idle_in_transaction_session_timeout')"
            )
        ).one()
    assert tuple(row) == ("wcperf:test", "30s", "1min")


def test_two_connections_are_kept_warm(database_url: str, settings: Settings) -> None:
    with Database(database_url, replace(settings, command="warm")) as db:
        figures = db.figures()
        assert (figures.open, figures.idle, figures.in_use) == (2, 2, 0)
        # Seen by the server too, under the pool's application_name (the query
        # itself borrows one of the two).
        assert _sessions(db, "wcperf:warm") == 2


def test_waiting_requests_are_counted_when_every_connection_is_held(db: Database) -> None:
    size = db.figures().max_size
    with every_connection_held(db, waiters=4):
        assert db.figures().in_use == size
        assert db.figures().utilisation_pct == 100.0
        assert db.figures().waiting == 4
        time.sleep(0.05)
    after = db.figures()
    assert after.waiting == 0
    assert after.requests_queued >= 4
    assert after.wait_ms_total >= 4 * 40  # each waited at least the 50 ms we held them


def test_acquire_timeout_is_reported_and_counted(database_url: str, settings: Settings) -> None:
    quick = replace(settings, pool=replace(settings.pool, max_size=2, acquire_timeout_s=0.2))
    with Database(database_url, quick) as db:
        held = [db.pool.getconn() for _ in range(2)]
        with pytest.raises(PoolTimeout):
            db.pool.getconn()
        assert db.figures().timeouts == 1
        for conn in held:
            db.pool.putconn(conn)


def test_broken_connection_is_replaced_before_reuse(database_url: str, settings: Settings) -> None:
    s = replace(settings, command="reconnect", pool=replace(settings.pool, max_size=2, min_size=1))
    with Database(database_url, s) as db:
        with db.engine.connect() as conn:
            victim = conn.execute(text("select pg_backend_pid()")).scalar_one()
        with admin.connect(database_url, autocommit=True) as outsider:
            outsider.execute("select pg_terminate_backend(%s)", (victim,))
            _gone(outsider, victim)  # terminate only signals: wait until it has ended
        # The terminated connection is back in the pool; the check before reuse
        # must notice and hand out a working one instead of an error.
        for _ in range(3):
            with db.engine.connect() as conn:
                assert conn.execute(text("select pg_backend_pid()")).scalar_one() != victim


def test_idle_connections_beyond_the_warm_two_are_closed(
    database_url: str, settings: Settings
) -> None:
    s = replace(settings, pool=replace(settings.pool, max_size=4, max_idle_s=0.5))
    with Database(database_url, s) as db:
        held = [db.pool.getconn() for _ in range(4)]
        for conn in held:
            db.pool.putconn(conn)
        assert db.figures().open == 4
        deadline = time.monotonic() + 15
        while db.figures().open > 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert db.figures().open == 2


@pytest.mark.alone  # the cap depends on free connections
def test_a_pool_larger_than_the_server_can_spare_is_cut_and_says_so(
    database_url: str, settings: Settings
) -> None:
    """WCPERF_POOL_SIZE=500 must not take every connection the platform needs."""
    with admin.connect(database_url) as conn:
        limit = int(conn.execute("show max_connections").fetchone()[0])  # type: ignore[index]
    huge = replace(settings, pool=replace(settings.pool, max_size=limit * 5))
    with Database(database_url, huge) as db:
        assert db.pool.max_size <= limit // 2
        (note,) = db.notes
        assert f"pool cut from {limit * 5} to {db.pool.max_size} connections" in note
        assert f"max_connections {limit}" in note
    with Database(database_url, settings) as db:  # the default 10 fits: left alone
        assert db.pool.max_size == settings.pool.max_size and db.notes == []


def test_a_connection_just_returned_is_handed_out_without_a_round_trip(
    database_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The full check (a round trip) runs only for a connection idle past check_idle_s
    or one the server spoke on; a terminated one is still never handed out."""
    from psycopg_pool import ConnectionPool

    real, checked = ConnectionPool.check_connection, []

    def counted(conn: object) -> None:  # the real check, counted
        checked.append(conn)
        real(conn)  # type: ignore[arg-type]

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counted))
    s = replace(settings, command="quick-check",
                pool=replace(settings.pool, max_size=1, min_size=1, check_idle_s=0.5))  # fmt: skip
    with Database(database_url, s) as db:
        with db.pool.connection() as conn:
            victim = conn.execute("select pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        before = len(checked)
        for _ in range(20):
            with db.pool.connection() as conn:
                conn.execute("select 1")
        assert len(checked) == before  # back within 0.5 s each time: no check
        time.sleep(0.6)
        with db.pool.connection() as conn:
            conn.execute("select 1")
        assert len(checked) == before + 1  # idle past the threshold: checked
        with admin.connect(database_url, autocommit=True) as outsider:
            outsider.execute("select pg_terminate_backend(%s)", (victim,))
            _gone(outsider, victim)
        with db.pool.connection() as conn:  # returned just now, but the server spoke
            assert conn.execute("select pg_backend_pid()").fetchone()[0] != victim  # type: ignore[index]
        assert len(checked) == before + 2


def test_sqlalchemy_sets_up_each_connection_once_not_on_every_checkout(
    database_url: str, settings: Settings
) -> None:
    """SQLAlchemy's connect events (the dialect's set-up) run once per psycopg connection:
    under NullPool they ran on every checkout, and each run added one more notice handler
    to the connection."""
    from sqlalchemy import event

    from wcperf.db.engine import driver

    s = replace(settings, command="records", pool=replace(settings.pool, max_size=1, min_size=1))
    with Database(database_url, s) as db:
        connected: list[int] = []
        event.listen(db.engine, "connect", lambda dbapi, record: connected.append(id(dbapi)))
        pids = set()
        for _ in range(20):
            with db.engine.connect() as conn:
                pids.add(conn.execute(text("select pg_backend_pid()")).scalar_one())
                handlers = len(driver(conn)._notice_handlers)
        assert len(pids) == 1 and len(connected) == 1
        assert handlers == 1
        # A connection SQLAlchemy invalidates is given back (it is still good here) and
        # set up again under a new record at its next checkout; nothing is lost.
        with db.engine.connect() as conn:
            conn.invalidate()
        with db.engine.connect() as conn:
            assert conn.execute(text("select 1")).scalar_one() == 1
        assert len(connected) == 2
        assert db.figures().in_use == 0
        db.engine.dispose()  # a recreated SQLAlchemy pool still borrows from the same one
        with db.engine.connect() as conn:
            assert conn.execute(text("select pg_backend_pid()")).scalar_one() in pids


_UNDER_GEVENT = """
import sys
from gevent import monkey
monkey.patch_all()
import gevent, greenlet
from dataclasses import replace
from wcperf.db.engine import Database
from wcperf.settings import Settings

settings = Settings.from_env(command="gevent-checkout")
settings = replace(settings, pool=replace(settings.pool, max_size=2, min_size=2))
switched = []
with Database(sys.argv[1], settings) as db:
    conn = db.pool.getconn()
    db.pool.putconn(conn)  # just returned: handed out again after the quick check

    def trace(event, args):
        if event == "switch" and args[0] is me:
            switched.append(event)

    me = greenlet.getcurrent()
    greenlet.settrace(trace)
    conn = db.pool.getconn()
    in_checkout = len(switched)
    gevent.spawn(lambda: None).join()  # a switch away, to show the tracer sees one
    greenlet.settrace(None)
    db.pool.putconn(conn)
print(in_checkout, len(switched) > in_checkout)
"""


def test_a_checkout_under_gevent_does_not_yield_to_the_hub(database_url: str) -> None:
    """The load workers run under gevent, whose patched `select` yields to the hub even
    with a zero timeout: the quick check then cost every checkout a scheduling pass."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", _UNDER_GEVENT, database_url],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["0", "True"]
