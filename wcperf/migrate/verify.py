"""Prove the indexes on the user's own data: which plan each hot query gets, and its time.

The queries are the platform's hot queries as `workload.queries` declares them, the
same declarations the load runs and the cache keys: what is proven is what runs.
Each is run under EXPLAIN (ANALYZE, BUFFERS) with parameters sampled from the
database itself. `compare` also times it with index and bitmap scans switched off
for that transaction only (SET LOCAL): no index is dropped and no lock is taken,
so it is safe on a live database. A query none of the 14 indexes serves is said
so, with what would serve it, as advice.

Only plan shapes, timings and buffer counts leave this module; the sampled
parameter values (which include student ids and diagnosis codes) never do.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from sqlalchemy.dialects.postgresql import psycopg as pg_dialect

from wcperf.errors import WcperfError
from wcperf.observe.fingerprint import fingerprint
from wcperf.workload.queries import HOT_QUERIES, HotQuery

SMALL_TABLE_PAGES = 100  # below this, a sequential scan is the right plan
_DIALECT = pg_dialect.dialect()

_SAMPLES = {
    "record": """select "studentId", "recordType", provider from health_records
                  where "deletedAt" is null and provider is not null order by id limit 1""",
    "code": """select "diagnosisCode" from health_records
                where "diagnosisCode" is not null and "deletedAt" is null order by id limit 1""",
    "latest": """select max("recordDate") from health_records where "deletedAt" is null""",
    "appointment": """select "studentId", "nurseId", "scheduledAt", status, type
                        from appointments where "nurseId" is not null and status <> 'CANCELLED'
                         and "deletedAt" is null order by id limit 1""",
    "group": """select "recurringGroupId" from appointments
                 where "recurringGroupId" is not null order by id limit 1""",
    "medication": """select name, "dosageForm" from medications
                      where "isActive" and "deletedAt" is null order by id limit 1""",
    "schedule": """select "deaSchedule" from medications where "isControlled"
                    and "deaSchedule" is not null order by id limit 1""",
    "school": """select "schoolId" from students where grade = '12' and "schoolId" is not null
                  and "deletedAt" is null order by id limit 1""",
}


def sample_parameters(conn: psycopg.Connection) -> dict[str, Any]:
    """Real values from the database, so plans reflect its data. Kept in memory only.

    Rows are picked by key order (UUIDs: as good as random), never by arithmetic on keys.
    """
    rows = {k: conn.execute(sql).fetchone() for k, sql in _SAMPLES.items()}
    if not rows["record"] or not rows["appointment"] or not rows["medication"]:
        raise WcperfError("the database holds no district to verify against: run wcperf seed")
    student, record_type, provider = rows["record"]
    appt_student, nurse, at, status, appt_type = rows["appointment"]
    name, form = rows["medication"]
    return {
        "student": student,
        "record_type": record_type,
        "provider": provider,
        "latest": rows["latest"][0] if rows["latest"] else at,
        "code": rows["code"][0] if rows["code"] else None,
        "appt_student": appt_student,
        "nurse": nurse,
        "at": at,
        "status": status,
        "type": appt_type,
        "group": rows["group"][0] if rows["group"] else None,
        "medication": name,
        "form": form,
        "schedule": rows["schedule"][0] if rows["schedule"] else "II",
        "school": rows["school"][0] if rows["school"] else None,
    }


def compiled(q: HotQuery, sample: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The declaration's statement as psycopg runs it: SQL text and bound parameters."""
    c = q.build(**q.params(sample)).compile(
        dialect=_DIALECT, compile_kwargs={"render_postcompile": True}
    )
    return str(c), dict(c.params)


@dataclass(frozen=True)
class PlanRun:
    ms: float
    node: str  # top-most scan node type
    indexes: tuple[str, ...]
    buffers: int


