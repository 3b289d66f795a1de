"""The connection pool SPEC.md asks for, and a SQLAlchemy engine over it.

There is one pool, psycopg_pool's `ConnectionPool`: it has the spec's knobs (warm
minimum, acquire timeout, idle shrink, check before reuse, reconnect with backoff)
and counts waiting requests for real. SQLAlchemy borrows from it through `BorrowingPool`
(`wcperf.db.borrowed`), with `close_returns=True`, so closing a psycopg
connection hands it back instead of closing it: one pool, one set of figures.

Session settings travel in the startup packet (`options`, `application_name`), so
they cost no round trip and hold on every connection the pool ever opens.
"""

from __future__ import annotations

import select
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout
from sqlalchemy import Connection, Engine, create_engine

from wcperf.db.admin import CONNECT_TIMEOUT_S, connect_error, libpq_url
from wcperf.db.borrowed import BorrowingPool
from wcperf.errors import ConnectError
from wcperf.observe import phases
from wcperf.settings import Settings
from wcperf.urls import mask_url


def driver(conn: Connection) -> psycopg.Connection[tuple[Any, ...]]:
    """The psycopg connection under a SQLAlchemy one, for what SQLAlchemy cannot say
    (COPY, `sql.Composed`, advisory locks in the same transaction)."""
    raw = conn.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise TypeError("wcperf runs on psycopg 3 connections only")
    return raw


@dataclass(frozen=True)
class PoolFigures:
    """What the pool says about itself at one instant (counters since it opened)."""

    max_size: int
    min_size: int
    open: int
    in_use: int
    idle: int
    waiting: int
    requests: int
    requests_queued: int
    wait_ms_total: int
    timeouts: int
    connections_opened: int
    connections_errors: int
    connections_lost: int

    @property
    def utilisation_pct(self) -> float:
        return 100.0 * self.in_use / self.max_size if self.max_size else 0.0

    @property
    def mean_wait_ms(self) -> float:
        return self.wait_ms_total / self.requests_queued if self.requests_queued else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            **asdict(self),
            "utilisation_pct": round(self.utilisation_pct, 1),
            "mean_wait_ms": round(self.mean_wait_ms, 1),
        }


CommitListener = Callable[[frozenset[str]], None]


class TrackingConnection(psycopg.Connection):
    """Tells listeners which tables a transaction wrote, once its commit has succeeded.

    SQLAlchemy's own commit event fires before the commit: a cache that invalidated
    then could be refilled with pre-commit data by a concurrent reader. The real
    commit happens here, so this is the one place "after commit" is exact. A
    rollback forgets what was written.
    """

    listeners: list[CommitListener] = []  # noqa: RUF012 - each Database makes a subclass

    def mark_written(self, tables: Iterable[str]) -> None:
        if self.autocommit:  # already committed by the statement itself
            self._notify(frozenset(tables))
        else:
            self.__dict__.setdefault("_written", set()).update(tables)

    def commit(self) -> None:
        t0 = time.perf_counter_ns()
        super().commit()
        t1 = time.perf_counter_ns()
        phases.add(phases.COMMIT, t1 - t0)
        written = self.__dict__.pop("_written", None)
        if written:
            self._notify(frozenset(written))
            phases.add(phases.CACHE_BUMP, time.perf_counter_ns() - t1)

    def rollback(self) -> None:
        self.__dict__.pop("_written", None)
        super().rollback()

    def _notify(self, tables: frozenset[str]) -> None:
        for listener in self.listeners:
            listener(tables)


def _opened(conn: psycopg.Connection) -> None:
    """The pool's `configure`: a connection just made needs no check before its use."""
    conn.__dict__["_returned_at"] = time.monotonic()


class _Pool(ConnectionPool):
    """psycopg_pool's pool, stamping each connection as it comes back (idle_check reads
    it). Not the pool's `reset` callback: that runs on a worker thread and leaves the
    connection unavailable until it has."""

    def putconn(self, conn: psycopg.Connection) -> None:
        conn.__dict__["_returned_at"] = time.monotonic()
        super().putconn(conn)


_select: Callable[..., Any] | None = None


def _select_now() -> Callable[..., Any]:
    """`select.select` as the standard library has it. Under gevent's monkey patching (the
    load workers) the patched one yields to the hub even with a zero timeout: every
    checkout then waited a full scheduling pass (a write's "pool wait" was 1.4 ms with
    nobody waiting). A zero-timeout select never blocks, so the original is safe."""
    global _select
    if _select is None:
        monkey = sys.modules.get("gevent.monkey")
        if monkey is not None and monkey.is_module_patched("select"):
            _select = monkey.get_original("select", "select")
        else:
            return select.select  # not patched yet: decide again next time
    return _select


