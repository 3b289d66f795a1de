"""The cache's Redis connection, failing soft: short timeouts, an exponential back-off
while Redis is unreachable, and each outage counted and timed. Nothing here raises to
a reader; the callers catch `redis.RedisError` and tell the link."""

from __future__ import annotations

import time
from enum import StrEnum

import redis


class CacheMode(StrEnum):
    """Which tiers serve reads just now, in the words the stats and tables show."""

    TIERED = "L1 + Redis"
    L1_ONLY = "L1 only: no Redis configured"
    REDIS_DOWN = "L1 only: Redis unreachable, retrying"  # nothing fails; L1 and the database


class RedisLink:
    FIRST_BACKOFF_S = 0.5
    MAX_BACKOFF_S = 10.0

    def __init__(self, url: str | None, counts: dict[str, int], timeout_s: float) -> None:
        self.client: redis.Redis | None = None
        if url:
            self.client = redis.Redis.from_url(
                url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
            )
        self._counts = counts
        self._down_until = 0.0
        self._backoff = self.FIRST_BACKOFF_S
        self.outages = 0  # times Redis became unreachable
        self.outage_s = 0.0  # for how long, ended outages
        self._outage_since: float | None = None

    def usable(self) -> redis.Redis | None:
        """The client, unless there is none or it is backing off after a failure."""
        if self.client is None or time.monotonic() < self._down_until:
            return None
        return self.client

    @property
    def in_outage(self) -> bool:
        return self._outage_since is not None

    def failed(self) -> None:
        now = time.monotonic()
        self._counts["l2_errors"] += 1
        if self._outage_since is None:  # an outage begins: count it, time it
            self._outage_since = now
            self.outages += 1
        self._down_until = now + self._backoff
        self._backoff = min(self._backoff * 2, self.MAX_BACKOFF_S)

    def recovered(self) -> None:
        """Redis answered: an outage, if one was running, ends here."""
        if self._outage_since is not None:
            self.outage_s += time.monotonic() - self._outage_since
            self._outage_since = None
        self._backoff = self.FIRST_BACKOFF_S

    def outage_figures(self) -> dict[str, float]:
        """Redis outages ridden through: how many, and for how long in all (one still
        running counts up to now)."""
        running = time.monotonic() - self._outage_since if self._outage_since else 0.0
        return {"count": self.outages, "seconds": round(self.outage_s + running, 3)}

    def mode(self) -> CacheMode:
        if self.client is None:
            return CacheMode.L1_ONLY
        if time.monotonic() < self._down_until:
            return CacheMode.REDIS_DOWN
        return CacheMode.TIERED

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
