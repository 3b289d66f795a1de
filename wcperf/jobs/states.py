"""The words a bulk job's life is told in: its row's status, what an operator asked,
the throttle's verdict, and what a runner shows at each moment.

String enums: each member is its word, so the job row, `--json`, the Snapshot and
the tables carry exactly what they carried as bare strings, and a typo is a name
error instead of a state nobody handles.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """`wcperf.bulk_jobs.status`."""

    PLANNED = "planned"
    RUNNING = "running"
    PAUSED = "paused"
    INTERRUPTED = "interrupted"  # stopped by Ctrl-C or a refusal; also shown for a dead runner
    FAILED = "failed"
    DONE = "done"
    ABORTED = "aborted"

    @property
    def finished(self) -> bool:
        """Nothing more will change rows: done, or let go."""
        return self in (JobStatus.DONE, JobStatus.ABORTED)


UNFINISHED = tuple(s for s in JobStatus if not s.finished)


class Request(StrEnum):
    """`wcperf.bulk_jobs.requested`: what an operator asked; a live runner obeys at its
    next batch."""

    RUN = "run"
    PAUSE = "pause"
    ABORT = "abort"


class Verdict(StrEnum):
    """What the backpressure signals say before a batch."""

    GO = "go"
    SLOW = "slow"  # shorter batches and a rest after each
    PAUSE = "pause"
    ABORT = "abort"


class RunState(StrEnum):
    """What a runner shows (progress, Snapshot, job row's throttle): its job's status or
    how it is running just now."""

    STARTING = "starting"
    RUNNING = "running"
    SLOWED = "slowed"
    PAUSED = "paused"
    RETRYING = "retrying"
    DONE = "done"
    ABORTED = "aborted"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


SHOWN = {
    Verdict.GO: RunState.RUNNING,
    Verdict.SLOW: RunState.SLOWED,
    Verdict.PAUSE: RunState.PAUSED,
    Verdict.ABORT: RunState.ABORTED,
}