def _walk(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _walk(child)


def explain(
    conn: psycopg.Connection, sql: str, params: dict[str, Any], settings: tuple[str, ...] = ()
) -> PlanRun:
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        for setting in settings:
            cur.execute(f"set local {setting}")
        cur.execute("explain (analyze, buffers, format json) " + sql, params)
        row = cur.fetchone()
        assert row is not None
        doc = next(iter(row.values()))[0]
    nodes = list(_walk(doc["Plan"]))
    scans = [n for n in nodes if "Scan" in n["Node Type"]]
    top = doc["Plan"]
    return PlanRun(
        ms=float(doc["Execution Time"]),
        node=scans[0]["Node Type"] if scans else top["Node Type"],
        indexes=tuple(dict.fromkeys(n["Index Name"] for n in nodes if "Index Name" in n)),
        buffers=int(top.get("Shared Hit Blocks", 0)) + int(top.get("Shared Read Blocks", 0)),
    )


NO_INDEXES = ("enable_indexscan = off", "enable_bitmapscan = off", "enable_indexonlyscan = off")
NO_SEQSCAN = ("enable_seqscan = off",)


@dataclass(frozen=True)
class Verdict:
    query: str
    index: str | None  # the performance index meant to serve it; None: none of the 14 does
    table_pages: int
    after: PlanRun
    chosen: bool  # the planner picks the intended index (or a platform twin) on its own
    usable: bool  # the intended index serves the query when a sequential scan is discouraged
    before: PlanRun | None = None
    advice: str = ""

    @property
    def ok(self) -> bool:
        if self.index is None:
            return True  # nothing of ours to prove; the advice says what would serve it
        return self.chosen or (self.usable and self.table_pages < SMALL_TABLE_PAGES)

    @property
    def faster_pct(self) -> float | None:
        if self.before is None or self.before.ms <= 0:
            return None
        return 100.0 * (self.before.ms - self.after.ms) / self.before.ms

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "query": self.query,
            "index": self.index,
            "ok": self.ok,
            "chosen": self.chosen,
            "usable": self.usable,
            "plan": self.after.node,
            "indexes_used": list(self.after.indexes),
            "ms": round(self.after.ms, 3),
            "buffers": self.after.buffers,
            "table_pages": self.table_pages,
            "advice": self.advice,
        }
        if self.before is not None:
            data |= {
                "before_ms": round(self.before.ms, 3),
                "before_plan": self.before.node,
                "faster_pct": round(self.faster_pct or 0.0, 1),
            }
        return data


def _median_run(
    conn: psycopg.Connection,
    sql: str,
    params: dict[str, Any],
    settings: tuple[str, ...],
    repeat: int,
) -> PlanRun:
    explain(conn, sql, params, settings)  # warm the cache: compare like with like
    runs = [explain(conn, sql, params, settings) for _ in range(repeat)]
    ms = statistics.median(r.ms for r in runs)
    return min(runs, key=lambda r: abs(r.ms - ms))


def verify(
    conn: psycopg.Connection,
    *,
    compare: bool = False,
    repeat: int = 3,
    queries: tuple[HotQuery, ...] = HOT_QUERIES,
) -> list[Verdict]:
    # Each EXPLAIN runs in its own transaction so SET LOCAL ends with it.
    conn.autocommit = True
    if conn.execute("select to_regclass('students') is null").fetchone() == (True,):
        raise WcperfError(
            "this database has none of the platform's tables: run `wcperf seed` for a "
            "synthetic district"
        )
    sample = sample_parameters(conn)
    statements = [(q, *compiled(q, sample)) for q in queries]
    tables = {q.name: fingerprint(sql).table or "" for q, sql, _ in statements}
    pages: dict[str, int] = dict(
        conn.execute(
            "select relname, relpages from pg_class where relname = any(%s) and relkind = 'r'",
            (list(set(tables.values())),),
        ).fetchall()
    )
    verdicts = []
    for q, sql, params in statements:
        serving = {q.index, *q.also} - {None}
        after = _median_run(conn, sql, params, (), repeat)
        chosen = bool(serving & set(after.indexes))
        usable = chosen
        if not chosen and q.index is not None:
            usable = q.index in explain(conn, sql, params, NO_SEQSCAN).indexes
        before = _median_run(conn, sql, params, NO_INDEXES, repeat) if compare else None
        verdicts.append(
            Verdict(
                q.name,
                q.index,
                int(pages.get(tables[q.name], 0)),
                after,
                chosen,
                usable,
                before,
                q.advice if q.index is None else "",
            )
        )
    return verdicts
