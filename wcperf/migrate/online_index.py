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
from enum import StrEnum
from typing import Any

import psycopg
from psycopg import errors, sql

from wcperf.errors import WcperfError
from wcperf.platform import WCPERF_SCHEMA
from wcperf.platform.indexes import BY_NAME, IndexSpec
from wcperf.settings import IndexSettings


class IndexStatus(StrEnum):
    """What the live database holds for one declared index (shown as these words)."""

    PRESENT = "present"  # valid and equivalent, under its name or another
    INVALID = "INVALID"  # what an interrupted concurrent build leaves
    MISSING = "missing"
    DIFFERS = "differs"  # valid, but not the definition declared


PRESENT, INVALID, MISSING, DIFFERS = IndexStatus
AUTO = "auto"
_INDEX = IndexSettings()  # the settings tree's defaults
BUILT_TABLE = sql.SQL("{}.built_indexes").format(sql.Identifier(WCPERF_SCHEMA))


class LockBudgetExceeded(WcperfError):
    """A lock never freed within the retry budget; re-running is safe."""

    exit_code = 3


class PrivilegeError(WcperfError):
    """The role may not build or drop the indexes."""


@dataclass(frozen=True)
class BuildPolicy:
    lock_timeout_ms: int = _INDEX.lock_timeout_ms
    attempts: int = _INDEX.attempts
    backoff_s: float = 1.0  # doubles each retry
    backoff_max_s: float = 30.0
    build_timeout: str = "2h"  # statement_timeout for one build; the pool's 30 s would kill it
    maintenance_work_mem: str | None = "256MB"
    # Parallel workers per build: a number, or "auto": one core while other sessions
    # are working on this database (live traffic comes first), and PostgreSQL's own
    # parallelism while it is quiet. Decided afresh before each build.
    parallel_workers: int | str = AUTO
    # How long to wait for an index build already running on the same table (a
    # killed run's backend goes on building): building or dropping beside it would
    # only deadlock with it.
    wait_for_builds_s: float = _INDEX.wait_for_builds_s

    def session_sql(self) -> list[str]:
        stmts = [
            f"SET lock_timeout = '{int(self.lock_timeout_ms)}ms'",
            f"SET statement_timeout = '{_setting(self.build_timeout)}'",
        ]
        if self.maintenance_work_mem:
            stmts.append(f"SET maintenance_work_mem = '{_setting(self.maintenance_work_mem)}'")
        if self.parallel_workers != AUTO:
            stmts.append(f"SET max_parallel_maintenance_workers = {int(self.parallel_workers)}")
        return stmts

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
    state: IndexStatus
    table: str | None = None
    definition: str = ""  # the live index as pg_get_indexdef prints it
    expected: str = ""  # what an equivalent one reads after USING
    found_as: str = ""  # an equivalent index under another name serves instead
    built: bool = False  # wcperf built it (recorded in its schema); else it was found
    size_bytes: int = 0
    scans: int = 0

    @property
    def origin(self) -> str:
        if self.state == MISSING:
            return "-"
        return "built by wcperf" if self.built else "found"


# Every index on the spec's table, and the one of the spec's name wherever it is.
_STATE_SQL = """
select c.relname, i.indisvalid, i.indisunique, t.relname, pg_relation_size(c.oid),
       coalesce(s.idx_scan, 0), pg_get_indexdef(c.oid),
       regexp_replace(pg_get_indexdef(c.oid), '^.*? USING ', 'USING ')
  from pg_index i
  join pg_class c on c.oid = i.indexrelid
  join pg_class t on t.oid = i.indrelid
  left join pg_stat_user_indexes s on s.indexrelid = c.oid
 where c.relnamespace = current_schema()::regnamespace
   and (t.relname = %(table)s or c.relname = %(name)s)
"""
_EXPECTED_SQL = """
select %(method)s || ' (' || (select string_agg(quote_ident(col), ', ' order by n)
                                from unnest(%(columns)s::text[]) with ordinality u(col, n)) || ')'
"""
_BUILT_SQL = sql.SQL(
    "select name, table_name, definition, replaced_definition from {} order by built_at, name"
).format(BUILT_TABLE)


