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

import pickle
import time
from collections.abc import Callable, Collection, Hashable, Mapping
from typing import Any, TypeVar

import redis
from sqlalchemy import event

from wcperf.cache.flight import SingleFlight
from wcperf.cache.generations import Generations
from wcperf.cache.inventory import delete_entries
from wcperf.cache.keys import TTL_S, Sealer, cache_key, key_digest
from wcperf.cache.l1 import L1, L1Entry
from wcperf.cache.l2 import L2, MISS
from wcperf.cache.link import CacheMode, RedisLink
from wcperf.cache.placing import placed
from wcperf.cache.scopes import written
from wcperf.db.engine import Database
from wcperf.observe.fingerprint import Fingerprinter
from wcperf.observe.snapshot import CacheFigures, CacheTier

__all__ = ["CacheMode", "QueryCache"]

T = TypeVar("T")

COUNTS = ("l1_hits", "l1_misses", "l1_stale", "l2_hits", "l2_misses", "l2_errors",
          "l2_writes", "l2_tampered", "loads", "coalesced", "lock_waits", "bumps")  # fmt: skip


def _freeze(value: Any) -> Hashable:
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


class QueryCache:
    """The tiers in order for a read, and the bumps after a write. Its parts, each with
    one job: `L1` (this process), `RedisLink` (Redis, failing soft), `Generations` (what
    every entry depends on), `L2` (sealed entries and the load lock), `SingleFlight`."""

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
        self.counts = dict.fromkeys(COUNTS, 0)
        self.reads: dict[str, list[int]] = {}  # read path -> [hits, loads]
        self.l1 = L1(l1_size)
        self.prefix = prefix
        self._secret = secret
        self._lock_ttl_ms = lock_ttl_ms
        self.link = RedisLink(redis_url, self.counts, socket_timeout_s)
        self.l2 = L2(Sealer(secret), lock_ttl_ms, self.counts)
        self.generations = Generations(
            self.link,
            secret=secret,
            prefix=prefix,
            refresh_s=refresh_s,
            counts=self.counts,
            on_flush=self.l1.drop_kind,
        )
        self._flights = SingleFlight()
        self._rkeys: dict[Hashable, str] = {}
        self._fp = Fingerprinter()
        self.generations.start()

    def outage_figures(self) -> dict[str, float]:
        return self.link.outage_figures()

    def mode(self) -> CacheMode:
        return self.link.mode()

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
        read: str | None = None,
    ) -> T:
        """`read` names the read path in the per-read counts (its kind if not given)."""
        key = (kind, model, statement, _freeze(params))
        local = self.generations.local
        counted = self.reads.get(read or kind)
        if counted is None:
            counted = self.reads[read or kind] = [0, 0]
        entry = self.l1.get(key)
        if entry is not None:
            if entry.gens == local(tables):
                self.counts["l1_hits"] += 1
                counted[0] += 1
                return entry.value
            self.counts["l1_stale"] += 1
            self.l1.drop(key)
        self.counts["l1_misses"] += 1
        gens = local(tables)  # before any load: a write during the load wins
        rkey = self._rkey(key, gens, kind, model, statement, params)
        r = self.link.usable()
        use_redis = False
        if r is not None:
            try:
                value, size = self.l2.read(r, rkey)
                if self.link.in_outage:
                    self.link.recovered()
                if value is not MISS:
                    self.counts["l2_hits"] += 1
                    counted[0] += 1
                    self._remember(key, kind, tables, value, size, gens)
                    return value
                self.counts["l2_misses"] += 1
                use_redis = True
            except redis.RedisError:
                self.link.failed()
        # A miss: one loader per key in this process...
        flight, leader = self._flights.join(key)
        if not leader:
            flight.event.wait(self._lock_ttl_ms / 1000 * 2)
            if flight.ok:
                self.counts["coalesced"] += 1
                counted[0] += 1
                return flight.value
        else:
            # A leader that just finished may have filled L1 after our L2 read.
            entry = self.l1.get(key)
            if entry is not None and entry.gens == gens:
                self.counts["coalesced"] += 1
                counted[0] += 1
                flight.land(entry.value)
                self._flights.end(key, flight)
                return entry.value
        try:
            loads = self.counts["loads"]
            value = self._load(
                key, rkey, kind, tables, gens, loader, ttl_s or TTL_S.get(kind, 300), use_redis
            )
            counted[self.counts["loads"] > loads] += 1  # another process's value is a hit
            flight.land(value)
            return value
        finally:
            if leader:
                self._flights.end(key, flight)

    def _rkey(
        self,
        key: Hashable,
        gens: tuple[int, ...],
        kind: str,
        model: str,
        statement: str,
        params: Mapping[str, Any],
    ) -> str:
        """The Redis key: it names the generations the entry was built on, so an entry
        written before a bump is simply never asked for again and ages out by its TTL."""
        rkey = self._rkeys.get((key, gens))
        if rkey is None:
            if len(self._rkeys) >= 4 * self.l1.max_entries + 64:
                self._rkeys.clear()
            rkey = self._rkeys[(key, gens)] = cache_key(
                self.prefix, kind, model, key_digest(self._secret, statement, params, gens)
            )
        return rkey

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
        r = self.link.usable() if use_redis else None
        token: str | None = None
        if r is not None:
            try:
                token = self.l2.lock(r, rkey)
                if token:
                    # Another process may have stored it and released the lock between
                    # our first read and taking the lock: read once more.
                    value, size = self.l2.read(r, rkey)
                else:
                    value, size = self.l2.wait_for_other(r, rkey)
                if value is not MISS:
                    if token:
                        self.l2.release(r, rkey, token)
                    self.counts["l2_hits"] += 1
                    self._remember(key, kind, tables, value, size, gens)
                    return value
                self.link.recovered()
            except redis.RedisError:
                self.link.failed()
                token = None
        value = loader()
        self.counts["loads"] += 1
        blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        self._remember(key, kind, tables, value, len(blob), gens)
        r = self.link.usable() if use_redis else None
        if r is not None:
            try:
                self.l2.write(r, rkey, blob, ttl_s, token)
            except redis.RedisError:
                self.link.failed()
        return value

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

    # -- writing ------------------------------------------------------------------
    def bump(
        self,
        *tables: str,
        placed: Mapping[str, list[dict[str, Any]]] | None = None,
        changed: Collection[str] | None = None,
    ) -> None:
        """After a commit that wrote `tables`: every entry that read them is dead, but for
        a table in `placed` (the scoped columns of each row written, `scopes.written`)
        only the entries that read those rows or read the table unscoped, and with
        `changed` (every column the write may have changed) none that read other columns."""
        placed = placed or {}
        self._bump(set().union(*(written(t, placed.get(t), changed) for t in tables)))

    def _bump(self, names: Collection[str]) -> None:
        self.generations.bump(names)

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

    # -- operations ---------------------------------------------------------------
    def flush(self, kind: str | None = None) -> int:
        """Delete entries whose kind starts with `kind` (all if None), here and in Redis."""
        dropped = self.l1.drop_kind(kind)
        r = self.link.usable()
        if r is None:
            return dropped
        try:
            return delete_entries(r, self.prefix, kind)
        except redis.RedisError:
            self.link.failed()
            return dropped

    def reset_counts(self) -> None:
        """Start counting afresh (a load's warm-up ends); entries and generations stay."""
        self.counts.update(dict.fromkeys(self.counts, 0))
        for counted in self.reads.values():
            counted[:] = [0, 0]

    def stats(self) -> CacheFigures:
        """This process's figures: the Snapshot's cache section."""
        c = self.counts
        outages = self.outage_figures()
        return CacheFigures(
            reads={name: list(counts) for name, counts in self.reads.items()},
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
        self.generations.close()
        self.link.close()
