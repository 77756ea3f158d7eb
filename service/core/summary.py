"""Weekly summaries: when one falls due, the days it covers, and what its templates see.

A plan's optional `weekly_summary` sends each participant a short note on how their
week went, on a local weekday at a local time (`WeeklySummary`). This module is pure:
the caller brings the clock (`now`), the zone, the resolved variables and the figures.

- `last_summary_moment` is the most recent instant, at or before `now`, at which the
  summary falls due; the local time becomes an instant as expansion does it (RFC 5545).
- `summary_period` is the seven local days a summary covers: the six days before the
  summary's own local date, and that date.
- `summary_context` builds what `templates/summaries/weekly.*.j2` see, from a
  participant, a plan and each practice's adherence figures; `sample_summary_context`
  makes a realistic one for a sample participant (Alex), for checking and previewing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from babel.dates import format_interval

from service.core.adherence import Outcome, PracticeAdherence, Result, per_day, summarise
from service.core.expand import Occurrence, expand, local_instant, resolve_plan_variables
from service.core.language import local, locale
from service.core.plan import Plan, WeeklySummary
from service.core.render import LANGUAGE, SAMPLE_PERSON, Names, Person

SAMPLE_START = date(2026, 1, 5)  # a Monday, the sample enrollment's start
SAMPLE_WEEK = 3  # the plan week the sample summary looks back on
PERIOD_DAYS = 7
_WEEK = timedelta(days=7)


def last_summary_moment(
    spec: WeeklySummary, zone: tzinfo, variables: Mapping[str, int], now: datetime
) -> datetime:
    """The most recent instant at or before `now` at which the summary falls due, in UTC.

    That is the local weekday `spec.weekday` at `spec.at`, resolved with the plan's
    `variables` (minutes after midnight, as `resolve_plan_variables` gives them) and
    converted as expansion does: a time in a spring-forward gap moves forward by the
    gap, a time that occurs twice is the first of the two. `now` must be aware.
    Raises KeyError when `spec.at` names a variable missing from `variables`.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    minutes = spec.at.resolve(variables)
    today = now.astimezone(zone).date()
    latest = today - timedelta(days=(today.weekday() - spec.weekday) % 7)
    # Normally `latest` itself, or a week earlier when today's time has not come yet; the
    # week after is looked at too, for zones whose clocks jump across midnight.
    for day in (latest + _WEEK, latest, latest - _WEEK, latest - 2 * _WEEK):
        moment = local_instant(day, minutes, zone)
        if moment <= now:
            return moment
    raise AssertionError("unreachable: a summary falls due at least once in two weeks")


def summary_period(moment_local_date: date) -> tuple[date, date]:
    """The local dates a summary covers, both inclusive: the seven days ending on its own."""
    return moment_local_date - timedelta(days=PERIOD_DAYS - 1), moment_local_date


def period_text(period: tuple[date, date], language: str | None) -> str:
    """The week as the language writes a span of days: "Dec 1 - 7", "1-7 dic" (with an en dash)."""
    return format_interval(period[0], period[1], "MMMd", locale=locale(language))


