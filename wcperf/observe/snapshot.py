"""One Snapshot shape for every output: live tables, --json, Prometheus, verdicts.

Plain data that goes to JSON and back. Histograms travel HDR-encoded so that a
merge of many processes is exact (counts added bucket by bucket), never an average
of percentiles. Nothing here may hold a statement as sent or a parameter value:
statements are normalised text, parameters are type names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from typing import Any

from hdrh.histogram import HdrHistogram

from wcperf.observe import histogram as hdr
from wcperf.observe.timeline import merge as merge_steps

BUCKETS = ("fast", "medium", "slow", "very_slow")  # < 100 ms, 100-500, 500-1000, > 1000


def bucket_of(us: int) -> str:
    if us < 100_000:
        return "fast"
    if us < 500_000:
        return "medium"
    if us <= 1_000_000:
        return "slow"
    return "very_slow"


@dataclass
class Source:
    name: str  # host:pid: unique, never a label (a new one every run)
    command: str
    pid: int
    taken_at: float
    role: str = ""  # what the process is: "loadtest school-day", "bulk job 12"

    @property
    def label(self) -> str:
        """The process as an operator names it: stable across runs of the same work."""
        return self.role or self.command.replace(":", " ")


class Timed:
    """A statement's latency read from its encoded histogram (QueryStats, ServerQuery)."""

    histogram: str
    total_us: int
    count: int

    @cached_property
    def hdr(self) -> HdrHistogram:
        return hdr.decode(self.histogram)

    @property
    def mean_ms(self) -> float:
        return self.total_us / self.count / 1000 if self.count else 0.0

    def p(self, pct: float) -> float:
        return hdr.percentile_ms(self.hdr, pct)


@dataclass
class QueryStats(Timed):
    fingerprint: str
    normalized: str
    table: str | None
    count: int = 0
    errors: int = 0
    total_us: int = 0
    min_us: int = 0
    max_us: int = 0
    buckets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    histogram: str = ""  # HDR, encoded

    def since(self, before: QueryStats | None) -> QueryStats:
        """What this statement did after an earlier reading of the same counters."""
        if before is None:
            return self
        h = hdr.from_counts(hdr.window(hdr.counts(self.hdr), hdr.counts(before.hdr)))
        count = self.count - before.count
        return QueryStats(
            self.fingerprint,
            self.normalized,
            self.table,
            count=count,
            errors=self.errors - before.errors,
            total_us=self.total_us - before.total_us,
            min_us=int(h.get_min_value()) if count else 0,
            max_us=int(h.get_max_value()) if count else 0,
            buckets={b: n - before.buckets.get(b, 0) for b, n in self.buckets.items()},
            histogram=hdr.encode(h),
        )


@dataclass
class SlowQuery:
    at: float
    fingerprint: str
    normalized: str
    table: str | None
    duration_ms: float
    param_types: list[str]
    source: str = ""


@dataclass
class NPlusOne:
    fingerprint: str
    normalized: str
    table: str | None
    call_site: str
    count: int
    window_s: float
    at: float
    source: str = ""
    application: str = ""  # from the server's log: the session's application_name

    @property
    def suggestion(self) -> str:
        target = self.table or "the related rows"
        return f"load {target} eagerly (selectinload/joinedload) or in one batch query"


@dataclass
class HistoryPoint:
    minute: int  # epoch minute
    max_utilisation_pct: float
    max_waiting: int
    mean_in_use: float


@dataclass
class PoolStats:
    source: str
    max_size: int
    min_size: int
    open: int
    in_use: int
    idle: int
    waiting: int
    utilisation_pct: float
    requests: int
    mean_wait_ms: float
    timeouts: int
    health: str  # ok | failing | unknown
    consecutive_failures: int
    last_check_at: float | None
    history: list[HistoryPoint] = field(default_factory=list)
    requests_queued: int = 0  # acquisitions that had to wait for a connection
    wait_ms_total: float = 0.0  # their time waiting, summed
    role: str = ""  # the process's Source.label


@dataclass
class Alert:
    severity: str  # warning | critical
    code: str
    message: str
    value: float
    threshold: float
    source: str = ""


