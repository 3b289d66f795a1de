"""PostgreSQL's own log as a source of per-query latency for every application.

The server logs each statement's duration when asked (`log_min_duration_statement`,
or sampled with `log_min_duration_sample` and `log_statement_sample_rate`); wcperf
reads those lines in jsonlog or csvlog and folds each duration into an HDR
histogram per (fingerprint, application_name).

A logged statement carries the literal values the application sent, and the
record's `detail` carries bound parameters: both are children's data. The text
goes straight from the parsed record to the fingerprinter and is dropped there;
`detail`, `statement` and `context` are never read. What is kept is the
normalised text, the fingerprint, the application name and the numbers.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hdrh.histogram import HdrHistogram

from wcperf.observe import histogram as hdr
from wcperf.observe.fingerprint import Fingerprint, fingerprint_logged
from wcperf.observe.query_monitor import NPlusOneDetector
from wcperf.observe.snapshot import NPlusOne, ServerLog, ServerQuery

# postgres.c: "duration: %s ms  statement: %s", "… execute <name>[/portal]: %s",
# "… execute fetch from …", "… parse <name>: …", "… bind <name>: …"; plain
# `log_duration` gives "duration: %s ms" with no text.
_DURATION = re.compile(
    r"duration: (?P<ms>\d+(?:\.\d+)?) ms(?:  (?P<kind>statement|execute(?: fetch from)?"
    r"|parse|bind|fastpath function call)(?P<name>[^:]*): )?",
)
_EXECUTIONS = ("statement", "execute", "execute fetch from")

# csvlog's columns (PostgreSQL 14 and later add leader_pid and query_id).
_CSV_COLUMNS = (
    "timestamp", "user", "dbname", "pid", "remote_host", "session_id", "line_num", "ps",
    "session_start", "vxid", "txid", "error_severity", "state_code", "message", "detail",
    "hint", "internal_query", "internal_position", "context", "statement",
    "cursor_position", "location", "application_name", "backend_type", "leader_pid",
    "query_id",
)  # fmt: skip


@dataclass(frozen=True)
class Logged:
    """One statement's execution as the log records it, its text already fingerprinted."""

    at: str  # the record's timestamp, as logged
    session: str  # session_id: one backend's session
    pid: int
    application: str
    query_id: int | None
    duration_us: int
    query: Fingerprint


@dataclass(frozen=True)
class Sampling:
    """Which durations the server logs, from its settings (milliseconds; -1 is off)."""

    min_duration_ms: float = 0.0  # log_min_duration_statement
    sample_min_ms: float = -1.0  # log_min_duration_sample
    sample_rate: float = 1.0  # log_statement_sample_rate

    def weight(self, duration_ms: float) -> float:
        """How many executions one logged line stands for."""
        if 0 <= self.min_duration_ms <= duration_ms:
            return 1.0
        if 0 <= self.sample_min_ms <= duration_ms and self.sample_rate > 0:
            return 1.0 / self.sample_rate
        return 1.0  # logged for another reason (the settings changed): count it once

    @property
    def logs_durations(self) -> bool:
        return self.min_duration_ms >= 0 or (self.sample_min_ms >= 0 and self.sample_rate > 0)


