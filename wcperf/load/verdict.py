"""A Snapshot judged against Targets, and two load results side by side.

The verdict reads its figures from a Snapshot: a load run's own section where it has
one (operations timed end to end, the pool's peaks), else what every Snapshot holds
(statements, pools, cache). The same `Targets` the monitor's alerts use, so a
scenario's `[targets]` are spelt as `WCPERF_TARGETS` is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from wcperf.observe import histogram as hdr
from wcperf.observe.snapshot import Snapshot
from wcperf.settings import Targets


def _latency(pct: float) -> Callable[[Snapshot], float | None]:
    def figure(snap: Snapshot) -> float | None:
        h = snap.load.overall() if snap.load else snap.overall()
        return hdr.percentile_ms(h, pct) if h.get_total_count() else None

    return figure


def error_pct(snap: Snapshot) -> float | None:
    if snap.load is not None:
        count, errors = snap.load.overall().get_total_count(), snap.load.errors
    else:
        count = sum(q.count for q in snap.queries)
        errors = sum(q.errors for q in snap.queries)
    return round(100 * errors / count, 3) if count else None


def _cache_hit(snap: Snapshot) -> float | None:
    return snap.cache.hit_rate_pct if snap.cache else None


def _pool_utilisation(snap: Snapshot) -> float | None:
    if snap.load is not None:
        return snap.load.pool.peak_utilisation_pct
    return max((p.utilisation_pct for p in snap.pools), default=None)


def _pool_waiting(snap: Snapshot) -> float | None:
    if snap.load is not None:
        return snap.load.pool.peak_waiting
    return max((p.waiting for p in snap.pools), default=None)


# target -> (its figure in a Snapshot, True when higher is better)
_FIGURES: dict[str, tuple[Callable[[Snapshot], float | None], bool]] = {
    "p50_ms": (_latency(50), False),
    "p95_ms": (_latency(95), False),
    "p99_ms": (_latency(99), False),
    "error_pct": (error_pct, False),
    "cache_hit_pct": (_cache_hit, True),
    "pool_utilisation_pct": (_pool_utilisation, False),
    "pool_waiting": (_pool_waiting, False),
    "n_plus_one": (lambda snap: float(len(snap.n_plus_one)), False),
}

TARGETS = frozenset(_FIGURES)  # what a scenario's [targets] may name (each a Targets field)


@dataclass(frozen=True)
class Check:
    target: str
    limit: float
    value: float | None  # None: the run has no such figure
    passed: bool | None


@dataclass(frozen=True)
class Verdict:
    passed: bool
    checks: tuple[Check, ...]

    def serialize(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks]}


def judge(snap: Snapshot, t: Targets, names: Iterable[str]) -> Verdict:
    """Each named target, met or missed; one missed fails the run, one without data not."""
    checks = []
    for name in names:
        figure, higher = _FIGURES[name]
        limit = float(getattr(t, name))
        value = figure(snap)
        if value is None:
            checks.append(Check(name, limit, None, None))
            continue
        passed = value >= limit if higher else value <= limit
        checks.append(Check(name, limit, value, passed))
    return Verdict(all(c.passed is not False for c in checks), tuple(checks))
