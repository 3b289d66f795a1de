"""Prove the indexes on the user's own data: which plan each hot query gets, and its time.

Each hot path of SPEC.md is run under EXPLAIN (ANALYZE, BUFFERS) with parameters
sampled from the database itself. `compare` also times it with index and bitmap
scans switched off for that transaction only (SET LOCAL): no index is dropped and
no lock is taken, so it is safe on a live database. These queries filter on
columns only the performance indexes cover, so that plan is the plan they had
before the migration (the tests check this on an un-migrated database).

Only plan shapes, timings and buffer counts leave this module; the sampled
parameter values (which include student ids and diagnosis codes) never do.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from wcperf.errors import WcperfError
from wcperf.observe.fingerprint import fingerprint

SMALL_TABLE_PAGES = 100  # below this, a sequential scan is the right plan


@dataclass(frozen=True)
class HotQuery:
    name: str
    index: str
    sql: str

    @property
    def table(self) -> str:
        return fingerprint(self.sql).table or ""


HOT_QUERIES = (
    HotQuery(
        "student health history",
        "idx_health_records_student_type_date",
        "select id, record_type, record_date, provider from health_records"
        " where student_id = %(student)s and record_type = %(record_type)s"
        " order by record_date desc limit 20",
    ),
    HotQuery(
        "student confidential records",
        "idx_health_records_student_confidential",
        "select id, record_date from health_records"
        " where student_id = %(student)s and is_confidential = true",
    ),
    HotQuery(
        "recent records by type",
        "idx_health_records_type_confidential_date",
        "select id, student_id, record_date from health_records"
        " where record_type = %(record_type)s and is_confidential = false"
        " and record_date >= %(since)s order by record_date limit 50",
    ),
    HotQuery(
        "provider queries",
        "idx_health_records_provider_date",
        "select count(*) from health_records where provider = %(provider)s"
        " and record_date between %(since)s and %(until)s",
    ),
    HotQuery(
        "diagnosis lookup",
        "idx_health_records_diagnosis_code",
        "select count(*) from health_records where diagnosis_code = %(code)s",
    ),
    HotQuery(
        "student appointments",
        "idx_appointments_student_scheduled",
        "select id, scheduled_at, status from appointments"
        " where student_id = %(appt_student)s order by scheduled_at desc limit 10",
    ),
    HotQuery(
        "nurse daily calendar",
        "idx_appointments_nurse_scheduled",
        "select id, student_id, scheduled_at, status from appointments"
        " where nurse_id = %(nurse)s and scheduled_at >= %(day)s"
        " and scheduled_at < %(day_end)s and status <> 'cancelled' order by scheduled_at",
    ),
    HotQuery(
        "daily appointment schedule",
        "idx_appointments_status_scheduled",
        "select id, student_id, nurse_id, scheduled_at from appointments"
        " where status = %(status)s and scheduled_at >= %(day)s"
        " and scheduled_at < %(day_end)s order by scheduled_at limit 100",
    ),
    HotQuery(
        "student appointments by status",
        "idx_appointments_student_status_scheduled",
        "select id, scheduled_at from appointments where student_id = %(appt_student)s"
        " and status = %(status)s and scheduled_at >= %(season)s order by scheduled_at",
    ),
    HotQuery(
        "appointments by type",
        "idx_appointments_type_status_scheduled",
        "select id, student_id, scheduled_at from appointments where type = %(type)s"
        " and status = %(status)s and scheduled_at >= %(day)s and scheduled_at < %(day_end)s",
    ),
    HotQuery(
        "recurring series",
        "idx_appointments_recurring_group",
        "select id, scheduled_at, status from appointments"
        " where recurring_group_id = %(group)s order by scheduled_at",
    ),
    HotQuery(
        "medication search by name",
        "idx_medications_active_name",
        "select id, name, dosage_form, strength from medications where is_active = true"
        " and name >= %(prefix)s and name < %(prefix_end)s order by name",
    ),
    HotQuery(
        "controlled medications",
        "idx_medications_controlled_schedule",
        "select id, name from medications where is_controlled = true"
        " and dea_schedule = %(schedule)s",
    ),
    HotQuery(
        "medications by form",
        "idx_medications_form_active",
        "select id, name from medications where dosage_form = %(form)s and is_active = true",
    ),
)

_SAMPLES = {
    "record": """select student_id, record_type, provider, record_date from health_records
                  where id >= (select (min(id) + max(id)) / 2 from health_records)
                  order by id limit 1""",
    "code": """select diagnosis_code from health_records where diagnosis_code is not null
                and id >= (select (min(id) + max(id)) / 2 from health_records)
              order by id limit 1""",
    "latest": "select max(record_date) from health_records",
    "appointment": """select student_id, nurse_id, scheduled_at, status, type from appointments
                       where nurse_id is not null and status <> 'cancelled'
                         and id >= (select (min(id) + max(id)) / 2 from appointments)
                       order by id limit 1""",
    "group": """select recurring_group_id from appointments where recurring_group_id is not null
                order by id limit 1""",
    "medication": """select name, dosage_form from medications where is_active
                      order by id limit 1""",
    "schedule": """select dea_schedule from medications where is_controlled
                    and dea_schedule is not null order by id limit 1""",
}


def sample_parameters(conn: psycopg.Connection) -> dict[str, Any]:
    """Real values from the database, so plans reflect its data. Kept in memory only."""
    rows = {k: conn.execute(sql).fetchone() for k, sql in _SAMPLES.items()}
    if not rows["record"] or not rows["appointment"] or not rows["medication"]:
        raise WcperfError("the database holds no district to verify against: run wcperf seed")
    student, record_type, provider, record_date = rows["record"]
    appt_student, nurse, at, status, appt_type = rows["appointment"]
    latest = rows["latest"][0] if rows["latest"] else record_date
    name, form = rows["medication"]
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "student": student,
        "record_type": record_type,
        "provider": provider,
        "since": latest - timedelta(days=30),
        "until": latest,
        "code": rows["code"][0] if rows["code"] else None,
        "appt_student": appt_student,
        "nurse": nurse,
        "status": status,
        "type": appt_type,
        "day": day,
        "day_end": day + timedelta(days=1),
        "season": day - timedelta(days=120),
        "group": rows["group"][0] if rows["group"] else None,
        "prefix": name[:3],
        "prefix_end": name[:2] + chr(ord(name[2]) + 1),
        "schedule": rows["schedule"][0] if rows["schedule"] else "II",
        "form": form,
    }


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
    index: str
    table_pages: int
    after: PlanRun
    chosen: bool  # the planner picks the intended index on its own
    usable: bool  # the intended index serves the query when a sequential scan is discouraged
    before: PlanRun | None = None

    @property
    def ok(self) -> bool:
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
    q: HotQuery,
    params: dict[str, Any],
    settings: tuple[str, ...],
    repeat: int,
) -> PlanRun:
    explain(conn, q.sql, params, settings)  # warm the cache: compare like with like
    runs = [explain(conn, q.sql, params, settings) for _ in range(repeat)]
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
        raise WcperfError("the database has no wcperf schema yet: run `wcperf migrate` first")
    params = sample_parameters(conn)
    pages = dict(
        conn.execute(
            "select relname, relpages from pg_class where relname = any(%s)",
            (list({q.table for q in queries}),),
        ).fetchall()
    )
    verdicts = []
    for q in queries:
        after = _median_run(conn, q, params, (), repeat)
        chosen = q.index in after.indexes
        usable = chosen or q.index in explain(conn, q.sql, params, NO_SEQSCAN).indexes
        before = _median_run(conn, q, params, NO_INDEXES, repeat) if compare else None
        verdicts.append(
            Verdict(q.name, q.index, int(pages.get(q.table, 0)), after, chosen, usable, before)
        )
    return verdicts