def _server_spoke(conn: psycopg.Connection) -> bool:
    """Whether anything arrived on an idle connection's socket: a server that ended the
    session sends its FATAL and closes, which makes the socket readable."""
    if conn.closed or conn.broken:
        return True
    try:
        readable, _, _ = _select_now()([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def idle_check(idle_s: float) -> Callable[[psycopg.Connection], None]:
    """The pool's `check` before it hands a connection out.

    psycopg_pool's `check_connection` costs a round trip on every checkout (about
    94 of a point read's microseconds here). A connection that came back less than
    `idle_s` ago and whose socket has stayed silent is handed out as it is; one
    that sat longer, or that the server has spoken on (a terminated backend, a
    restart), gets the full check, and a dead one is discarded and replaced,
    never given to a user.
    """

    def check(conn: psycopg.Connection) -> None:
        returned = conn.__dict__.get("_returned_at")
        if (
            returned is not None
            and time.monotonic() - returned < idle_s
            and not _server_spoke(conn)
        ):
            return
        ConnectionPool.check_connection(conn)

    return check


def session_options(settings: Settings) -> dict[str, str]:
    p = settings.pool
    return {
        "application_name": settings.application_name[:63],
        "options": (
            f"-c statement_timeout={p.statement_timeout_ms}"
            f" -c idle_in_transaction_session_timeout={p.idle_in_transaction_timeout_ms}"
        ),
    }


POOL_SHARE = 0.5  # of the server's free connections, at most, for one pool
_FREE_CONNECTIONS = """
select current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int
         + coalesce(current_setting('reserved_connections', true)::int, 0),
       (select count(*) from pg_stat_activity where backend_type = 'client backend')
"""


class Database:
    """A pool and an engine for one database URL; close it when done."""

    def __init__(self, url: str, settings: Settings, *, wait: bool = True) -> None:
        self.url = url
        self.settings = settings
        p = settings.pool
        self.commit_listeners: list[CommitListener] = []
        connection_class = type(
            "WcperfConnection", (TrackingConnection,), {"listeners": self.commit_listeners}
        )
        self.pool: ConnectionPool = _Pool(
            libpq_url(url),
            min_size=min(p.min_size, p.max_size),
            max_size=p.max_size,
            timeout=p.acquire_timeout_s,
            max_idle=p.max_idle_s,
            reconnect_timeout=p.reconnect_timeout_s,
            check=idle_check(p.check_idle_s),
            configure=_opened,
            close_returns=True,
            connection_class=connection_class,
            kwargs={**session_options(settings), "connect_timeout": CONNECT_TIMEOUT_S},
            name=settings.application_name,
            open=False,
        )
        self.notes: list[str] = []  # what a user should be told about this pool
        try:
            self.pool.open(wait=wait, timeout=CONNECT_TIMEOUT_S + 1)
        except PoolTimeout:
            self.pool.close()
            self._raise_reason()
        if wait:
            self._fit_to_server()
        self.engine: Engine = create_engine("postgresql+psycopg://", pool=BorrowingPool(self.pool))

    def _fit_to_server(self) -> None:
        """Cap the pool at a share of the connections the server has free.

        A pool of 500 on a server of 100 would take every connection there is, and
        the platform's own application would get "too many clients". So the pool
        never grows beyond `POOL_SHARE` of what is free when it opens (its own
        connections counted as free), and says so when that cuts it.
        """
        with self.pool.connection() as conn:
            row = conn.execute(_FREE_CONNECTIONS).fetchone()
        assert row is not None
        limit, reserved, used = (int(v) for v in row)
        ours = self.pool.get_stats().get("pool_size", 0)
        free = max(limit - reserved - used + ours, 1)
        cap = max(int(free * POOL_SHARE), 1)
        if self.pool.max_size > cap:
            self.notes.append(
                f"pool cut from {self.pool.max_size} to {cap} connections: "
                f"{POOL_SHARE:.0%} of the {free} this server has free "
                f"(max_connections {limit})"
            )
            self.pool.resize(min(self.pool.min_size, cap), cap)

    def _raise_reason(self) -> None:
        try:
            psycopg.connect(libpq_url(self.url), connect_timeout=CONNECT_TIMEOUT_S).close()
        except psycopg.Error as exc:
            raise connect_error(exc, self.url) from None
        raise ConnectError(f"PostgreSQL at {mask_url(self.url)} accepted no pool connection")

    def figures(self) -> PoolFigures:
        s = self.pool.get_stats()
        size, available = s.get("pool_size", 0), s.get("pool_available", 0)
        return PoolFigures(
            max_size=s.get("pool_max", self.pool.max_size),
            min_size=s.get("pool_min", self.pool.min_size),
            open=size,
            in_use=max(size - available, 0),
            idle=available,
            waiting=s.get("requests_waiting", 0),
            requests=s.get("requests_num", 0),
            requests_queued=s.get("requests_queued", 0),
            wait_ms_total=s.get("requests_wait_ms", 0),
            timeouts=s.get("requests_errors", 0),
            connections_opened=s.get("connections_num", 0),
            connections_errors=s.get("connections_errors", 0),
            connections_lost=s.get("connections_lost", 0),
        )

    def close(self) -> None:
        self.engine.dispose()
        self.pool.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