class Records:
    """Complete log records out of a byte stream that arrives in arbitrary pieces.

    jsonlog writes one object per line; csvlog quotes newlines inside a field, so a
    record ends at a newline outside quotes. A piece that ends mid-record is kept
    until the rest arrives, so no record is parsed twice or cut in half.
    """

    def __init__(self, fmt: str) -> None:
        if fmt not in ("jsonlog", "csvlog"):
            raise ValueError(f"unknown log format {fmt!r}")
        self.format = fmt
        self._pending = b""
        self._quotes = 0  # csv: quote characters in the pending bytes
        self.malformed = 0

    def reset(self) -> None:
        """Forget a partial record (the file it came from is gone or was truncated)."""
        self._pending, self._quotes = b"", 0

    def feed(self, data: bytes) -> Iterator[dict[str, object]]:
        if self.format == "jsonlog":
            yield from self._json(data)
        else:
            yield from self._csv(data)

    def _json(self, data: bytes) -> Iterator[dict[str, object]]:
        buffer = self._pending + data
        *lines, self._pending = buffer.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                self.malformed += 1
                continue
            if isinstance(record, dict):
                yield record
            else:
                self.malformed += 1

    def _csv(self, data: bytes) -> Iterator[dict[str, object]]:
        start = 0
        quotes = self._quotes
        pending = self._pending
        complete: list[bytes] = []
        for position in _newlines(data):
            quotes += data.count(b'"', start, position)
            if quotes % 2 == 0:
                complete.append(pending + data[start : position + 1])
                pending, quotes = b"", 0
            else:
                pending += data[start : position + 1]
            start = position + 1
        self._pending = pending + data[start:]
        self._quotes = quotes + data.count(b'"', start)
        for raw in complete:
            try:
                rows = list(csv.reader(io.StringIO(raw.decode("utf-8", "replace"))))
            except csv.Error:
                self.malformed += 1
                continue
            for row in rows:
                if len(row) < 23:
                    self.malformed += 1
                    continue
                yield dict(zip(_CSV_COLUMNS, row, strict=False))


def _newlines(data: bytes) -> Iterator[int]:
    position = data.find(b"\n")
    while position != -1:
        yield position
        position = data.find(b"\n", position + 1)


STEP = "step"  # a parse or bind line: part of an execution, not one
BARE = "bare"  # a duration with no text: `log_duration` without a threshold


def logged(record: dict[str, object]) -> Logged | str | None:
    """The execution a record reports, STEP or BARE, or None for any other record.

    Only `message` is read for the statement, and only up to the fingerprinter.
    """
    message = record.get("message")
    if not isinstance(message, str) or not message.startswith("duration: "):
        return None
    match = _DURATION.match(message)
    if match is None:
        return None
    kind = match.group("kind")
    if kind is None:
        return BARE
    if kind not in _EXECUTIONS:
        return STEP
    text = message[match.end() :]
    duration_us = round(float(match.group("ms")) * 1000)
    query_id = _int(record.get("query_id"))
    return Logged(
        at=str(record.get("timestamp") or ""),
        session=str(record.get("session_id") or ""),
        pid=_int(record.get("pid")) or 0,
        application=str(record.get("application_name") or "") or "(none)",
        query_id=query_id or None,  # 0: compute_query_id is off
        duration_us=max(duration_us, hdr.LOWEST_US),
        query=fingerprint_logged(text),
    )


_SECOND = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_seconds_seen: dict[str, float] = {}  # "YYYY-MM-DD HH:MM:SS" -> epoch: lines share seconds


def _seconds(stamp: str) -> float | None:
    """A record's timestamp in seconds, its zone ignored: only differences within one
    session are used (a DST change inside a burst can hide that one burst)."""
    head = stamp[:19]
    whole: float | None = _seconds_seen.get(head)
    if whole is None:
        if not _SECOND.match(head):
            return None
        try:
            whole = float(datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp())
        except ValueError:
            return None
        if len(_seconds_seen) > 4096:
            _seconds_seen.clear()
        _seconds_seen[head] = whole
    if len(stamp) > 20 and stamp[19] == ".":
        digits = stamp[20:].split(" ", 1)[0]
        if digits.isdigit():
            return whole + int(digits) / (10.0 ** len(digits))
    return whole


def _int(value: object) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


@dataclass
class _Series:
    """One (fingerprint, application)'s durations, weighted by the sampling."""

    query: Fingerprint
    application: str
    query_id: int | None = None
    logged: int = 0
    weighted: float = 0.0  # estimated executions, exactly as weighted
    recorded: int = 0  # what the histogram holds: `weighted` rounded as it accrues
    total_us: float = 0.0
    min_us: int = 0
    max_us: int = 0
    histogram: HdrHistogram = field(default_factory=hdr.new_histogram)
    # values not yet in the histogram: one record_value per distinct value, not per line
    pending: dict[int, int] = field(default_factory=dict)

    def add(self, duration_us: int, weight: float) -> None:
        self.logged += 1
        self.weighted += weight
        n = round(self.weighted) - self.recorded  # carry fractions, never lose them
        if n > 0:
            value = min(duration_us, hdr.HIGHEST_US)
            self.pending[value] = self.pending.get(value, 0) + n
            self.recorded += n
        self.total_us += duration_us * weight
        self.min_us = duration_us if self.logged == 1 else min(self.min_us, duration_us)
        self.max_us = max(self.max_us, duration_us)

    def flush(self) -> None:
        for value, n in self.pending.items():
            self.histogram.record_value(value, n)
        self.pending.clear()


