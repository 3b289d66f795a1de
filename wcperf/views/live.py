"""The refresh loop of `monitor live`: fetch a Snapshot, render it, wait, repeat."""

from __future__ import annotations

import contextlib
import os
import select
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.live import Live

from wcperf.observe.snapshot import Snapshot
from wcperf.views.tables import frame


@contextlib.contextmanager
def _keys() -> Iterator[Callable[[float], bool]]:
    """A function that waits up to `t` seconds and says whether `q` was pressed."""
    if not sys.stdin.isatty():
        import time

        def pause(t: float) -> bool:
            time.sleep(t)
            return False

        yield pause
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def wait(t: float) -> bool:
        ready, _, _ = select.select([fd], [], [], t)
        return bool(ready) and os.read(fd, 1) in (b"q", b"Q")

    try:
        yield wait
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run(fetch: Callable[[], Snapshot], console: Console, interval_s: float) -> None:
    """Until `q` or Ctrl-C. Off a terminal, print one frame per interval instead."""
    try:
        if not console.is_terminal:
            with _keys() as wait:
                while True:
                    console.print(frame(fetch()))
                    wait(interval_s)
        with (
            Live(
                frame(fetch()), console=console, auto_refresh=False, vertical_overflow="visible"
            ) as live,
            _keys() as wait,
        ):
            while not wait(interval_s):
                live.update(frame(fetch()), refresh=True)
    except KeyboardInterrupt:
        return
