"""The optional `weekly_summary` plan key: compiled, checked at its place, rendered.

Plans are written inline; `practice(...)` (see conftest) gives a plan whose one practice
ends on line 11 when one key is appended, so `weekly_summary:` written after it is on
line 12 and its own keys from line 13, indented 2.

The tests at the end render the shipped templates/summaries/weekly.*.j2, like
tests/unit/test_shipped_plans.py does for the other shipped files: they are what the
participant reads, and the SMS must fit one segment.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
import pytest

from service.core.adherence import PracticeAdherence
from service.core.loader import LoadResult, load_plan
from service.core.plan import WEEKDAYS, Plan, WeeklySummary
from service.core.render import SAMPLE_PERSON, EmailContent, Person, Renderer
from service.core.sms import count_segments
from service.core.summary import (
    last_summary_moment,
    sample_summary_context,
    sample_summary_contexts,
    summary_context,
    summary_period,
)
from service.core.timeexpr import TimeExpr
from tests.support.plans import REPO, assert_only, find, load, load_ok, practice

NEW_YORK = ZoneInfo("America/New_York")
SUMMARY_TEMPLATES = {
    "summaries/weekly.sms.j2": "Week {{ week }}: {{ totals.done }} of {{ totals.scheduled }} done.",
    "summaries/weekly.email.j2": (
        "{% block subject %}Week {{ week }}{% endblock %}"
        "{% block text %}Hi {{ participant.first_name }}{% endblock %}"
        "{% block html %}<p>Hi {{ participant.first_name }}</p>{% endblock %}"
    ),
}


def with_summary(*lines: str) -> str:
    """A valid plan with `weekly_summary:` on line 12 and the given lines under it."""
    return practice("at: '07:00'") + "weekly_summary:\n" + "".join(f"  {x}\n" for x in lines)


def load_summary(text: str, templates: dict[str, str] | None = None) -> LoadResult:
    return load(text, templates={**SUMMARY_TEMPLATES, **(templates or {})})


def summary_of(text: str) -> WeeklySummary | None:
    return load_ok(text, templates=SUMMARY_TEMPLATES).weekly_summary


# --- compiling: defaults and values -------------------------------------------------


def test_no_weekly_summary_by_default() -> None:
    assert summary_of(practice("at: '07:00'")) is None


def test_empty_mapping_takes_every_default() -> None:
    summary = summary_of(practice("at: '07:00'") + "weekly_summary: {}\n")
    assert summary == WeeklySummary(weekday=6, at=TimeExpr(None, 18 * 60), channels=("email",))
    assert summary == WeeklySummary()


def test_the_key_with_nothing_after_it_also_takes_the_defaults() -> None:
    assert summary_of(practice("at: '07:00'") + "weekly_summary:\n") == WeeklySummary()


def test_empty_values_inside_take_their_defaults() -> None:
    assert summary_of(with_summary("day:", "at:", "channels:")) == WeeklySummary()


def test_every_key_written() -> None:
    summary = summary_of(with_summary("day: Tue", "at: wake + 30m", "channels: [sms, email]"))
    assert summary == WeeklySummary(weekday=1, at=TimeExpr("wake", 30), channels=("sms", "email"))


def test_an_unquoted_time_and_each_weekday() -> None:
    for number, day in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun")):
        summary = summary_of(with_summary(f"day: {day}", "at: 7:30"))
        assert summary == WeeklySummary(weekday=number, at=TimeExpr(None, 7 * 60 + 30))


def test_plans_built_without_a_summary_keep_working() -> None:
    plan = load_ok(practice("at: '07:00'"))
    rebuilt = Plan(
        id=plan.id,
        title=plan.title,
        summary=plan.summary,
        days=plan.days,
        variables=plan.variables,
        practices=plan.practices,
    )
    assert rebuilt.weekly_summary is None
    assert plan.weekly_summary is None


def test_the_content_hash_covers_the_summary() -> None:
    without = load_ok(practice("at: '07:00'"))
    with_it = load_ok(practice("at: '07:00'") + "weekly_summary: {}\n", templates=SUMMARY_TEMPLATES)
    assert without.content_hash != with_it.content_hash
    assert with_it.practice("screens-off") is with_it.practices[0]


# --- errors, each at its place --------------------------------------------------------


def test_unknown_key_inside_suggests_the_near_miss() -> None:
    result = load_summary(with_summary("dya: sun"))
    assert_only(result, 13, 3, "error", "unknown key 'dya' (did you mean 'day'?)")


def test_unknown_key_far_from_any_lists_the_allowed_keys() -> None:
    result = load_summary(with_summary("zzz: 1"))
    found = assert_only(result, 13, 3, "error", "unknown key 'zzz'")
    assert found.message.endswith("allowed here: day, at, channels")


def test_a_misspelt_weekly_summary_key() -> None:
    result = load_summary(practice("at: '07:00'") + "weekly_sumary: {}\n")
    assert_only(
        result, 12, 1, "error", "unknown key 'weekly_sumary' (did you mean 'weekly_summary'?)"
    )


def test_bad_day() -> None:
    result = load_summary(with_summary("day: sundy"))
    found = assert_only(result, 13, 8, "error", "unknown day 'sundy' (did you mean 'sunday'?)")
    assert found.message.endswith("days are mon, tue, wed, thu, fri, sat, sun")


def test_a_day_that_is_not_text() -> None:
    assert_only(load_summary(with_summary("day: 7")), 13, 8, "error", "'day' must be text")


def test_bad_time() -> None:
    result = load_summary(with_summary("at: 7:30pm"))
    assert_only(result, 13, 7, "error", "'7:30pm' is not a time; write 07:30")


def test_a_time_out_of_range() -> None:
    result = load_summary(with_summary("at: '24:10'"))
    assert_only(result, 13, 7, "error", "'24:10' is not a time of day; use 00:00 to 23:59")


def test_unknown_variable() -> None:
    result = load_summary(with_summary("at: bedtme - 1h"))
    found = assert_only(
        result, 13, 7, "error", "unknown variable 'bedtme' (did you mean 'bedtime'?)"
    )
    assert found.message.endswith("the plan's variables are: wake, bedtime")


def test_a_time_in_the_small_hours_is_a_warning() -> None:
    result = load_summary(with_summary("at: '02:00'"))
    assert_only(result, 13, 7, "warning", "02:00 is in the small hours")
    assert result.plan is not None
    assert result.plan.weekly_summary == WeeklySummary(at=TimeExpr(None, 120))


def test_calendar_is_refused() -> None:
    result = load_summary(with_summary("channels: [sms, calendar]"))
    found = assert_only(result, 13, 19, "error", "a weekly summary is not a calendar event")
    assert found.message.endswith("send it by sms or email")


def test_calendar_is_refused_in_a_block_list() -> None:
    result = load_summary(with_summary("channels:", "  - calendar"))
    assert_only(result, 14, 7, "error", "a weekly summary is not a calendar event")


def test_unknown_channel() -> None:
    result = load_summary(with_summary("channels: [emial]"))
    found = assert_only(result, 13, 14, "error", "unknown channel 'emial' (did you mean 'email'?)")
    assert found.message.endswith("a weekly summary goes by sms, email")


def test_a_channel_listed_twice() -> None:
    result = load_summary(with_summary("channels: [email, sms, email]"))
    assert_only(result, 13, 26, "error", "channel 'email' is listed twice")


def test_no_channel() -> None:
    result = load_summary(with_summary("channels: []"))
    assert_only(result, 13, 13, "error", "choose at least one channel: sms, email")


def test_channels_written_as_one_word() -> None:
    result = load_summary(with_summary("channels: email"))
    assert_only(result, 13, 13, "error", "'channels' must be a list, not the text 'email'")


def test_a_summary_that_is_not_a_mapping() -> None:
    result = load_summary(practice("at: '07:00'") + "weekly_summary: [email]\n")
    assert_only(result, 12, 17, "error", "'weekly_summary' must be a mapping of keys to values")


def test_every_error_in_one_pass_with_the_rest_of_the_plan() -> None:
    text = practice("at: '07:00'", "mesage: hi") + (
        "weekly_summary:\n  day: fridy\n  at: wkae\n  chanels: [sms]\n  channels: [calendar]\n"
    )
    result = load_summary(text)
    assert [(d.line, d.column) for d in result.errors] == [
        (12, 5),
        (14, 8),
        (15, 7),
        (16, 3),
        (17, 14),
    ]
    find(result, 12, 5, "error", "unknown key 'mesage' (did you mean 'message'?)")
    find(result, 14, 8, "error", "unknown day 'fridy' (did you mean 'friday'?)")
    find(result, 15, 7, "error", "unknown variable 'wkae' (did you mean 'wake'?)")
    find(result, 16, 3, "error", "unknown key 'chanels' (did you mean 'channels'?)")
    find(result, 17, 14, "error", "a weekly summary is not a calendar event")
    assert result.plan is None


def test_a_missing_template_is_an_error_at_the_key() -> None:
    result = load(with_summary("channels: [sms, email]"))  # the test templates have none
    find(result, 12, 1, "error", "the weekly summary's sms template is missing")
    find(result, 12, 1, "error", "templates/summaries/weekly.email.j2")
    assert len(result.diagnostics) == 2


def test_an_email_template_without_its_blocks() -> None:
    result = load_summary(
        with_summary(), templates={"summaries/weekly.email.j2": "{% block text %}T{% endblock %}"}
    )
    assert_only(result, 12, 1, "error", "lacks the blocks subject, html")


def test_a_render_error_is_reported_at_the_key() -> None:
    result = load_summary(
        with_summary("channels: [sms]"),
        templates={"summaries/weekly.sms.j2": "Hi {{ participant.firstname }}"},
    )
    found = assert_only(result, 12, 1, "error", "the weekly summary: unknown name in the text")
    assert "'participant' has no 'firstname' (did you mean 'first_name'?)" in found.message


def test_a_render_error_in_one_sample_week_only() -> None:
    # The sample renders a typical week, a week with nothing done and an empty one.
    source = "{% if totals.done == 0 %}{{ practices[0].titel }}{% endif %}ok"
    result = load_summary(
        with_summary("channels: [sms]"), templates={"summaries/weekly.sms.j2": source}
    )
    assert_only(result, 12, 1, "error", "'practice' has no 'titel' (did you mean 'title'?)")


# --- the long-SMS warning, with templates from a folder -----------------------------


def _load_from(folder: Path, text: str) -> LoadResult:
    return load_plan(text, "plan.yaml", Renderer(jinja2.FileSystemLoader(str(folder))))


def test_a_long_summary_sms_is_a_warning_at_the_key(templates_dir: Path) -> None:
    (templates_dir / "summaries").mkdir()
    (templates_dir / "summaries" / "weekly.sms.j2").write_text("{{ 'x' * 200 }}")
    result = _load_from(templates_dir, with_summary("channels: [sms]"))
    found = assert_only(
        result, 12, 1, "warning", "the weekly summary SMS needs 2 segments (GSM-7, 200 characters)"
    )
    assert "one segment holds 160 GSM-7 or 70 UCS-2 characters" in found.message
    assert result.plan is not None


def test_the_longest_sample_week_is_the_one_warned_about(templates_dir: Path) -> None:
    (templates_dir / "summaries").mkdir()
    (templates_dir / "summaries" / "weekly.sms.j2").write_text(
        "{{ 'x' * (170 if totals.scheduled == 0 else 150) }}"
    )
    result = _load_from(templates_dir, with_summary("channels: [sms]"))
    assert_only(result, 12, 1, "warning", "2 segments (GSM-7, 170 characters)")


def test_a_short_summary_sms_has_no_warning(templates_dir: Path) -> None:
    (templates_dir / "summaries").mkdir()
    (templates_dir / "summaries" / "weekly.sms.j2").write_text("{{ 'x' * 160 }}")
    result = _load_from(templates_dir, with_summary("channels: [sms]"))
    assert result.diagnostics == []


def test_email_only_renders_no_sms(templates_dir: Path) -> None:
    (templates_dir / "summaries").mkdir()
    (templates_dir / "summaries" / "weekly.email.j2").write_text(
        SUMMARY_TEMPLATES["summaries/weekly.email.j2"]
    )
    result = _load_from(templates_dir, with_summary())
    assert result.diagnostics == []
    assert result.plan is not None
    assert result.plan.weekly_summary == WeeklySummary()


# --- when it falls due ----------------------------------------------------------------


def _at(text: str, day: str = "sun") -> WeeklySummary:
    return WeeklySummary(weekday=WEEKDAYS.index(day), at=TimeExpr.parse(text))


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _local(text: str, zone: ZoneInfo = NEW_YORK) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def test_on_its_day_before_at_and_after_the_time() -> None:
    spec = _at("18:00", "wed")
    before = last_summary_moment(spec, NEW_YORK, {}, _local("2026-06-10T17:59"))
    at = last_summary_moment(spec, NEW_YORK, {}, _local("2026-06-10T18:00"))
    after = last_summary_moment(spec, NEW_YORK, {}, _local("2026-06-10T18:01"))
    assert before == _utc("2026-06-03T22:00")  # the Wednesday before, 18:00 EDT
    assert at == after == _utc("2026-06-10T22:00")
    assert at.tzinfo is UTC


def test_on_other_days_of_the_week() -> None:
    spec = _at("18:00", "wed")
    for day in range(11, 17):  # Thursday 11 June to Tuesday 16 June 2026
        moment = last_summary_moment(spec, NEW_YORK, {}, _local(f"2026-06-{day}T09:00"))
        assert moment == _utc("2026-06-10T22:00")


def test_now_in_another_zone_uses_the_local_date() -> None:
    # Sunday 8 March 22:00 in New York is already Monday in UTC.
    moment = last_summary_moment(_at("18:00"), NEW_YORK, {}, _utc("2026-03-09T02:00"))
    assert moment == _utc("2026-03-08T22:00")


def test_the_time_comes_from_the_variables() -> None:
    spec = WeeklySummary(at=TimeExpr("wake", 11 * 60))
    moment = last_summary_moment(spec, NEW_YORK, {"wake": 6 * 60 + 30}, _local("2026-06-14T20:00"))
    assert moment == _local("2026-06-14T17:30")


def test_spring_forward_at_the_default_time() -> None:
    spec = WeeklySummary()  # Sunday 18:00
    after = last_summary_moment(spec, NEW_YORK, {}, _utc("2026-03-08T22:00"))
    before = last_summary_moment(spec, NEW_YORK, {}, _utc("2026-03-08T21:59"))
    assert after == _utc("2026-03-08T22:00")  # 18:00 EDT
    assert before == _utc("2026-03-01T23:00")  # 18:00 EST
    assert after - before == timedelta(hours=167)


def test_spring_forward_in_the_gap_moves_forward() -> None:
    spec = _at("2:30")  # does not exist in New York on 8 March 2026
    moment = last_summary_moment(spec, NEW_YORK, {}, _local("2026-03-08T12:00"))
    assert moment == _utc("2026-03-08T07:30")
    assert moment.astimezone(NEW_YORK).isoformat() == "2026-03-08T03:30:00-04:00"
    # 03:29 EDT, before that instant: still the week before, at 02:30 EST.
    earlier = last_summary_moment(spec, NEW_YORK, {}, _utc("2026-03-08T07:29"))
    assert earlier == _utc("2026-03-01T07:30")


def test_fall_back_at_the_default_time() -> None:
    spec = WeeklySummary()
    after = last_summary_moment(spec, NEW_YORK, {}, _utc("2026-11-01T23:00"))
    before = last_summary_moment(spec, NEW_YORK, {}, _utc("2026-11-01T22:59"))
    assert after == _utc("2026-11-01T23:00")  # 18:00 EST
    assert before == _utc("2026-10-25T22:00")  # 18:00 EDT
    assert after - before == timedelta(hours=169)


def test_fall_back_twice_the_same_time_is_the_first() -> None:
    spec = _at("1:30")  # happens twice in New York on 1 November 2026
    first = _utc("2026-11-01T05:30")  # 01:30 EDT
    assert last_summary_moment(spec, NEW_YORK, {}, first) == first
    # During the second 01:15 (EST), and after the second 01:30: still the first one.
    assert last_summary_moment(spec, NEW_YORK, {}, _utc("2026-11-01T06:15")) == first
    assert last_summary_moment(spec, NEW_YORK, {}, _utc("2026-11-01T06:45")) == first
    # The first 01:29 (EDT) is before it: the week before.
    assert last_summary_moment(spec, NEW_YORK, {}, _utc("2026-11-01T05:29")) == _utc(
        "2026-10-25T05:30"
    )


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        last_summary_moment(WeeklySummary(), NEW_YORK, {}, datetime(2026, 3, 8, 12))


def test_period_is_seven_days_ending_on_the_summary_date() -> None:
    assert summary_period(date(2026, 3, 8)) == (date(2026, 3, 2), date(2026, 3, 8))
    assert summary_period(date(2026, 1, 3)) == (date(2025, 12, 28), date(2026, 1, 3))


def test_period_of_a_moment_in_its_local_date() -> None:
    moment = last_summary_moment(WeeklySummary(), NEW_YORK, {}, _utc("2026-03-09T02:00"))
    assert summary_period(moment.astimezone(NEW_YORK).date()) == (
        date(2026, 3, 2),
        date(2026, 3, 8),
    )


# --- the context ----------------------------------------------------------------------

THREE = """\
plan: three
title: Steady & calm
weeks: 8
variables:
  wake: "07:00"