class Folder:
    """Durations folded per (fingerprint, application): the log side of the Snapshot.

    N+1 is judged per backend session (the log's session_id), on the log's own
    timestamps: a loop repeats within one session, while many sessions running the
    same statement once each are many users.
    """

    def __init__(
        self,
        sampling: Sampling | None = None,
        skip_pids: Iterable[int] = (),
        skip_applications: Iterable[str] = (),
        n_plus_one: tuple[int, float] = (5, 1.0),
    ) -> None:
        self.sampling = sampling or Sampling()
        self.skip_pids = set(skip_pids)  # wcperf's own reading session
        self.skip_applications = set(skip_applications)  # the monitor's own sessions
        self.series: dict[tuple[str, str], _Series] = {}
        self._now = 0.0
        self.loops = NPlusOneDetector(*n_plus_one, clock=lambda: self._now)
        self._applications: dict[str, str] = {}  # site -> application
        self.lines = 0
        self.statements = 0
        self.steps = 0  # parse and bind lines: part of an execution, not one
        self.bare = 0  # a duration with no text: log_duration without a threshold

    def add(self, records: Iterable[dict[str, object]]) -> list[Logged]:
        """Fold the records in; the executions they held, for N+1 and the like."""
        found: list[Logged] = []
        for record in records:
            self.lines += 1
            seen = logged(record)
            if not isinstance(seen, Logged):
                self.steps += seen == STEP
                self.bare += seen == BARE
                continue
            if seen.pid in self.skip_pids or seen.application in self.skip_applications:
                continue
            self.statements += 1
            key = (seen.query.id, seen.application)
            series = self.series.get(key)
            if series is None:
                series = self.series[key] = _Series(seen.query, seen.application)
            series.query_id = seen.query_id or series.query_id
            series.add(seen.duration_us, self.sampling.weight(seen.duration_us / 1000))
            at = _seconds(seen.at)
            if at is not None and seen.session:
                self._now = at
                site = f"session {seen.session}"
                self._applications[site] = seen.application
                self.loops.observe(seen.query, site)
            found.append(seen)
        self.loops.prune()
        return found

    def detections(self) -> list[NPlusOne]:
        found = list(self.loops.detections)
        for n in found:
            n.application = self._applications.get(n.call_site, "")
            n.source = "server log"
        return found

    def figures(self) -> list[ServerQuery]:
        for s in self.series.values():
            s.flush()
        rows = [
            ServerQuery(
                fingerprint=s.query.id,
                normalized=s.query.normalized,
                table=s.query.table,
                application=s.application,
                query_id=s.query_id,
                logged=s.logged,
                count=round(s.weighted),
                total_us=round(s.total_us),
                min_us=s.min_us,
                max_us=s.max_us,
                histogram=hdr.encode(s.histogram),
            )
            for s in self.series.values()
        ]
        return sorted(rows, key=lambda q: q.total_us, reverse=True)

    def section(self, source: str, fmt: str, notes: list[str]) -> ServerLog:
        return ServerLog(
            source=source,
            format=fmt,
            lines=self.lines,
            statements=self.statements,
            protocol_steps=self.steps,
            durations_without_text=self.bare,
            sample_rate=self.sampling.sample_rate,
            min_duration_ms=self.sampling.min_duration_ms,
            sample_min_ms=self.sampling.sample_min_ms,
            queries=self.figures(),
            n_plus_one=self.detections(),
            notes=list(notes),
        )
