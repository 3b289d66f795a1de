"""Schema migrations: the Alembic driver (and, later, the online index builder)."""
