"""Build indexes online: CREATE INDEX CONCURRENTLY that repairs, retries and reports.

Per index: an INVALID index of the same name (what an interrupted concurrent build
leaves) is dropped concurrently; the build runs with a short `lock_timeout`, so a
long transaction in the way makes it give up and retry with backoff instead of
queueing every nurse's query behind its lock request; `indisvalid` is confirmed
afterwards. Each table that gained an index is ANALYZEd once, after its last one.
Re-running after a crash at any point converges on every index valid.

A second connection polls `pg_stat_progress_create_index` and `pg_blocking_pids`
while a build runs. Blockers are described by pid, application, state and age,
never by their query text, which can carry PHI.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg import errors

from wcperf.errors import WcperfError

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")

VALID, INVALID, MISSING, DIFFERS = "valid", "INVALID", "missing", "differs"
AUTO = "auto"


class LockBudgetExceeded(WcperfError):
    """A lock never freed within the retry budget; re-running is safe."""

    exit_code = 3


class PrivilegeError(WcperfError):
    """The role may not build or drop the indexes."""


@dataclass(frozen=True)
class IndexSpec:
    name: str
    table: str
    columns: tuple[str, ...]

    def __post_init__(self) -> None:
        for ident in (self.name, self.table, *self.columns):
            if not _IDENT.match(ident):
                raise ValueError(f"not a plain identifier: {ident!r}")

    def create_sql(self) -> str:
        cols = ", ".join(self.columns)
        return f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {self.name} ON {self.table} ({cols})"

    def drop_sql(self) -> str:
        return f"DROP INDEX CONCURRENTLY IF EXISTS {self.name}"


@dataclass(frozen=True)
class BuildPolicy:
    lock_timeout_ms: int = 2_000
    attempts: int = 6
    backoff_s: float = 1.0  # doubles each retry
    backoff_max_s: float = 30.0
    build_timeout: str = "2h"  # statement_timeout for one build; the pool's 30 s would kill it
    maintenance_work_mem: str | None = "256MB"
    # Parallel workers per build: a number, or "auto": one core while other sessions
    # are working on this database (live traffic comes first), and PostgreSQL's own
    # parallelism while it is quiet. Decided afresh before each build.
    parallel_workers: int | str = AUTO

    def session_sql(self) -> list[str]:
        sql = [
            f"SET lock_timeout = '{int(self.lock_timeout_ms)}ms'",
            f"SET statement_timeout = '{_setting(self.build_timeout)}'",
        ]
        if self.maintenance_work_mem:
            sql.append(f"SET maintenance_work_mem = '{_setting(self.maintenance_work_mem)}'")
        if self.parallel_workers != AUTO:
            sql.append(f"SET max_parallel_maintenance_workers = {int(self.parallel_workers)}")
        return sql

    def reset_sql(self) -> list[str]:
        return [
            "RESET lock_timeout",
            "RESET statement_timeout",
            "RESET maintenance_work_mem",
            "RESET max_parallel_maintenance_workers",
        ]


def _setting(value: str) -> str:
    if not re.fullmatch(r"\d+\s*(ms|s|min|h|d|kB|MB|GB)?", value.strip()):
        raise WcperfError(f"not a PostgreSQL duration or size: {value!r}")
    return value.strip()


@dataclass(frozen=True)
class IndexState:
    name: str
    state: str  # valid | INVALID | missing | differs
    table: str | None = None
    columns: tuple[str, ...] = ()
    size_bytes: int = 0
    scans: int = 0


_STATE_SQL = """
select c.relname, i.indisvalid, t.relname, pg_relation_size(c.oid),
       coalesce(s.idx_scan, 0),
       array(select a.attname from unnest(i.indkey) with ordinality k(attnum, n)
               join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
              order by k.n)
  from pg_class c
  join pg_index i on i.indexrelid = c.oid
  join pg_class t on t.oid = i.indrelid
  left join pg_stat_user_indexes s on s.indexrelid = c.oid
 where c.relname = any(%s) and c.relnamespace = current_schema()::regnamespace
