"""The coach digest's rule for who has slipped (service/core/digest.py)."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from service.catalog import Catalog
from service.core.digest import CohortEntry, Week, digest, digest_context, slip_reason


def entry(done: int, decided: int, before: tuple[int, int] = (0, 0), sms: str = "subscribed",
          name: str = "Rae") -> CohortEntry:  # fmt: skip
    return CohortEntry("p1", name, "sleep", sms, Week(done, decided), Week(*before), streak=2)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        (entry(0, 3), "nothing done this week (0 of 3)"),
        (entry(0, 2), None),  # two decided say too little
        (entry(1, 3), "1 of 3 done this week"),
        (entry(2, 4), None),  # exactly half is not under half
        (entry(5, 7, before=(7, 7)), "down from 100% to 71%"),
        (entry(6, 7, before=(7, 7)), None),  # a 14-point dip is not a slip
        (entry(3, 4, before=(2, 2)), None),  # the week before says too little
        (entry(7, 7, sms="opted_out"), "opted out of text reminders"),
        (entry(0, 0), None),
    ],
)
def test_slip_reason(case: CohortEntry, reason: str | None) -> None:
    assert slip_reason(case) == reason


def test_digest_orders_the_slipped_by_rate_and_the_rest_by_name() -> None:
    slipped, steady = digest(
        [
            entry(1, 4, name="Bo"),
            entry(0, 5, name="Al"),
            entry(7, 7, name="zed"),
            entry(6, 7, name="Ann"),
        ]
    )
    assert [line.entry.name for line in slipped] == ["Al", "Bo"]
    assert [line.entry.name for line in steady] == ["Ann", "zed"]


def test_digest_context_totals() -> None:
    context = digest_context(
        [entry(1, 4, name="Bo"), entry(6, 6, name="Ann")],
        (date(2026, 3, 2), date(2026, 3, 8)),
        "https://tend.test/dashboard",
    )
    assert (context["active"], context["done"], context["decided"]) == (2, 7, 10)
    assert context["rate"] == pytest.approx(0.7)
    assert [row["name"] for row in context["slipped"]] == ["Bo"]
    assert context["slipped"][0]["reason"] == "1 of 4 done this week"


def test_plans_check_renders_tends_own_texts(tmp_path: Path) -> None:
    """A broken answer or digest template is found by `tend plans check`."""
    templates = tmp_path / "templates"
    shutil.copytree(Path(__file__).resolve().parents[2] / "templates", templates)
    schedules = tmp_path / "schedules"
    schedules.mkdir()
    catalog = Catalog(schedules, templates)
    assert catalog.check().diagnostics == []
    (templates / "replies" / "help.sms.j2").write_text("{{ particpant.name }}", encoding="utf-8")
    (templates / "digest" / "coach.email.j2").write_text("no blocks", encoding="utf-8")
    found = sorted(str(d) for d in Catalog(schedules, templates).check().diagnostics)
    assert found == [
        f"{templates}/digest/coach.email.j2:1:1: error: template digest/coach.email.j2 has no"
        " 'subject' block; an email template defines subject, text and html",
        f"{templates}/replies/help.sms.j2:1:1: error: unknown name in the text:"
        " 'particpant' is not defined (did you mean 'participant'?)",
    ]


def test_the_digest_goes_by_cohort_with_a_heading_each_when_there_are_two() -> None:
    """Issue 17: entries by cohort name (people in none last), a heading per group in
    the text and the html when there is more than one group; none with one group."""
    people = [
        CohortEntry("p1", "Zoe", "sleep", "subscribed", Week(0, 4), Week(0, 0), 0, "Mornings"),
        CohortEntry("p2", "Al", "sleep", "subscribed", Week(6, 6), Week(0, 0), 6, None),
        CohortEntry("p3", "Bo", "sleep", "subscribed", Week(1, 4), Week(0, 0), 0, "evenings"),
        CohortEntry("p4", "Cy", "sleep", "subscribed", Week(5, 5), Week(0, 0), 2, "Mornings"),
        CohortEntry("p5", "Di", "sleep", "subscribed", Week(0, 3), Week(0, 0), 0, "Mornings"),
    ]
    period = (date(2026, 3, 2), date(2026, 3, 8))
    context = digest_context(people, period, "https://tend.test/dashboard")
    assert context["by_cohort"] is True
    assert [(r["cohort"], r["name"]) for r in context["slipped"]] == [
        ("evenings", "Bo"), ("Mornings", "Di"), ("Mornings", "Zoe"),
    ]  # fmt: skip
    assert [(g["heading"], [p["name"] for p in g["people"]]) for g in context["steady_groups"]] == [
        ("Mornings", ["Cy"]), ("Not in a cohort", ["Al"]),
    ]  # fmt: skip
    templates = Path(__file__).resolve().parents[2] / "templates"
    email = Catalog(templates.parent / "schedules", templates).renderer.digest_email(context)
    assert "Who has slipped:\n\nevenings\n- Bo (sleep): 1 of 4 done this week\n\nMornings\n" in (
        email.text
    )
    assert "Keeping up:\n\nMornings\n- Cy (sleep): 5 of 5, 2 in a row\n\nNot in a cohort\n" in (
        email.text
    )
    assert email.html.count("<h3") == 4
    assert ">Not in a cohort</h3>" in email.html
    # One group (everyone in Mornings): no headings, as before cohorts.
    alone = [e for e in people if e.cohort == "Mornings"]
    one = digest_context(alone, period, "https://tend.test/dashboard")
    assert one["by_cohort"] is False
    single = Catalog(templates.parent / "schedules", templates).renderer.digest_email(one)
    assert "Mornings" not in single.text
    assert "<h3" not in single.html
