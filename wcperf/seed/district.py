"""A synthetic district as COPY text, chunk by chunk.

Every value is a pure function of (random seed, row id, salt) through a vectorised
splitmix64 hash, so a district is the same whatever the chunk size, a child table
can recompute its student's school, nurse or surname without keeping state, and
numpy does the arithmetic. Shape (SPEC.md): ~400 students per school, grades K-12
even, one nurse per ~500 students (at least one per school), ~5 health records,
~2 appointments and 2 emergency contacts per student, 300 medications.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from wcperf.seed import names

SCALES = {"small": 5_000, "medium": 100_000, "large": 1_000_000}
STUDENTS_PER_SCHOOL = 400
STUDENTS_PER_NURSE = 500
MEDICATION_COUNT = 300
SCHOOL_YEAR_START = np.datetime64("2026-08-17")
REFERENCE_DAY = np.datetime64("2026-11-16")  # appointments before it are in the past
CHUNK = 50_000  # students per generated chunk
NULL = "\\N"

_U64 = np.uint64


def _mix(values: np.ndarray, salt: int, seed: int) -> np.ndarray:
    """splitmix64 of (value, salt, seed): uniform uint64, deterministic."""
    with np.errstate(over="ignore"):
        z = values.astype(_U64) * _U64(0x9E3779B97F4A7C15)
        z ^= _U64((salt * 0xBF58476D1CE4E5B9 + seed * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        return z ^ (z >> _U64(31))


def _pick(words: tuple[str, ...] | list[str], h: np.ndarray) -> list[str]:
    return np.asarray(words, dtype=object)[h % _U64(len(words))].tolist()


def _ints(a: np.ndarray) -> list[str]:
    return list(map(str, a.tolist()))


def _bools(mask: np.ndarray) -> list[str]:
    return np.where(mask, "t", "f").tolist()


def rows_text(columns: list[list[str]]) -> bytes:
    """COPY text format; our words never hold tab, newline or backslash."""
    return ("\n".join(map("\t".join, zip(*columns, strict=True))) + "\n").encode()


@dataclass(frozen=True)
class Offsets:
    """Highest existing id per table, so an appended district does not collide."""

    schools: int = 0
    users: int = 0
    students: int = 0
    health_records: int = 0
    appointments: int = 0
    medications: int = 0
    emergency_contacts: int = 0


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    estimate: int
    chunks: Iterator[tuple[int, bytes]] = field(repr=False)  # (rows, COPY text)


@dataclass(frozen=True)
class District:
    students: int
    seed: int = 42
    offsets: Offsets = Offsets()
    seed_medications: bool = True

    @property
    def schools(self) -> int:
        return max(1, round(self.students / STUDENTS_PER_SCHOOL))

    @property
    def nurses(self) -> int:
        return max(self.schools, round(self.students / STUDENTS_PER_NURSE))

    @property
    def staff(self) -> int:
        return self.schools + 1  # one per school and a district administrator

    def _h(self, ids: np.ndarray, salt: int) -> np.ndarray:
        return _mix(ids, salt, self.seed)

    # -- derived student attributes (children recompute them) -------------
    def _local(self, student_ids: np.ndarray) -> np.ndarray:
        return student_ids - (self.offsets.students + 1)

    def school_of(self, student_ids: np.ndarray) -> np.ndarray:
        return self._local(student_ids) * self.schools // self.students

    def nurse_of(self, student_ids: np.ndarray) -> np.ndarray:
        school = self.school_of(student_ids)
        per_school = self.nurses // self.schools + (school < self.nurses % self.schools)
        pick = (self._h(student_ids, 1) % per_school.astype(_U64)).astype(np.int64)
        return self.offsets.users + 1 + school + self.schools * pick

    def last_name_of(self, student_ids: np.ndarray) -> list[str]:
        return _pick(names.LAST_NAMES, self._h(student_ids, 2))

    def grade_of(self, student_ids: np.ndarray) -> np.ndarray:
        return self._local(student_ids) % 13

    # -- tables ------------------------------------------------------------
    def tables(self) -> list[Table]:
        s = self.students
        out = [
            Table("schools", ("id", "name", "district"), self.schools, self._schools()),
            Table(
                "users",
                (
                    "id",
                    "school_id",
                    "email",
                    "first_name",
                    "last_name",
                    "role",
                    "is_active",
                    "max_workload",
                ),
                self.nurses + self.staff,
                self._users(),
            ),
        ]
        if self.seed_medications:
            out.append(
                Table(
                    "medications",
                    (
                        "id",
                        "name",
                        "dosage_form",
                        "strength",
                        "is_active",
                        "is_controlled",
                        "dea_schedule",
                    ),
                    MEDICATION_COUNT,
                    self._medications(),
                )
            )
        out += [
            Table(
                "students",
                (
                    "id",
                    "school_id",
                    "nurse_id",
                    "student_number",
                    "first_name",
                    "last_name",
                    "date_of_birth",
                    "grade",
                    "status",
                    "enrollment_date",
                ),
                s,
                self._students(),
            ),
            Table(
                "health_records",
                (
                    "id",
                    "student_id",
                    "record_type",
                    "record_date",
                    "provider",
                    "diagnosis_code",
                    "is_confidential",
                    "notes",
                ),
                5 * s,
                self._health_records(),
            ),
            Table(
                "appointments",
                (
                    "id",
                    "student_id",
                    "nurse_id",
                    "type",
                    "status",
                    "scheduled_at",
                    "duration_minutes",
                    "recurring_group_id",
                ),
                2 * s,
                self._appointments(),
            ),
            Table(
                "emergency_contacts",
                (
                    "id",
                    "student_id",
                    "first_name",
                    "last_name",
                    "relationship",
                    "phone",
                    "priority",
                    "is_primary",
                ),
                2 * s,
                self._contacts(),
            ),
        ]
        return out

    def _student_chunks(self) -> Iterator[np.ndarray]:
        first = self.offsets.students + 1
        for start in range(0, self.students, CHUNK):
            yield np.arange(
                first + start, first + min(start + CHUNK, self.students), dtype=np.int64
            )

    def _schools(self) -> Iterator[tuple[int, bytes]]:
        ids = np.arange(1, self.schools + 1, dtype=np.int64) + self.offsets.schools
        level = np.asarray(["Elementary", "Middle School", "High School"], dtype=object)
        words = _pick(names.PROVIDER_WORDS, self._h(ids, 10))
        kinds = level[(ids % 3)].tolist()
        district = f"Synthetic District {self.seed}"
        yield (
            len(ids),
            rows_text(
                [
                    _ints(ids),
                    [f"{w} {k} {i}" for w, k, i in zip(words, kinds, ids.tolist(), strict=True)],
                    [district] * len(ids),
                ]
            ),
        )

    def _users(self) -> Iterator[tuple[int, bytes]]:
        n = self.nurses + self.staff
        local = np.arange(n, dtype=np.int64)
        ids = local + self.offsets.users + 1
        is_nurse = local < self.nurses
        school = np.where(is_nurse, local % self.schools, local - self.nurses)
        school_ids = [
            NULL if s >= self.schools else str(s + 1 + self.offsets.schools)
            for s in school.tolist()
        ]
        role = np.where(is_nurse, "nurse", np.where(school < self.schools, "staff", "admin"))
        workload = np.where(is_nurse, 500 + (self._h(ids, 11) % _U64(5)).astype(np.int64) * 50, 0)
        yield (
            n,
            rows_text(
                [
                    _ints(ids),
                    school_ids,
                    [
                        f"{r}{i}@district{self.seed}.example"
                        for r, i in zip(role.tolist(), ids.tolist(), strict=True)
                    ],
                    _pick(names.FIRST_NAMES, self._h(ids, 12)),
                    _pick(names.LAST_NAMES, self._h(ids, 13)),
                    role.tolist(),
                    ["t"] * n,
                    [str(w) if w else NULL for w in workload.tolist()],
                ]
            ),
        )

    def _medications(self) -> Iterator[tuple[int, bytes]]:
        local = np.arange(MEDICATION_COUNT, dtype=np.int64)
        ids = local + self.offsets.medications + 1
        meds = names.MEDICATIONS
        base = [meds[k % len(meds)] for k in local.tolist()]
        forms = names.DOSAGE_FORMS
        yield (
            MEDICATION_COUNT,
            rows_text(
                [
                    _ints(ids),
                    [m[0] for m in base],
                    [forms[(k // len(meds) + k) % len(forms)] for k in local.tolist()],
                    _pick(names.STRENGTHS, self._h(ids, 20)),
                    _bools(self._h(ids, 21) % _U64(10) != 0),
                    _bools(np.asarray([m[1] for m in base])),
                    [m[2] or NULL for m in base],
                ]
            ),
        )

    def _students(self) -> Iterator[tuple[int, bytes]]:
        for ids in self._student_chunks():
            grade = self.grade_of(ids)
            h = self._h(ids, 3)
            birth_year = 2026 - grade - 6
            dob = (birth_year - 1970).astype("datetime64[Y]").astype("datetime64[D]")
            dob = dob + np.timedelta64(244, "D") + (h % _U64(365)).astype("timedelta64[D]")
            years_in = (self._h(ids, 4) % (grade.astype(_U64) + _U64(1))).astype(np.int64)
            enrolled = SCHOOL_YEAR_START - (years_in * 365).astype("timedelta64[D]")
            status = np.where(self._h(ids, 5) % _U64(50) == 0, "inactive", "active")
            yield (
                len(ids),
                rows_text(
                    [
                        _ints(ids),
                        _ints(self.school_of(ids) + 1 + self.offsets.schools),
                        _ints(self.nurse_of(ids)),
                        [f"S{i:09d}" for i in ids.tolist()],
                        _pick(names.FIRST_NAMES, self._h(ids, 6)),
                        self.last_name_of(ids),
                        dob.astype(str).tolist(),
                        _ints(grade),
                        status.tolist(),
                        enrolled.astype(str).tolist(),
                    ]
                ),
            )

    def _children(
        self, counts_salt: int, low: int, spread: int, offset: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(child ids, parent student ids) per chunk, ids contiguous across chunks."""
        next_id = offset + 1
        for ids in self._student_chunks():
            counts = low + (self._h(ids, counts_salt) % _U64(spread)).astype(np.int64)
            parents = np.repeat(ids, counts)
            child = np.arange(next_id, next_id + len(parents), dtype=np.int64)
            next_id += len(parents)
            yield child, parents

    def _health_records(self) -> Iterator[tuple[int, bytes]]:
        providers = [f"{w} {k}" for w in names.PROVIDER_WORDS for k in names.PROVIDER_KINDS]
        for rid, sid in self._children(30, 3, 5, self.offsets.health_records):
            day = np.datetime64("2023-09-01") + (self._h(rid, 31) % _U64(1170)).astype(
                "timedelta64[D]"
            )
            diag = _pick(names.DIAGNOSIS_CODES, self._h(rid, 32))
            has_diag = (self._h(rid, 33) % _U64(10) >= 3).tolist()
            has_note = (self._h(rid, 35) % _U64(5) != 0).tolist()
            notes = _pick(names.NOTE_PHRASES, self._h(rid, 36))
            yield (
                len(rid),
                rows_text(
                    [
                        _ints(rid),
                        _ints(sid),
                        _pick(names.RECORD_TYPES, self._h(rid, 37)),
                        day.astype(str).tolist(),
                        _pick(providers, self._h(rid, 38)),
                        [d if k else NULL for d, k in zip(diag, has_diag, strict=True)],
                        _bools(self._h(rid, 34) % _U64(100) < 8),
                        [t if k else NULL for t, k in zip(notes, has_note, strict=True)],
                    ]
                ),
            )

    def _appointments(self) -> Iterator[tuple[int, bytes]]:
        school_days = 300
        for aid, sid in self._children(40, 1, 3, self.offsets.appointments):
            day = SCHOOL_YEAR_START + (self._h(aid, 41) % _U64(school_days)).astype(
                "timedelta64[D]"
            )
            weekday = (day.astype(np.int64) + 3) % 7  # 0 = Monday
            day = day + np.where(weekday >= 5, 7 - weekday, 0).astype("timedelta64[D]")
            minute = 8 * 60 + (self._h(aid, 42) % _U64(32)).astype(np.int64) * 15
            at = day.astype("datetime64[m]") + minute.astype("timedelta64[m]")
            past = day < REFERENCE_DAY
            roll = self._h(aid, 43) % _U64(10)
            status = np.where(
                past,
                np.where(roll < 8, "completed", np.where(roll < 9, "cancelled", "no_show")),
                np.where(roll < 9, "scheduled", "cancelled"),
            )
            recurring = self._h(sid, 44) % _U64(20) == 0
            g1, g2 = self._h(sid, 45), self._h(sid, 46)
            groups = [
                f"{a:016x}{b:016x}" if r else NULL
                for a, b, r in zip(g1.tolist(), g2.tolist(), recurring.tolist(), strict=True)
            ]
            yield (
                len(aid),
                rows_text(
                    [
                        _ints(aid),
                        _ints(sid),
                        _ints(self.nurse_of(sid)),
                        _pick(names.APPOINTMENT_TYPES, self._h(aid, 47)),
                        status.tolist(),
                        [f"{t}+00" for t in at.astype(str).tolist()],
                        _ints(15 + (self._h(aid, 48) % _U64(3)).astype(np.int64) * 15),
                        groups,
                    ]
                ),
            )

    def _contacts(self) -> Iterator[tuple[int, bytes]]:
        for cid, sid in self._children(50, 2, 1, self.offsets.emergency_contacts):
            priority = 1 + (cid - self.offsets.emergency_contacts - 1) % 2
            same_name = self._h(cid, 51) % _U64(10) < 7
            own = _pick(names.LAST_NAMES, self._h(cid, 52))
            family = self.last_name_of(sid)
            area = 201 + (self._h(cid, 53) % _U64(788)).astype(np.int64)
            line = (self._h(cid, 54) % _U64(100)).astype(np.int64)
            yield (
                len(cid),
                rows_text(
                    [
                        _ints(cid),
                        _ints(sid),
                        _pick(names.FIRST_NAMES, self._h(cid, 55)),
                        [
                            f if s else o
                            for f, o, s in zip(family, own, same_name.tolist(), strict=True)
                        ],
                        _pick(names.RELATIONSHIPS, self._h(cid, 56)),
                        [
                            f"+1-{a}-555-01{n:02d}"
                            for a, n in zip(area.tolist(), line.tolist(), strict=True)
                        ],
                        _ints(priority),
                        _bools(priority == 1),
                    ]
                ),
            )
