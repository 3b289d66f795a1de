"""Rich renderables built from a Snapshot; nothing here touches a database."""