"""


def index_states(conn: psycopg.Connection, specs: Iterable[IndexSpec]) -> dict[str, IndexState]:
    specs = list(specs)
    found = {row[0]: row for row in conn.execute(_STATE_SQL, ([s.name for s in specs],))}
    states: dict[str, IndexState] = {}
    for spec in specs:
        row = found.get(spec.name)
        if row is None:
            states[spec.name] = IndexState(spec.name, MISSING)
            continue
        _, valid, table, size, scans, columns = row
        same = table == spec.table and tuple(columns) == spec.columns
        state = VALID if valid and same else INVALID if not valid else DIFFERS
        states[spec.name] = IndexState(
            spec.name, state, table, tuple(columns), int(size), int(scans)
        )
    return states


# -- the plan: what SQL would run ---------------------------------------------


@dataclass(frozen=True)
class Step:
    spec: IndexSpec | None
    sql: str
    why: str


def plan_create(specs: Iterable[IndexSpec], states: dict[str, IndexState]) -> list[Step]:
    """Statements an upgrade runs, given each index's state (missing if unknown)."""
    steps: list[Step] = []
    touched: list[str] = []
    for spec in specs:
        state = states.get(spec.name, IndexState(spec.name, MISSING)).state
        if state == VALID:
            continue
        if state in (INVALID, DIFFERS):
            why = (
                "left INVALID by an interrupted build"
                if state == INVALID
                else "exists with other columns"
            )
            steps.append(Step(spec, spec.drop_sql(), why))
        steps.append(Step(spec, spec.create_sql(), "build online"))
        if spec.table not in touched:
            touched.append(spec.table)
    steps += [Step(None, f"ANALYZE {table}", "fresh statistics") for table in touched]
    return steps


def plan_drop(specs: Iterable[IndexSpec]) -> list[Step]:
    return [Step(spec, spec.drop_sql(), "drop online") for spec in specs]


# -- what the builder reports ---------------------------------------------------


@dataclass(frozen=True)
class Blocker:
    pid: int
    application: str
    state: str
    seconds: float

    def describe(self) -> str:
        return (
            f"pid {self.pid} ({self.application or 'no application_name'}, {self.state}, "
            f"{self.seconds:.0f} s)"
        )


@dataclass(frozen=True)
class BuildProgress:
    phase: str
    blocks_done: int = 0
    blocks_total: int = 0
    tuples_done: int = 0
    tuples_total: int = 0
    blockers: tuple[Blocker, ...] = ()

    @property
    def fraction(self) -> float | None:
        """Rough share of the whole concurrent build done; None while waiting."""
        p = self.phase
        blocks = self.blocks_done / self.blocks_total if self.blocks_total else 0.0
        tuples = self.tuples_done / self.tuples_total if self.tuples_total else 0.0
        if p.startswith("building index: scanning table"):
            return 0.05 + 0.45 * blocks
        if p.startswith("building index: sorting"):
            return 0.5
        if p.startswith("building index: loading tuples"):
            return 0.5 + 0.1 * tuples
        if p.startswith("index validation: scanning index"):
            return 0.6 + 0.1 * blocks
        if p.startswith("index validation: sorting"):
            return 0.7
        if p.startswith("index validation: scanning table"):
            return 0.7 + 0.25 * blocks
        return None


@dataclass(frozen=True)
class IndexEvent:
    kind: str  # start | progress | dropped | retry | done | skipped | analyze
    spec: IndexSpec | None
    detail: str = ""
    progress: BuildProgress | None = None
    seconds: float = 0.0
    size_bytes: int = 0
    table: str = ""


Listener = Callable[[IndexEvent], None]
PollConnect = Callable[[], AbstractContextManager[psycopg.Connection]]


_PROGRESS_SQL = """
select p.phase, p.blocks_done, p.blocks_total, p.tuples_done, p.tuples_total
  from pg_stat_progress_create_index p where p.pid = %s
"""
_BLOCKERS_SQL = """
select a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''),
       extract(epoch from now() - coalesce(a.xact_start, a.backend_start))
  from pg_stat_activity a where a.pid = any(pg_blocking_pids(%s))
"""
_TABLE_LOCKERS_SQL = """
select distinct a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''),
       extract(epoch from now() - coalesce(a.xact_start, a.backend_start))
  from pg_locks l join pg_stat_activity a on a.pid = l.pid
 where l.relation = %s::regclass and l.granted and a.pid <> pg_backend_pid()
   and l.mode in ('ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock',
                  'ExclusiveLock', 'AccessExclusiveLock')
"""


# Other client sessions of this database busy now or within the last second. This
# migration's own connections (the pool's, the poller's) carry its application_name.
_TRAFFIC_SQL = """
select count(*) from pg_stat_activity
 where datname = current_database() and backend_type = 'client backend'
   and pid <> pg_backend_pid() and application_name is distinct from %s
   and (state in ('active', 'idle in transaction')
        or state_change > now() - interval '1 second')
"""


def _blockers(rows: Iterable[tuple]) -> tuple[Blocker, ...]:
    return tuple(Blocker(int(p), str(a), str(s), float(t or 0)) for p, a, s, t in rows)


