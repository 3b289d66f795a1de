"""The last minute, beside since start: sliding windows from interval histograms.

Every figure wcperf collects is cumulative (a process's histograms, the server
log's, the cache's counters), so a regression that began a minute ago is diluted
by hours of good traffic. The monitor keeps, per refresh, what each statement
added since the one before (bucket by bucket) and sums the intervals of the
last `window_s`. A count that went down (a publishing process exited) adds
nothing rather than something negative; its earlier intervals stay counted.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from wcperf.observe import histogram as hdr
from wcperf.observe.snapshot import Recent, ServerQuery, Snapshot

WINDOW_S = 60.0
Q = TypeVar("Q")


@dataclass
class _Delta:
    count: int = 0
    total_us: int = 0
    values: dict[int, int] = field(default_factory=dict)

    def add(self, other: _Delta) -> None:
        self.count += other.count
        self.total_us += other.total_us
        for v, n in other.values.items():
            self.values[v] = self.values.get(v, 0) + n


class _Sliding:
    """One kind of row (app-side queries, or the log's), keyed as its caller says."""

    def __init__(self, key: Callable[[Any], Hashable]) -> None:
        self._key = key
        self._last: dict[Hashable, tuple[int, int, dict[int, int]]] = {}
        self._rows: dict[Hashable, Any] = {}  # the newest row of each key, for its text
        self.intervals: deque[tuple[float, dict[Hashable, _Delta]]] = deque()

    def step(self, now: float, rows: list[Any]) -> None:
        deltas: dict[Hashable, _Delta] = {}
        for row in rows:
            key = self._key(row)
            count, total, before = self._last.get(key, (0, 0, {}))
            self._rows[key] = row
            if row.count == count and row.total_us == total:
                continue  # nothing new: no histogram to decode on this refresh
            values = hdr.counts(row.hdr)
            d = _Delta(max(0, row.count - count), max(0, row.total_us - total))
            d.values = hdr.window(values, before)
            if d.count or d.values:
                deltas[key] = d
            self._last[key] = (row.count, row.total_us, values)
        self.intervals.append((now, deltas))

    def drop_before(self, start: float) -> None:
        while self.intervals and self.intervals[0][0] <= start:
            self.intervals.popleft()

    def summed(self) -> dict[Hashable, tuple[Any, _Delta]]:
        total: dict[Hashable, _Delta] = {}
        for _, deltas in self.intervals:
            for key, d in deltas.items():
                total.setdefault(key, _Delta()).add(d)
        return {k: (self._rows[k], d) for k, d in total.items() if d.count}


class Windows:
    """A monitor's sliding window over the Snapshots it collects, one per refresh."""

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self._clock = clock
        self._started: float | None = None
        self._queries = _Sliding(lambda q: q.fingerprint)
        self._logged = _Sliding(lambda q: (q.fingerprint, q.application))
        self._cache: deque[tuple[float, int, int]] = deque()  # (t, hits, misses) cumulative

    def add(self, snap: Snapshot) -> Recent | None:
        """Fold a new Snapshot in; the last window's figures (None on the first)."""
        now = self._clock()
        first = self._started is None
        if first:
            self._started = now
        start = now - self.window_s
        self._queries.step(now, snap.queries)
        self._logged.step(now, snap.server_log.queries if snap.server_log else [])
        if snap.cache is not None:
            self._cache.append((now, snap.cache.hits, snap.cache.misses))
        for sliding in (self._queries, self._logged):
            sliding.drop_before(start)
        while len(self._cache) > 1 and self._cache[1][0] <= start:
            self._cache.popleft()
        if first:
            return None
        assert self._started is not None
        recent = Recent(window_s=round(min(self.window_s, now - self._started), 3))
        for row, d in self._queries.summed().values():
            recent.queries.append(_windowed(row, d))
        for row, d in self._logged.summed().values():
            recent.server_queries.append(_windowed(row, d))
        recent.queries.sort(key=lambda q: q.total_us, reverse=True)
        recent.server_queries.sort(key=lambda q: q.total_us, reverse=True)
        if len(self._cache) > 1:
            (_, h0, m0), (_, h1, m1) = self._cache[0], self._cache[-1]
            recent.cache_hits, recent.cache_misses = max(0, h1 - h0), max(0, m1 - m0)
        return recent


def _windowed(row: Q, d: _Delta) -> Q:
    """The row with its window's figures in place of its cumulative ones."""
    h = hdr.from_counts(d.values)
    changes: dict[str, Any] = {
        "count": d.count,
        "total_us": d.total_us,
        "min_us": int(h.get_min_value()) if d.values else 0,
        "max_us": int(h.get_max_value()) if d.values else 0,
        "histogram": hdr.encode(h),
    }
    if isinstance(row, ServerQuery):
        changes["logged"] = 0  # lines are not windowed: count is what the window holds
    else:
        changes["errors"] = 0
        changes["buckets"] = {}
    return replace(row, **changes)  # type: ignore[type-var]
