"""Per-statement timing on a SQLAlchemy engine, slow queries and N+1 detection.

Kept cheap on the hot path (a SELECT 1 round trip is about 80 µs here): a clock
read, a dictionary lookup, a list append under a lock, and a walk up the stack to
the calling frame (cached per code object). Histograms, buckets and encoding
happen when a snapshot is taken, once a second, off the query path.

Parameters are never kept: a slow query records the type names of its
parameters, and statements are stored as pglast-normalised text.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any

from hdrh.histogram import HdrHistogram
from sqlalchemy import Engine, event

from wcperf.errors import WcperfError
from wcperf.observe import histogram as hdr
from wcperf.observe import phases
from wcperf.observe.fingerprint import Fingerprint, Fingerprinter
from wcperf.observe.snapshot import NPlusOne, QueryStats, SlowQuery, bucket_of
from wcperf.settings import MonitorSettings

_MONITOR = MonitorSettings()  # the settings tree's defaults


class NPlusOneError(WcperfError):
    """Raised in strict mode: the same query from one call site, over and over."""


_LIBRARY_PARTS = (
    f"{os.sep}sqlalchemy{os.sep}",
    f"{os.sep}psycopg{os.sep}",
    f"{os.sep}psycopg_pool{os.sep}",
    f"{os.sep}wcperf{os.sep}observe{os.sep}",
    f"{os.sep}threading.py",
    f"{os.sep}contextlib.py",
    "<frozen ",
)
_library: dict[Any, bool] = {}


def call_site_key(skip: int = 2) -> tuple[Any, int] | None:
    """The first frame above the database libraries, as (code, line): cheap to hash.

    Formatting it as text waits until a detection needs it.
    """
    frame: FrameType | None = sys._getframe(skip)
    while frame is not None:
        code = frame.f_code
        lib = _library.get(code)
        if lib is None:
            lib = _library[code] = any(p in code.co_filename for p in _LIBRARY_PARTS)
        if not lib:
            return code, frame.f_lineno
        frame = frame.f_back
    return None


_scopes = itertools.count(1)


def _scope(conn: Any) -> int:
    """A number for this SQLAlchemy connection checkout (ids of freed objects recur)."""
    scope: int | None = conn.__dict__.get("_wcperf_scope")
    if scope is None:
        scope = conn.__dict__["_wcperf_scope"] = next(_scopes)
    return scope


def describe_site(site: Hashable) -> str:
    """`dir/file.py:line in function` for a call_site_key; other sites as they are."""
    if site is None:
        return "unknown"
    if isinstance(site, tuple) and len(site) == 2 and hasattr(site[0], "co_filename"):
        code, line = site
        parts = code.co_filename.rsplit(os.sep, 2)[-2:]
        return f"{'/'.join(parts)}:{line} in {code.co_name}"
    return str(site)


class NPlusOneDetector:
    """The same fingerprint from the same call site N times within a window, in one scope.

    The scope is the SQLAlchemy connection the statements ran on (a Session's
    transaction keeps one): an N+1 loop repeats within it, while many users each
    running the same query once use many connections and are not an N+1.
    """

    def __init__(
        self,
        threshold: int = _MONITOR.n_plus_one_threshold,
        window_s: float = _MONITOR.n_plus_one_window_s,
        strict: bool = False,
        keep: int = 100,
        clock: Any = time.monotonic,
    ) -> None:
        self.threshold, self.window_s, self.strict = threshold, window_s, strict
        self._clock = clock
        self._seen: dict[tuple[str, Hashable, int], deque[float]] = {}
        self._open: dict[tuple[str, Hashable, int], tuple[NPlusOne, float]] = {}
        self.detections: deque[NPlusOne] = deque(maxlen=keep)

    def observe(self, fp: Fingerprint, site: Hashable, scope: int = 0) -> None:
        """Called for every statement: no lock, no scan (deque and dict ops are atomic)."""
        now = self._clock()
        key = (fp.id, site, scope)
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen.setdefault(key, deque(maxlen=self.threshold))
        seen.append(now)  # only the last N times: "N within the window" is one comparison
        if len(seen) < self.threshold or now - seen[0] > self.window_s:
            return
        opened = self._open.get(key)
        if opened is not None and now - opened[1] <= self.window_s:
            current = opened[0]
            current.count += 1  # the same burst goes on
        else:
            current = NPlusOne(
                fp.id,
                fp.normalized,
                fp.table,
                describe_site(site),
                len(seen),
                self.window_s,
                time.time(),
            )
            self.detections.append(current)
        self._open[key] = (current, now)  # monotonic: the burst's own clock
        if self.strict:
            raise NPlusOneError(
                f"N+1: {current.count} x `{fp.normalized}` from {describe_site(site)} "
                f"within {self.window_s:g} s; load it eagerly"
            )

    def prune(self) -> None:
        now = self._clock()
        for key, seen in list(self._seen.items()):
            if not seen or now - seen[-1] > self.window_s:
                self._seen.pop(key, None)
                self._open.pop(key, None)


@dataclass
class _Entry:
    fp: Fingerprint
    pending: deque[int] = field(default_factory=deque)  # appended without a lock
    errors: int = 0
    hist: HdrHistogram = field(default_factory=hdr.new_histogram)
    stats: QueryStats | None = None


def _param_types(parameters: Any) -> list[str]:
    values: Iterable[Any]
    if isinstance(parameters, dict):
        values = parameters.values()
    elif isinstance(parameters, list | tuple):
        values = parameters
    else:
        return []
    return [type(v).__name__ for v in list(values)[:20]]


class QueryMonitor:
    def __init__(
        self,
        slow_ms: float = _MONITOR.slow_ms,
        n_plus_one_threshold: int = _MONITOR.n_plus_one_threshold,
        n_plus_one_window_s: float = _MONITOR.n_plus_one_window_s,
        strict: bool = False,
        slow_keep: int = 100,
    ) -> None:
        self._fingerprint = Fingerprinter()
        self._by_sql: dict[str, _Entry] = {}
        self._by_fp: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._slow_us = int(slow_ms * 1000)
        self.slow: deque[SlowQuery] = deque(maxlen=slow_keep)
        self.n_plus_one = NPlusOneDetector(n_plus_one_threshold, n_plus_one_window_s, strict)
        self._engines: list[Engine] = []

    # -- engine events ---------------------------------------------------------
    def _listeners(self) -> tuple[tuple[str, Any], ...]:
        return (
            ("before_cursor_execute", self._before),
            ("after_cursor_execute", self._after),
            ("handle_error", self._error),
        )

    def attach(self, engine: Engine) -> None:
        for name, fn in self._listeners():
            event.listen(engine, name, fn)
        self._engines.append(engine)

    def detach(self) -> None:
        for engine in self._engines:
            for name, fn in self._listeners():
                event.remove(engine, name, fn)
        self._engines.clear()

    def _before(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if context is not None:
            context._wcperf_t0 = time.perf_counter_ns()

    def _after(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        t0 = getattr(context, "_wcperf_t0", None)
        if t0 is None:
            return
        ns = time.perf_counter_ns() - t0
        phases.add(phases.STATEMENTS, ns)
        us = ns // 1000
        entry = self._entry(statement)
        entry.pending.append(us)
        if us >= self._slow_us:
            fp = entry.fp
            self.slow.append(
                SlowQuery(
                    time.time(), fp.id, fp.normalized, fp.table, us / 1000, _param_types(parameters)
                )
            )
        self.n_plus_one.observe(entry.fp, call_site_key(), _scope(conn))

    def _error(self, ctx: Any) -> None:
        if ctx.statement:
            entry = self._entry(ctx.statement)
            with self._lock:
                entry.errors += 1

    # -- direct use --------------------------------------------------------------
    def record(self, statement: str, us: int) -> None:
        """Record a duration measured elsewhere (tests, non-SQLAlchemy callers)."""
        self._entry(statement).pending.append(int(us))

    def _entry(self, statement: str) -> _Entry:
        entry = self._by_sql.get(statement)
        if entry is not None:
            return entry
        fp = self._fingerprint(statement)
        with self._lock:
            entry = self._by_fp.get(fp.id)
            if entry is None:
                entry = self._by_fp[fp.id] = _Entry(fp)
            self._by_sql[statement] = entry
        return entry

    # -- snapshot ----------------------------------------------------------------
    def queries(self) -> list[QueryStats]:
        """Fold what arrived since the last call into each pattern's totals."""
        with self._lock:
            entries = list(self._by_fp.values())
        work = []
        for e in entries:
            # Drain only what is there now; later appends wait for the next fold.
            waiting = e.pending
            work.append((e, [waiting.popleft() for _ in range(len(waiting))], e.errors))
        out = []
        for entry, pending, errors in work:
            stats = entry.stats or QueryStats(
                entry.fp.id, entry.fp.normalized, entry.fp.table, min_us=min(pending, default=0)
            )
            if pending:
                hdr.record_all(entry.hist, pending)
                stats.count += len(pending)
                stats.total_us += sum(pending)
                stats.min_us = (
                    min(stats.min_us, *pending) if stats.count > len(pending) else min(pending)
                )
                stats.max_us = max(stats.max_us, *pending)
                for us in pending:
                    stats.buckets[bucket_of(us)] += 1
                stats.histogram = hdr.encode(entry.hist)
            stats.errors = errors
            entry.stats = stats
            if stats.count or stats.errors:
                out.append(replace(stats, buckets=dict(stats.buckets)))
        self.n_plus_one.prune()
        return out
