"""Charts for the coach dashboard: inline SVG made on the server, as strings.

Pure functions, no I/O. Every chart is readable without colour: each state has its
own symbol (a tick, a cross, a hatch, a ring, dots), every chart carries a `<title>`
and an `aria-label` that say in words what it shows, and each heatmap cell has its
own `<title>` ("Tue 3 Mar: done"), which browsers show on hover. Text is escaped.

- `sparkline`: completion rates of a few weeks, oldest first.
- `heatmap`: one practice's occurrences, weeks down and weekdays across.
- `strength_bar`: habit strength from 0 to 1.
- `swatch`: one heatmap state on its own, for a legend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from html import escape

GREEN = "#3f6b5c"
RUST = "#a4452c"
SAND = "#e8dcc0"
INK = "#2e2e2e"
MUTED = "#6b6b6b"
PALE = "#e4e0d6"
PAPER = "#ffffff"

# The states a heatmap cell can be in, in legend order, with what they are called.
STATES: dict[str, str] = {
    "done": "done",
    "skipped": "skipped",
    "missed": "missed",
    "pending": "pending (window open)",
    "excused": "not counted",
    "upcoming": "still to come",
}

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _text(value: str) -> str:
    """Text for an SVG element or attribute."""
    return escape(value, quote=True)


def _num(value: float) -> str:
    """A coordinate, short."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def day_label(day: date) -> str:
    """'Tue 3 Mar'."""
    return f"{WEEKDAYS[day.weekday()]} {day.day} {day:%b}"


def percent(rate: float | None) -> str:
    return "no decided check-ins" if rate is None else f"{round(rate * 100)}%"


# --- sparkline ---------------------------------------------------------------------


def sparkline(
    rates: Sequence[float | None],
    labels: Sequence[str],
    *,
    title: str = "Completion by week",
    width: int = 112,
    height: int = 34,
) -> str:
    """Completion rates (0..1, None for a week with nothing decided), oldest first, as a
    line with a marker per week: a filled dot for a rate, a small hollow square on the
    baseline for a week with none. `labels` name the weeks in the text alternative."""
    if len(labels) != len(rates):
        raise ValueError("one label per rate")
    words = ", ".join(f"{label} {percent(rate)}" for label, rate in zip(labels, rates, strict=True))
    summary = f"{title}: {words}" if rates else f"{title}: no weeks yet"
    pad = 5.0
    top, bottom = pad, height - pad
    step = (width - 2 * pad) / max(len(rates) - 1, 1)

    def y(rate: float) -> float:
        return bottom - (bottom - top) * min(max(rate, 0.0), 1.0)

    parts = [
        # the 0% and 100% lines, faint: where the line sits means something
        f'<line x1="{_num(pad)}" y1="{_num(bottom)}" x2="{_num(width - pad)}" '
        f'y2="{_num(bottom)}" stroke="{PALE}" stroke-width="1"/>',
        f'<line x1="{_num(pad)}" y1="{_num(top)}" x2="{_num(width - pad)}" y2="{_num(top)}" '
        f'stroke="{PALE}" stroke-width="1" stroke-dasharray="2 3"/>',
    ]
    run: list[str] = []
    runs: list[list[str]] = []
    for index, rate in enumerate(rates):
        if rate is None:
            if run:
                runs.append(run)
            run = []
            continue
        run.append(f"{_num(pad + index * step)},{_num(y(rate))}")
    if run:
        runs.append(run)
    for points in runs:
        if len(points) > 1:
            parts.append(
                f'<polyline points="{" ".join(points)}" fill="none" stroke="{GREEN}" '
                'stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>'
            )
    for index, (label, rate) in enumerate(zip(labels, rates, strict=True)):
        x = pad + index * step
        if rate is None:
            parts.append(
                f'<rect x="{_num(x - 3)}" y="{_num(bottom - 3)}" width="6" height="6" '
                f'fill="{PAPER}" stroke="{MUTED}" stroke-width="1.2">'
                f"<title>{_text(label)}: {_text(percent(rate))}</title></rect>"
            )
        else:
            parts.append(
                f'<circle cx="{_num(x)}" cy="{_num(y(rate))}" r="3.2" fill="{GREEN}" '
                f'stroke="{PAPER}" stroke-width="1"><title>{_text(label)}: '
                f"{_text(percent(rate))}</title></circle>"
            )
    return (
        f'<svg class="chart sparkline" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_text(summary)}"><title>{_text(summary)}</title>{"".join(parts)}</svg>'
    )


