"""Backpressure decisions and batch sizing: pure functions of the signals read.

Each signal has a *pause* and an *abort* threshold (either may be off). Between
the two lies the decision:

- every signal below half its pause threshold: go at full speed;
- the highest one between half and all of its pause threshold: *slow*, resting
  after each batch for up to four times the batch's own time (a duty cycle that
  falls to a fifth as the signal nears the threshold), and aiming at batches down
  to a quarter of the target, so each holds locks and a core for less time;
- any signal at its pause threshold: *pause*, re-checking with backoff;
- any signal at its abort threshold: *abort*; the job stops cleanly between
  batches and can be resumed.

The reason is always a sentence of figures, so the display can say why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wcperf.errors import ConfigError
from wcperf.jobs.states import SHOWN, Verdict
from wcperf.settings import THROTTLE_LIMITS, parse_throttle


@dataclass(frozen=True)
class Limit:
    pause: float | None
    abort: float | None


_READS = {  # how each signal reads in a reason
    "pool_waiting": "our pool: {v:g} requests waiting",
    "pool_util_pct": "our pool: {v:.0f} % in use",
    "others_waiting": "other wcperf pools: {v:g} requests waiting",
    "others_util_pct": "another wcperf pool: {v:.0f} % in use",
    "live_p99_ratio": "other wcperf processes' P99 {v:.2f}x its level before the job",
    "live_p99_ms": "other wcperf processes' P99 {v:.0f} ms",
    "active_backends": "database: {v:g} active backends",
    "lock_waits": "{v:g} sessions waiting on locks on the job's tables",
    "autovacuum": "autovacuum on {v:g} of the job's tables",
    "replica_lag_s": "replica lag {v:.1f} s",
}
# name: (how it reads, default limits from the settings tree)
SIGNALS: dict[str, tuple[str, Limit]] = {
    name: (_READS[name], Limit(*limits)) for name, limits in THROTTLE_LIMITS.items()
}
SLOW_FROM = 0.5  # share of the pause threshold where slowing starts
MAX_REST = 4.0  # rest = up to this many times the batch's own time
MIN_TARGET = 0.25  # batches aim down to this share of the target time


@dataclass(frozen=True)
class Thresholds:
    limits: dict[str, Limit] = field(default_factory=lambda: {k: v[1] for k, v in SIGNALS.items()})

    def pause_of(self, signal: str) -> float | None:
        limit = self.limits.get(signal)
        return limit.pause if limit is not None else None

    @classmethod
    def of(cls, limits: Mapping[str, tuple[float | None, float | None]]) -> Thresholds:
        """From the settings tree's (pause, abort) pairs (`Settings.bulk.throttle`)."""
        return cls({k: Limit(*v) for k, v in limits.items()})

    @classmethod
    def parse(cls, specs: list[str] | str | None, base: Thresholds | None = None) -> Thresholds:
        """`active_backends=8:64,autovacuum=1:-`: pause:abort per signal, `-` for off."""
        start = {k: (v.pause, v.abort) for k, v in (base or cls()).limits.items()}
        return cls.of(parse_throttle(specs, start))


@dataclass
class Decision:
    state: Verdict
    reasons: list[str] = field(default_factory=list)
    pressure: float = 0.0  # highest value / pause threshold

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def rest_s(self, batch_s: float) -> float:
        """How long to rest after a batch that took `batch_s`."""
        if self.state != Verdict.SLOW:
            return 0.0
        return batch_s * MAX_REST * (self.pressure - SLOW_FROM) / (1 - SLOW_FROM)

    def target_ms(self, target_ms: float) -> float:
        """Shorter batches under pressure: locks held for less time."""
        if self.state != Verdict.SLOW:
            return target_ms
        share = (self.pressure - SLOW_FROM) / (1 - SLOW_FROM)
        return target_ms * (1 - (1 - MIN_TARGET) * share)


GO = Decision(Verdict.GO)


def _describe(name: str, value: float, threshold: float, what: str) -> str:
    return SIGNALS[name][0].format(v=value) + f" ({what} at {threshold:g})"


def decide(values: dict[str, float | None], thresholds: Thresholds) -> Decision:
    aborts: list[str] = []
    pauses: list[str] = []
    pressure, worst = 0.0, ""
    for name, value in values.items():
        limit = thresholds.limits.get(name)
        if value is None or limit is None:
            continue
        if limit.abort is not None and value >= limit.abort:
            aborts.append(_describe(name, value, limit.abort, "abort"))
        if limit.pause is not None:
            if value >= limit.pause:
                pauses.append(_describe(name, value, limit.pause, "pause"))
            share = value / limit.pause
            if share > pressure:
                pressure, worst = share, _describe(name, value, limit.pause, "pause")
    if aborts:
        return Decision(Verdict.ABORT, aborts, pressure)
    if pauses:
        return Decision(Verdict.PAUSE, pauses, pressure)
    if pressure >= SLOW_FROM:
        return Decision(Verdict.SLOW, [worst], pressure)
    return Decision(Verdict.GO, [], pressure)


class Backoff:
    """Re-check delays while paused: short at first, never more than `cap_s` apart."""

    def __init__(self, first_s: float = 0.25, factor: float = 2.0, cap_s: float = 5.0) -> None:
        self.first_s, self.factor, self.cap_s = first_s, factor, cap_s
        self._next = first_s

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * self.factor, self.cap_s)
        return delay

    def reset(self) -> None:
        self._next = self.first_s


class BatchSizer:
    """Rows per batch from a smoothed rows-per-second rate and a target batch time.

    Growth is at most doubling per batch (a fast empty stretch must not produce a
    batch that then holds locks for seconds); shrinking is immediate.
    """

    def __init__(
        self,
        target_ms: float = 200.0,
        *,
        initial: int = 1000,
        lo: int = 100,
        hi: int = 50_000,
        alpha: float = 0.3,
    ) -> None:
        if not lo <= initial <= hi:
            raise ConfigError(f"batch size {initial} is outside {lo}..{hi}")
        self.target_ms, self.lo, self.hi, self.alpha = target_ms, lo, hi, alpha
        self.size = initial
        self.ms_per_row: float | None = None

    def observe(self, rows: int, seconds: float) -> None:
        if rows <= 0 or seconds <= 0:
            return
        sample = seconds * 1000 / rows
        self.ms_per_row = (
            sample
            if self.ms_per_row is None
            else self.alpha * sample + (1 - self.alpha) * self.ms_per_row
        )

    def next(self, target_ms: float | None = None) -> int:
        if self.ms_per_row is not None:
            wanted = int((target_ms or self.target_ms) / self.ms_per_row)
            self.size = max(self.lo, min(self.hi, wanted, 2 * self.size))
        return self.size

    def shrink(self) -> int:
        """After a batch failed on a lock or statement timeout: half as many rows."""
        self.size = max(self.lo, self.size // 2)
        return self.size


def state_dict(decision: Decision, values: dict[str, Any]) -> dict[str, Any]:
    """The throttle as the job row, the Snapshot and the display show it."""
    return {
        "state": SHOWN[decision.state],
        "reason": decision.reason,
        "pressure": round(decision.pressure, 3),
        "signals": {k: v for k, v in values.items() if v is not None},
    }
