"""Database access: server resolution, embedded servers, pool and engine, schema."""
