"""The synthetic district: its shape, determinism, and safe loading."""

from __future__ import annotations

import hashlib

import psycopg
import pytest

from wcperf.db import admin
from wcperf.errors import RefusedError
from wcperf.seed import names
from wcperf.seed.district import District
from wcperf.seed.load import district_counts, seed


def _one(conn: psycopg.Connection, query: str) -> tuple:
    row = conn.execute(query).fetchone()
    assert row is not None
    return tuple(row)


@pytest.fixture(scope="module")
def seeded(seeded_url: str):
    with admin.connect(seeded_url, autocommit=True) as conn:
        yield conn


def test_district_shape(seeded: psycopg.Connection) -> None:
    students, schools, nurses = _one(
        seeded,
        """
        select (select count(*) from students), (select count(*) from schools),
               (select count(*) from users where role = 'nurse' and is_active)""",
    )
    assert students == 5_000
    assert schools == 12  # about 400 students per school
    assert schools <= nurses <= students / 400
    per_grade = [
        r[0] for r in seeded.execute("select count(*) from students group by grade order by grade")
    ]
    assert len(per_grade) == 13 and max(per_grade) - min(per_grade) <= 1
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


def test_every_student_has_a_nurse_of_their_own_school(seeded: psycopg.Connection) -> None:
    (mismatched,) = _one(
        seeded,
        """
        select count(*) from students s join users u on u.id = s.nurse_id
         where u.school_id <> s.school_id or u.role <> 'nurse'""",
    )
    (without,) = _one(seeded, "select count(*) from students where nurse_id is null")
    (schools_without,) = _one(
        seeded,
        """
        select count(*) from schools sc where not exists
          (select 1 from users u where u.school_id = sc.id and u.role = 'nurse')""",
    )
    assert (mismatched, without, schools_without) == (0, 0, 0)
    # Nurses carry a workload limit their current load respects.
    (over,) = _one(
        seeded,
        """
        select count(*) from (select u.id from users u join students s on s.nurse_id = u.id
          group by u.id, u.max_workload having count(*) > u.max_workload) x""",
    )
    assert over == 0


def test_records_have_the_expected_mix(seeded: psycopg.Connection) -> None:
    confidential, with_diag, types = _one(
        seeded,
        """
        select avg(is_confidential::int), avg((diagnosis_code is not null)::int),
               count(distinct record_type) from health_records""",
    )
    assert 0.04 < confidential < 0.12
    assert 0.6 < with_diag < 0.8
    assert types == len(names.RECORD_TYPES)
    groups, recurring_rows = _one(
        seeded,
        """
        select count(distinct recurring_group_id), count(recurring_group_id) from appointments""",
    )
    assert groups > 100 and recurring_rows > groups  # groups hold several appointments
    controlled, scheduled = _one(
        seeded,
        """
        select count(*) filter (where is_controlled),
               count(*) filter (where is_controlled and dea_schedule is not null)
          from medications""",
    )
    assert controlled > 0 and controlled == scheduled
    (primary,) = _one(
        seeded,
        """select count(*) from emergency_contacts
                                  where is_primary and priority = 1""",
    )
    assert primary == 5_000


def test_dates_fit_the_grades(seeded: psycopg.Connection) -> None:
    rows = seeded.execute("""select grade, min(extract(year from age(date '2026-09-01',
                              date_of_birth))), max(extract(year from age(date '2026-09-01',
                              date_of_birth))) from students group by grade""").fetchall()
    for grade, youngest, oldest in rows:
        assert grade + 5 <= youngest <= oldest <= grade + 6


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
    with admin.connect(seeded_url, autocommit=True) as conn:
        before = district_counts(conn)
        (audits,) = _one(conn, "select count(*) from audit_log")
    with pytest.raises(RefusedError, match="--append or --replace"):
        seed(seeded_url, District(100))
    with admin.connect(seeded_url, autocommit=True) as conn:
        assert district_counts(conn) == before
        assert _one(conn, "select count(*) from audit_log") == (audits,)


def test_append_replace_and_keys(scratch_url: str) -> None:
    seed(scratch_url, District(800, 1))
    appended = seed(scratch_url, District(400, 2), mode="append")
    assert "medications" not in appended.rows  # the catalogue is shared
    with admin.connect(scratch_url, autocommit=True) as conn:
        assert district_counts(conn).students == 1_200
        (fks,) = _one(conn, "select count(*) from pg_constraint where contype = 'f'")
        assert fks == 10  # dropped for the fresh load, all back
        # Identity sequences continue after the seeded ids.
        (new_id,) = _one(
            conn,
            """insert into schools (name, district) values ('x', 'y')
                                  returning id""",
        )
        (max_before,) = _one(conn, "select max(id) from schools where name <> 'x'")
        assert new_id == max_before + 1
        (nurse_mismatch,) = _one(
            conn,
            """select count(*) from students s join users u
                                          on u.id = s.nurse_id where u.school_id <> s.school_id""",
        )
        assert nurse_mismatch == 0
        audit = conn.execute("select action, counts, details from audit_log order by id").fetchall()
    assert [a[0] for a in audit] == ["seed", "seed"]
    assert audit[1][1]["students"] == 400 and audit[1][2]["mode"] == "append"
    seed(scratch_url, District(300, 3), mode="replace")
    with admin.connect(scratch_url, autocommit=True) as conn:
        assert district_counts(conn).students == 300
        assert _one(conn, "select min(id) from students") == (1,)


def test_interrupted_seed_leaves_nothing(scratch_url: str) -> None:
    def explode(table: str, _rows: int, _total: int) -> None:
        if table == "health_records":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        seed(scratch_url, District(2_000), progress=explode)
    with admin.connect(scratch_url, autocommit=True) as conn:
        assert district_counts(conn).students == 0
        (fks,) = _one(conn, "select count(*) from pg_constraint where contype = 'f'")
        assert fks == 10
    assert seed(scratch_url, District(2_000)).rows["students"] == 2_000


def test_audit_rows_hold_no_names(seeded: psycopg.Connection) -> None:
    rows = seeded.execute("select actor, counts::text, details::text from audit_log").fetchall()
    blob = " ".join(" ".join(map(str, r)) for r in rows)
    words = set(names.FIRST_NAMES) | set(names.LAST_NAMES)
    assert not [w for w in words if w in blob]
