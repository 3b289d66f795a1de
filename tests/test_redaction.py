"""Secrets masked in every form they arrive in; outside text inert; no literal in DDL shown."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from wcperf import redact
from wcperf.observe.fingerprint import fingerprint
from wcperf.observe.snapshot import DatabaseView, Sessions, Snapshot, Source
from wcperf.views.tables import frame

CANARY = "Cn4ry-pw-7731"


@pytest.fixture(autouse=True)
def _own_registry() -> Iterator[None]:
    """What a test teaches the masking registry stays in that test."""
    saved = set(redact._secrets), redact._known
    yield
    redact._secrets.clear()
    redact._secrets.update(saved[0])
    redact._known = saved[1]


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql://nurse:{CANARY}@db:5432/wc",
        f"postgresql://nurse:{CANARY}/with/slashes@db:5432/wc",  # unencoded '/'
        f"postgresql://nurse:{CANARY}@@db/wc",
        f"postgresql://nurse@db/wc?sslmode=require&password={CANARY}",
        f"postgresql://nurse@db/wc?password={CANARY}&sslmode=require",
        f"host=db port=5432 user=nurse password={CANARY} dbname=wc",
        f"host=db password = '{CANARY} with spaces' dbname=wc",
        f"host=db sslpassword={CANARY}",
        f"redis://:{CANARY}@cache:6379/0",
        f"rediss://default:{CANARY}@cache:6380/0",
        f"cannot connect to postgresql://u:{CANARY}@h:1/x: refused",
    ],
)
def test_every_spelling_of_a_password_is_masked(text: str) -> None:
    masked = redact.mask(text)
    assert "Cn4ry" not in masked and redact.MASK in masked


def test_the_rest_of_a_url_survives_masking() -> None:
    url = f"postgresql://nurse:{CANARY}@db:5432/wc?password={CANARY}&sslmode=require"
    assert redact.mask(url) == "postgresql://nurse:***@db:5432/wc?password=***&sslmode=require"
    assert redact.mask("postgresql://nurse@db/wc") == "postgresql://nurse@db/wc"


def test_secrets_given_elsewhere_are_masked_wherever_they_appear(tmp_path: Path) -> None:
    (tmp_path / ".pgpass").write_text(f"db:5432:wc:nurse:pgpass-{CANARY}\n*:*:*:x:a\\:b-{CANARY}\n")
    (tmp_path / "services.conf").write_text(f"[wc]\nhost=db\npassword=svc-{CANARY}\n")
    redact.remember_environment(
        {
            "HOME": str(tmp_path),
            "PGPASSWORD": f"env-{CANARY}",
            "PGSERVICEFILE": str(tmp_path / "services.conf"),
            "REDIS_URL": f"redis://:redis-{CANARY}@cache/0",
            "WCPERF_CACHE_SECRET": f"cache-secret-{CANARY}",
        }
    )
    for value in ("pgpass-", "a:b-", "svc-", "env-", "redis-", "cache-secret-"):
        line = f"server said: {value}{CANARY} is wrong"
        assert CANARY not in redact.mask(line), value
    # percent-encoded, as it sits in a URL
    redact.remember("p@ss/w0rd-canary")
    assert "w0rd" not in redact.mask("x p%40ss%2Fw0rd-canary y")


def test_a_masking_stream_masks_what_any_writer_sends() -> None:
    sink = io.StringIO()
    stream = redact.MaskingStream(sink)
    stream.write(f"Traceback: connect('postgresql://u:{CANARY}@h/x')\n")
    assert CANARY not in sink.getvalue() and "u:***@h/x" in sink.getvalue()


@pytest.mark.parametrize(
    "value",
    [
        "\x1b[2J\x1b[H",  # clear the screen
        "\x1b]0;owned\x07",  # retitle the terminal
        "ok\nwcperf: error: forged",  # a forged line
        "\x9b31m",  # the one-byte CSI
        "a\u202eevil",  # right-to-left override
    ],
)
def test_outside_text_is_made_inert(value: str) -> None:
    shown = redact.inert(value)
    assert all(ch.isprintable() for ch in shown)
    assert "\\" in shown  # visibly escaped, not dropped


def test_a_snapshot_from_a_hostile_publisher_renders_inert() -> None:
    """Application names and notes come from others: never markup, never escapes."""
    snap = Snapshot(
        taken_at=0.0,
        sources=[Source(name="[/]", command="\x1b[2J[bold red]x", pid=1, taken_at=0.0)],
        notes=["[/] \x1b]0;owned\x07 note"],
        database=DatabaseView(),
    )
    assert snap.database is not None
    snap.database.activity.append(Sessions("[/]\x1b[2J", "active", 1))
    sink = io.StringIO()
    Console(file=sink, force_terminal=True, width=160).print(frame(snap))
    out = sink.getvalue()
    assert "\x1b[2J" not in out and "\x1b]0;" not in out
    assert "[bold red]x" in out and "[/]" in out  # shown as typed, not read as markup


@pytest.mark.parametrize(
    "statement,leak",
    [
        ("CREATE TABLE t AS SELECT * FROM students WHERE \"firstName\" = 'Quillon'", "Quillon"),
        ("CREATE VIEW v AS SELECT 1 WHERE x = 'Marrowby'", "Marrowby"),
        ("CREATE INDEX i ON students (x) WHERE \"lastName\" = 'Quillon'", "Quillon"),
        ("COMMENT ON TABLE students IS 'Marrowby has asthma'", "Marrowby"),
        ("ALTER TABLE t ADD COLUMN c text DEFAULT 'Quillon'", "Quillon"),
        ("CREATE MATERIALIZED VIEW mv AS SELECT 'J45.909'", "J45.909"),
        ("PREPARE p AS SELECT 'Quillon'", "Quillon"),
        ("SECURITY LABEL ON TABLE t IS 'Marrowby'", "Marrowby"),
        ("ALTER ROLE nurse PASSWORD 'Cn4ry-pw-7731'", "Cn4ry"),
        ("DO $$ begin perform 'Quillon'; end $$", "Quillon"),
        ("CREATE FUNCTION f() RETURNS text AS $$ select 'Quillon' $$ LANGUAGE sql", "Quillon"),
        ("NOTIFY ch, 'Marrowby'", "Marrowby"),
        ("SELECT * FROM students WHERE \"firstName\" = 'Quillon' /* Marrowby */", "Marrowby"),
    ],
)
def test_no_literal_survives_normalisation(statement: str, leak: str) -> None:
    normalized = fingerprint(statement).normalized
    assert leak not in normalized and "'" not in normalized


def test_ddl_keeps_its_shape_when_it_can() -> None:
    assert (
        fingerprint("CREATE INDEX i ON t (a) WHERE b = 'x'").normalized
        == "CREATE INDEX i ON t (a) WHERE b = $1"
    )
    assert fingerprint("COMMENT ON TABLE t IS 'x'").normalized == "COMMENT (literal text withheld)"


def test_masking_keeps_json_json() -> None:
    """The stream masks what `--json` prints: the value goes, the quotes stay."""
    import json

    data = {
        "url": f"host=db password={CANARY}",
        "other": f"postgresql://u@h/x?password={CANARY}",
        "next": 1,
    }
    masked = redact.mask(json.dumps(data))
    assert json.loads(masked) == {
        "url": "host=db password=***",
        "other": "postgresql://u@h/x?password=***",
        "next": 1,
    }


def test_a_password_that_is_a_common_word_does_not_garble_the_output() -> None:
    """`postgres:postgres@` is everyday on a developer's machine: mask the value where it
    stands alone, not every "postgresql" on the screen."""
    redact.remember_url("postgresql://postgres:postgres@db/wc")
    line = redact.mask("using postgresql configured postgresql://postgres:postgres@db/wc")
    assert line == "using postgresql configured postgresql://***:***@db/wc"
    assert redact.mask('auth failed: password "postgres" refused') == (
        'auth failed: password "***" refused'
    )
