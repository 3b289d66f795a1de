"""Where one operation's time goes: waiting for a connection, its statements, its
commit, the cache bump after it, and the rest (ORM, Python, and waiting to be
scheduled again once an answer has arrived).

An operation opens `measured()`; the pool, the query monitor and the committing
connection add their nanoseconds to whichever operation is current in their
context (a thread, or a greenlet under gevent: each has its own context). With
nothing open, adding costs one context-variable read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

POOL_WAIT, STATEMENTS, COMMIT, CACHE_BUMP = range(4)
NAMES = ("pool_wait", "statements", "commit", "cache_bump")
REST = "rest"  # what the operation's total leaves after the measured phases
ALL = (*NAMES, REST)  # every phase an operation's time is split into, as reports list them

_current: ContextVar[list[int] | None] = ContextVar("wcperf_phases", default=None)


def add(phase: int, ns: int) -> None:
    acc = _current.get()
    if acc is not None:
        acc[phase] += ns


@contextmanager
def measured() -> Iterator[list[int]]:
    """Nanoseconds per phase (in `NAMES` order) of what runs inside, in this context."""
    acc = [0] * len(NAMES)
    token = _current.set(acc)
    try:
        yield acc
    finally:
        _current.reset(token)