def summary_context(
    person: Person,
    plan: Plan,
    week: int,
    period: tuple[date, date],
    figures: Mapping[str, PracticeAdherence],
    *,
    language: str | None = None,
    titles: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What the weekly summary templates see; see templates/summaries/weekly.sms.j2.

    In `language` (titles translated, `period.text` written that language's way);
    `titles` replaces practices' titles (a discreet participant's neutral names, and
    then the plan is called Tend).

    `figures` holds, for each practice to show, its counts over the period (scheduled,
    done, skipped, missed, pending, completion_rate) with its streaks and strength as
    they stand at the summary's moment. Practices come in the plan's order; those
    missing from `figures` are left out.
    """
    practices = [
        Names(
            "practice",
            {
                "id": practice.id,
                "title": (titles or {}).get(practice.id)
                or local(practice.title, language)
                or practice.title,
                "category": practice.category,
                "scheduled": found.scheduled,
                "done": found.done,
                "skipped": found.skipped,
                "missed": found.missed,
                "pending": found.pending,
                "completion_rate": found.completion_rate,
                "current_streak": found.current_streak,
                "longest_streak": found.longest_streak,
                "strength": found.strength,
            },
        )
        for practice in plan.practices
        if (found := figures.get(practice.id)) is not None
    ]
    totals = {
        name: sum(int(entry[name]) for entry in practices)
        for name in ("scheduled", "done", "skipped", "missed")
    }
    plan_title = "Tend" if titles else (local(plan.title, language) or plan.title)
    return {
        LANGUAGE: language,
        "participant": Names("participant", {"name": person.name, "first_name": person.first_name}),
        "plan": Names("plan", {"id": plan.id, "title": plan_title}),
        "week": week,
        "period": Names(
            "period",
            {"start": period[0], "end": period[1], "text": period_text(period, language)},
        ),
        "practices": practices,
        "totals": Names("totals", totals),
    }


def sample_summary_context(plan: Plan) -> dict[str, Any]:
    """A realistic summary for Alex, looking back on week 3 of the plan (or its last week).

    The figures are made up but consistent: they come from the plan's own occurrences,
    started on SAMPLE_START in UTC, with most of them done, a few skipped or missed, and
    those whose check-in window is still open pending.
    """
    return sample_summary_contexts(plan)[0]


def sample_summary_contexts(plan: Plan) -> list[dict[str, Any]]:
    """Sample summaries for Alex: a typical week, a week with nothing done, and a week with
    nothing scheduled, so that checking a plan renders every branch of the templates."""
    spec = plan.weekly_summary or WeeklySummary()
    week = min(SAMPLE_WEEK, plan.weeks)
    last_day = SAMPLE_START + timedelta(days=min(week * 7, plan.days) - 1)
    end = last_day - timedelta(days=(last_day.weekday() - spec.weekday) % 7)
    period = summary_period(end)
    moment = local_instant(end, spec.at.resolve(resolve_plan_variables(plan)), UTC)
    occurrences = expand(plan, SAMPLE_START, UTC)
    typical = _sample_figures(plan, occurrences, period, moment, _typical_result)
    hard = _sample_figures(plan, occurrences, period, moment, _hard_week_result)
    return [
        summary_context(SAMPLE_PERSON, plan, week, period, typical),
        summary_context(SAMPLE_PERSON, plan, week, period, hard),
        summary_context(SAMPLE_PERSON, plan, week, period, {}),
    ]


_Pattern = Callable[[int, int, bool], Result]


def _typical_result(practice: int, index: int, in_period: bool) -> Result:
    if (index + 2 * practice) % 9 == 4:
        return "missed"
    if (index + 3 * practice) % 13 == 8:
        return "skipped"
    return "done"


def _hard_week_result(practice: int, index: int, in_period: bool) -> Result:
    return "missed" if in_period else _typical_result(practice, index, in_period)


def _sample_figures(
    plan: Plan,
    occurrences: list[Occurrence],
    period: tuple[date, date],
    moment: datetime,
    pattern: _Pattern,
) -> dict[str, PracticeAdherence]:
    figures: dict[str, PracticeAdherence] = {}
    for number, practice in enumerate(plan.practices):
        if not practice.check_in.asks:
            continue  # no check-in, no adherence
        own = [o for o in occurrences if o.practice.id == practice.id]
        frequency = per_day(len(own), plan.days)
        outcomes: list[Outcome] = []
        in_period: list[Outcome] = []
        for o in own:
            if o.utc > moment:
                break
            inside = period[0] <= o.date <= period[1]
            result = pattern(number, o.index, inside) if o.window_end <= moment else None
            outcome = Outcome(o.utc, o.window_end, result)
            outcomes.append(outcome)
            if inside:
                in_period.append(outcome)
        if not in_period:
            continue
        overall = summarise(outcomes, moment, frequency)
        weekly = summarise(in_period, moment, frequency)
        figures[practice.id] = replace(
            weekly,
            current_streak=overall.current_streak,
            longest_streak=overall.longest_streak,
            strength=overall.strength,
        )
    return figures
