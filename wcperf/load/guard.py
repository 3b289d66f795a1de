"""Whether a scenario may write to this database.

A scenario's writes are synthetic appointments and health records for whichever
students the sample draws: against a database of real children they would be
fake clinical rows beside real ones. So they run only where `wcperf seed` built
the whole district (its marker in `wcperf.seeds`: a seed of mode new or replace,
the tool's own record that every district row is synthetic), or when the
operator says `--allow-writes`. Read-only scenarios run anywhere.
"""

from __future__ import annotations

from wcperf.db import admin
from wcperf.errors import RefusedError
from wcperf.load.scenario import Scenario
from wcperf.seed.load import seeded_by_wcperf


def synthetic(url: str) -> bool:
    """True when wcperf seeded this database's whole district."""
    with admin.connect(url, application_name="wcperf:loadtest", autocommit=True) as conn:
        return seeded_by_wcperf(conn) is not None


def check_writes(scenario: Scenario, url: str, allowed: bool) -> list[str]:
    """The scenario's write operations; refused unless the district is synthetic or allowed."""
    writes = sorted({t.op for t in scenario.tasks if t.writes})
    if writes and not allowed and not synthetic(url):
        raise RefusedError(
            f"{scenario.name} writes ({', '.join(writes)}) and this database holds no "
            "district seeded by wcperf, so its rows may be real: run it on a seeded copy, "
            "or pass --allow-writes"
        )
    return writes