# --- heatmap -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cell:
    """One occurrence on one local date: its state (a key of STATES) and, optionally,
    a few words more (a rating, a number) for its title."""

    day: date
    state: str
    note: str | None = None

    @property
    def words(self) -> str:
        said = STATES.get(self.state, self.state)
        return f"{day_label(self.day)}: {said}" + (f", {self.note}" if self.note else "")


CELL = 26
GAP = 4
LEFT = 46  # room for the week labels
HEAD = 18  # room for the weekday letters


def _symbol(state: str, x: float, y: float, size: float) -> str:
    """The cell's square and its symbol, for a cell at (x, y)."""
    s = size
    if state == "done":
        tick = (
            f"M{_num(x + s * 0.25)},{_num(y + s * 0.52)} L{_num(x + s * 0.43)},"
            f"{_num(y + s * 0.70)} L{_num(x + s * 0.76)},{_num(y + s * 0.32)}"
        )
        return (
            f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(s)}" height="{_num(s)}" rx="4" '
            f'fill="{GREEN}"/><path d="{tick}" fill="none" stroke="{PAPER}" '
            'stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round"/>'
        )
    if state == "missed":
        a, b = s * 0.3, s * 0.7
        cross = (
            f"M{_num(x + a)},{_num(y + a)} L{_num(x + b)},{_num(y + b)} "
            f"M{_num(x + b)},{_num(y + a)} L{_num(x + a)},{_num(y + b)}"
        )
        return (
            f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(s)}" height="{_num(s)}" rx="4" '
            f'fill="{RUST}"/><path d="{cross}" stroke="{PAPER}" stroke-width="2.6" '
            'stroke-linecap="round"/>'
        )
    if state == "skipped":
        # diagonal hatching, drawn inside the square (no pattern ids to collide)
        lines = []
        for c in (s * 0.33, s * 0.66, s, s * 1.33, s * 1.66):
            if c <= s:
                x1, y1, x2, y2 = x, y + c, x + c, y
            else:
                x1, y1, x2, y2 = x + c - s, y + s, x + s, y + c - s
            lines.append(f"M{_num(x1)},{_num(y1)} L{_num(x2)},{_num(y2)}")
        return (
            f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(s)}" height="{_num(s)}" rx="4" '
            f'fill="{SAND}" stroke="#8a7a52" stroke-width="1"/>'
            f'<path d="{" ".join(lines)}" stroke="#8a7a52" stroke-width="1.2"/>'
        )
    if state == "pending":
        dots = "".join(
            f'<circle cx="{_num(x + s * f)}" cy="{_num(y + s / 2)}" r="1.8" fill="{GREEN}"/>'
            for f in (0.3, 0.5, 0.7)
        )
        return (
            f'<rect x="{_num(x + 1)}" y="{_num(y + 1)}" width="{_num(s - 2)}" '
            f'height="{_num(s - 2)}" rx="4" fill="{PAPER}" stroke="{GREEN}" stroke-width="1.6" '
            f'stroke-dasharray="3 2"/>{dots}'
        )
    if state == "excused":
        return (
            f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(s)}" height="{_num(s)}" rx="4" '
            f'fill="{PALE}"/><circle cx="{_num(x + s / 2)}" cy="{_num(y + s / 2)}" r="4" '
            f'fill="none" stroke="{MUTED}" stroke-width="1.4"/>'
        )
    # upcoming (or anything unknown): an empty outline
    return (
        f'<rect x="{_num(x + 1)}" y="{_num(y + 1)}" width="{_num(s - 2)}" '
        f'height="{_num(s - 2)}" rx="4" fill="{PAPER}" stroke="#c9c3b5" stroke-width="1"/>'
    )


