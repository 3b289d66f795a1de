"""Reading the backpressure signals: our pool, other wcperf pools, the database.

Read between batches, on the job's own lease connection (outside the pool), so
reading never queues behind a pool that is full: a full pool is exactly when the
answer matters. One round trip to PostgreSQL; other processes' pools come from
their published Snapshots, read at most once a second (they publish that often).
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from wcperf.db.engine import Database
from wcperf.observe.collect import published

_DATABASE = """
select
  (select count(*) from pg_stat_activity
    where datname = current_database() and backend_type = 'client backend'
      and state = 'active' and pid <> pg_backend_pid()) as active_backends,
  (select count(distinct w.pid) from pg_locks w
    where not w.granted
      and (w.relation = any(%(oids)s)
           or (w.locktype = 'transactionid' and exists (
                 select 1 from pg_locks h join pg_locks r on r.pid = h.pid
                  where h.locktype = 'transactionid' and h.granted
                    and h.transactionid = w.transactionid
                    and r.granted and r.relation = any(%(oids)s))))) as lock_waits,
  (select count(distinct v.relid) from pg_stat_progress_vacuum v
     join pg_stat_activity a on a.pid = v.pid
    where a.backend_type = 'autovacuum worker' and v.relid = any(%(oids)s)) as autovacuum,
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
        others_every_s: float = 1.0,
    ) -> None:
        self.db, self.conn = db, conn
        self.oids = table_oids(conn, tables)
        self.redis, self.prefix, self.own_source = redis_client, prefix, own_source
        self.others_every_s = others_every_s
        self._others: dict[str, float | None] = {"others_waiting": None, "others_util_pct": None}
        self._others_at = 0.0
        self.notes: list[str] = []

    def read(self) -> dict[str, float | None]:
        figures = self.db.figures()
        values: dict[str, float | None] = {
            "pool_waiting": float(figures.waiting),
            "pool_util_pct": round(figures.utilisation_pct, 1),
        }
        values |= self._other_pools()
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

    def _other_pools(self) -> dict[str, float | None]:
        now = time.monotonic()
        if self.redis is None or now - self._others_at < self.others_every_s:
            return self._others
        self._others_at = now
        try:
            pools = [
                p
                for snap in published(self.redis, self.prefix)
                for p in snap.pools
                if p.source != self.own_source
            ]
        except Exception as exc:  # Redis down: the other signals still hold
            note = f"other wcperf pools unknown: Redis unreachable ({type(exc).__name__})"
            self.notes = [note]
            self._others = {"others_waiting": None, "others_util_pct": None}
            return self._others
        self.notes = []
        self._others = {
            "others_waiting": float(sum(p.waiting for p in pools)) if pools else 0.0,
            "others_util_pct": max((p.utilisation_pct for p in pools), default=0.0),
        }
        return self._others
