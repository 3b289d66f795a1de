"""A synthetic district in the platform's own shape, as COPY text, chunk by chunk.

Every value is a pure function of (random seed, district number, row ordinal, salt)
through a vectorised splitmix64 hash, so a district is the same whatever the chunk
size, a child table can recompute its student's UUID, school, nurse or surname
without keeping state, and numpy does the arithmetic. UUIDs come from the same
hash (version-4 shaped), so `--random-seed` fixes every key.

Shape: ~400 students per school, grades `Pre-K` to `12` even, one nurse per ~500
students (at least one per school), ~5 health records, ~2 appointments and 2
emergency contacts per student, 300 medications. About 1 student in 50 is
inactive and 1 in 100 soft-deleted, as in a real district, so every reader and
writer has to honour `"isActive"` and `"deletedAt"`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from wcperf.platform import APPOINTMENT_TYPES, GRADES
from wcperf.seed import names

SCALES = {"small": 5_000, "medium": 100_000, "large": 1_000_000}
STUDENTS_PER_SCHOOL = 400
STUDENTS_PER_NURSE = 500
MEDICATION_COUNT = 300
SCHOOL_YEAR_START = np.datetime64("2026-08-17")
REFERENCE_DAY = np.datetime64("2026-11-16")  # appointments before it are in the past
CREATED = "2026-08-01 00:00:00+00"  # "createdAt"/"updatedAt" of every seeded row
CHUNK = 50_000  # students per generated chunk
NULL = "\\N"
ENROLLED_GRADES = GRADES[:-1]  # nobody is seeded as a Graduate

_U64 = np.uint64
_SALTS = {
    "districts": 1001,
    "schools": 1002,
    "users": 1003,
    "students": 1004,
    "health_records": 1005,
    "appointments": 1006,
    "medications": 1007,
    "emergency_contacts": 1008,
    "groups": 1009,
}
_NUMBER_STRIDE = 1 << 40  # ordinals of district n start at n * 2^40: appends never collide


def _mix(values: np.ndarray, salt: int, seed: int) -> np.ndarray:
    """splitmix64 of (value, salt, seed): uniform uint64, deterministic."""
    with np.errstate(over="ignore"):
        z = values.astype(_U64) * _U64(0x9E3779B97F4A7C15)
        z ^= _U64((salt * 0xBF58476D1CE4E5B9 + seed * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        return z ^ (z >> _U64(31))


def _uuid_words(ordinals: np.ndarray, salt: int, seed: int) -> np.ndarray:
    words = np.empty((len(ordinals), 2), dtype=">u8")
    hi = _mix(ordinals, salt, seed)
    lo = _mix(ordinals, salt + 7919, seed)
    words[:, 0] = (hi & _U64(0xFFFFFFFFFFFF0FFF)) | _U64(0x4000)  # version 4
    words[:, 1] = (lo & _U64(0x3FFFFFFFFFFFFFFF)) | _U64(0x8000000000000000)  # RFC 4122
    return words


def uuids(ordinals: np.ndarray, salt: int, seed: int) -> list[str]:
    """32 hex digits each: PostgreSQL reads a uuid without its hyphens."""
    text = _uuid_words(ordinals, salt, seed).tobytes().hex()
    return [text[i : i + 32] for i in range(0, len(text), 32)]


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
class Table:
    name: str
    columns: tuple[str, ...]
    estimate: int
    chunks: Iterator[tuple[int, bytes]] = field(repr=False)  # (rows, COPY text)


@dataclass(frozen=True)
class District:
    students: int
    seed: int = 42
    number: int = 0  # how many districts were seeded into this database before
    seed_medications: bool = True

    @property
    def schools(self) -> int:
        return max(1, round(self.students / STUDENTS_PER_SCHOOL))

    @property
    def nurses(self) -> int:
        return max(self.schools, round(self.students / STUDENTS_PER_NURSE))

    @property
    def staff(self) -> int:
        return self.schools + 1  # an administrator per school and one for the district

    def _h(self, ordinals: np.ndarray, salt: int) -> np.ndarray:
        return _mix(ordinals + self.number * _NUMBER_STRIDE, salt, self.seed)

    def _ids(self, table: str, ordinals: np.ndarray) -> list[str]:
        return uuids(ordinals + self.number * _NUMBER_STRIDE, _SALTS[table], self.seed)

    def uuid_of(self, table: str, ordinal: int) -> uuid.UUID:
        """The key of a row by its ordinal (0-based) in this district: tests find rows by it."""
        return uuid.UUID(self._ids(table, np.asarray([ordinal], dtype=np.int64))[0])

    # -- derived student attributes (children recompute them) -------------
    def school_of(self, students: np.ndarray) -> np.ndarray:
        return students * self.schools // self.students

    def nurse_of(self, students: np.ndarray) -> np.ndarray:
        school = self.school_of(students)
        per_school = self.nurses // self.schools + (school < self.nurses % self.schools)
        pick = (self._h(students, 1) % per_school.astype(_U64)).astype(np.int64)
        return school + self.schools * pick

    def last_name_of(self, students: np.ndarray) -> list[str]:
        return _pick(names.LAST_NAMES, self._h(students, 2))

    def grade_of(self, students: np.ndarray) -> np.ndarray:
        return students % len(ENROLLED_GRADES)

    def deleted(self, students: np.ndarray) -> np.ndarray:
        return self._h(students, 7) % _U64(100) == 0

    def inactive(self, students: np.ndarray) -> np.ndarray:
        return self._h(students, 5) % _U64(50) == 0

    # -- tables ------------------------------------------------------------
    def tables(self) -> list[Table]:
        s = self.students
        stamps = ("createdAt", "updatedAt")
        out = [
            Table("districts", ("id", "name", "code", "isActive", *stamps), 1, self._districts()),
            Table(
                "schools",
                ("id", "name", "code", "districtId", "isActive", *stamps),
                self.schools,
                self._schools(),
            ),
            Table(
                "users",
                (
                    "id",
                    "email",
                    "password",
                    "firstName",
                    "lastName",
                    "role",
                    "isActive",
                    "schoolId",
                    "districtId",
                    *stamps,
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
                        "genericName",
                        "dosageForm",
                        "strength",
                        "isControlled",
                        "deaSchedule",
                        "isActive",
                        *stamps,
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
                    "studentNumber",
                    "firstName",
                    "lastName",
                    "dateOfBirth",
                    "grade",
                    "gender",
                    "medicalRecordNum",
                    "isActive",
                    "enrollmentDate",
                    "nurseId",
                    "schoolId",
                    "districtId",
                    *stamps,
                    "deletedAt",
                ),
                s,
                self._students(),
            ),
            Table(
                "health_records",
                (
                    "id",
                    "studentId",
                    "recordType",
                    "title",
                    "description",
                    "recordDate",
                    "provider",
                    "diagnosisCode",
                    "isConfidential",
                    "notes",
                    *stamps,
                    "deletedAt",
                ),
                5 * s,
                self._health_records(),
            ),
            Table(
                "appointments",
                (
                    "id",
                    "studentId",
                    "nurseId",
                    "type",
                    "scheduledAt",
                    "duration",
                    "status",
                    "reason",
                    "recurringGroupId",
                    *stamps,
                    "deletedAt",
                ),
                2 * s,
                self._appointments(),
            ),
            Table(
                "emergency_contacts",
                (
                    "id",
                    "studentId",
                    "firstName",
                    "lastName",
                    "relationship",
                    "phoneNumber",
                    "priority",
                    "isActive",
                    "verificationStatus",
                    *stamps,
                ),
                2 * s,
                self._contacts(),
            ),
        ]
        return out

    def _stamps(self, n: int) -> list[list[str]]:
        return [[CREATED] * n, [CREATED] * n]

    def _student_chunks(self) -> Iterator[np.ndarray]:
        for start in range(0, self.students, CHUNK):
            yield np.arange(start, min(start + CHUNK, self.students), dtype=np.int64)

    def _district_id(self, n: int) -> list[str]:
        return self._ids("districts", np.zeros(1, dtype=np.int64)) * n

    def _districts(self) -> Iterator[tuple[int, bytes]]:
        yield (
            1,
            rows_text(
                [
                    self._district_id(1),
                    [f"Synthetic District {self.seed}-{self.number}"],
                    [f"SYN-{self.seed}-{self.number}"],
                    ["t"],
                    *self._stamps(1),
                ]
            ),
        )

    def _schools(self) -> Iterator[tuple[int, bytes]]:
        local = np.arange(self.schools, dtype=np.int64)
        level = np.asarray(["Elementary", "Middle School", "High School"], dtype=object)
        words = _pick(names.PROVIDER_WORDS, self._h(local, 10))
        kinds = level[(local % 3)].tolist()
        n = len(local)
        yield (
            n,
            rows_text(
                [
                    self._ids("schools", local),
                    [
                        f"{w} {k} {i + 1}"
                        for w, k, i in zip(words, kinds, local.tolist(), strict=True)
                    ],
                    [f"SYN{self.seed}-{self.number}-{i + 1:04d}" for i in local.tolist()],
                    self._district_id(n),
                    ["t"] * n,
                    *self._stamps(n),
                ]
            ),
        )

    def _users(self) -> Iterator[tuple[int, bytes]]:
        n = self.nurses + self.staff
        local = np.arange(n, dtype=np.int64)
        is_nurse = local < self.nurses
        school = np.where(is_nurse, local % self.schools, local - self.nurses)
        school_ids = self._ids("schools", np.minimum(school, self.schools - 1))
        school_ids = [
            NULL if s >= self.schools else u
            for s, u in zip(school.tolist(), school_ids, strict=True)
        ]
        role = np.where(
            is_nurse, "NURSE", np.where(school < self.schools, "SCHOOL_ADMIN", "DISTRICT_ADMIN")
        )
        yield (
            n,
            rows_text(
                [
                    self._ids("users", local),
                    [
                        f"{r.lower()}{i}.d{self.number}.s{self.seed}@district.example"
                        for r, i in zip(role.tolist(), local.tolist(), strict=True)
                    ],
                    ["!"] * n,  # no password hash matches: nobody logs in as a seeded user
                    _pick(names.FIRST_NAMES, self._h(local, 12)),
                    _pick(names.LAST_NAMES, self._h(local, 13)),
                    role.tolist(),
                    ["t"] * n,
                    school_ids,
                    self._district_id(n),
                    *self._stamps(n),
                ]
            ),
        )

    def _medications(self) -> Iterator[tuple[int, bytes]]:
        local = np.arange(MEDICATION_COUNT, dtype=np.int64)
        meds = names.MEDICATIONS
        base = [meds[k % len(meds)] for k in local.tolist()]
        forms = names.DOSAGE_FORMS
        yield (
            MEDICATION_COUNT,
            rows_text(
                [
                    self._ids("medications", local),
                    [m[0] for m in base],
                    [m[0].lower() for m in base],
                    [forms[(k // len(meds) + k) % len(forms)] for k in local.tolist()],
                    _pick(names.STRENGTHS, self._h(local, 20)),
                    _bools(np.asarray([m[1] for m in base])),
                    [m[2] or NULL for m in base],
                    _bools(self._h(local, 21) % _U64(10) != 0),
                    *self._stamps(MEDICATION_COUNT),
                ]
            ),
        )

    def _students(self) -> Iterator[tuple[int, bytes]]:
        grades = np.asarray(ENROLLED_GRADES, dtype=object)
        for ords in self._student_chunks():
            step = self.grade_of(ords)  # 0 = Pre-K, 1 = K, 2 = grade 1 ...
            h = self._h(ords, 3)
            birth_year = 2026 - step - 5
            dob = (birth_year - 1970).astype("datetime64[Y]").astype("datetime64[D]")
            dob = dob + np.timedelta64(244, "D") + (h % _U64(365)).astype("timedelta64[D]")
            years_in = (self._h(ords, 4) % (step.astype(_U64) + _U64(1))).astype(np.int64)
            enrolled = SCHOOL_YEAR_START - (years_in * 365).astype("timedelta64[D]")
            n = len(ords)
            tag = f"{self.seed}-{self.number}-"
            yield (
                n,
                rows_text(
                    [
                        self._ids("students", ords),
                        [f"S{tag}{i:08d}" for i in ords.tolist()],
                        _pick(names.FIRST_NAMES, self._h(ords, 6)),
                        self.last_name_of(ords),
                        dob.astype(str).tolist(),
                        grades[step].tolist(),
                        np.where(self._h(ords, 8) % _U64(2) == 0, "FEMALE", "MALE").tolist(),
                        [f"MRN{tag}{i:08d}" for i in ords.tolist()],
                        _bools(~self.inactive(ords)),
                        [f"{d} 08:00:00+00" for d in enrolled.astype(str).tolist()],
                        self._ids("users", self.nurse_of(ords)),
                        self._ids("schools", self.school_of(ords)),
                        self._district_id(n),
                        *self._stamps(n),
                        np.where(self.deleted(ords), "2026-10-01 12:00:00+00", NULL).tolist(),
                    ]
                ),
            )

    def _children(
        self, counts_salt: int, low: int, spread: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(child ordinals, parent student ordinals) per chunk, contiguous across chunks."""
        next_ord = 0
        for ords in self._student_chunks():
            counts = low + (self._h(ords, counts_salt) % _U64(spread)).astype(np.int64)
            parents = np.repeat(ords, counts)
            child = np.arange(next_ord, next_ord + len(parents), dtype=np.int64)
            next_ord += len(parents)
            yield child, parents

    def _health_records(self) -> Iterator[tuple[int, bytes]]:
        providers = [f"{w} {k}" for w in names.PROVIDER_WORDS for k in names.PROVIDER_KINDS]
        for rid, sid in self._children(30, 3, 5):
            day = np.datetime64("2023-09-01") + (self._h(rid, 31) % _U64(1170)).astype(
                "timedelta64[D]"
            )
            diag = _pick(names.DIAGNOSIS_CODES, self._h(rid, 32))
            has_diag = (self._h(rid, 33) % _U64(10) >= 3).tolist()
            has_note = (self._h(rid, 35) % _U64(5) != 0).tolist()
            notes = _pick(names.NOTE_PHRASES, self._h(rid, 36))
            kinds = _pick(names.RECORD_TYPES, self._h(rid, 37))
            n = len(rid)
            yield (
                n,
                rows_text(
                    [
                        self._ids("health_records", rid),
                        self._ids("students", sid),
                        kinds,
                        [k.replace("_", " ").capitalize() for k in kinds],
                        _pick(names.NOTE_PHRASES, self._h(rid, 39)),
                        [f"{d} 10:00:00+00" for d in day.astype(str).tolist()],
                        _pick(providers, self._h(rid, 38)),
                        [d if k else NULL for d, k in zip(diag, has_diag, strict=True)],
                        _bools(self._h(rid, 34) % _U64(100) < 8),
                        [t if k else NULL for t, k in zip(notes, has_note, strict=True)],
                        *self._stamps(n),
                        np.where(
                            self._h(rid, 40) % _U64(200) == 0, "2026-10-01 12:00:00+00", NULL
                        ).tolist(),
                    ]
                ),
            )

    def _appointments(self) -> Iterator[tuple[int, bytes]]:
        school_days = 300
        for aid, sid in self._children(40, 1, 3):
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
                np.where(roll < 8, "COMPLETED", np.where(roll < 9, "CANCELLED", "NO_SHOW")),
                np.where(roll < 9, "SCHEDULED", "CANCELLED"),
            )
            recurring = (self._h(sid, 44) % _U64(20) == 0).tolist()
            groups = self._ids("groups", sid)
            n = len(aid)
            yield (
                n,
                rows_text(
                    [
                        self._ids("appointments", aid),
                        self._ids("students", sid),
                        self._ids("users", self.nurse_of(sid)),
                        _pick(APPOINTMENT_TYPES, self._h(aid, 47)),
                        [f"{t}+00" for t in at.astype(str).tolist()],
                        _ints(15 + (self._h(aid, 48) % _U64(3)).astype(np.int64) * 15),
                        status.tolist(),
                        _pick(names.NOTE_PHRASES, self._h(aid, 49)),
                        [g if r else NULL for g, r in zip(groups, recurring, strict=True)],
                        *self._stamps(n),
                        np.where(
                            self._h(aid, 50) % _U64(200) == 0, "2026-10-01 12:00:00+00", NULL
                        ).tolist(),
                    ]
                ),
            )

    def _contacts(self) -> Iterator[tuple[int, bytes]]:
        for cid, sid in self._children(50, 2, 1):
            first = cid % 2 == 0
            same_name = self._h(cid, 51) % _U64(10) < 7
            own = _pick(names.LAST_NAMES, self._h(cid, 52))
            family = self.last_name_of(sid)
            area = 201 + (self._h(cid, 53) % _U64(788)).astype(np.int64)
            line = (self._h(cid, 54) % _U64(100)).astype(np.int64)
            n = len(cid)
            yield (
                n,
                rows_text(
                    [
                        self._ids("emergency_contacts", cid),
                        self._ids("students", sid),
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
                        np.where(first, "PRIMARY", "SECONDARY").tolist(),
                        _bools(self._h(cid, 57) % _U64(20) != 0),
                        np.where(
                            self._h(cid, 58) % _U64(3) == 0, "VERIFIED", "UNVERIFIED"
                        ).tolist(),
                        *self._stamps(n),
                    ]
                ),
            )