def built_records(conn: psycopg.Connection) -> dict[str, tuple[str, str, str | None]]:
    """{name: (table, definition, replaced definition)} of what wcperf built; {} before 0001."""
    row = conn.execute(
        "select to_regclass(%s) is not null", (f"{WCPERF_SCHEMA}.built_indexes",)
    ).fetchone()
    if not row or not row[0]:
        return {}
    return {r[0]: (r[1], r[2], r[3]) for r in conn.execute(_BUILT_SQL)}


def expected_tail(conn: psycopg.Connection, spec: IndexSpec) -> str:
    row = conn.execute(
        _EXPECTED_SQL, {"method": f"USING {spec.method}", "columns": list(spec.columns)}
    ).fetchone()
    assert row is not None
    return str(row[0])


def index_states(conn: psycopg.Connection, specs: Iterable[IndexSpec]) -> dict[str, IndexState]:
    """Each spec's live index, classified: present (valid and equivalent), missing, an
    INVALID leftover, or a valid index of that name with another definition."""
    built = built_records(conn)
    states: dict[str, IndexState] = {}
    for spec in specs:
        expected = expected_tail(conn, spec)
        rows = conn.execute(_STATE_SQL, {"table": spec.table, "name": spec.name}).fetchall()
        own = next((r for r in rows if r[0] == spec.name), None)

        def same(r: tuple[Any, ...], expected: str = expected, table: str = spec.table) -> bool:
            return bool(r[1]) and not r[2] and r[3] == table and r[7] == expected

        built_here = spec.name in built
        if own is not None:
            _name, valid, _, table, size, scans, definition, _ = own
            state = PRESENT if same(own) else DIFFERS if valid else INVALID
            states[spec.name] = IndexState(
                spec.name, state, table, definition, expected, built=built_here,
                size_bytes=size, scans=scans,
            )  # fmt: skip
            continue
        twin = next((r for r in rows if same(r)), None)
        if twin is not None:
            states[spec.name] = IndexState(
                spec.name, PRESENT, twin[3], twin[6], expected, found_as=twin[0],
                built=built_here, size_bytes=twin[4], scans=twin[5],
            )  # fmt: skip
        else:
            states[spec.name] = IndexState(
                spec.name, MISSING, spec.table, expected=expected, built=built_here
            )
    return states


# -- the plan: what SQL would run ---------------------------------------------


@dataclass(frozen=True)
class Step:
    spec: IndexSpec | None
    sql: sql.Composed
    why: str

    def text(self) -> str:
        return self.sql.as_string(None)


def _record_sql(spec: IndexSpec, replaced: str | None) -> sql.Composed:
    """Written before the build: whatever a crash leaves, wcperf knows the index is its own."""
    return sql.SQL(
        "INSERT INTO {} AS b (name, table_name, definition, replaced_definition, built_at)"
        " VALUES ({}, {}, {}, {}, now()) ON CONFLICT (name) DO UPDATE SET"
        " definition = excluded.definition,"
        " replaced_definition = coalesce(b.replaced_definition, excluded.replaced_definition),"
        " built_at = now()"
    ).format(
        BUILT_TABLE,
        sql.Literal(spec.name),
        sql.Literal(spec.table),
        sql.Literal(spec.definition()),
        sql.Literal(replaced),
    )


def _forget_sql(name: str) -> sql.Composed:
    return sql.SQL("DELETE FROM {} WHERE name = {}").format(BUILT_TABLE, sql.Literal(name))


