"""The Redis tier: sealed entries under keys that name their generations, and the short
lock that lets one process load a key while the others wait for its value.

Values are sealed (AES-GCM with a key from the cache secret, bound to their key name):
Redis holds no readable PHI, and whoever can write to it still cannot make this process
unpickle anything of theirs.
"""

from __future__ import annotations

import pickle
import secrets
import time
from typing import Any

import redis

from wcperf.cache.keys import Sealer

MISS = object()
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"


class L2:
    def __init__(self, sealer: Sealer, lock_ttl_ms: int, counts: dict[str, int]) -> None:
        self._sealer = sealer
        self.lock_ttl_ms = lock_ttl_ms
        self._counts = counts

    def read(self, r: redis.Redis, rkey: str) -> tuple[Any, int]:
        """(value or MISS, bytes): one GET."""
        blob = r.get(rkey)
        if not isinstance(blob, bytes):  # absent (the client never decodes responses)
            return MISS, 0
        payload = self._sealer.unseal(blob, rkey)
        if payload is None:
            self._counts["l2_tampered"] += 1
            return MISS, 0
        return pickle.loads(payload), len(blob)  # sealed by us for this key, checked above

    def lock(self, r: redis.Redis, rkey: str) -> str | None:
        """A token when this process now holds the key's load lock, else None."""
        token = secrets.token_hex(8)
        return token if r.set(rkey + ":lock", token, nx=True, px=self.lock_ttl_ms) else None

    def release(self, r: redis.Redis, rkey: str, token: str) -> None:
        r.eval(_RELEASE, 1, rkey + ":lock", token)

    def wait_for_other(self, r: redis.Redis, rkey: str) -> tuple[Any, int]:
        """Another process is loading this key: wait for its value, briefly."""
        self._counts["lock_waits"] += 1
        deadline = time.monotonic() + self.lock_ttl_ms / 1000
        while time.monotonic() < deadline:
            time.sleep(0.005)
            value, size = self.read(r, rkey)
            if value is not MISS:
                return value, size
            if not r.exists(rkey + ":lock"):
                # Gone: either it stored the value just after our read, or it failed.
                return self.read(r, rkey)
        return MISS, 0

    def write(self, r: redis.Redis, rkey: str, blob: bytes, ttl_s: int, token: str | None) -> None:
        """Store the pickled value sealed, and let go of the lock, in one round trip."""
        pipe = r.pipeline(transaction=False)
        pipe.set(rkey, self._sealer.seal(blob, rkey), ex=ttl_s)
        if token:
            pipe.eval(_RELEASE, 1, rkey + ":lock", token)
        pipe.execute()
        self._counts["l2_writes"] += 1