class _Poller:
    """Samples a build's progress and blockers from a second connection."""

    def __init__(
        self,
        connect: PollConnect,
        pid: int,
        spec: IndexSpec,
        listener: Listener,
        interval_s: float = 0.2,
    ) -> None:
        self._connect, self._pid, self._spec = connect, pid, spec
        self._listener, self._interval = listener, interval_s
        self._stop = threading.Event()
        self.last_blockers: tuple[Blocker, ...] = ()
        self._thread = threading.Thread(target=self._run, name=f"poll-{spec.name}", daemon=True)

    def __enter__(self) -> _Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        try:
            with self._connect() as conn:
                conn.autocommit = True
                while not self._stop.is_set():
                    row = conn.execute(_PROGRESS_SQL, (self._pid,)).fetchone()
                    blockers = _blockers(conn.execute(_BLOCKERS_SQL, (self._pid,)))
                    if blockers:
                        self.last_blockers = blockers
                    if row is not None:
                        self._listener(
                            IndexEvent(
                                "progress",
                                self._spec,
                                progress=BuildProgress(
                                    str(row[0]), *(int(v or 0) for v in row[1:]), blockers=blockers
                                ),
                            )
                        )
                    self._stop.wait(self._interval)
        except psycopg.Error:
            return  # progress is a nicety; the build itself reports its own errors


@contextmanager
def _session(conn: psycopg.Connection, policy: BuildPolicy) -> Iterator[None]:
    for stmt in policy.session_sql():
        conn.execute(stmt)
    try:
        yield
    finally:
        if not conn.closed and not conn.broken:
            for stmt in policy.reset_sql():
                conn.execute(stmt)


def _privileges(exc: errors.InsufficientPrivilege) -> PrivilegeError:
    return PrivilegeError(
        "wcperf migrate must own the tables (or be a superuser) to build or drop indexes: "
        f"{exc.diag.message_primary}"
    )


