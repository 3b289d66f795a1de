"""The platform's hot paths, reads and writes, as plain functions over a Session."""
