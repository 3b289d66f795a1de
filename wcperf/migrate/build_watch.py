"""What an online index build reports while it runs: its progress from
`pg_stat_progress_create_index`, and who blocks it, sampled from a second connection.
Blockers are described by pid, application, state and age, never by their query text,
which can carry PHI."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import psycopg

from wcperf.platform.indexes import IndexSpec


@dataclass(frozen=True)
class Blocker:
    pid: int
    application: str
    state: str
    seconds: float

    def describe(self) -> str:
        return (
            f"pid {self.pid} ({self.application or 'no application_name'}, {self.state}, "
            f"{self.seconds:.0f} s)"
        )


@dataclass(frozen=True)
class BuildProgress:
    phase: str
    blocks_done: int = 0
    blocks_total: int = 0
    tuples_done: int = 0
    tuples_total: int = 0
    blockers: tuple[Blocker, ...] = ()

    @property
    def fraction(self) -> float | None:
        """Rough share of the whole concurrent build done; None while waiting."""
        p = self.phase
        blocks = self.blocks_done / self.blocks_total if self.blocks_total else 0.0
        tuples = self.tuples_done / self.tuples_total if self.tuples_total else 0.0
        if p.startswith("building index: scanning table"):
            return 0.05 + 0.45 * blocks
        if p.startswith("building index: sorting"):
            return 0.5
        if p.startswith("building index: loading tuples"):
            return 0.5 + 0.1 * tuples
        if p.startswith("index validation: scanning index"):
            return 0.6 + 0.1 * blocks
        if p.startswith("index validation: sorting"):
            return 0.7
        if p.startswith("index validation: scanning table"):
            return 0.7 + 0.25 * blocks
        return None


@dataclass(frozen=True)
class IndexEvent:
    kind: str  # start|progress|dropped|retry|waiting|done|skipped|differs|analyze|analyzed
    spec: IndexSpec | None
    detail: str = ""
    progress: BuildProgress | None = None
    seconds: float = 0.0
    size_bytes: int = 0
    table: str = ""


Listener = Callable[[IndexEvent], None]
PollConnect = Callable[[], AbstractContextManager[psycopg.Connection]]


_PROGRESS_SQL = """
select p.phase, p.blocks_done, p.blocks_total, p.tuples_done, p.tuples_total
  from pg_stat_progress_create_index p where p.pid = %s
"""
_BLOCKERS_SQL = """
select a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''),
       extract(epoch from now() - coalesce(a.xact_start, a.backend_start))
  from pg_stat_activity a where a.pid = any(pg_blocking_pids(%s))
"""
TABLE_LOCKERS_SQL = """
select distinct a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''),
       extract(epoch from now() - coalesce(a.xact_start, a.backend_start))
  from pg_locks l join pg_stat_activity a on a.pid = l.pid
 where l.relation = %s::regclass and l.granted and a.pid <> pg_backend_pid()
   and l.mode in ('ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock',
                  'ExclusiveLock', 'AccessExclusiveLock')
"""


def blockers_of(rows: Iterable[tuple]) -> tuple[Blocker, ...]:
    return tuple(Blocker(int(p), str(a), str(s), float(t or 0)) for p, a, s, t in rows)


class Poller:
    """Samples a build's progress and blockers from a second connection."""

    def __init__(
        self,
        connect: PollConnect,
        pid: int,
        spec: IndexSpec,
        listener: Listener,
        interval_s: float = 0.2,
    ) -> None:
        self._connect, self._pid, self._spec = connect, pid, spec
        self._listener, self._interval = listener, interval_s
        self._stop = threading.Event()
        self.last_blockers: tuple[Blocker, ...] = ()
        self._thread = threading.Thread(target=self._run, name=f"poll-{spec.name}", daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        try:
            with self._connect() as conn:
                conn.autocommit = True
                while not self._stop.is_set():
                    row = conn.execute(_PROGRESS_SQL, (self._pid,)).fetchone()
                    blockers = blockers_of(conn.execute(_BLOCKERS_SQL, (self._pid,)))
                    if blockers:
                        self.last_blockers = blockers
                    if row is not None:
                        done, total, tuples_done, tuples_total = (int(v or 0) for v in row[1:5])
                        self._listener(
                            IndexEvent(
                                "progress",
                                self._spec,
                                progress=BuildProgress(
                                    str(row[0]), done, total, tuples_done, tuples_total, blockers
                                ),
                            )
                        )
                    self._stop.wait(self._interval)
        except psycopg.Error:
            return  # progress is a nicety; the build itself reports its own errors


class NullPoller:
    """Stands in for a Poller when there is no build to watch or no second connection."""

    last_blockers: tuple[Blocker, ...] = ()

    def __enter__(self) -> NullPoller:
        return self

    def __exit__(self, *exc: object) -> None:
        return None
