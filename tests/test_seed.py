"""The synthetic district in the platform's schema: its shape, determinism, safe loading."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from importlib.resources import files

import psycopg
import pytest

from tests.conftest import DISTRICT, RUN_ID, make_database, run_cli
from tests.platform_dump import snapshot
from wcperf.db import admin
from wcperf.errors import RefusedError
from wcperf.platform import GRADES
from wcperf.platform.ddl import missing_tables
from wcperf.platform.indexes import BY_NAME
from wcperf.seed import names
from wcperf.seed.district import District
from wcperf.seed.load import district_counts, seed
from wcperf.settings import Settings


def _one(conn: psycopg.Connection, query: str) -> tuple:
    row = conn.execute(query).fetchone()
    assert row is not None
    return tuple(row)


@pytest.fixture(scope="module")
def seeded(seeded_url: str) -> Iterator[psycopg.Connection]:
    with admin.connect(seeded_url, autocommit=True) as conn:
        yield conn


def test_the_schema_is_the_platforms_without_the_14(seeded: psycopg.Connection) -> None:
    ddl = files("wcperf.platform").joinpath("schema.sql").read_text()
    declared = set(re.findall(r"CREATE (?:UNIQUE )?INDEX (\w+) ON", ddl))
    constraints = set(re.findall(r"ADD CONSTRAINT \"?([\w]+)\"? (?:PRIMARY KEY|UNIQUE)", ddl))
    live = {
        r[0] for r in seeded.execute("select indexname from pg_indexes where schemaname = 'public'")
    }
    assert live == (declared - set(BY_NAME)) | constraints
    assert len(declared) == 72
    camel = _one(
        seeded,
        """select count(*) from information_schema.columns
            where table_schema = 'public' and table_name = 'students'
              and column_name in ('studentId', 'nurseId', 'schoolId', 'isActive', 'deletedAt',
                                  'dateOfBirth')""",
    )
    assert camel == (5,)  # students has no "studentId"; the other five are there


def test_district_shape(seeded: psycopg.Connection) -> None:
    students, schools, nurses = _one(
        seeded,
        """
        select (select count(*) from students), (select count(*) from schools),
               (select count(*) from users where role = 'NURSE' and "isActive")""",
    )
    assert students == 5_000
    assert schools == 12  # about 400 students per school
    assert schools <= nurses <= students / 400
    per_grade = dict(seeded.execute("select grade, count(*) from students group by grade"))
    assert set(per_grade) == set(GRADES) - {"Graduate"}
    assert max(per_grade.values()) - min(per_grade.values()) <= 1
    deleted, inactive = _one(
        seeded,
        """select avg(("deletedAt" is not null)::int), avg((not "isActive")::int) from students""",
    )
    assert 0.005 < deleted < 0.02 and 0.01 < inactive < 0.04
    hr, appt, contacts, meds = _one(
        seeded,
        """
        select (select count(*) from health_records), (select count(*) from appointments),
               (select count(*) from emergency_contacts), (select count(*) from medications)""",
    )
    assert 4.5 <= hr / students <= 5.5
    assert 1.8 <= appt / students <= 2.2
    assert contacts == 2 * students
    assert meds == 300


def test_keys_are_uuids_derived_from_the_seed(seeded: psycopg.Connection) -> None:
    first = DISTRICT.uuid_of("students", 0)
    assert first.version == 4
    assert _one(seeded, f"select grade from students where id = '{first}'") == ("Pre-K",)
    assert District(5_000, 43).uuid_of("students", 0) != first
    assert District(5_000, 42, number=1).uuid_of("students", 0) != first


def test_every_student_has_a_nurse_of_their_own_school(seeded: psycopg.Connection) -> None:
    (mismatched,) = _one(
        seeded,
        """
        select count(*) from students s join users u on u.id = s."nurseId"
         where u."schoolId" <> s."schoolId" or u.role <> 'NURSE'""",
    )
    (without,) = _one(seeded, 'select count(*) from students where "nurseId" is null')
    (schools_without,) = _one(
        seeded,
        """
        select count(*) from schools sc where not exists
          (select 1 from users u where u."schoolId" = sc.id and u.role = 'NURSE')""",
    )
    assert (mismatched, without, schools_without) == (0, 0, 0)


def test_records_have_the_expected_mix(seeded: psycopg.Connection) -> None:
    confidential, with_diag, types = _one(
        seeded,
        """
        select avg("isConfidential"::int), avg(("diagnosisCode" is not null)::int),
               count(distinct "recordType") from health_records""",
    )
    assert 0.04 < confidential < 0.12
    assert 0.6 < with_diag < 0.8
    assert types == len(names.RECORD_TYPES)
    groups, recurring_rows = _one(
        seeded,
        """select count(distinct "recurringGroupId"), count("recurringGroupId")
             from appointments""",
    )
    assert groups > 100 and recurring_rows > groups  # groups hold several appointments
    statuses = {r[0] for r in seeded.execute("select distinct status from appointments")}
    assert (
        statuses <= {"SCHEDULED", "COMPLETED", "CANCELLED", "NO_SHOW"} and "SCHEDULED" in statuses
    )
    controlled, scheduled = _one(
        seeded,
        """
        select count(*) filter (where "isControlled"),
               count(*) filter (where "isControlled" and "deaSchedule" is not null)
          from medications""",
    )
    assert controlled > 0 and controlled == scheduled
    (primary,) = _one(seeded, "select count(*) from emergency_contacts where priority = 'PRIMARY'")
    assert primary == 5_000


def test_dates_fit_the_grades(seeded: psycopg.Connection) -> None:
    rows = seeded.execute("""select grade, min(extract(year from age(date '2026-09-01',
                              "dateOfBirth"))), max(extract(year from age(date '2026-09-01',
                              "dateOfBirth"))) from students group by grade""").fetchall()
    for grade, youngest, oldest in rows:
        step = GRADES.index(grade)  # Pre-K is 4 or 5 on the first day
        assert step + 4 <= youngest <= oldest <= step + 5


def _fingerprint(district: District) -> str:
    digest = hashlib.sha256()
    for table in district.tables():
        for _, text in table.chunks:
            digest.update(text)
    return digest.hexdigest()


def test_same_seed_same_district_whatever_the_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    first = _fingerprint(District(1_200, 7))
    monkeypatch.setattr("wcperf.seed.district.CHUNK", 100)
    assert _fingerprint(District(1_200, 7)) == first
    assert _fingerprint(District(1_200, 8)) != first


def test_generated_text_is_copy_safe() -> None:
    for table in District(300, 1).tables():
        for _, text in table.chunks:
            body = text.decode()
            assert "\\" not in body.replace("\\N", "")
            assert all(line.count("\t") == len(table.columns) - 1 for line in body.splitlines())


def test_refuses_a_second_district_and_writes_nothing(seeded_url: str) -> None:
    before = snapshot(seeded_url)
    with pytest.raises(RefusedError, match="--append or --replace"):
        seed(seeded_url, 100)
    assert snapshot(seeded_url) == before


def test_append_and_replace_act_on_wcperfs_own_district(scratch_url: str) -> None:
    seed(scratch_url, 800, 1)
    appended = seed(scratch_url, 400, 1, mode="append")  # the same seed: other keys
    assert "medications" not in appended.rows  # the catalogue is shared
    with admin.connect(scratch_url, autocommit=True) as conn:
        assert district_counts(conn).students == 1_200
        (fks,) = _one(
            conn,
            "select count(*) from pg_constraint where contype = 'f'"
            " and connamespace = 'public'::regnamespace",
        )
        assert fks == 9  # the platform's foreign keys, all in place
        (nurse_mismatch,) = _one(
            conn,
            """select count(*) from students s join users u
                on u.id = s."nurseId" where u."schoolId" <> s."schoolId" """,
        )
        assert nurse_mismatch == 0
        marks = conn.execute("select mode, students, rows from wcperf.seeds order by id").fetchall()
    assert [(m, n) for m, n, _ in marks] == [("new", 800), ("append", 400)]
    seed(scratch_url, 300, 3, mode="replace")
    with admin.connect(scratch_url, autocommit=True) as conn:
        assert district_counts(conn).students == 300
        assert _one(conn, "select count(*) from medications") == (300,)


@pytest.fixture
def platform_data_url(server_url: str, settings: Settings) -> Iterator[str]:
    """The platform's tables holding rows wcperf did not write (a real district, say)."""
    url = make_database(
        server_url, f"wcperf_real_{RUN_ID}_{uuid.uuid4().hex[:6]}", settings, migrate=False
    )
    with admin.connect(url) as conn:
        district = uuid.uuid4()
        conn.execute(
            'insert into districts (id, name, code, "createdAt", "updatedAt")'
            " values (%s, 'A Real District', 'REAL-1', now(), now())",
            (district,),
        )
        conn.execute(
            'insert into schools (id, name, code, "districtId", "createdAt", "updatedAt")'
            " values (%s, 'A Real School', 'REAL-S1', %s, now(), now())",
            (uuid.uuid4(), district),
        )
    yield url
    admin.drop_database(url)


