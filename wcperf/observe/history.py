"""24 hours at 1-minute points, in Redis where every wcperf process reads them.

A monitor that has watched a whole minute writes that minute's point: the pool,
the cache, the server's connections and lock waits, and percentiles overall and
for the busiest statements (app side and server log), all from its last window.
One point per minute whatever the number of monitors (the first to claim the
minute writes it); the list is trimmed to 1,440 points, so it is bounded
(about 2 KB a point). It outlives the monitor: a new one reads it back.
Without Redis the points live in the monitor's own memory, and it says so.

Each figure's trend follows one stated rule (`RULE`).
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from wcperf.observe import histogram as hdr
from wcperf.observe.snapshot import MinutePoint, Snapshot, Trend

MINUTES = 1440
TOP = 20  # statements kept per point, busiest first
FULL_WINDOW_S = 50.0  # a point needs (nearly) a minute behind it
READ_EVERY_S = 15.0
RECENT, BEFORE = 5, 15  # points
CHANGE = 0.10
RULE = (
    f"the mean of the last {RECENT} minutes against the mean of the {BEFORE} before them: "
    f"degrading if worse by more than {CHANGE:.0%}, improving if better by more than "
    f"{CHANGE:.0%}, otherwise stable; unknown with fewer than {RECENT + 5} points"
)
# figure -> True when higher is worse
FIGURES = {
    "p50_ms": True,
    "p95_ms": True,
    "p99_ms": True,
    "server_p95_ms": True,
    "server_p99_ms": True,
    "pool_utilisation_pct": True,
    "pool_waiting": True,
    "cache_hit_pct": False,
    "connections_pct": True,
    "lock_waits": True,
}
# below these, a change is noise, not a trend (ms, %, sessions)
FLOORS = {"pool_waiting": 1.0, "lock_waits": 1.0, "connections_pct": 1.0}


def point(snap: Snapshot, minute: int) -> MinutePoint | None:
    """The minute's point from a Snapshot with a (nearly) full window, else None."""
    recent = snap.recent
    if recent is None or recent.window_s < FULL_WINDOW_S:
        return None
    f: dict[str, float | None] = dict.fromkeys(FIGURES)
    overall = recent.overall()
    if overall.get_total_count():
        for pct in (50, 95, 99):
            f[f"p{pct}_ms"] = hdr.percentile_ms(overall, pct)
    if recent.server_queries:
        logged = hdr.merge([q.histogram for q in recent.server_queries])
        f["server_p95_ms"] = hdr.percentile_ms(logged, 95)
        f["server_p99_ms"] = hdr.percentile_ms(logged, 99)
    if snap.pools:
        f["pool_utilisation_pct"] = max(p.utilisation_pct for p in snap.pools)
        f["pool_waiting"] = float(max(p.waiting for p in snap.pools))
    f["cache_hit_pct"] = recent.cache_hit_rate_pct
    db = snap.database
    if db is not None and db.max_connections:
        usable = max(1, db.max_connections - db.reserved_connections)
        f["connections_pct"] = round(100.0 * db.connections / usable, 1)
        f["lock_waits"] = float(db.waiting_on_locks)
    return MinutePoint(
        minute,
        f,
        {
            q.fingerprint: [q.count, q.p(50), q.p(95), q.p(99)]
            for q in sorted(recent.queries, key=lambda q: q.count, reverse=True)[:TOP]
        },
        {
            f"{q.fingerprint} {q.application}": [q.count, q.p(50), q.p(95), q.p(99)]
            for q in sorted(recent.server_queries, key=lambda q: q.count, reverse=True)[:TOP]
        },
    )


def trends(points: list[MinutePoint]) -> dict[str, Trend]:
    """Each figure's trend over the points, by `RULE`."""
    out = {}
    for name, higher_is_worse in FIGURES.items():
        values = [p.figures.get(name) for p in points]
        known = [v for v in values if v is not None]
        now_part = [v for v in values[-RECENT:] if v is not None]
        before_part = [v for v in values[-RECENT - BEFORE : -RECENT] if v is not None]
        if len(known) < RECENT + 5 or not now_part or not before_part:
            out[name] = Trend(name, "unknown", None, None)
            continue
        now = sum(now_part) / len(now_part)
        before = sum(before_part) / len(before_part)
        change = now - before
        floor = max(FLOORS.get(name, 0.0), CHANGE * abs(before))
        if abs(change) <= floor:
            word = "stable"
        else:
            worse = change > 0 if higher_is_worse else change < 0
            word = "degrading" if worse else "improving"
        out[name] = Trend(name, word, round(now, 3), round(before, 3))
    return out


class History:
    """The shared minute points: written once a minute, read back every few seconds."""

    def __init__(self, client: Any, prefix: str, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._key = f"{prefix}history"
        self._clock = clock
        self._local: deque[MinutePoint] = deque(maxlen=MINUTES)
        self._cached: list[MinutePoint] = []
        self._read_at: float | None = None
        self.note = ""

    def record(self, snap: Snapshot) -> None:
        """Write the minute just ended, if nobody has and this monitor watched it."""
        minute = int(self._clock() // 60) - 1
        found = point(snap, minute)
        if found is None:
            return
        text = json.dumps(asdict(found), separators=(",", ":"))
        if self._client is not None:
            try:
                if self._client.set(f"{self._key}:claimed:{minute}", "1", nx=True, ex=180):
                    pipe = self._client.pipeline()
                    pipe.rpush(self._key, text)
                    pipe.ltrim(self._key, -MINUTES, -1)
                    pipe.execute()
                    self._read_at = None  # read it back at once
                self.note = ""
                return
            except Exception as exc:  # Redis away: keep the minute here meanwhile
                self.note = f"history kept in this process only (Redis: {type(exc).__name__})"
        elif not self.note:
            self.note = "history kept in this process only: no Redis"
        if not self._local or self._local[-1].minute < minute:
            self._local.append(found)
            self._read_at = None

    def points(self) -> list[MinutePoint]:
        now = self._clock()
        if self._read_at is not None and now - self._read_at < READ_EVERY_S:
            return self._cached
        shared: list[MinutePoint] = []
        if self._client is not None:
            try:
                shared = [_load(raw) for raw in self._client.lrange(self._key, 0, -1)]
            except Exception:
                shared = []
        by_minute = {p.minute: p for p in [*self._local, *shared]}
        oldest = int(now // 60) - MINUTES
        self._cached = [by_minute[m] for m in sorted(by_minute) if m > oldest]
        self._read_at = now
        return self._cached


def _load(raw: bytes | str) -> MinutePoint:
    data = json.loads(raw)
    return MinutePoint(
        int(data["minute"]),
        dict(data.get("figures") or {}),
        dict(data.get("queries") or {}),
        dict(data.get("server_queries") or {}),
    )
