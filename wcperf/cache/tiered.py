"""The query cache: L1 in process, L2 in Redis, invalidated by generations.

Every table has a generation number, and a few tables also one per bucket of a
scoping column (`scopes`): in Redis, and mirrored in each process. Reading: L1,
where an entry is good while the generations it depends on are unchanged; then
L2, one GET of a key that names those generations (so an entry written before a
bump is simply never asked for again and ages out by its TTL); then the
database, one loader per key: single-flight within the process, a short Redis
lock across processes.

Another process learns of a bump by pub/sub (well under a millisecond on
loopback) and re-reads every generation each second in case a message was lost;
a table's generation is read synchronously the first time a process uses it.

Writing: attached to a Database, the cache sees every statement; a statement
that writes marks each table it names on its connection (narrowed to the rows it
provably touched, `placing`), and when that connection's commit succeeds those
generations are bumped (INCR in Redis, announced by pub/sub to other processes'
L1). A rollback bumps nothing. Raw SQL and bulk UPDATEs through the engine are
caught the same way; anything else calls `bump()`.

Redis down or slow (short timeouts): the cache runs on L1 alone, counts the
errors, backs off, reconnects by itself, and never raises to the caller.
L2 values are sealed (AES-GCM with a key from the cache secret, bound to their
key name): Redis holds no readable PHI, and whoever can write to it still cannot
make this process unpickle anything of theirs. Generation names of row buckets
are keyed with the same secret before they reach Redis (`keys.keyed_name`).
"""

from __future__ import annotations

import contextlib
import pickle
import secrets
import threading
import time
from collections.abc import Callable, Collection, Hashable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import redis
from sqlalchemy import event

from wcperf.cache.inventory import delete_entries, events_channel
from wcperf.cache.keys import TTL_S, Sealer, cache_key, key_digest, keyed_name
from wcperf.cache.l1 import L1, L1Entry
from wcperf.cache.placing import placed
from wcperf.cache.scopes import written
from wcperf.db.engine import Database
from wcperf.observe.fingerprint import Fingerprinter
from wcperf.observe.snapshot import CacheFigures, CacheTier

T = TypeVar("T")
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"
_MISS = object()


class CacheMode(StrEnum):
    """Which tiers serve reads just now, in the words the stats and tables show."""

    TIERED = "L1 + Redis"
    L1_ONLY = "L1 only: no Redis configured"
    REDIS_DOWN = "L1 only: Redis unreachable, retrying"  # nothing fails; L1 and the database


MAX_NAMES = 4096  # generation names a process keeps and re-reads each second


@dataclass
class _Flight:
    event: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    ok: bool = False


def _freeze(value: Any) -> Hashable:
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


