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
