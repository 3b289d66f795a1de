"""Counters that outlive the processes that counted them.

Each wcperf process publishes its own cumulative counts; the exporter sums them
under stable labels. A plain sum falls when a process exits (its share leaves the
sum), and Prometheus reads every fall as a counter reset, so `rate()` would report
an increase that never happened. `Carry` keeps each gone process's last counts and
goes on adding them: a series only ever grows while the exporter runs, and a restart
of the exporter itself is the one reset Prometheus sees.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping

FORGET_AFTER_S = 600.0  # a process gone this long is folded into the base for good


class Carry:
    def __init__(
        self, forget_after_s: float = FORGET_AFTER_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.forget_after_s = forget_after_s
        self._clock = clock
        self._live: dict[str, dict[Hashable, float]] = {}
        # gone within the last forget_after_s: kept apart in case the process was only
        # late to publish and comes back (then its counts are its own again, not doubled)
        self._gone: dict[str, tuple[float, dict[Hashable, float]]] = {}
        self._base: dict[Hashable, float] = {}

    def update(self, by_source: Mapping[str, Mapping[Hashable, float]]) -> dict[Hashable, float]:
        """The totals, given every live source's cumulative counts just now."""
        now = self._clock()
        for source in [s for s in self._live if s not in by_source]:
            self._gone[source] = (now, self._live.pop(source))
        for source, counts in by_source.items():
            before = self._live.get(source)
            if before is None and source in self._gone:
                before = self._gone.pop(source)[1]
            # a source's counts are cumulative; a smaller figure is a stale publish
            merged = dict(counts) if before is None else dict(before)
            if before is not None:
                for key, value in counts.items():
                    if value > merged.get(key, 0.0):
                        merged[key] = value
            self._live[source] = merged
        for source, (gone_at, counts) in list(self._gone.items()):
            if now - gone_at > self.forget_after_s:
                del self._gone[source]
                _add(self._base, counts)
        totals = dict(self._base)
        for _, counts in self._gone.values():
            _add(totals, counts)
        for counts in self._live.values():
            _add(totals, counts)
        return totals


def _add(into: dict[Hashable, float], counts: Mapping[Hashable, float]) -> None:
    for key, value in counts.items():
        into[key] = into.get(key, 0.0) + value
