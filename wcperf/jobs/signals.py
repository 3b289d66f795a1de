"""Reading the backpressure signals: our pool, other wcperf pools, the database.

Read between batches, on the job's own lease connection (outside the pool), so
reading never queues behind a pool that is full: a full pool is exactly when the
answer matters. One round trip to PostgreSQL; other processes' pools come from
their published Snapshots, read at most twice a second (they publish once a second).

The live-latency signals read what the other processes' queries took in the last
window (the difference of their cumulative HDR histograms between two readings):
`live_p99_ratio` against the same figure measured before the job's first batch,
so the job backs off when it measurably slows the nurses down, on any server,
without a threshold in milliseconds to tune; and `live_p99_ms` as it is, against
the P99 target, so a job never runs the nurses past it whatever its baseline. A
baseline is never taken from a window already over the target, nor set above what
the monitor's history remembers of a normal hour: a job started on a degraded
system would otherwise call the degradation normal.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from wcperf.db.engine import Database
from wcperf.observe import histogram as hdr
from wcperf.observe.collect import published
from wcperf.observe.snapshot import MinutePoint

MIN_SAMPLES = 200  # fewer queries in a window say nothing about a P99
RATIO_ALPHA = 0.5  # weight of the newest window in the smoothed latency ratio
# Fewer than MIN_SAMPLES new queries for this long: nobody left to protect (the load
# ended, its processes exited, the nurses went home), so the latency signals lapse.
QUIET_S = 5.0

# Locks and vacuums are matched by table OID and database: a database cloned from
# another on the same server has the same OIDs.
_DATABASE = """
with here as (select oid from pg_database where datname = current_database())
select
  (select count(*) from pg_stat_activity
    where datname = current_database() and backend_type = 'client backend'
      and state = 'active' and pid <> pg_backend_pid()) as active_backends,
  (select count(distinct w.pid) from pg_locks w
    where not w.granted
      and ((w.relation = any(%(oids)s) and w.database = (select oid from here))
           or (w.locktype = 'transactionid' and exists (
                 select 1 from pg_locks h join pg_locks r on r.pid = h.pid
                  where h.locktype = 'transactionid' and h.granted
                    and h.transactionid = w.transactionid
                    and r.granted and r.relation = any(%(oids)s)
                    and r.database = (select oid from here))))) as lock_waits,
  (select count(distinct v.relid) from pg_stat_progress_vacuum v
     join pg_stat_activity a on a.pid = v.pid
    where a.backend_type = 'autovacuum worker' and v.relid = any(%(oids)s)
      and v.datid = (select oid from here)) as autovacuum,
  (select count(*) from pg_stat_replication) as replicas,
  (select coalesce(max(extract(epoch from greatest(write_lag, flush_lag, replay_lag))), 0)
     from pg_stat_replication) as replica_lag_s
