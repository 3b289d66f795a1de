"""`wcperf monitor live` on a terminal: a full-screen program (Textual).

It only draws: `fetch` is the collection (wcperf.observe.collect) and runs in a
worker thread, `points` gives the shared history and `explain` a statement's
generic plan, so the same screen can be driven by tests with Textual's pilot.
Tables scroll inside themselves and never wrap a cell, so a number is never split
and any terminal from 80x24 up shows every table.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.coordinate import Coordinate
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import (
    DataTable,
    Footer,
    Input,
    Sparkline,
    Static,
    TabbedContent,
    TabPane,
)

from wcperf.errors import error_cause
from wcperf.observe.snapshot import MinutePoint, Snapshot
from wcperf.redact import text as inert
from wcperf.views.grids import GRIDS, LAST_MINUTE, SINCE_START, Grid, Row

Fetch = Callable[[], Snapshot]
W = TypeVar("W", bound=Widget)
Points = Callable[[], list[MinutePoint]]
Explain = Callable[[str], str]

HELP = """\
wcperf monitor: keys

  1-8        show a tab (pools, queries, server log, sessions,
             pg_stat_statements, cache and jobs, alerts, trends)
  tab        the next tab
  up/down    move in a table; pgup/pgdn, home/end scroll it
  left/right scroll a wide table
  enter      a statement's drill-down: its full SQL, percentiles
             over the history, call sites or applications, and
             its generic plan (PostgreSQL 16+)
  s / S      sort the table by the next column / reverse the order
  /          filter every table by text; escape clears it
  w          switch last minute / since start
  p          pause or resume the refresh
  r          refresh now
  ?          this help
  q          quit (the terminal is restored)
"""

TREND_FIGURES = (
    ("p95_ms", "P95 ms, wcperf's statements"),
    ("p99_ms", "P99 ms, wcperf's statements"),
    ("server_p95_ms", "P95 ms, the server's log"),
    ("pool_utilisation_pct", "pool use %"),
    ("cache_hit_pct", "cache hit %"),
    ("connections_pct", "server connections %"),
    ("lock_waits", "sessions waiting on locks"),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss", "close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    #help { width: 66; max-width: 100%; height: auto; max-height: 100%;
            border: round $accent; padding: 0 1; background: $panel; }
    """

    def compose(self) -> ComposeResult:
        yield VerticalScroll(Static(HELP, id="help-text"), id="help")