class QueryCache:
    def __init__(
        self,
        redis_url: str | None,
        *,
        secret: bytes,
        prefix: str = "wcperf:",
        l1_size: int = 1000,
        lock_ttl_ms: int = 3000,
        refresh_s: float = 1.0,
        socket_timeout_s: float = 0.25,
    ) -> None:
        self.l1 = L1(l1_size)
        self.prefix = prefix
        self._secret = secret
        self._sealer = Sealer(secret)
        self._lock_ttl_ms = lock_ttl_ms
        self._refresh_s = refresh_s
        self._redis: redis.Redis | None = None
        if redis_url:
            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s
            )
        self._gens: dict[str, int] = {}
        self._public_names: dict[str, str] = {}
        self._private_names: dict[str, str] = {}
        self._rkeys: dict[Hashable, str] = {}
        self._pending_bumps: set[str] = set()
        self._down_until = 0.0
        self._backoff = 0.5
        self.outages = 0  # times Redis became unreachable
        self.outage_s = 0.0  # for how long, ended outages
        self._outage_since: float | None = None
        self._inflight: dict[Hashable, _Flight] = {}
        self._flight_lock = threading.Lock()
        self._fp = Fingerprinter()
        self.counts = dict.fromkeys(
            (
                "l1_hits",
                "l1_misses",
                "l1_stale",
                "l2_hits",
                "l2_misses",
                "l2_errors",
                "l2_writes",
                "l2_tampered",
                "loads",
                "coalesced",
                "lock_waits",
                "bumps",
            ),
            0,
        )
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        if self._redis is not None:
            self._listener = threading.Thread(
                target=self._listen, name="wcperf-cache-gens", daemon=True
            )
            self._listener.start()

    # -- Redis, guarded ---------------------------------------------------------
    def _usable(self) -> redis.Redis | None:
        if self._redis is None or time.monotonic() < self._down_until:
            return None
        return self._redis

    def _failed(self) -> None:
        now = time.monotonic()
        self.counts["l2_errors"] += 1
        if self._outage_since is None:  # an outage begins: count it, time it
            self._outage_since = now
            self.outages += 1
        self._down_until = now + self._backoff
        self._backoff = min(self._backoff * 2, 10.0)

    def _recovered(self) -> None:
        """Redis answered: an outage, if one was running, ends here."""
        if self._outage_since is not None:
            self.outage_s += time.monotonic() - self._outage_since
            self._outage_since = None
        self._backoff = 0.5

    def outage_figures(self) -> dict[str, float]:
        """Redis outages ridden through: how many, and for how long in all (one still
        running counts up to now)."""
        running = time.monotonic() - self._outage_since if self._outage_since else 0.0
        return {"count": self.outages, "seconds": round(self.outage_s + running, 3)}

    def _public(self, name: str) -> str:
        """The name as Redis sees it (keyed when it holds a bucket); remembered both ways."""
        public = self._public_names.get(name)
        if public is None:
            public = self._public_names[name] = keyed_name(self._secret, name)
            self._private_names[public] = name
        return public

    def _gen_key(self, name: str) -> str:
        return f"{self.prefix}gen:{self._public(name)}"

    @property
    def _channel(self) -> str:
        return events_channel(self.prefix)

    # -- generations ------------------------------------------------------------
    def _local(self, tables: tuple[str, ...]) -> tuple[int, ...]:
        gens = self._gens
        try:
            return tuple([gens[t] for t in tables])
        except KeyError:
            self._learn([t for t in tables if t not in gens])
            return tuple(gens.get(t, 0) for t in tables)

    def _learn(self, tables: list[str]) -> None:
        """First use of a table here: read its generation now, not at the next refresh."""
        r = self._usable()
        values: list[Any] = [0] * len(tables)
        if r is not None:
            try:
                values = r.mget([self._gen_key(t) for t in tables])
            except redis.RedisError:
                self._failed()
        for t, v in zip(tables, values, strict=True):
            self._gens.setdefault(t, int(v or 0))

    def _note(self, tables: tuple[str, ...] | list[str], values: list[Any]) -> tuple[int, ...]:
        out = []
        for table, raw in zip(tables, values, strict=True):
            value = int(raw or 0)
            if value > self._gens.get(table, 0):
                self._gens[table] = value
            out.append(value)
        return tuple(out)

    def bump(self, *tables: str) -> None:
        """After a commit that wrote `tables` anywhere: every entry that read them is dead."""
        self._bump(set().union(*(written(t) for t in tables)))

    def _bump(self, names: Collection[str]) -> None:
        """After a commit: bump these generation names (`scopes` says which a write has)."""
        if not names:
            return
        self.counts["bumps"] += 1
        for name in names:
            self._gens[name] = self._gens.get(name, 0) + 1
        self._pending_bumps.update(names)
        self._push_bumps()

    def _push_bumps(self) -> None:
        r = self._usable()
        if r is None or not self._pending_bumps:
            return
        tables = sorted(self._pending_bumps)
        try:
            pipe = r.pipeline(transaction=False)
            for t in tables:
                pipe.incr(self._gen_key(t))
            values = pipe.execute()
            self._pending_bumps.difference_update(tables)
            self._note(tables, values)
            r.publish(
                self._channel,
                "gen "
                + " ".join(f"{self._public(t)}={v}" for t, v in zip(tables, values, strict=True)),
            )
            self._recovered()
        except redis.RedisError:
            self._failed()

    def _refresh(self, r: redis.Redis) -> None:
        if len(self._gens) > MAX_NAMES:
            self._forget_buckets()
        tables = sorted(self._gens)
        if tables:
            self._note(tables, r.mget([self._gen_key(t) for t in tables]))

    def _forget_buckets(self) -> None:
        """Bound the names re-read each second: forget the row buckets; the next read of
        one learns its generation afresh from Redis. A bump not yet in Redis is kept."""
        for name in [n for n in self._gens if "." in n and n not in self._pending_bumps]:
            self._gens.pop(name, None)

    def _listen(self) -> None:
        """Keep this process's generations current: pub/sub, and a full re-read each second."""
        while not self._stop.is_set():
            r = self._usable()
            if r is None:
                self._stop.wait(0.2)
                continue
            pubsub = r.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self._channel)
                self._push_bumps()
                self._refresh(r)
                last = time.monotonic()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=self._refresh_s)
                    if message and isinstance(message.get("data"), bytes):
                        self._on_message(message["data"].decode())
                    if time.monotonic() - last >= self._refresh_s:
                        self._push_bumps()
                        self._refresh(r)
                        last = time.monotonic()
            except (redis.RedisError, OSError, ValueError):
                self._failed()
            finally:
                with contextlib.suppress(Exception):  # the connection is gone either way
                    pubsub.close()

    def _on_message(self, text: str) -> None:
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
            self.l1.drop_kind(rest or None)

    # -- reading ------------------------------------------------------------------
    def get_or_load(
        self,
        kind: str,
        model: str,
        statement: str,
        params: Mapping[str, Any],
        tables: tuple[str, ...],
        loader: Callable[[], T],
        ttl_s: int | None = None,
    ) -> T:
        key = (kind, model, statement, _freeze(params))
        entry = self.l1.get(key)
        if entry is not None:
            if entry.gens == self._local(tables):
                self.counts["l1_hits"] += 1
                return entry.value
            self.counts["l1_stale"] += 1
            self.l1.drop(key)
        self.counts["l1_misses"] += 1
        gens = self._local(tables)  # before any load: a write during the load wins
        rkey = self._rkeys.get((key, gens))
        if rkey is None:
            if len(self._rkeys) >= 4 * self.l1.max_entries + 64:
                self._rkeys.clear()
            rkey = self._rkeys[(key, gens)] = cache_key(
                self.prefix, kind, model, key_digest(self._secret, statement, params, gens)
            )
        r = self._usable()
        use_redis = False
        if r is not None:
            try:
                value, size = self._l2_read(r, rkey)
                if self._outage_since is not None:
                    self._recovered()
                if value is not _MISS:
                    self.counts["l2_hits"] += 1
                    self._remember(key, kind, tables, value, size, gens)
                    return value
                self.counts["l2_misses"] += 1
                use_redis = True
            except redis.RedisError:
                self._failed()
        # A miss: one loader per key in this process...
        with self._flight_lock:
            flight = self._inflight.get(key)
            leader = flight is None
            if leader:
                flight = self._inflight[key] = _Flight()
        assert flight is not None
        if not leader:
            flight.event.wait(self._lock_ttl_ms / 1000 * 2)
            if flight.ok:
                self.counts["coalesced"] += 1
                return flight.value
        else:
            # A leader that just finished may have filled L1 after our L2 read.
            entry = self.l1.get(key)
            if entry is not None and entry.gens == gens:
                self.counts["coalesced"] += 1
                flight.value, flight.ok = entry.value, True
                flight.event.set()
                with self._flight_lock:
                    self._inflight.pop(key, None)
                return entry.value
        try:
            value = self._load(
                key, rkey, kind, tables, gens, loader, ttl_s or TTL_S.get(kind, 300), use_redis
            )
            flight.value, flight.ok = value, True
            return value
        finally:
            if leader:
                flight.event.set()
                with self._flight_lock:
                    self._inflight.pop(key, None)

    def _l2_read(self, r: redis.Redis, rkey: str) -> tuple[Any, int]:
        """(value or _MISS, bytes): one GET. The key names the generations it was built on."""
        blob = r.get(rkey)
        if not isinstance(blob, bytes):  # absent (the client never decodes responses)
            return _MISS, 0
        payload = self._sealer.unseal(blob, rkey)
        if payload is None:
            self.counts["l2_tampered"] += 1
            return _MISS, 0
        return pickle.loads(payload), len(blob)  # sealed by us for this key, checked above

    def _load(
        self,
        key: Hashable,
        rkey: str,
        kind: str,
        tables: tuple[str, ...],
        gens: tuple[int, ...],
        loader: Callable[[], T],
        ttl_s: int,
        use_redis: bool,
    ) -> T:
        """...and one across processes: a short Redis lock; the others wait for its value."""
        r = self._usable() if use_redis else None
        token: str | None = None
        if r is not None:
            try:
                token = secrets.token_hex(8)
                if r.set(rkey + ":lock", token, nx=True, px=self._lock_ttl_ms):
                    # Another process may have stored it and released the lock between
                    # our first read and taking the lock: read once more.
                    value, size = self._l2_read(r, rkey)
                else:
                    token = None
                    value, size = self._wait_for_other(r, rkey)
                if value is not _MISS:
                    if token:
                        r.eval(_RELEASE, 1, rkey + ":lock", token)
                    self.counts["l2_hits"] += 1
                    self._remember(key, kind, tables, value, size, gens)
                    return value
                self._recovered()
            except redis.RedisError:
                self._failed()
                token = None
        value = loader()
        self.counts["loads"] += 1
        blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        self._remember(key, kind, tables, value, len(blob), gens)
        r = self._usable() if use_redis else None
        if r is not None:
            try:
                pipe = r.pipeline(transaction=False)
                pipe.set(rkey, self._sealer.seal(blob, rkey), ex=ttl_s)
                if token:
                    pipe.eval(_RELEASE, 1, rkey + ":lock", token)
                pipe.execute()
                self.counts["l2_writes"] += 1
            except redis.RedisError:
                self._failed()
        return value

    def _wait_for_other(self, r: redis.Redis, rkey: str) -> tuple[Any, int]:
        """Another process is loading this key: wait for its value, briefly."""
        self.counts["lock_waits"] += 1
        deadline = time.monotonic() + self._lock_ttl_ms / 1000
        while time.monotonic() < deadline:
            time.sleep(0.005)
            value, size = self._l2_read(r, rkey)
            if value is not _MISS:
                return value, size
            if not r.exists(rkey + ":lock"):
                # Gone: either it stored the value just after our read, or it failed.
                return self._l2_read(r, rkey)
        return _MISS, 0

    def _remember(
        self,
        key: Hashable,
        kind: str,
        tables: tuple[str, ...],
        value: Any,
        size: int,
        gens: tuple[int, ...],
    ) -> None:
        ttl = TTL_S.get(kind, 300)
        self.l1.put(key, L1Entry(value, gens, tables, time.monotonic() + ttl, size, kind))

    # -- operations ---------------------------------------------------------------
    def attach(self, db: Database) -> None:
        """Bump what a transaction wrote, after its commit succeeds.

        Every table a writing statement names is taken as written, whole; the one it
        writes is narrowed to the rows `placing` can prove it touched.
        """
        db.commit_listeners.append(self._bump)

        def track(
            conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
        ) -> None:
            fp = self._fp(statement)
            if not (fp.writes and fp.tables):
                return
            target = placed(context)
            names: set[str] = set()
            for table in fp.tables:
                if target is not None and table == target[0]:
                    names |= written(table, target[1])
                else:
                    names |= written(table)
            conn.connection.driver_connection.mark_written(names)

        event.listen(db.engine, "after_cursor_execute", track)

    def flush(self, kind: str | None = None) -> int:
        """Delete entries whose kind starts with `kind` (all if None), here and in Redis."""
        dropped = self.l1.drop_kind(kind)
        r = self._usable()
        if r is None:
            return dropped
        try:
            return delete_entries(r, self.prefix, kind)
        except redis.RedisError:
            self._failed()
            return dropped

    def mode(self) -> CacheMode:
        if self._redis is None:
            return CacheMode.L1_ONLY
        if time.monotonic() < self._down_until:
            return CacheMode.REDIS_DOWN
        return CacheMode.TIERED

    def stats(self) -> CacheFigures:
        """This process's figures: the Snapshot's cache section."""
        c = self.counts
        outages = self.outage_figures()
        return CacheFigures(
            mode=self.mode(),
            hits=c["l1_hits"] + c["l2_hits"] + c["coalesced"],
            misses=c["loads"],
            loads=c["loads"],
            bumps=c["bumps"],
            redis_outages=int(outages["count"]),
            redis_outage_s=float(outages["seconds"]),
            tiers={
                "l1": CacheTier(
                    hits=c["l1_hits"],
                    misses=c["l1_misses"],
                    entries=len(self.l1),
                    bytes=self.l1.bytes,
                    evictions=self.l1.evictions,
                    stale=c["l1_stale"],
                    coalesced=c["coalesced"],
                ),
                "l2": CacheTier(  # its entries live in Redis: `wcperf cache stats`
                    hits=c["l2_hits"],
                    misses=c["l2_misses"],
                    writes=c["l2_writes"],
                    errors=c["l2_errors"],
                    tampered=c["l2_tampered"],
                    lock_waits=c["lock_waits"],
                ),
            },
        )

    def close(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.join(self._refresh_s + 1)
        if self._redis is not None:
            self._redis.close()