def _rename_sql(old: str, new: str) -> sql.Composed:
    return sql.SQL("ALTER INDEX {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(new))


def _analyze_sql(table: str) -> sql.Composed:
    return sql.SQL("ANALYZE {}").format(sql.Identifier(table))


_DEFINITION = re.compile(r"^CREATE (UNIQUE )?INDEX (\S+) ON ")


def _recreate_sql(definition: str, name: str) -> sql.Composed:
    """The server's own text of an index it had, built online under `name`."""
    found = _DEFINITION.match(definition)
    if found is None:
        raise WcperfError(f"cannot rebuild index {name}: unrecognised definition")
    head = sql.SQL("CREATE {}INDEX CONCURRENTLY IF NOT EXISTS {} ON ").format(
        sql.SQL(found.group(1) or ""), sql.Identifier(name)
    )
    return head + sql.SQL(definition[found.end() :])


def plan_create(
    specs: Iterable[IndexSpec],
    states: dict[str, IndexState],
    *,
    replace_differing: bool = False,
) -> list[Step]:
    """Statements an upgrade runs, given each index's state (missing if unknown)."""
    steps: list[Step] = []
    touched: list[str] = []
    for spec in specs:
        st = states.get(spec.name, IndexState(spec.name, MISSING))
        if st.state == PRESENT or (st.state == DIFFERS and not replace_differing):
            continue
        if st.state == DIFFERS:
            tmp = spec.temporary_name
            steps += [
                Step(spec, _record_sql(spec, st.definition), "record: replacing the platform's"),
                Step(spec, spec.drop_sql(tmp), "a leftover of an interrupted swap"),
                Step(spec, spec.create_sql(tmp), "build the expected definition beside it"),
                Step(spec, spec.drop_sql(), "drop the differing one (its twin serves)"),
                Step(spec, _rename_sql(tmp, spec.name), "take its name"),
            ]
        else:
            steps.append(Step(spec, _record_sql(spec, None), "record: built by wcperf"))
            if st.state == INVALID:
                steps.append(Step(spec, spec.drop_sql(), "left INVALID by an interrupted build"))
            steps.append(Step(spec, spec.create_sql(), "build online"))
        if spec.table not in touched:
            touched.append(spec.table)
    steps += [Step(None, _analyze_sql(table), "fresh statistics") for table in touched]
    return steps


def plan_drop(built: dict[str, tuple[str, str, str | None]]) -> list[Step]:
    """Only what wcperf built, newest first; a swapped index gets the platform's back."""
    steps: list[Step] = []
    for name, (_table, _definition, replaced) in reversed(list(built.items())):
        spec = BY_NAME.get(name)
        if spec is None:
            continue  # not an index this version knows: leave it, and its record
        if replaced:
            tmp = spec.temporary_name
            steps += [
                Step(spec, spec.drop_sql(tmp), "a leftover of an interrupted swap"),
                Step(spec, _recreate_sql(replaced, tmp), "rebuild the platform's definition"),
                Step(spec, spec.drop_sql(), "drop wcperf's"),
                Step(spec, _rename_sql(tmp, name), "give the platform's its name back"),
            ]
        else:
            steps.append(Step(spec, spec.drop_sql(), "built by wcperf: drop online"))
        steps.append(Step(spec, _forget_sql(name), "no longer wcperf's"))
    return steps


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
    kind: str  # start|progress|dropped|retry|waiting|done|skipped|differs|analyze|analyzed
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
                        done, total, tuples_done, tuples_total = (int(v or 0) for v in row[1:5])
                        self._listener(
                            IndexEvent(
                                "progress",
                                self._spec,
                                progress=BuildProgress(
                                    str(row[0]), done, total, tuples_done, tuples_total, blockers
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


_RUNNING_BUILDS_SQL = """
select p.pid, a.application_name, p.phase
from pg_stat_progress_create_index p
join pg_stat_activity a on a.pid = p.pid
where p.relid = %s::regclass and p.pid <> pg_backend_pid()
  -- a database cloned from this one has the same table OIDs
  and p.datid = (select oid from pg_database where datname = current_database())
"""


class OnlineIndexBuilder:
    """Runs create and drop plans on an autocommit psycopg connection."""

    def __init__(
        self,
        conn: psycopg.Connection,
        policy: BuildPolicy | None = None,
        listener: Listener | None = None,
        poll_connect: PollConnect | None = None,
        sleep: Callable[[float], None] = time.sleep,
        *,
        replace_differing: bool = False,
    ) -> None:
        if not conn.autocommit:
            raise WcperfError("concurrent index builds need an autocommit connection")
        self.conn = conn
        self.policy = policy or BuildPolicy()
        self.listener: Listener = listener or (lambda event: None)
        self.poll_connect = poll_connect
        self.replace_differing = replace_differing
        self.differing: list[IndexState] = []  # left alone: the platform's, other definition
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
        self,
        spec: IndexSpec | None,
        table: str,
        action: Callable[[], object],
        verb: str,
        *,
        poll: bool = False,
    ) -> None:
        """Run `action`; on a lock timeout say who was in the way, back off, try again."""
        target = spec.name if spec else table
        delay = self.policy.backoff_s
        for attempt in range(1, self.policy.attempts + 1):
            poller = self._poller(spec) if spec and poll else _NullPoller()
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

    def _run(
        self,
        spec: IndexSpec | None,
        table: str,
        stmt: sql.Composed,
        verb: str,
        *,
        poll: bool = False,
    ) -> None:
        self._with_retries(spec, table, lambda: self.conn.execute(stmt), verb, poll=poll)

    def _valid(self, name: str) -> bool:
        row = self.conn.execute(
            "select i.indisvalid from pg_index i join pg_class c on c.oid = i.indexrelid"
            " where c.relname = %s and c.relnamespace = current_schema()::regnamespace",
            (name,),
        ).fetchone()
        return bool(row and row[0])

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
                self._run(None, table, _analyze_sql(table), "analyzing")
                self.listener(
                    IndexEvent(
                        "analyzed",
                        None,
                        detail=table,
                        table=table,
                        seconds=time.perf_counter() - started,
                    )
                )

    def _running_builds(self, table: str) -> list[tuple[int, str, str]]:
        return [
            (int(pid), str(app or "?"), str(phase))
            for pid, app, phase in self.conn.execute(_RUNNING_BUILDS_SQL, (table,))
        ]

    def _wait_for_builds(self, spec: IndexSpec) -> None:
        """Wait until no other session is building an index on `spec`'s table.

        After a `kill -9` of `wcperf migrate`, its backend goes on with CREATE
        INDEX CONCURRENTLY: the index it builds looks INVALID, and dropping or
        building beside it deadlocks with it. Waiting lets it finish (the index is
        then simply present) or fail (it is then rebuilt).
        """
        deadline = time.monotonic() + self.policy.wait_for_builds_s
        said: set[int] = set()
        while running := self._running_builds(spec.table):
            for pid, app, phase in running:
                if pid not in said:
                    said.add(pid)
                    self.listener(
                        IndexEvent(
                            "waiting",
                            spec,
                            detail=f"an index build on {spec.table} is running in backend "
                            f"{pid} ({app}; {phase}), perhaps from a run that was stopped: "
                            "waiting for it to end",
                            table=spec.table,
                        )
                    )
            if time.monotonic() >= deadline:
                pid = running[0][0]
                raise WcperfError(
                    f"an index build on {spec.table} is still running in backend {pid} after "
                    f"{self.policy.wait_for_builds_s:.0f} s: let it finish, or stop it with "
                    f"`select pg_cancel_backend({pid})`, then run wcperf migrate again"
                )
            self._sleep(1.0)

    def _ensure(self, spec: IndexSpec) -> bool:
        """Make `spec` present; True if anything was built. A differing index of the
        platform's is reported and left alone unless `replace_differing`."""
        self._wait_for_builds(spec)
        state = index_states(self.conn, [spec])[spec.name]
        if state.state == PRESENT:
            detail = f"present as {state.found_as}" if state.found_as else state.origin
            self.listener(IndexEvent("skipped", spec, detail=detail, size_bytes=state.size_bytes))
            return False
        if state.state == DIFFERS and not self.replace_differing:
            self.differing.append(state)
            self.listener(IndexEvent("differs", spec, detail=state.definition))
            return False
        cores = self._choose_parallelism()
        self.listener(IndexEvent("start", spec, detail=f"{state.state}; {cores}"))
        started = time.perf_counter()
        replacing = state.state == DIFFERS
        self.conn.execute(_record_sql(spec, state.definition if replacing else None))
        if replacing:
            tmp = spec.temporary_name
            self._run(spec, spec.table, spec.drop_sql(tmp), "clearing")
            self._run(spec, spec.table, spec.create_sql(tmp), "building", poll=True)
            if not self._valid(tmp):
                raise WcperfError(
                    f"{tmp} (the replacement for {spec.name}) is INVALID after its build; "
                    f"{spec.name} is untouched: run wcperf migrate --replace-differing again"
                )
            self._run(spec, spec.table, spec.drop_sql(), "dropping")
            self._run(spec, spec.table, _rename_sql(tmp, spec.name), "renaming")
            self.listener(IndexEvent("dropped", spec, detail="differing"))
        else:

            def attempt() -> None:
                current = index_states(self.conn, [spec])[spec.name].state
                if current == INVALID:
                    self.conn.execute(spec.drop_sql())
                    self.listener(IndexEvent("dropped", spec, detail=current))
                if current != PRESENT:
                    self.conn.execute(spec.create_sql())

            self._with_retries(spec, spec.table, attempt, "building", poll=True)
        final = index_states(self.conn, [spec])[spec.name]
        if final.state != PRESENT:
            raise WcperfError(
                f"{spec.name} on {spec.table} is {final.state} after its build; run wcperf "
                "migrate again to rebuild it"
            )
        self.listener(
            IndexEvent(
                "done",
                spec,
                detail="replaced" if replacing else "built",
                seconds=time.perf_counter() - started,
                size_bytes=final.size_bytes,
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

    def drop_built(self) -> None:
        """Undo what wcperf built, and only that: an index it found stays."""
        steps = plan_drop(built_records(self.conn))
        with _session(self.conn, self.policy):
            current: str | None = None
            started = time.perf_counter()
            for step in steps:
                assert step.spec is not None
                if step.spec.name != current:
                    current, started = step.spec.name, time.perf_counter()
                    self.listener(IndexEvent("start", step.spec, detail="drop"))
                rebuild = step.why.startswith("rebuild")
                self._run(step.spec, step.spec.table, step.sql, "dropping", poll=rebuild)
                if step.why == "no longer wcperf's":
                    self.listener(
                        IndexEvent(
                            "done",
                            step.spec,
                            detail="dropped",
                            seconds=time.perf_counter() - started,
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
    replace_differing: bool = False
    states: dict[str, IndexState] | None = None  # for --sql: the live database's state
    built: dict[str, tuple[str, str, str | None]] | None = None  # for --sql of a downgrade
    differing: list[IndexState] = field(default_factory=list)  # out: left alone, exit 1


HOOKS_KEY = "wcperf_index_hooks"


def run_revision(context: object, op: object, specs: tuple[IndexSpec, ...], direction: str) -> None:
    """The body of an index revision, online or as SQL (`alembic --sql`, `migrate --sql`)."""
    config = context.config  # type: ignore[attr-defined]
    hooks: MigrationHooks = config.attributes.get(HOOKS_KEY) or MigrationHooks()
    migration = op.get_context()  # type: ignore[attr-defined]
    with migration.autocommit_block():
        if migration.as_sql:
            steps = (
                plan_create(specs, hooks.states or {}, replace_differing=hooks.replace_differing)
                if direction == "upgrade"
                else plan_drop(hooks.built or {})
            )
            if steps:
                for stmt in hooks.policy.session_sql():
                    op.execute(stmt)  # type: ignore[attr-defined]
                for step in steps:
                    op.execute(step.text())  # type: ignore[attr-defined]
                for stmt in hooks.policy.reset_sql():
                    op.execute(stmt)  # type: ignore[attr-defined]
            return
        raw = op.get_bind().connection.driver_connection  # type: ignore[attr-defined]
        builder = OnlineIndexBuilder(
            raw,
            hooks.policy,
            hooks.listener,
            hooks.poll_connect,
            replace_differing=hooks.replace_differing,
        )
        if direction == "upgrade":
            builder.create(specs)
            hooks.differing.extend(builder.differing)
        else:
            builder.drop_built()
