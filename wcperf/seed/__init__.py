"""Synthetic districts: no real people, the same data for the same seed."""
