"""SQLAlchemy's side of the one pool: it borrows psycopg_pool's connections.

psycopg_pool owns the connections (size, waiting, checks, reconnects, figures).
SQLAlchemy still keeps a record per connection it has seen, and fires its
`connect` events when it makes one; with `NullPool` every checkout looked like
a new connection, so each paid those events again (a point read's largest
SQLAlchemy cost) and the dialect added one more notice handler to the psycopg
connection every time (tens of thousands on a long run). Here each psycopg
connection keeps its record: the events run once per real connection.
"""

from __future__ import annotations

import time
from typing import Any, cast

import psycopg
from psycopg_pool import ConnectionPool
from sqlalchemy.pool import ConnectionPoolEntry, Pool
from sqlalchemy.pool.base import _ConnectionRecord

from wcperf.observe import phases

_RECORD = "_wcperf_sa_record"  # where a psycopg connection keeps its SQLAlchemy record


class BorrowingPool(Pool):
    """Hands SQLAlchemy the connections of a psycopg_pool `ConnectionPool`.

    A record whose connection SQLAlchemy invalidated is never reused: its
    connection went back to psycopg_pool on close (`close_returns`), which keeps
    it only if it is still good, and the next checkout makes a new record.
    """

    def __init__(self, source: ConnectionPool, **kw: Any) -> None:
        self._source = source
        super().__init__(cast(Any, source.getconn), **kw)

    def _do_get(self) -> ConnectionPoolEntry:
        t0 = time.perf_counter_ns()
        conn = self._source.getconn()
        phases.add(phases.POOL_WAIT, time.perf_counter_ns() - t0)
        record = conn.__dict__.get(_RECORD)
        if isinstance(record, _ConnectionRecord) and cast(Any, record.dbapi_connection) is conn:
            return record
        try:
            record = _ConnectionRecord(self, connect=False)
            record.dbapi_connection = cast(Any, conn)
            self._connected(record)
        except BaseException:
            self._source.putconn(conn)
            raise
        conn.__dict__[_RECORD] = record
        return record

    def _connected(self, record: _ConnectionRecord) -> None:
        """What `_ConnectionRecord` does after its creator returns: the pool's connect events
        (the dialect's own set-up among them), with its once-only first run."""
        record.starttime = time.time()
        record.fresh = True
        conn = record.dbapi_connection
        if self.dispatch.first_connect:
            self.dispatch.first_connect.for_modify(self.dispatch).exec_once_unless_exception(
                conn, record
            )
        self.dispatch.connect.for_modify(self.dispatch)._exec_w_sync_on_first_run(conn, record)

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        conn = record.dbapi_connection
        if conn is None:  # invalidated: its close already gave it back
            return
        assert isinstance(conn, psycopg.Connection)
        if conn.__dict__.get(_RECORD) is not record:  # reconnected under SQLAlchemy
            conn.__dict__[_RECORD] = record
        self._source.putconn(conn)

    def status(self) -> str:
        return f"BorrowingPool over {self._source.name}"

    def recreate(self) -> BorrowingPool:
        return self.__class__(
            self._source,
            recycle=self._recycle,
            echo=self.echo,
            logging_name=self._orig_logging_name,
            reset_on_return=self._reset_on_return,
            pre_ping=self._pre_ping,
            _dispatch=self.dispatch,
            dialect=self._dialect,
        )

    def dispose(self) -> None:
        """psycopg_pool closes the connections when the Database closes it."""