@dataclass
class CacheTier:
    """One tier's counters. `entries`, `bytes` and `evictions` are L1's alone (Redis's
    own entries are `wcperf cache stats`'); None where a tier has no such figure."""

    hits: int = 0
    misses: int = 0
    entries: int | None = None
    bytes: int | None = None
    evictions: int | None = None
    errors: int = 0
    stale: int = 0
    coalesced: int = 0
    writes: int = 0
    tampered: int = 0
    lock_waits: int = 0

    def extend(self, other: CacheTier) -> None:
        """Another process's counters added to these (locust's `StatsEntry.extend`)."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if theirs is not None:
                setattr(self, f.name, (mine or 0) + theirs)


@dataclass
class CacheFigures:
    """The query cache's section of a Snapshot."""

    mode: str = ""  # which tiers serve reads just now
    hits: int = 0  # all tiers, and single-flight waits that got a value
    misses: int = 0  # loads from the database
    loads: int = 0
    bumps: int = 0
    redis_outages: int = 0
    redis_outage_s: float = 0.0
    tiers: dict[str, CacheTier] = field(default_factory=dict)
    # Per read path (a hot query's name): [hits, loads]. Which read a job or a write
    # costs its hits is what an operator asks first when the rate falls.
    reads: dict[str, list[int]] = field(default_factory=dict)

    @property
    def hit_rate_pct(self) -> float | None:
        lookups = self.hits + self.misses
        return round(100 * self.hits / lookups, 1) if lookups else None

    def read_rates(self) -> dict[str, dict[str, Any]]:
        """Each read path's hits, loads and hit rate, most looked-up first."""
        return {
            name: {"hits": h, "loads": n, "hit_rate_pct": round(100 * h / (h + n), 1)}
            for name, (h, n) in sorted(self.reads.items(), key=lambda kv: -sum(kv[1]))
            if h + n
        }

    def extend(self, other: CacheFigures) -> None:
        """Another process's figures added to these; the mode is the newest one's."""
        for name in ("hits", "misses", "loads", "bumps", "redis_outages", "redis_outage_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.mode = other.mode or self.mode
        for name, tier in other.tiers.items():
            self.tiers.setdefault(name, CacheTier(entries=None)).extend(tier)
        for name, (hits, loads) in other.reads.items():
            mine = self.reads.setdefault(name, [0, 0])
            mine[0] += hits
            mine[1] += loads

    def serialize(self) -> dict[str, Any]:
        return asdict(self) | {"hit_rate_pct": self.hit_rate_pct}

    @classmethod
    def unserialize(cls, data: dict[str, Any]) -> CacheFigures:
        names = {f.name for f in fields(cls)} - {"tiers"}
        figures = cls(**{k: v for k, v in data.items() if k in names})
        tier_names = {f.name for f in fields(CacheTier)}
        figures.tiers = {
            name: CacheTier(**{k: v for k, v in raw.items() if k in tier_names})
            for name, raw in (data.get("tiers") or {}).items()
        }
        return figures


@dataclass
class JobState:
    """A bulk job at work, as its runner shows it: how far, and why it is held back."""

    kind: str
    state: str  # a RunState word: running, slowed, paused, retrying, ...
    reason: str = ""
    rows_done: int = 0
    rows_total: int = 0
    batch_size: int = 0
    pressure: float = 0.0
    signals: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class OperationStats:
    """One scenario operation as its users timed it, end to end (locust's `StatsEntry`)."""

    name: str
    errors: int = 0
    first_error: str | None = None  # an error's kind and where, never its values
    histogram: str = ""  # HDR, encoded
    error_kinds: dict[str, int] = field(default_factory=dict)  # kind -> count
    # where its time went (observe.phases, and "rest"): nanoseconds summed over the run,
    # and for writes each phase's HDR (microseconds per operation)
    phase_ns: dict[str, int] = field(default_factory=dict)
    phases: dict[str, str] = field(default_factory=dict)

    @property
    def hdr(self) -> HdrHistogram:
        return hdr.decode(self.histogram)

    @property
    def count(self) -> int:
        return int(self.hdr.get_total_count())

    def extend(self, other: OperationStats) -> None:
        """Another process's timings added to these, bucket by bucket."""
        self.histogram = hdr.encode(hdr.merge([self.histogram, other.histogram]))
        self.errors += other.errors
        self.first_error = self.first_error or other.first_error
        for kind, n in other.error_kinds.items():
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + n
        for phase, ns in other.phase_ns.items():
            self.phase_ns[phase] = self.phase_ns.get(phase, 0) + ns
        for phase, text in other.phases.items():
            self.phases[phase] = hdr.encode(hdr.merge([self.phases.get(phase, ""), text]))


@dataclass
class LoadPool:
    """The pool over a measured window: peaks and what queued, not one reading."""

    max_size: int = 0
    peak_in_use: int = 0
    peak_waiting: int = 0
    requests: int = 0
    requests_queued: int = 0
    wait_ms_total: float = 0.0
    timeouts: int = 0

    def extend(self, other: LoadPool) -> None:
        """Another process's pool beside this one: sizes, peaks and counts add up."""
        _add(self, other)

    @property
    def mean_wait_ms(self) -> float:
        queued = self.requests_queued
        return round(self.wait_ms_total / queued, 1) if queued else 0.0

    @property
    def peak_utilisation_pct(self) -> float:
        return round(100 * self.peak_in_use / self.max_size, 1) if self.max_size else 0.0


@dataclass
class Faults:
    """What a measured run rode through."""

    redis_outages: int = 0
    redis_outage_s: float = 0.0
    db_connections_lost: int = 0
    db_connection_errors: int = 0

    def extend(self, other: Faults) -> None:
        _add(self, other)


@dataclass
class LoadRun:
    """A load scenario's measured window in one process, or merged over many."""

    scenario: str
    users: int = 0
    processes: int = 1
    seconds: float = 0.0
    warmup_s: float = 0.0
    operations: dict[str, OperationStats] = field(default_factory=dict)
    pool: LoadPool = field(default_factory=LoadPool)
    faults: Faults = field(default_factory=Faults)
    started_at: float = 0.0  # when the measured window began (Unix time)
    step_s: int = 1  # the timeline's step
    timeline: dict[str, str] = field(default_factory=dict)  # step start -> HDR (observe.timeline)
    timeline_errors: dict[str, int] = field(default_factory=dict)
    # how late a greenlet woke when it was due (HDR, µs): the wait for the CPU that every
    # statement's answer also meets before its user runs again
    scheduling: str = ""

    def overall(self) -> HdrHistogram:
        return hdr.merge([o.histogram for o in self.operations.values()])

    @property
    def errors(self) -> int:
        return sum(o.errors for o in self.operations.values())

    def extend(self, other: LoadRun) -> None:
        """Another worker's share: users and processes add, the window is the longest."""
        self.users += other.users
        self.processes += other.processes
        self.seconds = max(self.seconds, other.seconds)
        self.warmup_s = max(self.warmup_s, other.warmup_s)
        for name, op in other.operations.items():
            self.operations.setdefault(name, OperationStats(name)).extend(op)
        self.pool.extend(other.pool)
        self.faults.extend(other.faults)
        starts = [t for t in (self.started_at, other.started_at) if t]
        self.started_at = min(starts) if starts else 0.0
        self.step_s = max(self.step_s, other.step_s)
        merge_steps(self.timeline, other.timeline)
        for at, n in other.timeline_errors.items():
            self.timeline_errors[at] = self.timeline_errors.get(at, 0) + n
        self.scheduling = hdr.encode(hdr.merge([self.scheduling, other.scheduling]))

    def serialize(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def unserialize(cls, data: dict[str, Any]) -> LoadRun:
        return cls(
            scenario=data["scenario"],
            users=data.get("users", 0),
            processes=data.get("processes", 1),
            seconds=data.get("seconds", 0.0),
            warmup_s=data.get("warmup_s", 0.0),
            operations={
                name: _build(OperationStats, raw)
                for name, raw in (data.get("operations") or {}).items()
            },
            pool=_build(LoadPool, data.get("pool") or {}),
            faults=_build(Faults, data.get("faults") or {}),
            started_at=data.get("started_at", 0.0),
            step_s=data.get("step_s", 1),
            timeline=dict(data.get("timeline") or {}),
            timeline_errors=dict(data.get("timeline_errors") or {}),
            scheduling=data.get("scheduling", ""),
        )


def _add(into: Any, other: Any) -> None:
    """Every field of `other` added to the same field of `into` (records of counts)."""
    for f in fields(into):
        setattr(into, f.name, getattr(into, f.name) + getattr(other, f.name))


def _build(kind: type, raw: dict[str, Any]) -> Any:
    """A record from its JSON, ignoring fields a newer or older wcperf added."""
    names = {f.name for f in fields(kind)}
    return kind(**{k: v for k, v in raw.items() if k in names})


@dataclass
class Sessions:
    """pg_stat_activity's client sessions of one application in one state."""

    application: str
    state: str
    sessions: int
    longest_query_s: float = 0.0


@dataclass
class ClientSessions:
    """One application on one client host, as the server sees its connections."""

    application: str
    client: str  # the client's address, or "local" for a Unix socket
    sessions: int = 0
    active: int = 0
    idle: int = 0
    idle_in_transaction: int = 0
    longest_idle_in_transaction_s: float = 0.0
    waiting_on_locks: int = 0


@dataclass
class ServerStatement:
    """A pg_stat_statements entry (summed over roles): its text normalised again
    here, never a value. The `window_*` figures are what happened between the
    monitor's last two readings (None on its first)."""

    query: str
    calls: int
    mean_ms: float
    total_ms: float
    query_id: int | None = None
    fingerprint: str = ""  # wcperf's: the same as the app side's and the log's
    rows: int = 0
    window_s: float | None = None
    window_calls: int | None = None
    window_total_ms: float | None = None
    window_rows: int | None = None
    window_blks_hit: int | None = None
    window_blks_read: int | None = None

    @property
    def calls_per_s(self) -> float | None:
        if self.window_s is None or self.window_calls is None or self.window_s <= 0:
            return None
        return self.window_calls / self.window_s

    @property
    def window_mean_ms(self) -> float | None:
        if not self.window_calls or self.window_total_ms is None:
            return None
        return self.window_total_ms / self.window_calls


@dataclass
class ServerQuery(Timed):
    """One statement of one application as the server's log timed it.

    `count` and `total_us` are estimates where the server samples (`logged` lines,
    each standing for 1 / rate executions); the histogram holds `count` values.
    """

    fingerprint: str
    normalized: str
    table: str | None
    application: str
    query_id: int | None = None  # pg_stat_statements' queryid, where compute_query_id is on
    logged: int = 0
    count: int = 0
    total_us: int = 0
    min_us: int = 0
    max_us: int = 0
    histogram: str = ""  # HDR, encoded


@dataclass
class ServerLog:
    """What the server's own log says of every application's statements."""

    source: str  # the file followed, or "" when none could be
    format: str = ""  # jsonlog | csvlog
    lines: int = 0
    statements: int = 0  # executions logged (estimates in `queries` weigh sampling)
    protocol_steps: int = 0  # parse and bind lines, not counted as executions
    durations_without_text: int = 0
    sample_rate: float = 1.0
    min_duration_ms: float = -1.0
    sample_min_ms: float = -1.0
    rotations: int = 0
    truncations: int = 0
    queries: list[ServerQuery] = field(default_factory=list)
    n_plus_one: list[NPlusOne] = field(default_factory=list)  # one backend session's loops
    notes: list[str] = field(default_factory=list)

    @classmethod
    def unserialize(cls, data: dict[str, Any]) -> ServerLog:
        log: ServerLog = _build(cls, data)
        log.queries = [_build(ServerQuery, q) for q in data.get("queries") or []]
        log.n_plus_one = [_build(NPlusOne, n) for n in data.get("n_plus_one") or []]
        return log


@dataclass
class IndexBuild:
    index: str | None
    table: str | None
    phase: str
    blocks_pct: float | None


@dataclass
class RedisServer:
    """What Redis's INFO says of itself."""

    version: str | None = None
    used_memory: int | None = None
    used_memory_human: str | None = None
    keyspace_hits: int = 0
    keyspace_misses: int = 0
    hit_rate_pct: float | None = None
    connected_clients: int | None = None
    keys: int = 0


@dataclass
class DatabaseView:
    """What PostgreSQL and Redis say themselves; gathered by `monitor`, not by workers."""

    activity: list[Sessions] = field(default_factory=list)
    clients: list[ClientSessions] = field(default_factory=list)
    connections: int = 0  # client backends on the whole server, every database
    max_connections: int = 0
    reserved_connections: int = 0  # superuser_reserved_connections + reserved_connections
    waiting_on_locks: int = 0
    longest_query_s: float = 0.0
    longest_transaction_s: float = 0.0
    statements: list[ServerStatement] = field(default_factory=list)
    statements_note: str = ""
    index_builds: list[IndexBuild] = field(default_factory=list)
    redis: RedisServer | None = None
    redis_note: str = ""
    jobs: dict[str, int] = field(default_factory=dict)  # wcperf's bulk job rows by status
    jobs_changed_at: dict[str, float] = field(default_factory=dict)  # status -> latest epoch

    @property
    def headroom(self) -> int | None:
        """Connections still open to ordinary roles before the server refuses them."""
        if not self.max_connections:
            return None
        return self.max_connections - self.reserved_connections - self.connections

    @classmethod
    def unserialize(cls, data: dict[str, Any]) -> DatabaseView:
        view: DatabaseView = _build(cls, data)
        view.activity = [_build(Sessions, r) for r in data.get("activity") or []]
        view.clients = [_build(ClientSessions, r) for r in data.get("clients") or []]
        view.statements = [_build(ServerStatement, r) for r in data.get("statements") or []]
        view.index_builds = [_build(IndexBuild, r) for r in data.get("index_builds") or []]
        view.redis = _build(RedisServer, data["redis"]) if data.get("redis") else None
        return view


@dataclass
class MinutePoint:
    """One minute of the shared history (wcperf.observe.history)."""

    minute: int  # epoch minute
    figures: dict[str, float | None] = field(default_factory=dict)
    queries: dict[str, list[float]] = field(default_factory=dict)  # fp -> count, p50, p95, p99
    server_queries: dict[str, list[float]] = field(default_factory=dict)  # "fp app" -> same


@dataclass
class Trend:
    figure: str
    trend: str  # improving | degrading | stable | unknown
    now: float | None  # the mean of the recent points
    before: float | None  # the mean of the points before them


@dataclass
class Recent:
    """The same figures over the monitor's last window (a minute), not since start."""

    window_s: float
    queries: list[QueryStats] = field(default_factory=list)
    server_queries: list[ServerQuery] = field(default_factory=list)
    cache_hits: int = 0
    cache_misses: int = 0

    @property
    def cache_hit_rate_pct(self) -> float | None:
        lookups = self.cache_hits + self.cache_misses
        return round(100 * self.cache_hits / lookups, 1) if lookups else None

    def overall(self) -> HdrHistogram:
        return hdr.merge([q.histogram for q in self.queries])

    @classmethod
    def unserialize(cls, data: dict[str, Any]) -> Recent:
        recent: Recent = _build(cls, data)
        recent.queries = [_build(QueryStats, q) for q in data.get("queries") or []]
        recent.server_queries = [_build(ServerQuery, q) for q in data.get("server_queries") or []]
        return recent


@dataclass
class Snapshot:
    taken_at: float
    sources: list[Source] = field(default_factory=list)
    pools: list[PoolStats] = field(default_factory=list)
    queries: list[QueryStats] = field(default_factory=list)
    slow: list[SlowQuery] = field(default_factory=list)
    n_plus_one: list[NPlusOne] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    cache: CacheFigures | None = None  # the query cache's, where one runs
    throttle: dict[str, JobState] = field(default_factory=dict)  # "job N" -> its state
    database: DatabaseView | None = None
    load: LoadRun | None = None  # a load scenario's measured window, where one ran
    server_log: ServerLog | None = None  # every application's statements, from the log
    recent: Recent | None = None  # the monitor's last window, where it has one
    history: list[MinutePoint] = field(default_factory=list)  # figures only, 24 h at most
    trends: dict[str, Trend] = field(default_factory=dict)
    trend_rule: str = ""
    notes: list[str] = field(default_factory=list)

    # -- derived figures --------------------------------------------------------
    def overall(self) -> HdrHistogram:
        return hdr.merge([q.histogram for q in self.queries])

    def top_slow(self, n: int = 10) -> list[QueryStats]:
        return sorted(self.queries, key=lambda q: q.p(95), reverse=True)[:n]

    def top_frequent(self, n: int = 10) -> list[QueryStats]:
        return sorted(self.queries, key=lambda q: q.count, reverse=True)[:n]

    # -- JSON -------------------------------------------------------------------
    def to_dict(self, *, derived: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if self.cache is not None:
            data["cache"] = self.cache.serialize()
        if derived:
            data["top_slow"] = [q.fingerprint for q in self.top_slow()]
            data["top_frequent"] = [q.fingerprint for q in self.top_frequent()]
            _derive(self.queries, data["queries"])
            if self.server_log is not None:
                _derive(self.server_log.queries, data["server_log"]["queries"])
            if self.recent is not None:
                _derive(self.recent.queries, data["recent"]["queries"])
                _derive(self.recent.server_queries, data["recent"]["server_queries"])
                data["recent"]["cache_hit_rate_pct"] = self.recent.cache_hit_rate_pct
        return data

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(**kw), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        build = _build
        pools = []
        for raw in data.get("pools", []):
            pool = build(PoolStats, raw)
            pool.history = [build(HistoryPoint, h) for h in raw.get("history", [])]
            pools.append(pool)
        db = data.get("database")
        return cls(
            taken_at=data["taken_at"],
            sources=[build(Source, s) for s in data.get("sources", [])],
            pools=pools,
            queries=[build(QueryStats, q) for q in data.get("queries", [])],
            slow=[build(SlowQuery, s) for s in data.get("slow", [])],
            n_plus_one=[build(NPlusOne, n) for n in data.get("n_plus_one", [])],
            alerts=[build(Alert, a) for a in data.get("alerts", [])],
            cache=CacheFigures.unserialize(data["cache"]) if data.get("cache") else None,
            throttle={k: build(JobState, v) for k, v in (data.get("throttle") or {}).items()},
            database=DatabaseView.unserialize(db) if db else None,
            load=LoadRun.unserialize(data["load"]) if data.get("load") else None,
            recent=Recent.unserialize(data["recent"]) if data.get("recent") else None,
            history=[build(MinutePoint, h) for h in data.get("history") or []],
            trends={k: build(Trend, v) for k, v in (data.get("trends") or {}).items()},
            trend_rule=data.get("trend_rule", ""),
            server_log=ServerLog.unserialize(data["server_log"])
            if data.get("server_log")
            else None,
            notes=list(data.get("notes", [])),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Snapshot:
        return cls.from_dict(json.loads(text))


def _derive(rows: Sequence[QueryStats | ServerQuery], out: list[dict[str, Any]]) -> None:
    """Each row's JSON with its mean and percentiles, for readers without HDR."""
    for q, o in zip(rows, out, strict=True):
        o |= {
            "mean_ms": round(q.mean_ms, 3),
            "p50_ms": q.p(50),
            "p95_ms": q.p(95),
            "p99_ms": q.p(99),
        }


def merge(snapshots: list[Snapshot], taken_at: float, slow_keep: int = 100) -> Snapshot:
    """Many processes' snapshots as one: counts added, histograms merged exactly."""
    merged = Snapshot(taken_at=taken_at)
    by_fp: dict[str, QueryStats] = {}
    encoded: dict[str, list[str]] = {}
    for snap in snapshots:
        merged.sources += snap.sources
        merged.pools += snap.pools
        merged.slow += snap.slow
        merged.n_plus_one += snap.n_plus_one
        merged.notes += snap.notes
        merged.throttle.update(snap.throttle)
        if snap.load is not None:
            if merged.load is None:
                merged.load = LoadRun(snap.load.scenario, processes=0)
            merged.load.extend(snap.load)
        if snap.cache is not None:
            if merged.cache is None:
                merged.cache = CacheFigures()
            merged.cache.extend(snap.cache)
        for q in snap.queries:
            into = by_fp.get(q.fingerprint)
            if into is None:
                into = by_fp[q.fingerprint] = QueryStats(
                    q.fingerprint, q.normalized, q.table, min_us=q.min_us
                )
            into.count += q.count
            into.errors += q.errors
            into.total_us += q.total_us
            into.min_us = min(into.min_us, q.min_us) if into.count > q.count else q.min_us
            into.max_us = max(into.max_us, q.max_us)
            for b in BUCKETS:
                into.buckets[b] += q.buckets.get(b, 0)
            encoded.setdefault(q.fingerprint, []).append(q.histogram)
    for fp, stats in by_fp.items():
        stats.histogram = hdr.encode(hdr.merge(encoded[fp]))
    merged.queries = sorted(by_fp.values(), key=lambda q: q.total_us, reverse=True)
    merged.slow = sorted(merged.slow, key=lambda s: s.at)[-slow_keep:]
    return merged
