"""`wcperf cache`: what the query cache holds and does, and flushing it."""

from __future__ import annotations

import redis as redis_lib
import typer

from wcperf.cache.inventory import check_kind, delete_entries, inventory
from wcperf.cache.keys import TTL_S
from wcperf.cli.context import announce, err, out, redis_endpoint, settings_for
from wcperf.cli.render import emit_json, table
from wcperf.errors import ConnectError
from wcperf.observe.collect import published
from wcperf.observe.snapshot import CacheFigures, merge

app = typer.Typer(no_args_is_help=True)  # its help: wcperf.cli.commands


def _client(ctx: typer.Context) -> tuple[redis_lib.Redis, str]:
    endpoint = redis_endpoint(ctx, "cache")
    announce(ctx, endpoint)
    if endpoint.url is None:
        raise ConnectError(f"no Redis to inspect: {endpoint.note}")
    client = redis_lib.Redis.from_url(endpoint.url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis_lib.RedisError as exc:
        raise ConnectError(f"cannot reach Redis: {type(exc).__name__}") from None
    return client, endpoint.url


@app.command()
def stats(ctx: typer.Context, json_out: bool = typer.Option(False, "--json")) -> None:
    """Entries per kind in Redis, and the hit/miss figures working processes publish."""
    settings = settings_for(ctx, "cache")
    client, _ = _client(ctx)
    try:
        held = inventory(client, settings.redis_prefix)
        snaps = published(client, settings.redis_prefix)
    finally:
        client.close()
    cache = merge(snaps, 0).cache or CacheFigures()
    if json_out:
        emit_json(
            {
                "redis": held,
                "published": cache.serialize(),
                "publishers": len(snaps),
                "ttl_s": TTL_S,
            }
        )
        return
    out.print(
        table(
            "cache entries in Redis",
            ["kind", "keys", "bytes", "ttl s"],
            [
                [k, f"{v['keys']:,}", f"{v['bytes']:,}", TTL_S.get(k, "-")]
                for k, v in sorted(held.items())
            ]
            or [["(empty)", 0, 0, "-"]],
        )
    )
    rows = []
    for name, t in cache.tiers.items():
        lookups = t.hits + t.misses
        rows.append(
            [
                name,
                f"{t.hits:,}",
                f"{t.misses:,}",
                f"{100 * t.hits / lookups:.0f} %" if lookups else "-",
                f"{t.errors:,}",
            ]
        )
    out.print(
        table(
            f"published by {len(snaps)} working process(es)",
            ["tier", "hits", "misses", "hit rate", "errors"],
            rows or [["(no process publishing cache figures)", "", "", "", ""]],
        )
    )


@app.command()
def flush(
    ctx: typer.Context,
    prefix: str | None = typer.Option(
        None, "--prefix", metavar="KIND", help="Only entries of this kind, e.g. student_detail."
    ),
    yes: bool = typer.Option(False, "--yes", help="Really delete."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go; delete nothing."),
) -> None:
    """Delete cache entries in Redis (and tell every process to drop its L1 copies)."""
    kind = check_kind(prefix)
    settings = settings_for(ctx, "cache")
    client, url = _client(ctx)
    try:
        held = inventory(client, settings.redis_prefix, kind)
    finally:
        client.close()
    count = sum(v["keys"] for v in held.values())
    what = f"{count:,} entries" + (f" of kind {kind}" if kind else "")
    if dry_run:
        out.print(f"would delete {what}")
        return
    if not yes:
        raise typer.BadParameter(
            f"this deletes {what}; add --yes (or --dry-run to count)", param_hint="--yes"
        )
    client = redis_lib.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        deleted = delete_entries(client, settings.redis_prefix, kind)
    finally:
        client.close()
    err.print(f"deleted {deleted:,} entries" + (f" of kind {kind}" if kind else ""))
