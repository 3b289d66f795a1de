"""Following PostgreSQL's log files: on this host, or through the server itself.

Each source hands out the bytes written since the last read, exactly once. The
server's log collector rotates to a new file (by time, size, `pg_rotate_logfile()`
or a restart): the old file is read to its end before the new one is started.
A file that shrinks was truncated (`log_truncate_on_rotation`, copytruncate):
it is read again from its start. Bytes already read are never handed out twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

EXTENSIONS = {"jsonlog": ".json", "csvlog": ".csv"}
CHUNK = 8 << 20  # bytes per read; one poll reads at most MAX_PER_POLL
MAX_PER_POLL = 64 << 20


class LogUnreadable(Exception):
    """The log cannot be followed; the message says what to change."""


@dataclass
class Progress:
    rotations: int = 0
    truncations: int = 0


class LogSource(Protocol):
    format: str
    progress: Progress

    def describe(self) -> str: ...
    def read(self) -> tuple[bytes, bool]:
        """New bytes, and whether a partial record held over must be dropped."""
        ...

    def close(self) -> None: ...


def format_of(path: Path) -> str | None:
    for fmt, ext in EXTENSIONS.items():
        if path.name.endswith(ext):
            return fmt
    return None


class LocalLog:
    """A log file on this host, or the newest log file in a folder.

    A folder is the server's data directory (its `current_logfiles` names the file
    being written) or the log folder itself (the newest file of the format, by name:
    PostgreSQL's default names sort by time).
    """

    def __init__(self, path: Path, fmt: str | None = None, *, from_start: bool = False) -> None:
        self.path = path
        if path.is_dir():
            found = fmt or self._folder_format()
            if found is None:
                raise LogUnreadable(f"{path} holds no .json or .csv log file")
            self.format = found
        else:
            found = fmt or format_of(path) or _sniff(path)
            if found is None:
                raise LogUnreadable(f"{path} is not a jsonlog (.json) or csvlog (.csv) file")
            self.format = found
        self.progress = Progress()
        self._file: Any = None
        self._name: Path | None = None
        current = self._current()
        if current is None:
            raise LogUnreadable(f"no {self.format} file in {path}")
        self._open(current, at_end=not from_start)

    def describe(self) -> str:
        return str(self._name or self.path)

    def _folder_format(self) -> str | None:
        for fmt in self._listed():
            return fmt
        for fmt, ext in EXTENSIONS.items():
            if any(p.name.endswith(ext) for p in self.path.iterdir()):
                return fmt
        return None

    def _listed(self) -> dict[str, Path]:
        """`current_logfiles` of a data directory: format -> file being written."""
        try:
            text = (self.path / "current_logfiles").read_text()
        except OSError:
            return {}
        listed = {}
        for line in text.splitlines():
            fmt, _, name = line.partition(" ")
            if fmt in EXTENSIONS and name:
                listed[fmt] = self.path / name
        return listed

    def _current(self) -> Path | None:
        if not self.path.is_dir():
            return self.path if self.path.exists() else None
        listed = self._listed().get(self.format)
        if listed is not None:
            return listed
        ext = EXTENSIONS[self.format]
        files = sorted(p for p in self.path.iterdir() if p.name.endswith(ext))
        return files[-1] if files else None

    def _open(self, path: Path, *, at_end: bool) -> None:
        try:
            self._file = open(path, "rb")  # noqa: SIM115 (kept open across reads)
        except OSError as exc:
            raise LogUnreadable(f"cannot read {path}: {exc.strerror}") from None
        if at_end:
            self._file.seek(0, os.SEEK_END)
        self._name = path

    def read(self) -> tuple[bytes, bool]:
        assert self._file is not None
        dropped = False
        position = self._file.tell()
        if os.fstat(self._file.fileno()).st_size < position:  # truncated in place
            self._file.seek(0)
            self.progress.truncations += 1
            dropped = True
        data = self._file.read(MAX_PER_POLL)
        current = self._current()
        if current is not None and not _same_file(current, self._file):
            data += self._file.read()  # the rotated file, to its end
            self._file.close()
            self._open(current, at_end=False)
            self.progress.rotations += 1
            data += self._file.read(MAX_PER_POLL)
        return data, dropped

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _same_file(path: Path, handle: Any) -> bool:
    try:
        here = path.stat()
    except OSError:
        return True  # gone for now (mid-rotation): keep reading what is open
    there = os.fstat(handle.fileno())
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _sniff(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(1)
    except OSError:
        return None
    return "jsonlog" if head == b"{" else ("csvlog" if head[:1].isdigit() else None)


class ServerLog:
    """The server's current log file, read through the server (`pg_read_binary_file`).

    Needs a superuser, or a role with pg_monitor (for `pg_current_logfile`) and
    pg_read_server_files (to read the file). Nothing has to run on the database host.
    """

    def __init__(self, conn: Any, fmt: str | None = None, *, from_start: bool = False) -> None:
        import psycopg

        self._conn = conn
        self._errors = psycopg.Error
        self.progress = Progress()
        try:
            destinations = str(conn.execute("show log_destination").fetchone()[0])
            collector = str(conn.execute("show logging_collector").fetchone()[0])
        except psycopg.Error as exc:
            raise LogUnreadable(f"cannot ask the server for its log: {_first(exc)}") from None
        usable = [f for f in EXTENSIONS if f in destinations]
        if collector != "on" or not usable:
            raise LogUnreadable(
                "the server writes no jsonlog or csvlog file: set log_destination = 'jsonlog' "
                "and logging_collector = on (a restart)"
            )
        if fmt is not None and fmt not in usable:
            raise LogUnreadable(f"the server writes no {fmt} (log_destination = {destinations})")
        self.format = fmt or usable[0]
        self._name = self._current()
        if self._name is None:
            raise LogUnreadable(f"the server names no current {self.format} file")
        self._offset = self._size(self._name) if not from_start else 0

    def describe(self) -> str:
        return f"server:{self._name}"

    def rebind(self, conn: Any) -> None:
        """Go on through a new connection (the server restarted): same file, same offset."""
        self._conn = conn

    def _query(self, sql: str, params: tuple[Any, ...]) -> Any:
        try:
            return self._conn.execute(sql, params).fetchone()[0]
        except self._errors as exc:
            if self._conn.closed or self._conn.broken:
                raise LogUnreadable("lost the server; its log is read on when it is back") from None
            raise LogUnreadable(
                f"the server refused to read its log ({_first(exc)}): wcperf's role needs "
                "pg_monitor and pg_read_server_files (or superuser); or pass "
                "--server-log PATH on the database host"
            ) from None

    def _current(self) -> str | None:
        name = self._query("select pg_current_logfile(%s)", (self.format,))
        return str(name) if name else None

    def _size(self, name: str) -> int:
        size = self._query("select (pg_stat_file(%s, true)).size", (name,))
        return int(size or 0)

    def _chunks(self, name: str, start: int, end: int) -> bytes:
        out = bytearray()
        while start < end:
            n = min(CHUNK, end - start)
            data = self._query("select pg_read_binary_file(%s, %s, %s, true)", (name, start, n))
            if not data:
                break
            out += data
            start += len(data)
        return bytes(out)

    def read(self) -> tuple[bytes, bool]:
        assert self._name is not None
        dropped = False
        current = self._current()
        data = b""
        if current is not None and current != self._name:  # rotated: finish the old file
            data = self._chunks(self._name, self._offset, self._size(self._name))
            self._name, self._offset = current, 0
            self.progress.rotations += 1
        size = self._size(self._name)
        if size < self._offset:
            self._offset = 0
            self.progress.truncations += 1
            dropped = True
        end = min(size, self._offset + MAX_PER_POLL)
        fresh = self._chunks(self._name, self._offset, end)
        self._offset += len(fresh)
        return data + fresh, dropped

    def close(self) -> None:
        """The connection is the caller's."""


def _first(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    return str(primary or type(exc).__name__)
