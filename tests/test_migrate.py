from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from wcperf.db.engine import Database
from wcperf.db.schema import Base
from wcperf.migrate import alembic_driver
from wcperf.settings import Settings

TABLES = {
    "schools",
    "users",
    "students",
    "health_records",
    "appointments",
    "medications",
    "emergency_contacts",
    "audit_log",
    "bulk_jobs",
    "student_transfers",
    "alembic_version",
}


def test_baseline_creates_the_data_model(db: Database) -> None:
    with db.engine.connect() as conn:
        tables = set(
            conn.execute(
                text("select tablename from pg_tables where schemaname = current_schema()")
            ).scalars()
        )
    assert tables == TABLES


def test_models_and_baseline_agree(db: Database) -> None:
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_baseline_has_primary_and_foreign_keys_only(seeded_url: str, settings: Settings) -> None:
    with Database(seeded_url, settings) as db, db.engine.connect() as conn:
        indexes = set(
            conn.execute(
                text("select indexname from pg_indexes where schemaname = current_schema()")
            ).scalars()
        )
        fks = set(
            conn.execute(text("select conname from pg_constraint where contype = 'f'")).scalars()
        )
    baseline = TABLES - {"alembic_version", "student_transfers"}  # the latter comes in 0003
    assert indexes == {f"{t}_pkey" for t in baseline} | {"alembic_version_pkc"}
    assert "health_records_student_id_fkey" in fks
    assert "students_nurse_id_fkey" in fks


def test_status_and_rerun(db: Database) -> None:
    st = alembic_driver.status(db.engine)
    assert st.up_to_date and st.current == st.heads == ("0003_bulk_jobs",)
    assert alembic_driver.upgrade(db.engine).current == ("0003_bulk_jobs",)


def test_downgrade_and_upgrade_again(scratch_url: str, settings: Settings) -> None:
    with Database(scratch_url, settings) as db:
        st = alembic_driver.downgrade(db.engine, "base")
        assert st.current == ()
        assert st.pending == ("0001_baseline", "0002_performance_indexes", "0003_bulk_jobs")
        with db.engine.connect() as conn:
            assert conn.execute(text("select to_regclass('students')")).scalar_one() is None
        assert alembic_driver.upgrade(db.engine).up_to_date