"""


def table_oids(conn: psycopg.Connection, tables: tuple[str, ...]) -> list[int]:
    rows = conn.execute(
        "select to_regclass(t)::oid from unnest(%s::text[]) t", (list(tables),)
    ).fetchall()
    return [int(r[0]) for r in rows if r[0] is not None]


class SignalReader:
    def __init__(
        self,
        db: Database,
        conn: psycopg.Connection,
        tables: tuple[str, ...],
        *,
        redis_client: Any = None,
        prefix: str = "wcperf:",
        own_source: str = "",
        others_every_s: float = 0.5,
        baseline_limit_ms: float | None = None,
        remembered_p99_ms: float | None = None,
    ) -> None:
        self.db, self.conn = db, conn
        self.oids = table_oids(conn, tables)
        self.redis, self.prefix, self.own_source = redis_client, prefix, own_source
        self.others_every_s = others_every_s
        self._others: dict[str, float | None] = dict.fromkeys(_OTHERS)
        self._others_at = 0.0
        self._seen: dict[str, dict[int, int]] = {}  # each publisher's cumulative latencies
        self._taken: dict[str, float] = {}  # ... and when its Snapshot was taken
        self._ratio: float | None = None
        self._p99_ms: float | None = None
        self._heard_at = time.monotonic()  # when a window last held MIN_SAMPLES
        self.baseline_p99_us: int | None = None
        self.baseline_limit_ms = baseline_limit_ms  # no baseline from a window over this
        # the P99 the history remembers from before (`remembered_p99`): the baseline is never
        # above it, so a load already degraded when the job starts is not taken as normal
        self.remembered_p99_ms = remembered_p99_ms
        self.notes: list[str] = []
        self._baseline_note = ""

    def prime(self, wait_s: float = 1.1) -> None:
        """Measure the other processes' P99 before the job starts (one window, ~1 s)."""
        if self.redis is None:
            return
        self.others(force=True)
        if self._seen:  # someone is publishing: wait for their next figures
            time.sleep(wait_s)
            self.others(force=True)

    def read(self) -> dict[str, float | None]:
        figures = self.db.figures()
        values: dict[str, float | None] = {
            "pool_waiting": float(figures.waiting),
            "pool_util_pct": round(figures.utilisation_pct, 1),
        }
        values |= self.others()
        row = self.conn.execute(_DATABASE, {"oids": self.oids}).fetchone()
        assert row is not None
        active, locks, vacuum, replicas, lag = row
        values |= {
            "active_backends": float(active),
            "lock_waits": float(locks),
            "autovacuum": float(vacuum),
            "replica_lag_s": float(lag) if replicas else None,
        }
        return values

    def others(self, force: bool = False) -> dict[str, float | None]:
        now = time.monotonic()
        if self.redis is None or (not force and now - self._others_at < self.others_every_s):
            return self._others
        self._others_at = now
        try:
            snaps = [
                s
                for s in published(self.redis, self.prefix)
                if not any(src.name == self.own_source for src in s.sources)
            ]
        except Exception as exc:  # Redis down: the other signals still hold
            note = f"other wcperf pools unknown: Redis unreachable ({type(exc).__name__})"
            self.notes = [note]
            self._others = dict.fromkeys(_OTHERS)
            return self._others
        pools = [p for snap in snaps for p in snap.pools]
        ratio = self._latency(snaps)
        self.notes = [self._baseline_note] if self._baseline_note else []
        self._others = {
            "others_waiting": float(sum(p.waiting for p in pools)),
            "others_util_pct": max((p.utilisation_pct for p in pools), default=0.0),
            "live_p99_ratio": ratio,
            "live_p99_ms": self._p99_ms,
        }
        return self._others

    def _latency(self, snaps: list[Any]) -> float | None:
        """Their P99 over the last window, as a multiple of the P99 before the job.

        Only publishers with a newer Snapshot than last time count; a reading with
        nothing new keeps the last figure rather than forgetting it, for QUIET_S: a
        job paused by a load that has since ended must not stay paused for good.
        """
        recent: dict[int, int] = {}
        for snap in snaps:
            if not snap.sources:
                continue
            name, taken = snap.sources[0].name, snap.sources[0].taken_at
            if self._taken.get(name) == taken:
                continue
            now = hdr.counts(snap.overall())
            if name in self._seen:
                for value, n in hdr.window(now, self._seen[name]).items():
                    recent[value] = recent.get(value, 0) + n
            self._seen[name], self._taken[name] = now, taken
        if sum(recent.values()) < MIN_SAMPLES:
            if time.monotonic() - self._heard_at > QUIET_S:
                self._ratio = self._p99_ms = None
            return self._ratio
        self._heard_at = time.monotonic()
        p99 = hdr.counts_percentile(recent, 99)
        self._p99_ms = round(p99 / 1000, 3)
        if self.baseline_p99_us is None:
            limit = self.baseline_limit_ms
            if limit is not None and self._p99_ms > limit:
                self._baseline_note = (
                    f"no latency baseline yet: the other processes' P99 is {self._p99_ms:.0f} ms,"
                    f" over its {limit:g} ms target already"
                )
                return self._ratio
            self._baseline_note = ""
            self.baseline_p99_us = p99
            remembered = self.remembered_p99_ms
            if remembered is not None and p99 > remembered * 1000:
                self.baseline_p99_us = max(int(remembered * 1000), 1)
                self._baseline_note = (
                    f"latency baseline {remembered:g} ms from the history (the P99 now is"
                    f" {self._p99_ms:g} ms)"
                )
                self._ratio = round(p99 / self.baseline_p99_us, 2)
                return self._ratio
            # Traffic to protect, the job's effect not yet seen: assume it is felt.
            self._ratio = 1.0
        else:  # smoothed: one quiet second must not send the job back to full speed
            ratio = p99 / max(self.baseline_p99_us, 1)
            self._ratio = round(RATIO_ALPHA * ratio + (1 - RATIO_ALPHA) * (self._ratio or ratio), 2)
        return self._ratio


_OTHERS = ("others_waiting", "others_util_pct", "live_p99_ratio", "live_p99_ms")
REMEMBER_MINUTES = 60  # how far back the history's good minutes are looked for
REMEMBER_AT_LEAST = 5  # fewer good minutes than this remember nothing


def remembered_p99(
    points: list[MinutePoint], limit_ms: float | None, now_minute: int
) -> float | None:
    """The P99 of a normal hour: the median over the last hour's minute points (the
    monitor's shared history) of those within `limit_ms`, the P99 target. A job that
    starts while the nurses' load is already slow would otherwise take that for normal
    and let it get slower still; with no monitor running, there is no history and the
    first window stands alone (still refused when over the target)."""
    good = sorted(
        v
        for p in points
        if p.minute > now_minute - REMEMBER_MINUTES
        and (v := p.figures.get("p99_ms")) is not None
        and v > 0
        and (limit_ms is None or v <= limit_ms)
    )
    if len(good) < REMEMBER_AT_LEAST:
        return None
    return good[len(good) // 2]
