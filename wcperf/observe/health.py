"""One verdict for probes: healthy, degraded, critical, or cannot tell.

Exit codes as monitoring plugins have them (Nagios, Icinga, Sensu): 0 OK,
1 WARNING, 2 CRITICAL, 3 UNKNOWN. The reasons are the alerts of the judged
window, one line each; a verdict with no figures behind it is UNKNOWN, never OK.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from wcperf.observe.snapshot import Snapshot


class Status(IntEnum):
    HEALTHY = 0
    DEGRADED = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def word(self) -> str:
        return self.name.lower()


@dataclass
class Health:
    status: Status
    reasons: list[str] = field(default_factory=list)
    window_s: float | None = None
    judged: list[str] = field(default_factory=list)  # which figures there were

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.word,
            "exit_code": int(self.status),
            "reasons": self.reasons,
            "window_s": self.window_s,
            "judged": self.judged,
        }


def judged(snap: Snapshot) -> list[str]:
    """What a verdict on this Snapshot rests on."""
    seen = []
    recent = snap.recent
    if (recent.queries if recent else snap.queries) or snap.pools:
        seen.append("wcperf processes")
    if snap.server_log is not None and snap.server_log.source:
        seen.append("server log")
    if snap.database is not None:
        seen.append("server sessions")
    if snap.cache is not None:
        seen.append("cache")
    return seen


def health(snap: Snapshot) -> Health:
    """The Snapshot's alerts (already judged on its window) as one status."""
    basis = judged(snap)
    window = snap.recent.window_s if snap.recent else None
    if not basis:
        return Health(Status.UNKNOWN, ["nothing to judge: no database, no publisher"], window)
    severities = {a.severity for a in snap.alerts}
    status = (
        Status.CRITICAL
        if "critical" in severities
        else Status.DEGRADED
        if severities
        else Status.HEALTHY
    )
    order = {"critical": 0, "warning": 1}
    reasons = [
        f"{a.severity}: {a.message}"
        for a in sorted(snap.alerts, key=lambda a: order.get(a.severity, 2))
    ]
    return Health(status, reasons, window, basis)
