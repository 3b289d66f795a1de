"""Facts of the platform's own database, which wcperf adopts and never reshapes.

The platform (its ORM, its migrations) owns every table here. wcperf reads and
writes rows in them, builds the 14 performance indexes its models declare when
they are missing, and keeps all of its own state in the `wcperf` schema.
"""

from __future__ import annotations

import itertools

WCPERF_SCHEMA = "wcperf"

# What wcperf reads and writes, parents before children.
PLATFORM_TABLES = (
    "districts",
    "schools",
    "users",
    "students",
    "health_records",
    "appointments",
    "medications",
    "emergency_contacts",
)

# `Pre-K -> K -> 1 ... 12 -> Graduate`, as the platform stores them (strings).
GRADES = ("Pre-K", "K", *(str(g) for g in range(1, 13)), "Graduate")
NEXT_GRADE = dict(itertools.pairwise(GRADES))

NURSE = "NURSE"
APPOINTMENT_STATUSES = ("SCHEDULED", "IN_PROGRESS", "COMPLETED", "CANCELLED", "NO_SHOW")
APPOINTMENT_TYPES = (
    "ROUTINE_CHECKUP",
    "MEDICATION_ADMINISTRATION",
    "INJURY_ASSESSMENT",
    "ILLNESS_EVALUATION",
    "FOLLOW_UP",
    "SCREENING",
    "EMERGENCY",
)
