"""Observation: query and pool monitors, one Snapshot, publishing and merging it."""
