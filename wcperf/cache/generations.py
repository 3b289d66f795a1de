"""This process's mirror of the cache's generation numbers.

Every table has a generation, and a few tables also one per bucket of a scoping
column (`scopes`). Bumps are INCRs in Redis announced by pub/sub; a listener thread
applies other processes' announcements within a millisecond and re-reads every
generation each second in case a message was lost. A bump made while Redis is down
counts here at once and is pushed when Redis answers again. Names of row buckets
are keyed with the cache secret before they reach Redis (`keys.keyed_name`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import redis

from wcperf.cache.inventory import events_channel
from wcperf.cache.keys import keyed_name
from wcperf.cache.link import RedisLink

MAX_NAMES = 4096  # generation names a process keeps and re-reads each second
# KEYS: the generations to bump; ARGV: the channel, then each one's public name.
_BUMP = """
local parts = {}
local values = {}
for i, key in ipairs(KEYS) do
  values[i] = redis.call('INCR', key)
  parts[i] = ARGV[i + 1] .. '=' .. values[i]
end
redis.call('PUBLISH', ARGV[1], 'gen ' .. table.concat(parts, ' '))
return values
"""


class Generations:
    def __init__(
        self,
        link: RedisLink,
        *,
        secret: bytes,
        prefix: str,
        refresh_s: float,
        counts: dict[str, int],
        on_flush: Callable[[str | None], object],
    ) -> None:
        self.values: dict[str, int] = {}
        self._link, self._secret, self._prefix = link, secret, prefix
        self._refresh_s = refresh_s
        self._counts = counts
        self._on_flush = on_flush
        self._public_names: dict[str, str] = {}
        self._private_names: dict[str, str] = {}
        self._pending: set[str] = set()
        self._script: Any = None
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None

    @property
    def channel(self) -> str:
        return events_channel(self._prefix)

    def public(self, name: str) -> str:
        """The name as Redis sees it (keyed when it holds a bucket); remembered both ways."""
        public = self._public_names.get(name)
        if public is None:
            public = self._public_names[name] = keyed_name(self._secret, name)
            self._private_names[public] = name
        return public

    def _key(self, name: str) -> str:
        return f"{self._prefix}gen:{self.public(name)}"

    # -- reading ------------------------------------------------------------------
    def local(self, tables: tuple[str, ...]) -> tuple[int, ...]:
        gens = self.values
        try:
            return tuple([gens[t] for t in tables])
        except KeyError:
            self._learn([t for t in tables if t not in gens])
            return tuple(gens.get(t, 0) for t in tables)

    def _learn(self, tables: list[str]) -> None:
        """First use of a name here: read its generation now, not at the next refresh."""
        r = self._link.usable()
        values: list[Any] = [0] * len(tables)
        if r is not None:
            try:
                values = r.mget([self._key(t) for t in tables])
            except redis.RedisError:
                self._link.failed()
        for t, v in zip(tables, values, strict=True):
            self.values.setdefault(t, int(v or 0))

    def _note(self, tables: tuple[str, ...] | list[str], values: list[Any]) -> tuple[int, ...]:
        out = []
        for table, raw in zip(tables, values, strict=True):
            value = int(raw or 0)
            if value > self.values.get(table, 0):
                self.values[table] = value
            out.append(value)
        return tuple(out)

    # -- writing ------------------------------------------------------------------
    def bump(self, names: Collection[str]) -> None:
        """After a commit: bump these names here at once, and in Redis when it answers."""
        if not names:
            return
        self._counts["bumps"] += 1
        for name in names:
            self.values[name] = self.values.get(name, 0) + 1
        self._pending.update(names)
        self.push()

    def push(self) -> None:
        r = self._link.usable()
        if r is None or not self._pending:
            return
        tables = sorted(self._pending)
        try:
            values = self._bump_script(r)(
                keys=[self._key(t) for t in tables],
                args=[self.channel, *(self.public(t) for t in tables)],
                client=r,
            )
            self._pending.difference_update(tables)
            self._note(tables, values)
            self._link.recovered()
        except redis.RedisError:
            self._link.failed()

    def _bump_script(self, r: redis.Redis) -> Any:
        """INCR and PUBLISH in one round trip (a pipeline of INCRs, then the PUBLISH that
        needs their values, was two, after every committing write)."""
        if self._script is None:
            self._script = r.register_script(_BUMP)
        return self._script

    # -- keeping current ------------------------------------------------------------
    def refresh(self, r: redis.Redis) -> None:
        if len(self.values) > MAX_NAMES:
            self._forget_buckets()
        tables = sorted(self.values)
        if tables:
            self._note(tables, r.mget([self._key(t) for t in tables]))

    def _forget_buckets(self) -> None:
        """Bound the names re-read each second: forget the row buckets; the next read of
        one learns its generation afresh from Redis. A bump not yet in Redis is kept."""
        for name in [n for n in self.values if "." in n and n not in self._pending]:
            self.values.pop(name, None)

    def start(self) -> None:
        if self._link.client is not None and self._listener is None:
            self._listener = threading.Thread(
                target=self._listen, name="wcperf-cache-gens", daemon=True
            )
            self._listener.start()

    def _listen(self) -> None:
        """Pub/sub, and a full re-read each second; after a failure, again when Redis is back."""
        while not self._stop.is_set():
            r = self._link.usable()
            if r is None:
                self._stop.wait(0.2)
                continue
            pubsub = r.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                self.push()
                self.refresh(r)
                last = time.monotonic()
                while not self._stop.is_set():
                    # Short waits: `close` is never kept waiting for a whole refresh.
                    message = pubsub.get_message(timeout=min(self._refresh_s, 0.1))
                    if message and isinstance(message.get("data"), bytes):
                        self.on_message(message["data"].decode())
                    if time.monotonic() - last >= self._refresh_s:
                        self.push()
                        self.refresh(r)
                        last = time.monotonic()
            except (redis.RedisError, OSError, ValueError):
                self._link.failed()
            finally:
                with contextlib.suppress(Exception):  # the connection is gone either way
                    pubsub.close()

    def on_message(self, text: str) -> None:
        verb, _, rest = text.partition(" ")
        if verb == "gen":
            # Names this process has never used are learnt when it first reads them.
            pairs = [
                (self._private_names[t], v)
                for t, _, v in (p.partition("=") for p in rest.split())
                if t in self._private_names
            ]
            self._note([t for t, _ in pairs], [v for _, v in pairs])
        elif verb == "flush":
            self._on_flush(rest or None)

    def close(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.join(self._refresh_s + 1)
