"""The command groups of `wcperf`: where each lives and what it is for.

Kept apart from the groups themselves so that `wcperf --help` lists them all, and
`wcperf bulk …` finds its group, without importing the other eight (a group's
libraries cost up to a second to import). Each group's one-line help is said here
only; `app.load_command` gives it to the group.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    module: str
    attribute: str
    help: str


COMMANDS: dict[str, Entry] = {
    "migrate": Entry(
        "wcperf.cli.migrate",
        "app",
        "Find or build the platform's 14 performance indexes online (CREATE INDEX "
        "CONCURRENTLY, lock timeouts, retries, repair), keeping wcperf's own state in its "
        "schema `wcperf`; never touches a platform table.",
    ),
    "bulk": Entry(
        "wcperf.cli.bulk",
        "app",
        "Year-end and staffing bulk jobs in keyset batches, each its own transaction with "
        "its checkpoint. They watch the pool and the database, slow down or pause and say "
        "why, survive a kill (re-run or `bulk resume`), and never apply a row twice.",
    ),
    "loadtest": Entry(
        "wcperf.cli.loadtest",
        "app",
        "Replay a load scenario and judge it against its targets (`run`, the default: "
        "`wcperf loadtest school-day` runs it), list the bundled scenarios, compare two runs.",
    ),
    "monitor": Entry(
        "wcperf.cli.monitor",
        "app",
        "Pool, query percentiles, slow queries, N+1, cache and alerts: from every publishing "
        "wcperf process, beside PostgreSQL's and Redis's own view.",
    ),
    "seed": Entry(
        "wcperf.cli.seed",
        "seed",
        "Seed a synthetic district: schools, nurses, students and their records (no real people).",
    ),
    "cache": Entry(
        "wcperf.cli.cache", "app", "The two-tier query cache (in-process L1 over Redis L2)."
    ),
    "db": Entry(
        "wcperf.cli.db",
        "app",
        "Embedded PostgreSQL and Redis in wcperf's home (WCPERF_HOME, else "
        "~/.local/share/wcperf), and which servers are used.",
    ),
    "config": Entry(
        "wcperf.cli.config",
        "app",
        "The settings wcperf runs with: every default, and which environment variable or "
        "flag changed it.",
    ),
    "demo": Entry(
        "wcperf.cli.demo",
        "demo",
        "Start what is missing, seed a small district if the database is empty, build the "
        "14 performance indexes online, and show the district, the pool and the cache working.",
    ),
}
