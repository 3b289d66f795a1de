"""Single flight within a process: of the threads missing the same key at once, one
loads it (the leader) and the others wait for its value."""

from __future__ import annotations

import threading
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Flight:
    event: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    ok: bool = False

    def land(self, value: Any) -> None:
        self.value, self.ok = value, True


class SingleFlight:
    def __init__(self) -> None:
        self._inflight: dict[Hashable, Flight] = {}
        self._lock = threading.Lock()

    def join(self, key: Hashable) -> tuple[Flight, bool]:
        """(the key's flight, True when this thread leads it)."""
        with self._lock:
            flight = self._inflight.get(key)
            if flight is not None:
                return flight, False
            flight = self._inflight[key] = Flight()
            return flight, True

    def end(self, key: Hashable, flight: Flight) -> None:
        """The leader is done, with a value or not: wake the others."""
        flight.event.set()
        with self._lock:
            self._inflight.pop(key, None)
