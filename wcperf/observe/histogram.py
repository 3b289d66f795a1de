"""Latency histograms: HDR at microsecond resolution, mergeable exactly across processes."""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
SIGNIFICANT_DIGITS = 3  # values within 0.1 %


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def record_all(histogram: HdrHistogram, durations_us: list[int]) -> None:
    for us in durations_us:
        histogram.record_value(min(max(us, LOWEST_US), HIGHEST_US))


def encode(histogram: HdrHistogram) -> str:
    return str(histogram.encode().decode("ascii"))


def decode(text: str) -> HdrHistogram:
    merged = new_histogram()
    if text:
        merged.add(HdrHistogram.decode(text.encode("ascii")))
    return merged


def merge(encoded: list[str]) -> HdrHistogram:
    merged = new_histogram()
    for text in encoded:
        if text:
            merged.add(HdrHistogram.decode(text.encode("ascii")))
    return merged


def percentile_ms(histogram: HdrHistogram, pct: float) -> float:
    if histogram.get_total_count() == 0:
        return 0.0
    return float(histogram.get_value_at_percentile(pct)) / 1000.0


def counts(histogram: HdrHistogram) -> dict[int, int]:
    """Recorded values (each bucket's highest equivalent value) and their counts."""
    return {
        i.value_iterated_to: i.count_at_value_iterated_to for i in histogram.get_recorded_iterator()
    }


def window(now: dict[int, int], before: dict[int, int]) -> dict[int, int]:
    """What a cumulative histogram recorded between two readings of it."""
    return {v: n - before.get(v, 0) for v, n in now.items() if n > before.get(v, 0)}


def counts_percentile(values: dict[int, int], pct: float) -> int:
    """The value at `pct` of a bucket -> count map, as HdrHistogram computes it."""
    total = sum(values.values())
    if total == 0:
        return 0
    rank = max(1, int(pct / 100 * total + 0.5))
    seen = 0
    for value in sorted(values):
        seen += values[value]
        if seen >= rank:
            return value
    return max(values)


def from_counts(values: dict[int, int]) -> HdrHistogram:
    histogram = new_histogram()
    for value, n in values.items():
        histogram.record_value(min(max(value, LOWEST_US), HIGHEST_US), n)
    return histogram
