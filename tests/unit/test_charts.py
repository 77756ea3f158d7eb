"""The dashboard's charts: well-formed SVG, said in words, readable without colour."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from service.web.charts import (
    STATES,
    Cell,
    day_label,
    heatmap,
    sparkline,
    strength_bar,
    swatch,
)

SVG = "{http://www.w3.org/2000/svg}"
LABELS = ("3 weeks ago", "2 weeks ago", "last week", "past 7 days")


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # raises on anything that is not well-formed XML


def titles(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}title")]


# --- sparkline -----------------------------------------------------------------------


def test_a_sparkline_says_every_week_in_words() -> None:
    root = parse(sparkline([0.5, 1.0, None, 0.25], LABELS))
    label = "Completion by week: 3 weeks ago 50%, 2 weeks ago 100%, last week no decided " \
        "check-ins, past 7 days 25%"  # fmt: skip
    assert root.get("role") == "img"
    assert root.get("aria-label") == label
    assert titles(root)[0] == label
    # A marker per week, each with its own title: dots for rates, a square for none.
    assert len(list(root.iter(f"{SVG}circle"))) == 3
    squares = list(root.iter(f"{SVG}rect"))
    assert len(squares) == 1
    assert titles(root)[1:] == [
        "3 weeks ago: 50%",
        "2 weeks ago: 100%",
        "last week: no decided check-ins",
        "past 7 days: 25%",
    ]


def test_a_week_without_a_rate_breaks_the_line() -> None:
    root = parse(sparkline([0.5, 1.0, None, 0.25], LABELS))
    lines = list(root.iter(f"{SVG}polyline"))
    assert len(lines) == 1  # 0.5 -> 1.0; 0.25 stands alone after the gap
    assert len(lines[0].get("points", "").split()) == 2


def test_higher_rates_sit_higher() -> None:
    root = parse(sparkline([0.0, 1.0], ("before", "now"), height=34))
    low, high = (float(c.get("cy", "")) for c in root.iter(f"{SVG}circle"))
    assert low == 29.0  # the bottom line
    assert high == 5.0  # the top line
    assert high < low


def test_a_sparkline_needs_a_label_per_week_and_escapes_them() -> None:
    with pytest.raises(ValueError, match="one label per rate"):
        sparkline([0.5], LABELS)
    svg = sparkline([0.5], ["<b>&"], title='Sam "the" <walker>')
    assert "<b>" not in svg
    assert parse(svg).get("aria-label") == 'Sam "the" <walker>: <b>& 50%'
    assert parse(sparkline([], [])).get("aria-label") == "Completion by week: no weeks yet"


# --- heatmap -------------------------------------------------------------------------


MONDAY = date(2026, 3, 2)


def week_of(states: str, start: date = MONDAY) -> list[Cell]:
    codes = {"D": "done", "S": "skipped", "M": "missed", "P": "pending", "E": "excused",
             "U": "upcoming"}  # fmt: skip
    return [Cell(start + timedelta(days=i), codes[c]) for i, c in enumerate(states) if c != "."]


def cells_of(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if (g.get("class") or "").startswith("cell")]


def test_every_cell_has_a_title_in_words() -> None:
    cells = [*week_of("DSMPEU."), Cell(date(2026, 3, 10), "done", "rating 4")]
    root = parse(heatmap(cells, title="Morning walk"))
    found = {g.get("data-day"): g.find(f"{SVG}title").text for g in cells_of(root)}  # type: ignore[union-attr]
    assert found == {
        "2026-03-02": "Mon 2 Mar: done",
        "2026-03-03": "Tue 3 Mar: skipped",
        "2026-03-04": "Wed 4 Mar: missed",
        "2026-03-05": "Thu 5 Mar: pending (window open)",
        "2026-03-06": "Fri 6 Mar: not counted",
        "2026-03-07": "Sat 7 Mar: still to come",
        "2026-03-10": "Tue 10 Mar: done, rating 4",
    }
    assert root.get("aria-label") == (
        "Morning walk: 2 done, 1 skipped, 1 missed, 1 pending (window open), 1 not counted, "
        "1 still to come"
    )


def test_states_differ_by_shape_not_only_by_colour() -> None:
    root = parse(heatmap(week_of("DSMPEU"), title="Walk"))
    shapes = {}
    for g in cells_of(root):
        kinds = sorted(child.tag.removeprefix(SVG) for child in g if child.tag != f"{SVG}title")
        shapes[g.get("data-state")] = (tuple(kinds), g.find(f"{SVG}rect").get("stroke-dasharray"))  # type: ignore[union-attr]
    assert shapes["done"][0] == ("path", "rect")  # a tick
    assert shapes["missed"][0] == ("path", "rect")  # a cross
    assert shapes["skipped"][0] == ("path", "rect")  # hatching
    assert shapes["pending"] == (("circle", "circle", "circle", "rect"), "3 2")  # dashed, dots
    assert shapes["excused"][0] == ("circle", "rect")  # a ring
    assert shapes["upcoming"][0] == ("rect",)  # an empty outline
    paths = {
        g.get("data-state"): g.find(f"{SVG}path").get("d")  # type: ignore[union-attr]
        for g in cells_of(root)
        if g.find(f"{SVG}path") is not None
    }
    assert len(set(paths.values())) == 3  # tick, cross and hatch are different drawings
    assert (paths["skipped"] or "").count("M") == 5  # five hatch lines


def test_weeks_go_down_and_weekdays_across_from_monday() -> None:
    # A Wednesday start: the first row still begins on the Monday before it.
    cells = week_of("DDDDDDDDDD", start=date(2026, 3, 4))
    root = parse(heatmap(cells, title="Walk"))
    placed = {}
    for g in cells_of(root):
        rect = g.find(f"{SVG}rect")
        assert rect is not None
        placed[g.get("data-day")] = (float(rect.get("x", "")), float(rect.get("y", "")))
    wednesday, sunday, monday_after = (
        placed["2026-03-04"],
        placed["2026-03-08"],
        placed["2026-03-09"],
    )
    assert wednesday[1] == sunday[1]  # one row
    assert sunday[0] > wednesday[0]
    assert monday_after[1] > sunday[1]  # the next row
    assert monday_after[0] < wednesday[0]  # back at the left
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts[:7] == ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"]
    assert texts[7:] == ["2 Mar", "9 Mar"]  # the Monday of each row
    assert int(root.get("height", "")) > int(root.get("width", "")) / 4


def test_today_is_ringed_and_notes_are_escaped() -> None:
    cells = [Cell(MONDAY, "done", "\u201c<script>alert(1)</script>\u201d")]
    svg = heatmap(cells, title="<Walk>", today=MONDAY)
    assert "<script>" not in svg
    root = parse(svg)
    assert root.get("aria-label") == "<Walk>: 1 done"
    (cell,) = cells_of(root)
    assert cell.find(f"{SVG}title").text == "Mon 2 Mar: done, \u201c<script>alert(1)</script>\u201d"  # type: ignore[union-attr]
    assert len(cell.findall(f"{SVG}rect")) == 2  # the square and the ring round it


def test_an_empty_heatmap_says_so() -> None:
    root = parse(heatmap([], title="Walk"))
    assert root.get("aria-label") == "Walk: nothing scheduled yet"
    assert cells_of(root) == []


# --- strength and swatches -------------------------------------------------------------


@pytest.mark.parametrize(("given", "shown", "filled"), [(0.41, "0.41", 49.2), (1.7, "1.00", 120.0),
                                                         (-0.2, "0.00", 0.0)])  # fmt: skip
def test_the_strength_bar_fills_its_share_and_says_it(
    given: float, shown: str, filled: float
) -> None:
    root = parse(strength_bar(given, title="Habit strength of Walk"))
    assert root.get("aria-label") == f"Habit strength of Walk: {shown} of 1"
    fill = list(root.iter(f"{SVG}rect"))[1]
    assert float(fill.get("width", "")) == pytest.approx(filled)
    assert len(list(root.iter(f"{SVG}line"))) == 3  # quarter marks


def test_a_swatch_is_decoration_beside_its_name() -> None:
    for state in STATES:
        root = parse(swatch(state))
        assert root.get("aria-hidden") == "true"
        assert titles(root) == []


def test_day_labels() -> None:
    assert day_label(date(2026, 3, 3)) == "Tue 3 Mar"
    assert day_label(date(2026, 12, 27)) == "Sun 27 Dec"
