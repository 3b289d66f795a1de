"""A working process's monitors, its Snapshot, and its publication to Redis.

A process that does work (a load test, a bulk job, the demo) wraps its Database in
an Observer: the query monitor listens on the engine, the pool monitor samples the
pool, and once a second the Snapshot goes to Redis under a key of its own with a
short TTL, so a process that dies drops out of `monitor live` within seconds.
Redis down never fails the work: publication errors are counted and skipped.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from wcperf.db.engine import Database
from wcperf.observe.pool_monitor import PoolMonitor
from wcperf.observe.query_monitor import QueryMonitor
from wcperf.observe.snapshot import CacheFigures, JobState, Snapshot, Source
from wcperf.observe.targets import evaluate
from wcperf.settings import Settings

PUBLISH_TTL_S = 5


def snapshot_key(prefix: str, source: str) -> str:
    return f"{prefix}snapshot:{source}"


class Observer:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        redis_url: str | None = None,
        strict: bool = False,
        interval_s: float = 1.0,
        cache_stats: Callable[[], CacheFigures] | None = None,
        role: str = "",
    ) -> None:
        m = settings.monitor
        self.settings = settings
        self.source = f"{socket.gethostname()}:{os.getpid()}"
        self.command = settings.command
        self.role = role  # what the process is, for tables and metric labels
        self.targets = m.targets
        self.queries = QueryMonitor(
            m.slow_ms, m.n_plus_one_threshold, m.n_plus_one_window_s, strict
        )
        self.pool = PoolMonitor(db, self.source, health_interval_s=m.health_interval_s)
        self.db = db
        self.interval_s = interval_s
        self.cache_stats = cache_stats
        # a bulk job's runner: its state, by "job N", for the throttle section
        self.throttle_state: Callable[[], dict[str, JobState]] | None = None
        self.publish_errors = 0
        self._redis: Any = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def snapshot(self) -> Snapshot:
        now = time.time()
        me = Source(self.source, self.command, os.getpid(), now, self.role)
        snap = Snapshot(taken_at=now, sources=[me])
        snap.pools = [self.pool.sample()]
        snap.pools[0].role = me.label
        snap.queries = self.queries.queries()
        snap.slow = list(self.queries.slow)  # copied in C, safe against concurrent appends
        snap.n_plus_one = list(self.queries.n_plus_one.detections)
        for slow in snap.slow:
            slow.source = self.source
        for n_plus_one in snap.n_plus_one:
            n_plus_one.source = self.source
        if self.cache_stats is not None:
            snap.cache = self.cache_stats()
        if self.throttle_state is not None:
            snap.throttle = self.throttle_state()
        snap.alerts = evaluate(snap, self.targets)
        for alert in snap.alerts:
            alert.source = alert.source or self.source
        return snap

    def publish(self) -> bool:
        if self._redis is None:
            return False
        try:
            key = snapshot_key(self.settings.redis_prefix, self.source)
            self._redis.set(key, self.snapshot().to_json(), ex=PUBLISH_TTL_S)
            return True
        except Exception:
            self.publish_errors += 1
            return False

    def start(self) -> Observer:
        self.queries.attach(self.db.engine)
        self.pool.start()
        self.publish()  # visible at once, not one interval later (bulk jobs look for it)

        def loop() -> None:
            while not self._stop.wait(self.interval_s):
                self.publish()

        self._thread = threading.Thread(target=loop, name="wcperf-publish", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.publish()  # the last figures, visible until the key expires
        self.pool.stop()
        self.queries.detach()
        if self._redis is not None:
            self._redis.close()

    def __enter__(self) -> Observer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
