"""Load scenarios: small declarative TOML files, checked field by field.

    name = "school-day"
    description = "..."
    users = 50
    spawn_rate = 10
    duration = "60s"            # measured; or "2m", or a number of seconds
    warmup = "10s"              # run first, not measured (caches and pool warm up)
    think_time_ms = [100, 1000] # each user waits uniformly between the two

    [[tasks]]
    op = "student_dashboard"    # a name from wcperf.load.operations
    weight = 20

    [targets]                   # any of wcperf.load.verdict.TARGETS
    p95_ms = 500

A malformed file is refused with the file and the field named; an unknown key is
an error too, so a typo cannot silently drop a target.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from wcperf import limits
from wcperf.errors import ConfigError
from wcperf.load.operations import OPERATIONS, WRITES
from wcperf.load.verdict import TARGETS
from wcperf.settings import Targets

_PACKAGE = Path(__file__).resolve().parent.parent
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_KEYS = {"name", "description", "users", "spawn_rate", "duration", "warmup", "think_time_ms",
         "tasks", "targets"}  # fmt: skip


@dataclass(frozen=True)
class Task:
    op: str
    weight: int

    @property
    def writes(self) -> bool:
        return self.op in WRITES


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    users: int
    spawn_rate: float
    duration_s: float
    think_time_ms: tuple[int, int]
    tasks: tuple[Task, ...]
    targets: Targets = field(default_factory=Targets)
    path: Path | None = None
    warmup_s: float = 0.0
    judged: tuple[str, ...] = ()  # the targets the scenario names: its verdict checks these

    def with_overrides(self, **given: Any) -> Scenario:
        """The scenario with command-line values (users, spawn rate, duration) where given."""
        return replace(self, **{k: v for k, v in given.items() if v is not None})

    @property
    def digest(self) -> str:
        """What a worker's users do (tasks and think time): a master and its workers on
        other machines must agree on it; users, durations and targets are the master's."""
        shape = repr((self.think_time_ms, tuple((t.op, t.weight) for t in self.tasks)))
        return hashlib.sha256(shape.encode()).hexdigest()[:16]


def scenarios_path() -> Path:
    for candidate in (_PACKAGE / "_scenarios", _PACKAGE.parent / "scenarios"):
        if candidate.is_dir():
            return candidate
    raise ConfigError("wcperf's scenarios are missing from this installation")


def available() -> list[Path]:
    return sorted(scenarios_path().glob("*.toml"))


def resolve(name_or_path: str) -> Path:
    """A file path, or the name of a bundled scenario (`school-day`)."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return path
    bundled = scenarios_path() / f"{name_or_path}.toml"
    if bundled.exists():
        return bundled
    names = ", ".join(p.stem for p in available())
    raise ConfigError(f"no scenario {name_or_path!r}; bundled: {names}")


def parse_duration(raw: Any, where: str) -> float:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        seconds = float(raw)
    elif isinstance(raw, str) and (m := _DURATION.match(raw)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ConfigError(f"{where}: must be like 60s, 2m or a number of seconds, not {raw!r}")
    if seconds <= 0:
        raise ConfigError(f"{where}: must be above 0")
    if (wrong := limits.problem(seconds, 0, limits.MAX_DURATION_S)) is not None:
        raise ConfigError(f"{where}: {wrong}")
    return seconds


def load(path: Path) -> Scenario:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, path)


def parse(data: dict[str, Any], path: Path | None = None) -> Scenario:
    where = str(path) if path else "scenario"

    def bad(key: str, message: str) -> ConfigError:
        return ConfigError(f"{where}: {key}: {message}")

    for key in data:
        if key not in _KEYS:
            raise bad(key, f"unknown field (known: {', '.join(sorted(_KEYS))})")

    def number(key: str, value: Any, kind: type, low: float, high: float) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool) and value < low:
            raise bad(key, f"must be at least {low:g}")
        if (wrong := limits.problem(value, low, high, whole=kind is int)) is not None:
            raise bad(key, wrong)
        return kind(value)

    for required in ("users", "duration", "tasks"):
        if required not in data:
            raise bad(required, "missing")
    users = number("users", data["users"], int, 1, limits.MAX_USERS)
    spawn_rate = number(
        "spawn_rate", data.get("spawn_rate", users), float, 0.001, limits.MAX_SPAWN_RATE
    )
    duration = parse_duration(data["duration"], f"{where}: duration")
    warmup = 0.0
    if data.get("warmup") not in (None, 0, "0", "0s"):
        warmup = parse_duration(data["warmup"], f"{where}: warmup")
    think = data.get("think_time_ms", [0, 0])
    if (
        not isinstance(think, list)
        or len(think) != 2
        or any(
            isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= limits.MAX_THINK_MS
            for t in think
        )
        or think[0] > think[1]
    ):
        raise bad("think_time_ms", f"must be [min, max] in whole milliseconds, not {think!r}")
    raw_tasks = data["tasks"]
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise bad("tasks", "must be a non-empty list of [[tasks]] tables")
    tasks = []
    for i, raw in enumerate(raw_tasks):
        key = f"tasks[{i}]"
        if not isinstance(raw, dict):
            raise bad(key, "must be a table with op and weight")
        extra = set(raw) - {"op", "weight"}
        if extra:
            raise bad(f"{key}.{sorted(extra)[0]}", "unknown field (known: op, weight)")
        op = raw.get("op")
        if op not in OPERATIONS:
            raise bad(f"{key}.op", f"unknown operation {op!r} (known: {', '.join(OPERATIONS)})")
        weight = number(f"{key}.weight", raw.get("weight", 1), int, 1, limits.MAX_WEIGHT)
        tasks.append(Task(op, weight))
    targets_raw = data.get("targets", {})
    if not isinstance(targets_raw, dict):
        raise bad("targets", "must be a table")
    targets = {}
    for key, value in targets_raw.items():
        if key not in TARGETS:
            known = ", ".join(sorted(TARGETS))
            raise bad(f"targets.{key}", f"unknown target (known: {known})")
        kind = int if Targets.whole(key) else float
        targets[key] = number(f"targets.{key}", value, kind, 0, limits.MAX_TARGET)
    name = data.get("name", path.stem if path else "scenario")
    if not isinstance(name, str) or not name:
        raise bad("name", "must be a non-empty string")
    return Scenario(
        name,
        str(data.get("description", "")),
        users,
        spawn_rate,
        duration,
        (think[0], think[1]),
        tuple(tasks),
        Targets.of(targets),
        path,
        warmup,
        tuple(targets),
    )