def heatmap(cells: Sequence[Cell], *, title: str, today: date | None = None) -> str:
    """A calendar of one practice: a row per week (Monday first), a column per weekday,
    a cell per occurrence with its state's symbol and a `<title>`; days without an
    occurrence stay empty, today is ringed. The label sums the states up in words."""
    counts: dict[str, int] = {}
    for cell in cells:
        counts[cell.state] = counts.get(cell.state, 0) + 1
    said = ", ".join(f"{counts[s]} {STATES[s]}" for s in STATES if counts.get(s))
    summary = f"{title}: {said}" if cells else f"{title}: nothing scheduled yet"
    if not cells:
        return (
            f'<svg class="chart heatmap" xmlns="http://www.w3.org/2000/svg" width="{LEFT}" '
            f'height="{HEAD}" viewBox="0 0 {LEFT} {HEAD}" role="img" '
            f'aria-label="{_text(summary)}"><title>{_text(summary)}</title></svg>'
        )
    first = min(c.day for c in cells)
    last = max(c.day for c in cells)
    monday = first - timedelta(days=first.weekday())
    weeks = (last - monday).days // 7 + 1
    width = LEFT + 7 * (CELL + GAP)
    height = HEAD + weeks * (CELL + GAP)
    parts = []
    for index, name in enumerate(WEEKDAYS):
        x = LEFT + index * (CELL + GAP) + CELL / 2
        parts.append(
            f'<text x="{_num(x)}" y="12" text-anchor="middle" font-size="11" '
            f'fill="{MUTED}" aria-hidden="true">{name[:2]}</text>'
        )
    for week in range(weeks):
        start = monday + timedelta(days=7 * week)
        y = HEAD + week * (CELL + GAP) + CELL / 2 + 4
        parts.append(
            f'<text x="{LEFT - 6}" y="{_num(y)}" text-anchor="end" font-size="11" '
            f'fill="{MUTED}" aria-hidden="true">{start.day} {start:%b}</text>'
        )
    for cell in sorted(cells, key=lambda c: c.day):
        offset = (cell.day - monday).days
        x = LEFT + (offset % 7) * (CELL + GAP)
        y = HEAD + (offset // 7) * (CELL + GAP)
        ring = ""
        if today is not None and cell.day == today:
            ring = (
                f'<rect x="{_num(x - 2)}" y="{_num(y - 2)}" width="{CELL + 4}" '
                f'height="{CELL + 4}" rx="5" fill="none" stroke="{INK}" stroke-width="1.5"/>'
            )
        parts.append(
            f'<g class="cell {_text(cell.state)}" data-state="{_text(cell.state)}" '
            f'data-day="{cell.day.isoformat()}"><title>{_text(cell.words)}</title>'
            f"{_symbol(cell.state, x, y, CELL)}{ring}</g>"
        )
    return (
        f'<svg class="chart heatmap" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_text(summary)}"><title>{_text(summary)}</title>{"".join(parts)}</svg>'
    )


def swatch(state: str, size: int = 18) -> str:
    """One state's symbol on its own (for a legend beside its name); decorative."""
    return (
        f'<svg class="swatch" xmlns="http://www.w3.org/2000/svg" width="{size}" '
        f'height="{size}" viewBox="0 0 {CELL} {CELL}" aria-hidden="true" focusable="false">'
        f"{_symbol(state, 0, 0, CELL)}</svg>"
    )


# --- strength ----------------------------------------------------------------------


def strength_bar(strength: float, *, title: str = "Habit strength", width: int = 120) -> str:
    """A bar from 0 to 1 with the strength filled in, ticks at quarters and the value
    in words."""
    value = min(max(strength, 0.0), 1.0)
    height = 14
    summary = f"{title}: {value:.2f} of 1"
    ticks = "".join(
        f'<line x1="{_num(width * q)}" y1="0" x2="{_num(width * q)}" y2="{height}" '
        f'stroke="{PAPER}" stroke-width="1.5"/>'
        for q in (0.25, 0.5, 0.75)
    )
    return (
        f'<svg class="chart strength" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_text(summary)}"><title>{_text(summary)}</title>'
        f'<rect x="0" y="0" width="{width}" height="{height}" rx="3" fill="{PALE}"/>'
        f'<rect x="0" y="0" width="{_num(width * value)}" height="{height}" rx="3" '
        f'fill="{GREEN}"/>{ticks}'
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" rx="3" fill="none" '
        f'stroke="{MUTED}" stroke-width="1"/></svg>'
    )