class OnlineIndexBuilder:
    """Runs create and drop plans on an autocommit psycopg connection."""

    def __init__(
        self,
        conn: psycopg.Connection,
        policy: BuildPolicy | None = None,
        listener: Listener | None = None,
        poll_connect: PollConnect | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not conn.autocommit:
            raise WcperfError("concurrent index builds need an autocommit connection")
        self.conn = conn
        self.policy = policy or BuildPolicy()
        self.listener: Listener = listener or (lambda event: None)
        self.poll_connect = poll_connect
        self._sleep = sleep

    def _pid(self) -> int:
        return int(self.conn.info.backend_pid)

    def _poller(self, spec: IndexSpec) -> AbstractContextManager[object]:
        if self.poll_connect is None:
            return _NullPoller()
        return _Poller(self.poll_connect, self._pid(), spec, self.listener)

    def _who_blocks(self, table: str, seen: tuple[Blocker, ...]) -> str:
        blockers = seen or _blockers(self.conn.execute(_TABLE_LOCKERS_SQL, (table,)))
        if not blockers:
            return "a lock held by another transaction"
        return ", ".join(b.describe() for b in blockers[:3])

    def _with_retries(
        self, spec: IndexSpec | None, table: str, action: Callable[[], None], verb: str
    ) -> None:
        """Run `action`; on a lock timeout say who was in the way, back off, try again."""
        target = spec.name if spec else table
        delay = self.policy.backoff_s
        for attempt in range(1, self.policy.attempts + 1):
            poller = self._poller(spec) if spec else _NullPoller()
            try:
                with poller:
                    action()
                return
            except errors.LockNotAvailable:
                seen = getattr(poller, "last_blockers", ())
                who = self._who_blocks(table, seen)
                if attempt == self.policy.attempts:
                    raise LockBudgetExceeded(
                        f"gave up {verb} {target}: still waiting for {who} after "
                        f"{attempt} attempts of {self.policy.lock_timeout_ms} ms; "
                        "nothing is left half-done that a re-run cannot repair"
                    ) from None
                self.listener(
                    IndexEvent(
                        "retry",
                        spec,
                        detail=f"attempt {attempt} timed out waiting for {who}; "
                        f"retrying in {delay:.1f} s",
                        table=table,
                    )
                )
                self._sleep(delay)
                delay = min(delay * 2, self.policy.backoff_max_s)
            except errors.InsufficientPrivilege as exc:
                raise _privileges(exc) from None

    def create(self, specs: Iterable[IndexSpec]) -> None:
        specs = list(specs)
        touched: list[str] = []
        with _session(self.conn, self.policy):
            for spec in specs:
                if self._ensure(spec) and spec.table not in touched:
                    touched.append(spec.table)
            for table in touched:
                self.listener(IndexEvent("analyze", None, detail=table, table=table))
                started = time.perf_counter()
                self._with_retries(
                    None, table, lambda t=table: self.conn.execute(f"ANALYZE {t}"), "analyzing"
                )
                self.listener(
                    IndexEvent(
                        "analyzed",
                        None,
                        detail=table,
                        table=table,
                        seconds=time.perf_counter() - started,
                    )
                )

    def _ensure(self, spec: IndexSpec) -> bool:
        """Make `spec` exist and be valid; True if anything was built."""
        state = index_states(self.conn, [spec])[spec.name]
        if state.state == VALID:
            self.listener(
                IndexEvent("skipped", spec, detail="already valid", size_bytes=state.size_bytes)
            )
            return False
        cores = self._choose_parallelism()
        self.listener(IndexEvent("start", spec, detail=f"{state.state}; {cores}"))
        started = time.perf_counter()

        def attempt() -> None:
            current = index_states(self.conn, [spec])[spec.name].state
            if current in (INVALID, DIFFERS):
                self.conn.execute(spec.drop_sql())
                self.listener(IndexEvent("dropped", spec, detail=current))
            if current != VALID:
                self.conn.execute(spec.create_sql())

        self._with_retries(spec, spec.table, attempt, "building")
        final = index_states(self.conn, [spec])[spec.name]
        if final.state != VALID:
            raise WcperfError(
                f"{spec.name} is {final.state} after its build; run wcperf "
                "migrate again to rebuild it"
            )
        self.listener(
            IndexEvent(
                "done", spec, seconds=time.perf_counter() - started, size_bytes=final.size_bytes
            )
        )
        return True

    def _choose_parallelism(self) -> str:
        """For `auto`: yield the other cores to live traffic, use them when quiet."""
        if self.policy.parallel_workers != AUTO:
            return f"{self.policy.parallel_workers} parallel workers"
        app = self.conn.execute("show application_name").fetchone()
        row = self.conn.execute(_TRAFFIC_SQL, (app[0] if app else "",)).fetchone()
        busy = int(row[0]) if row else 0
        if busy:
            self.conn.execute("SET max_parallel_maintenance_workers = 0")
            return f"one core: {busy} other sessions working"
        self.conn.execute("RESET max_parallel_maintenance_workers")
        return "parallel: database quiet"

    def drop(self, specs: Iterable[IndexSpec]) -> None:
        with _session(self.conn, self.policy):
            for spec in specs:
                self.listener(IndexEvent("start", spec, detail="drop"))
                started = time.perf_counter()
                self._with_retries(
                    spec, spec.table, lambda s=spec: self.conn.execute(s.drop_sql()), "dropping"
                )
                self.listener(
                    IndexEvent(
                        "done", spec, detail="dropped", seconds=time.perf_counter() - started
                    )
                )


class _NullPoller:
    last_blockers: tuple[Blocker, ...] = ()

    def __enter__(self) -> _NullPoller:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@dataclass
class MigrationHooks:
    """What the driver hands to a revision through Alembic's config attributes."""

    policy: BuildPolicy = field(default_factory=BuildPolicy)
    listener: Listener | None = None
    poll_connect: PollConnect | None = None
    states: dict[str, IndexState] | None = None  # for --sql: the live database's state


HOOKS_KEY = "wcperf_index_hooks"


def run_revision(context: object, op: object, specs: tuple[IndexSpec, ...], direction: str) -> None:
    """The body of an index revision, online or as SQL (`alembic --sql`, `migrate --sql`)."""
    config = context.config  # type: ignore[attr-defined]
    hooks: MigrationHooks = config.attributes.get(HOOKS_KEY) or MigrationHooks()
    migration = op.get_context()  # type: ignore[attr-defined]
    with migration.autocommit_block():
        if migration.as_sql:
            steps = (
                plan_create(specs, hooks.states or {})
                if direction == "upgrade"
                else plan_drop(reversed(specs))
            )
            if steps:
                for stmt in hooks.policy.session_sql():
                    op.execute(stmt)  # type: ignore[attr-defined]
                for step in steps:
                    op.execute(step.sql)  # type: ignore[attr-defined]
                for stmt in hooks.policy.reset_sql():
                    op.execute(stmt)  # type: ignore[attr-defined]
            return
        raw = op.get_bind().connection.driver_connection  # type: ignore[attr-defined]
        builder = OnlineIndexBuilder(raw, hooks.policy, hooks.listener, hooks.poll_connect)
        if direction == "upgrade":
            builder.create(specs)
        else:
            builder.drop(reversed(specs))
