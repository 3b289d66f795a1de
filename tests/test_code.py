"""The code's layers point one way (lint and types are `make lint`, which CI runs too)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "wcperf"

# What each lower layer may not import (DESIGN.md's arrows).
UPPER = ("wcperf.jobs", "wcperf.load", "wcperf.migrate", "wcperf.views", "wcperf.cli")
RULES = {
    "wcperf.db": UPPER,
    "wcperf.observe": UPPER,
    "wcperf.cache": UPPER,
}


def _imports(path: Path) -> set[str]:
    """Every wcperf module the file imports, at any depth (lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("wcperf")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wcperf"):
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def _module(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def test_no_lower_layer_imports_a_higher_one() -> None:
    broken = [
        f"wcperf.settings imports {i}"
        for i in _imports(PACKAGE / "settings.py")
        if not i.startswith("wcperf.errors")
    ]
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module(path)
        for layer, banned in RULES.items():
            if name == layer + ".__init__" or name.startswith(layer + "."):
                broken += [f"{name} imports {i}" for i in _imports(path) if i.startswith(banned)]
    assert not broken, "\n".join(broken)


def test_the_layer_check_sees_a_banned_import(tmp_path: Path) -> None:
    """The rule above must be able to fail: a lazy import inside a function is found."""
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from wcperf.jobs import store\n    import wcperf.cli.app\n")
    assert {"wcperf.jobs", "wcperf.jobs.store", "wcperf.cli.app"} <= _imports(sample)
