"""The pool's figures over time: samples, a periodic health check, 24 h of minutes."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from wcperf.db.engine import Database
from wcperf.observe.snapshot import HistoryPoint, PoolStats

MINUTES_KEPT = 24 * 60


class PoolMonitor:
    def __init__(
        self,
        db: Database,
        source: str,
        *,
        health_interval_s: float = 60.0,
        health_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db, self.source = db, source
        self.health_interval_s, self.health_timeout_s = health_interval_s, health_timeout_s
        self._clock = clock
        self.history: deque[HistoryPoint] = deque(maxlen=MINUTES_KEPT)
        self._minute: tuple[int, float, int, float, int] | None = None  # minute, max util,
        # max waiting, sum in use, samples
        self.consecutive_failures = 0
        self.last_check_at: float | None = None
        self._healthy: bool | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_health(self) -> bool:
        self.last_check_at = self._clock()
        try:
            with self.db.pool.connection(timeout=self.health_timeout_s) as conn:
                conn.execute("select 1")
        except Exception:
            self.consecutive_failures += 1
            self._healthy = False
            return False
        self.consecutive_failures = 0
        self._healthy = True
        return True

    def sample(self) -> PoolStats:
        f = self.db.figures()
        self._account(f.utilisation_pct, f.waiting, f.in_use)
        history = list(self.history)
        if self._minute is not None:
            m, util, waiting, total, n = self._minute
            history.append(HistoryPoint(m, util, waiting, total / n))
        health = "unknown" if self._healthy is None else "ok" if self._healthy else "failing"
        return PoolStats(
            self.source,
            f.max_size,
            f.min_size,
            f.open,
            f.in_use,
            f.idle,
            f.waiting,
            round(f.utilisation_pct, 1),
            f.requests,
            round(f.mean_wait_ms, 2),
            f.timeouts,
            health,
            self.consecutive_failures,
            self.last_check_at,
            history,
            requests_queued=f.requests_queued,
            wait_ms_total=float(f.wait_ms_total),
        )

    def _account(self, util: float, waiting: int, in_use: int) -> None:
        minute = int(self._clock() // 60)
        if self._minute is None or self._minute[0] != minute:
            if self._minute is not None:
                m, u, w, total, n = self._minute
                self.history.append(HistoryPoint(m, u, w, total / n))
            self._minute = (minute, util, waiting, float(in_use), 1)
            return
        m, u, w, total, n = self._minute
        self._minute = (m, max(u, util), max(w, waiting), total + in_use, n + 1)

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                self.check_health()
                self._stop.wait(self.health_interval_s)

        self._thread = threading.Thread(target=loop, name="wcperf-pool-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.health_timeout_s + 1)
