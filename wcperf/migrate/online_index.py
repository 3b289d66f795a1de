"""Build indexes online: CREATE INDEX CONCURRENTLY that repairs, retries and reports.

Per index: an INVALID index of the same name (what an interrupted concurrent build
leaves) is dropped concurrently; the build runs with a short `lock_timeout`, so a
long transaction in the way makes it give up and retry with backoff instead of
queueing every nurse's query behind its lock request; `indisvalid` is confirmed
afterwards. Each table that gained an index is ANALYZEd once, after its last one.
Re-running after a crash at any point converges on every index valid.

The builder and the revision body live here; what the live database holds is
`index_state`, the statements a migration runs are `index_plan`, and what a build
reports while it runs (progress, blockers, from a second connection) is `build_watch`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg import errors, sql

from wcperf.errors import WcperfError
from wcperf.migrate.build_watch import (
    TABLE_LOCKERS_SQL,
    Blocker,
    IndexEvent,
    Listener,
    NullPoller,
    PollConnect,
    Poller,
    blockers_of,
)
from wcperf.migrate.index_plan import (
    analyze_sql,
    plan_create,
    plan_drop,
    record_sql,
    rename_sql,
)
from wcperf.migrate.index_state import (
    DIFFERS,
    INVALID,
    PRESENT,
    IndexState,
    built_records,
    index_states,
)
from wcperf.platform.indexes import IndexSpec
from wcperf.settings import IndexSettings

AUTO = "auto"
_INDEX = IndexSettings()  # the settings tree's defaults


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


# Other client sessions of this database busy now or within the last second. This
# migration's own connections (the pool's, the poller's) carry its application_name.
_TRAFFIC_SQL = """
select count(*) from pg_stat_activity
 where datname = current_database() and backend_type = 'client backend'
   and pid <> pg_backend_pid() and application_name is distinct from %s
   and (state in ('active', 'idle in transaction')
        or state_change > now() - interval '1 second')
"""


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
            return NullPoller()
        return Poller(self.poll_connect, self._pid(), spec, self.listener)

    def _who_blocks(self, table: str, seen: tuple[Blocker, ...]) -> str:
        blockers = seen or blockers_of(self.conn.execute(TABLE_LOCKERS_SQL, (table,)))
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
            poller = self._poller(spec) if spec and poll else NullPoller()
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
                self._run(None, table, analyze_sql(table), "analyzing")
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
        self.conn.execute(record_sql(spec, state.definition if replacing else None))
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
            self._run(spec, spec.table, rename_sql(tmp, spec.name), "renaming")
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