class DrillDown(ModalScreen[None]):
    """One statement: everything the monitor knows of it, by its fingerprint."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "dismiss", "close")]
    DEFAULT_CSS = """
    DrillDown { align: center middle; }
    #drill { width: 100%; height: 100%; border: round $accent; padding: 0 1;
             background: $panel; }
    .heading { text-style: bold; margin-top: 1; }
    #sql { border: tall $primary-background; }
    Sparkline { height: 2; margin-bottom: 1; }
    """

    def __init__(
        self, fingerprint: str, snap: Snapshot, points: list[MinutePoint], explain: Explain | None
    ) -> None:
        super().__init__()
        self.fingerprint, self.snap, self.points, self.explain = fingerprint, snap, points, explain

    def _statement(self) -> tuple[str, str | None]:
        s = self.snap
        for q in s.queries:
            if q.fingerprint == self.fingerprint:
                return q.normalized, q.table
        for sq in s.server_log.queries if s.server_log else []:
            if sq.fingerprint == self.fingerprint:
                return sq.normalized, sq.table
        for st in s.database.statements if s.database else []:
            if st.fingerprint == self.fingerprint:
                return st.query, None
        return "", None

    def compose(self) -> ComposeResult:
        sql, table = self._statement()
        s, fp = self.snap, self.fingerprint
        with VerticalScroll(id="drill"):
            yield Static(Text(f"statement {fp}" + (f" on {table}" if table else ""), "bold"))
            yield Static(inert(sql or "(its text is no longer in the snapshot)"), id="sql")
            figures = []
            for q in s.queries:
                if q.fingerprint == fp:
                    figures.append(
                        f"wcperf's processes, since start: {q.count:,} runs, {q.errors:,} "
                        f"errors; P50 {q.p(50):.2f} · P95 {q.p(95):.2f} · P99 {q.p(99):.2f} · "
                        f"max {q.max_us / 1000:.2f} ms"
                    )
            for q in s.recent.queries if s.recent else []:
                if q.fingerprint == fp and q.count:
                    figures.append(
                        f"last {s.recent.window_s:g} s: {q.count:,} runs; "  # type: ignore[union-attr]
                        f"P95 {q.p(95):.2f} · P99 {q.p(99):.2f} ms"
                    )
            yield Static("figures", classes="heading")
            yield Static(inert("\n".join(figures) or "not run by wcperf's processes"))
            history = [p.queries[fp] for p in self.points if fp in p.queries]
            yield Static(
                f"P95 per minute over the history ({len(history)} minutes)", classes="heading"
            )
            if history:
                yield Sparkline([h[2] for h in history], id="history")
                yield Static(
                    f"min {min(h[2] for h in history):.2f} ms · "
                    f"max {max(h[2] for h in history):.2f} ms · now {history[-1][2]:.2f} ms"
                )
            else:
                yield Static("no minute of history holds it yet (busiest 20 are kept)")
            yield Static("call sites and applications", classes="heading")
            yield Static(inert("\n".join(self._where()) or "none seen"))
            yield Static("generic plan", classes="heading")
            yield Static("asking the server…", id="plan")

    def _where(self) -> list[str]:
        s, fp, lines = self.snap, self.fingerprint, []
        for n in s.n_plus_one:
            if n.fingerprint == fp:
                lines.append(f"N+1 from {n.call_site}: {n.count} times in {n.window_s:g} s")
        sites = {sq.source for sq in s.slow if sq.fingerprint == fp and sq.source}
        lines += [f"slow runs from process {src}" for src in sorted(sites)]
        for q in s.server_log.queries if s.server_log else []:
            if q.fingerprint == fp:
                lines.append(f"application {q.application}: {q.count:,} runs, P95 {q.p(95):.2f} ms")
        for n in s.server_log.n_plus_one if s.server_log else []:
            if n.fingerprint == fp:
                lines.append(f"N+1 in one session of {n.application}: {n.count} times")
        return lines

    def on_mount(self) -> None:
        sql, _ = self._statement()
        if self.explain is None or not sql:
            self.query_one("#plan", Static).update("no database connection to plan it on")
            return
        self._plan(sql)

    @work(thread=True, exclusive=True)
    def _plan(self, sql: str) -> None:
        assert self.explain is not None
        try:
            plan = self.explain(sql)
        except Exception as exc:  # the reason, never a value: wcperf errors say why
            plan = f"no plan: {exc}"
        with contextlib.suppress(Exception):  # closed before the server answered
            self.app.call_from_thread(self._show_plan, plan)

    def _show_plan(self, plan: str) -> None:
        if self.is_attached:
            self.query_one("#plan", Static).update(inert(plan))


class MonitorApp(App[None]):
    TITLE = "wcperf monitor"
    CSS = """
    Screen { overflow: hidden; }
    #tabs { height: 1fr; }
    #status { height: 1; background: $primary-background; padding: 0 1; }
    #filter { display: none; height: 3; }
    #filter.shown { display: block; }
    DataTable { height: 1fr; }
    .note { height: auto; color: $text-muted; padding: 0 1; }
    .trend-label { width: 34; }
    .trend { height: 2; }
    Sparkline { width: 1fr; height: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("question_mark", "help", "help"),
        Binding("p", "pause", "pause"),
        Binding("w", "window", "window"),
        Binding("s", "sort", "sort"),
        Binding("S", "sort_reverse", "reverse", show=False),
        Binding("slash", "filter", "filter"),
        Binding("escape", "clear_filter", "clear", show=False),
        Binding("r", "refresh_now", "refresh", show=False),
        Binding("tab", "next_tab", "next tab", show=False, priority=True),
        *(Binding(str(i + 1), f"tab({i})", show=False) for i in range(8)),
    ]

    def __init__(
        self,
        fetch: Fetch,
        interval_s: float = 1.0,
        *,
        points: Points | None = None,
        explain: Explain | None = None,
    ) -> None:
        super().__init__()
        self.fetch, self.interval_s = fetch, interval_s
        self.points_of, self.explain = points, explain
        self.paused = False
        self.mode = LAST_MINUTE
        self.needle = ""
        self.snap: Snapshot | None = None
        self.grids: dict[str, Grid] = {}
        self.sorting: dict[str, tuple[int, bool]] = {}  # grid -> (column, reverse)
        self.refreshes = 0
        self.reading = False
        self.error = ""
        self._tabs = [g(Snapshot(taken_at=0), self.mode) for g in GRIDS]

    def _q(self, selector: str, kind: type[W]) -> W:
        """From the main screen, even while a help or drill-down screen is on top."""
        return self.screen_stack[0].query_one(selector, kind)

    # -- layout ---------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("wcperf monitor · reading…", id="status")
        yield Input(
            placeholder="filter: text in any column; enter keeps it, escape clears", id="filter"
        )
        with TabbedContent(id="tabs"):
            for g in self._tabs:
                with TabPane(g.name, id=f"tab-{g.name}"):
                    yield Static("", id=f"note-{g.name}", classes="note")
                    table: DataTable[Any] = DataTable(
                        id=f"grid-{g.name}", cursor_type="row", zebra_stripes=True
                    )
                    yield table
            with TabPane("trends", id="tab-trends"):
                yield Static("", id="note-trends", classes="note")
                with VerticalScroll():
                    for figure, label in TREND_FIGURES:
                        with Horizontal(classes="trend"):
                            yield Static(label, classes="trend-label")
                            yield Sparkline([], id=f"spark-{figure}")
        yield Footer()

    def on_mount(self) -> None:
        for g in self._tabs:
            table = self._q(f"#grid-{g.name}", DataTable)
            for i, c in enumerate(g.columns):
                table.add_column(c.label, key=str(i))
        self._q("#filter", Input).disabled = True  # focusable only when shown
        self._focus_table()
        self.action_refresh_now()
        self.set_interval(self.interval_s, self._tick)

    # -- data -----------------------------------------------------------------------
    def _tick(self) -> None:
        if not self.paused:
            self.action_refresh_now()

    def action_refresh_now(self) -> None:
        if not self.reading:  # a slow reading is not stacked under the next one
            self.reading = True
            self._read()

    @work(thread=True, group="read")
    def _read(self) -> None:
        try:
            snap = self.fetch()
            error = ""
        except Exception as exc:  # the servers went away: keep the last figures, say so
            snap, error = None, f"cannot read ({error_cause(exc)}): the last figures stay"
        with contextlib.suppress(RuntimeError):  # the app closed meanwhile
            self.call_from_thread(self._show, snap, error)

    def _show(self, snap: Snapshot | None, error: str) -> None:
        self.reading = False
        self.error = error
        if snap is not None:
            self.snap = snap
            self.refreshes += 1
        self._draw()

    def _draw(self) -> None:
        snap = self.snap
        if snap is None:
            self._status()
            return
        for make in GRIDS:
            grid = make(snap, self.mode)
            self.grids[grid.name] = grid
        self._fill_shown()
        self._trends(snap)
        self._status()

    def _fill_shown(self) -> None:
        """Only the table on screen is redrawn; another is filled when its tab opens."""
        grid = self.grids.get(self._current())
        if grid is not None:
            self._fill(grid)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._fill_shown()

    def _fill(self, grid: Grid) -> None:
        table = self._q(f"#grid-{grid.name}", DataTable)
        keep = None
        if table.row_count and table.cursor_row >= 0:
            try:
                keep = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
            except Exception:
                keep = None
        rows = grid.filtered(self.needle)
        column, reverse = self.sorting.get(grid.name, (-1, False))
        if column >= 0:
            numeric = grid.columns[column].numeric

            def by(r: Row) -> Any:
                v = r.values[column]
                if numeric:
                    return (v is not None, v if v is not None else 0)
                return str(v).lower()

            rows = sorted(rows, key=by, reverse=reverse)
        table.clear()
        for r in rows:
            cells = [
                Text(c.show(v), justify="right", no_wrap=True)
                if c.numeric
                else Text(_one_line(c.show(v)), no_wrap=True, overflow="ellipsis")
                for c, v in zip(grid.columns, r.values, strict=True)
            ]
            table.add_row(*cells, key=r.key)
        if keep is not None:
            with contextlib.suppress(Exception):  # the row is gone, or filtered out
                table.move_cursor(row=table.get_row_index(keep))
        note = grid.note
        shown = f"{len(rows):,} of {len(grid.rows):,} rows" if self.needle else ""
        self._q(f"#note-{grid.name}", Static).update(
            inert(" · ".join(p for p in (grid.title, shown, note) if p))
        )

    def _trends(self, snap: Snapshot) -> None:
        for figure, _ in TREND_FIGURES:
            values = [p.figures.get(figure) for p in snap.history]
            known = [float(v) for v in values if v is not None]
            self._q(f"#spark-{figure}", Sparkline).data = known
        said = [f"{t.figure} {t.trend}" for t in snap.trends.values() if t.trend != "unknown"]
        self._q("#note-trends", Static).update(
            inert(
                f"{len(snap.history)} minutes of shared history"
                + (" · " + ", ".join(said) if said else "")
                + (f" · rule: {snap.trend_rule}" if snap.trend_rule else "")
            )
        )

    def _status(self) -> None:
        parts = ["wcperf monitor"]
        if self.snap is not None:
            parts.append(time.strftime("%H:%M:%S", time.localtime(self.snap.taken_at)))
            kinds = sorted({s.label for s in self.snap.sources})
            parts.append(f"{len(self.snap.sources)} process(es): {', '.join(kinds) or 'none'}")
            critical = sum(a.severity == "critical" for a in self.snap.alerts)
            if self.snap.alerts:
                parts.append(f"{len(self.snap.alerts)} alert(s), {critical} critical")
        parts.append(self.mode)
        if self.paused:
            parts.append("PAUSED")
        if self.needle:
            parts.append(f"filter {self.needle!r}")
        if self.error:
            parts.append(self.error)
        self._q("#status", Static).update(inert(" · ".join(parts)))

    # -- keys -----------------------------------------------------------------------
    def _current(self) -> str:
        active = self._q("#tabs", TabbedContent).active or ""
        return active.removeprefix("tab-")

    def action_tab(self, index: int) -> None:
        names = [g.name for g in self._tabs] + ["trends"]
        if 0 <= index < len(names):
            self._q("#tabs", TabbedContent).active = f"tab-{names[index]}"
            self._focus_table()

    def action_next_tab(self) -> None:
        names = [g.name for g in self._tabs] + ["trends"]
        current = self._current()
        i = names.index(current) if current in names else -1
        self.action_tab((i + 1) % len(names))

    def _focus_table(self) -> None:
        name = self._current()
        if name in self.grids or name in {g.name for g in self._tabs}:
            self._q(f"#grid-{name}", DataTable).focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_pause(self) -> None:
        self.paused = not self.paused
        self._status()

    def action_window(self) -> None:
        self.mode = SINCE_START if self.mode == LAST_MINUTE else LAST_MINUTE
        self._draw()

    def _sort(self, reverse_only: bool) -> None:
        name = self._current()
        grid = self.grids.get(name)
        if grid is None:
            return
        column, reverse = self.sorting.get(name, (-1, False))
        if reverse_only:
            self.sorting[name] = (max(column, 0), not reverse)
        else:
            column = (column + 1) % len(grid.columns)
            self.sorting[name] = (column, grid.columns[column].numeric)  # numbers: big first
        self._fill(grid)
        c, r = self.sorting[name]
        self.notify(
            f"{name}: sorted by {grid.columns[c].label}, {'descending' if r else 'ascending'}"
        )

    def action_sort(self) -> None:
        self._sort(False)

    def action_sort_reverse(self) -> None:
        self._sort(True)

    def action_filter(self) -> None:
        box = self._q("#filter", Input)
        box.disabled = False
        box.add_class("shown")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.needle = event.value.strip()
        self._fill_shown()
        self._status()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not self.needle:
            event.input.remove_class("shown")
            event.input.disabled = True
        self._focus_table()

    def action_clear_filter(self) -> None:
        box = self._q("#filter", Input)
        box.value = ""
        box.remove_class("shown")
        box.disabled = True
        self.needle = ""
        self._fill_shown()
        self._status()
        self._focus_table()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        name = (event.data_table.id or "").removeprefix("grid-")
        grid = self.grids.get(name)
        if grid is None or self.snap is None:
            return
        row = next((r for r in grid.rows if r.key == event.row_key.value), None)
        if row is None or not row.fingerprint:
            self.notify("this row is not a statement: Enter opens statements")
            return
        points = []
        if self.points_of is not None:
            try:
                points = self.points_of()
            except Exception:
                points = []
        self.push_screen(DrillDown(row.fingerprint, self.snap, points, self.explain))


def _one_line(value: str) -> str:
    return " ".join(value.split())
