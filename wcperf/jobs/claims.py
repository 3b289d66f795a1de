"""Which bulk jobs may not run at once: what each one owns while it is unfinished.

Two jobs of one kind over the same rows would each plan against rows the other
is changing: two nurse balances, each with its own quotas for the same nurses,
leave a nurse far over the maximum workload. So a plan states what it *owns*
(the nurses it moves students between, the schools it empties, the students it
lists) and what else it *touches* (the schools of the students it lists); the
launcher refuses a job whose claims meet an unfinished job's, under one lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

DISTRICT = "district"  # the whole district: meets every claim of its kind


@dataclass(frozen=True)
class Claims:
    owns: frozenset[str] = frozenset({DISTRICT})
    touches: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, owns: Iterable[str], touches: Iterable[str] = ()) -> Claims:
        """Nothing owned means the whole district: a claim can only err on the safe side."""
        return cls(frozenset(owns) or frozenset({DISTRICT}), frozenset(touches))

    def overlaps(self, other: Claims) -> bool:
        if DISTRICT in self.owns or DISTRICT in other.owns:
            return True
        return bool(self.owns & (other.owns | other.touches) or other.owns & self.touches)

    def shared(self, other: Claims) -> str:
        """What the two have in common, for the refusal (ids only)."""
        common = sorted((self.owns | self.touches) & (other.owns | other.touches))
        if DISTRICT in self.owns | other.owns or not common:
            return "the whole district"
        more = f" and {len(common) - 1} more" if len(common) > 1 else ""
        return common[0].replace(":", " ", 1) + more

    def as_dict(self) -> dict[str, list[str]]:
        return {"owns": sorted(self.owns), "touches": sorted(self.touches)}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Claims:
        """A job row's claims; a row from before claims were recorded owns the district."""
        found = params.get("claims")
        if not isinstance(found, dict):
            return cls()
        return cls.of(found.get("owns") or [], found.get("touches") or [])
