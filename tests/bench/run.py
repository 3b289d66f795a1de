"""`make bench`: every benchmark in turn; figures on stdout and in bench-results/."""

from __future__ import annotations

from tests.bench import bench_migrate, bench_seed


def main() -> None:
    print("== seed: wcperf seed vs. INSERT ... SELECT generate_series ==")
    bench_seed.main([])
    print("\n== migrate: online index build vs. plain builds, writer, verify --compare ==")
    bench_migrate.main([])


if __name__ == "__main__":
    main()
