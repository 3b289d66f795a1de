"""Load scenarios replayed against the database: operations, scenario files."""
