"""The monitor's view of the server's log: follow it, fold it, say what is missing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wcperf.errors import WcperfError
from wcperf.observe.log_files import LocalLog, LogSource, LogUnreadable, ServerLog
from wcperf.observe.server_log import Folder, Records, Sampling
from wcperf.observe.snapshot import ServerLog as ServerLogFigures

AUTO = "auto"
SETTINGS_EVERY_S = 10.0
_SETTINGS = """
select name, reset_val from pg_settings
 where name in ('log_min_duration_statement', 'log_min_duration_sample',
                'log_statement_sample_rate')
"""
NO_DURATIONS = (
    "the server logs no statement durations: set log_min_duration_statement = 0 (every "
    "statement), or log_min_duration_sample = 0 with log_statement_sample_rate = 0.1 "
    "(one in ten), then SELECT pg_reload_conf()"
)
BARE = (
    "the log holds durations without their statements (log_duration): set "
    "log_min_duration_statement instead"
)


class LogWatch:
    """Everything one monitor process has read of the server's log since it started.

    `spec` is a path on this host (a log file, the log folder or the data directory)
    or "auto": the server's current log file, read through the server. It reads
    the server's settings (and, for "auto", the file) through a session of its own,
    from `connect`, opened again after a restart; that session is left out of the
    figures and asked not to log its statements.
    """

    def __init__(
        self,
        spec: str,
        connect: Callable[[], Any] | None,
        *,
        from_start: bool = False,
        n_plus_one: tuple[int, float] = (5, 1.0),
        own_application: str = "",
    ) -> None:
        self.spec = spec
        self._connect = connect
        self._conn: Any = None
        self._from_start = from_start
        self._source: LogSource | None = None
        self._records: Records | None = None
        self._note = ""
        self._settings_at: float | None = None
        # the monitor's own statements (its pg_stat_* reads) are not the platform's
        self.folder = Folder(
            n_plus_one=n_plus_one, skip_applications=[own_application] if own_application else []
        )
        self._session()

    def _session(self) -> Any:
        """The open session, opened (again) if need be; None if the server is away."""
        import psycopg

        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._connect is None:
            return None
        try:
            conn = self._connect()
        except (psycopg.Error, WcperfError):  # down, or restarting: try again next poll
            return None
        self.folder.skip_pids.add(conn.info.backend_pid)
        try:
            conn.execute("set log_min_duration_statement = -1")
            conn.execute("set log_min_duration_sample = -1")
        except psycopg.Error:
            pass  # not a superuser: its lines are left out by pid alone
        self._conn = conn
        if isinstance(self._source, ServerLog):
            self._source.rebind(conn)
        return conn

    def _open(self) -> LogSource | None:
        if self._source is not None:
            return self._source
        try:
            if self.spec == AUTO:
                conn = self._session()
                if conn is None:
                    raise LogUnreadable("the database is not reachable to read its log")
                source: LogSource = ServerLog(conn, from_start=self._from_start)
            else:
                source = LocalLog(Path(self.spec), from_start=self._from_start)
        except LogUnreadable as exc:
            self._note = str(exc)
            return None
        self._note = ""
        self._source, self._records = source, Records(source.format)
        return source

    def check(self) -> None:
        """Raise LogUnreadable now if the log cannot be followed (for a clear refusal)."""
        if self._open() is None:
            raise LogUnreadable(self._note)

    def _sampling(self) -> None:
        """The server's logging settings, read again every SETTINGS_EVERY_S (a reload
        changes them rarely; the monitor polls every second)."""
        import psycopg

        now = time.monotonic()
        if self._settings_at is not None and now - self._settings_at < SETTINGS_EVERY_S:
            return
        conn = self._session()
        if conn is None:
            return
        try:
            found = dict(conn.execute(_SETTINGS).fetchall())
        except psycopg.Error:
            return
        self._settings_at = now
        self.folder.sampling = Sampling(
            min_duration_ms=float(found.get("log_min_duration_statement", -1)),
            sample_min_ms=float(found.get("log_min_duration_sample", -1)),
            sample_rate=float(found.get("log_statement_sample_rate", 1)),
        )

    def poll(self) -> ServerLogFigures:
        """Read what the server wrote since the last poll; the figures so far."""
        self._session()  # reopened (and the source rebound) at once after a restart
        self._sampling()
        source = self._open()
        notes: list[str] = []
        if source is not None and self._records is not None:
            try:
                data, dropped = source.read()
            except (LogUnreadable, OSError) as exc:
                notes.append(str(exc))
            else:
                if dropped:
                    self._records.reset()
                self.folder.add(self._records.feed(data))
        if self._note:
            notes.append(self._note)
        if not self.folder.sampling.logs_durations:
            notes.append(NO_DURATIONS)
        if self.folder.bare and not self.folder.statements:
            notes.append(BARE)
        figures = self.folder.section(
            source.describe() if source else "", source.format if source else "", notes
        )
        if source is not None:
            figures.rotations = source.progress.rotations
            figures.truncations = source.progress.truncations
        return figures

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
        if self._conn is not None:
            self._conn.close()