@pytest.mark.parametrize("flag", ["--replace", "--append", None])
def test_seed_refuses_data_it_did_not_write(platform_data_url: str, flag: str | None) -> None:
    before = snapshot(platform_data_url)
    args = ["--database-url", platform_data_url, "seed", "--students", "200"]
    result = run_cli(*args, *([flag] if flag else []))
    assert result.returncode == 2, result.stderr
    assert "did not seed" in result.stderr and "nothing written" in result.stderr
    assert snapshot(platform_data_url) == before


def test_seed_loads_into_the_platforms_empty_tables(scratch_url: str) -> None:
    result = seed(scratch_url, 500, 5)
    assert not result.created_schema and result.rows["students"] == 500


def test_interrupted_seed_leaves_no_platform_table(server_url: str) -> None:
    url = admin.with_database(server_url, f"wcperf_empty_{RUN_ID}_{uuid.uuid4().hex[:6]}")
    admin.ensure_database(url)
    try:

        def explode(table: str, _rows: int, _total: int) -> None:
            if table == "health_records":
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            seed(url, 2_000, progress=explode)
        with admin.connect(url, autocommit=True) as conn:
            assert len(missing_tables(conn)) == 8  # the schema went with the transaction
        again = seed(url, 2_000)
        assert again.created_schema and again.rows["students"] == 2_000
    finally:
        admin.drop_database(url)


def test_the_marker_holds_no_names(seeded: psycopg.Connection) -> None:
    rows = seeded.execute("select mode, rows::text from wcperf.seeds").fetchall()
    blob = " ".join(" ".join(map(str, r)) for r in rows)
    words = set(names.FIRST_NAMES) | set(names.LAST_NAMES)
    assert not [w for w in words if w in blob]