practices:
  - {id: walk, category: movement, title: Morning walk, at: wake + 30m}
  - {id: stretch, category: movement, title: Stretch, at: "12:30", every: weekday}
  - {id: screens-off, category: sleep, title: Screens off, at: "21:30", every: [tue, fri]}
  - {id: cue, category: sleep, title: A cue only, at: "20:00", check_in: none}
weekly_summary: {channels: [sms, email]}
"""


def three() -> Plan:
    return load_ok(THREE, templates=SUMMARY_TEMPLATES)


def test_sample_context_is_for_alex_in_week_3() -> None:
    context = sample_summary_context(three())
    assert context["participant"] == {"name": "Alex", "first_name": "Alex"}
    assert context["plan"] == {"id": "three", "title": "Steady & calm"}
    assert context["week"] == 3
    # Week 3 from Monday 5 January 2026 ends on Sunday 25 January: the summary's day.
    assert context["period"] == {
        "start": date(2026, 1, 19),
        "end": date(2026, 1, 25),
        "text": "Jan 19\u2009\u2013\u200925",
    }


def test_sample_figures_are_consistent() -> None:
    context = sample_summary_context(three())
    practices = context["practices"]
    # Practices that ask no check-in have no figures.
    assert [p["id"] for p in practices] == ["walk", "stretch", "screens-off"]
    assert [p["scheduled"] for p in practices] == [7, 5, 2]
    for p in practices:
        assert p["done"] + p["skipped"] + p["missed"] + p["pending"] == p["scheduled"]
        decided = p["scheduled"] - p["pending"]
        assert p["completion_rate"] == (p["done"] / decided if decided else None)
        assert 0 <= p["current_streak"] <= p["longest_streak"]
        assert 0.0 <= p["strength"] <= 1.0
    for name in ("scheduled", "done", "skipped", "missed"):
        assert context["totals"][name] == sum(p[name] for p in practices)
    assert 0 < context["totals"]["done"] < context["totals"]["scheduled"]


def test_sample_weeks_include_a_hard_one_and_an_empty_one() -> None:
    typical, hard, empty = sample_summary_contexts(three())
    assert typical == sample_summary_context(three())
    assert hard["totals"]["done"] == 0
    assert hard["totals"]["scheduled"] == typical["totals"]["scheduled"]
    assert empty["practices"] == []
    assert empty["totals"] == {"scheduled": 0, "done": 0, "skipped": 0, "missed": 0}


def test_sample_period_ends_on_the_summary_day() -> None:
    plan = load_ok(
        THREE.replace("{channels: [sms, email]}", "{day: wed}"), templates=SUMMARY_TEMPLATES
    )
    context = sample_summary_context(plan)
    period = dict(context["period"])
    assert period.pop("text") == "Jan 15\u2009\u2013\u200921"  # Babel's, for English
    assert period == {"start": date(2026, 1, 15), "end": date(2026, 1, 21)}
    assert context["period"]["end"].weekday() == 2


def test_a_plan_shorter_than_three_weeks_looks_back_on_its_last() -> None:
    plan = load_ok(THREE.replace("weeks: 8", "days: 10"), templates=SUMMARY_TEMPLATES)
    context = sample_summary_context(plan)
    assert context["week"] == 2
    assert context["period"]["end"] <= date(2026, 1, 14)


def test_summary_context_from_figures() -> None:
    figures = {
        "screens-off": PracticeAdherence(2, 1, 0, 1, 0, 0.5, 0, 3, 0.2),
        "walk": PracticeAdherence(7, 6, 1, 0, 0, 6 / 7, 9, 9, 0.6),
    }
    context = summary_context(
        Person("Rae Example"), three(), 4, (date(2026, 3, 2), date(2026, 3, 8)), figures
    )
    assert context["participant"] == {"name": "Rae Example", "first_name": "Rae"}
    assert [p["id"] for p in context["practices"]] == ["walk", "screens-off"]  # plan order
    assert context["practices"][0]["title"] == "Morning walk"
    assert context["practices"][0]["category"] == "movement"
    assert context["totals"] == {"scheduled": 9, "done": 7, "skipped": 1, "missed": 1}
    assert context["week"] == 4


# --- the shipped templates ---------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> Renderer:
    return Renderer(jinja2.FileSystemLoader(str(REPO / "templates")))


@pytest.mark.parametrize("index", [0, 1, 2], ids=["typical", "nothing-done", "nothing-due"])
def test_shipped_sms_fits_one_segment(shipped: Renderer, index: int) -> None:
    context = sample_summary_contexts(three())[index]
    text = shipped.summary_sms(context)
    assert "None" not in text
    assert text.isascii()
    assert len(text) <= 160
    assert count_segments(text).count == 1
    assert "Alex" in text
    assert "miss" not in text.lower()


def test_shipped_sms_reads_like_the_example(shipped: Renderer) -> None:
    figures = {
        "walk": PracticeAdherence(7, 6, 0, 1, 0, 6 / 7, 6, 6, 0.5),
        "stretch": PracticeAdherence(5, 5, 0, 0, 0, 1.0, 4, 4, 0.4),
        "screens-off": PracticeAdherence(2, 1, 1, 0, 0, 0.5, 1, 2, 0.1),
    }
    period = (date(2026, 1, 19), date(2026, 1, 25))
    context = summary_context(Person("Rae Example"), three(), 3, period, figures)
    assert shipped.summary_sms(context) == (
        "Your week 3 with Tend: 12 of 14 done. Best: Morning walk, 6 in a row. Keep going, Rae."
    )


@pytest.mark.parametrize("index", [0, 1, 2], ids=["typical", "nothing-done", "nothing-due"])
def test_shipped_email_renders(shipped: Renderer, index: int) -> None:
    context = sample_summary_contexts(three())[index]
    email = shipped.summary_email(context)
    assert isinstance(email, EmailContent)
    for part in (email.subject, email.text, email.html):
        assert part.strip()
        assert "None" not in part
    assert email.subject == "Your week 3 with Steady & calm"
    assert email.text.startswith("Hi Alex,")
    assert "19 to 25 January" in email.text
    assert "stop them" in email.text
    assert "Steady &amp; calm" in email.html
    assert "Steady & calm" not in email.html
    for entry in context["practices"]:
        line = f"- {entry['title']}: {entry['done']} of {entry['scheduled']} done"
        assert line in email.text
        assert f"<strong>{entry['title']}</strong>" in email.html
    assert "missed" not in email.text.lower()


def test_shipped_email_lists_each_practice_with_its_streak(shipped: Renderer) -> None:
    figures = {
        "walk": PracticeAdherence(7, 6, 0, 1, 0, 6 / 7, 6, 6, 0.5),
        "screens-off": PracticeAdherence(2, 1, 0, 0, 1, 1.0, 0, 3, 0.1),
    }
    period = (date(2026, 1, 26), date(2026, 2, 1))
    email = shipped.summary_email(summary_context(SAMPLE_PERSON, three(), 4, period, figures))
    assert "(26 January to 1 February)" in email.text
    assert "- Morning walk: 6 of 7 done, 6 in a row now" in email.text
    assert "- Screens off: 1 of 2 done, 1 still open, your best run so far is 3 in a row" in (
        email.text
    )


def test_a_plan_checks_clean_with_the_shipped_templates(shipped: Renderer) -> None:
    result = load_plan(THREE, "three.yaml", shipped)
    assert result.diagnostics == []
    assert result.plan is not None
