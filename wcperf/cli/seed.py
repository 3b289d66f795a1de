"""`wcperf seed`: load a deterministic synthetic district into the platform's schema."""

from __future__ import annotations

from enum import StrEnum

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from wcperf import limits
from wcperf.cli.context import err, out, postgres
from wcperf.cli.render import emit_json, table
from wcperf.errors import ConfigError
from wcperf.seed.district import SCALES, District
from wcperf.seed.load import Mode
from wcperf.seed.load import seed as load_district


class Scale(StrEnum):
    small = "small"
    medium = "medium"
    large = "large"


def seed(
    ctx: typer.Context,
    scale: Scale = typer.Option(
        Scale.small, help="small ≈ 5 k students, medium ≈ 100 k, large ≈ 1 M."
    ),
    students: int | None = typer.Option(
        None, min=1, max=limits.MAX_STUDENTS, help="Exact number of students (overrides --scale)."
    ),
    random_seed: int = typer.Option(42, min=0, max=2**63 - 1, help="Same seed, same district."),
    append: bool = typer.Option(
        False, "--append", help="Add a district beside one wcperf seeded here before."
    ),
    replace: bool = typer.Option(
        False, "--replace", help="Empty the district wcperf seeded here first (only that)."
    ),
    sync_shape: bool = typer.Option(
        False,
        "--with-performance-indexes",
        help="Create the schema as the platform's sync() leaves it, with the 14 indexes "
        "(default: as a production database before `wcperf migrate`).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print what would be loaded; write nothing."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Seed a synthetic district: schools, nurses, students and their records (no real people).

    Into a database without the platform's tables it creates them from wcperf's copy of
    the platform's schema; into the platform's empty tables it only loads. Data wcperf
    did not seed is never touched: --append and --replace act only beside or on a
    district wcperf seeded (exit 2 otherwise, nothing written). Runs in one
    transaction: interrupted, it leaves nothing and can be run again.
    """
    if append and replace:
        raise ConfigError("--append and --replace exclude each other")
    mode: Mode = "append" if append else "replace" if replace else "new"
    # An appended district shares the medication catalogue already there.
    count = students or SCALES[scale.value]
    district = District(count, random_seed, seed_medications=not append)
    if dry_run:
        plan = {t.name: t.estimate for t in district.tables()}
        if json_out:
            emit_json({"dry_run": True, "mode": mode, "estimated_rows": plan})
        else:
            out.print(
                table(
                    f"would seed ({mode}, estimates)",
                    ["table", "rows"],
                    [[k, f"{v:,}"] for k, v in plan.items()],
                )
            )
        return
    url, settings = postgres(ctx, "seed", create=not dry_run)
    estimate = sum(t.estimate for t in district.tables())
    with Progress(
        TextColumn("[bold]{task.description:<20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=json_out or not err.is_terminal,
    ) as bar:
        task = bar.add_task("seeding", total=estimate)

        def progress(name: str, rows: int, _total: int) -> None:
            if rows == 0:  # loading is over: keys and statistics follow
                done = bar.tasks[0].completed
                bar.update(task, total=done, description=name)
            else:
                bar.update(task, advance=rows, description=name)

        result = load_district(
            url,
            count,
            random_seed,
            mode=mode,
            progress=progress,
            application_name=settings.application_name,
            performance_indexes=sync_shape,
        )
    if json_out:
        emit_json(
            {
                "mode": result.mode,
                "students": result.students,
                "random_seed": result.random_seed,
                "rows": result.rows,
                "created_schema": result.created_schema,
                "seconds": round(result.seconds, 3),
            }
        )
        return
    err.print(
        f"seeded ({mode}) {result.total_rows:,} rows in {result.seconds:.1f} s "
        f"({result.total_rows / result.seconds:,.0f} rows/s)"
    )
    out.print(
        table(
            "district rows added",
            ["table", "rows"],
            [[k, f"{v:,}"] for k, v in result.rows.items()],
        )
    )
