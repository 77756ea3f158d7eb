"""How Tend speaks to one participant: their language, their quiet hours, and what a
discreet participant's texts call a practice. One place, so that reminders, answers,
weekly messages and the confirmation agree."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from service.actions.enrollments import variables_for
from service.core import language as languages
from service.core import quiet
from service.core.expand import resolve_plan_variables
from service.core.plan import Plan, Practice
from service.core.records import Participant
from service.runtime import Runtime


def language_of(runtime: Runtime, participant: Participant) -> str:
    """The participant's language tag, or the deployment's default."""
    return participant.language or runtime.settings.default_language


def quiet_of(runtime: Runtime, participant: Participant) -> quiet.QuietHours | None:
    """The quiet hours that apply to the participant (their own, or the deployment's)."""
    return quiet.effective(participant.quiet_hours, runtime.settings.quiet_hours)


def title_for(
    runtime: Runtime,
    participant: Participant,
    practice: Practice | None,
    practice_id: str,
    instant: datetime,
) -> str:
    """What texts to this participant call the practice: its title in their language, or
    for a discreet participant the neutral "your evening practice"."""
    language = language_of(runtime, participant)
    if participant.discreet:
        hour = instant.astimezone(ZoneInfo(participant.timezone)).hour
        return languages.discreet_title(hour, language)
    if practice is None:
        return practice_id
    return languages.local(practice.title, language) or practice.title


def time_text(runtime: Runtime, participant: Participant, instant: datetime) -> str:
    """A time in the participant's zone, written their language's way (9:30 PM, 21:30)."""
    local = instant.astimezone(ZoneInfo(participant.timezone))
    return languages.time_text(local, language_of(runtime, participant))


def moment_text(runtime: Runtime, participant: Participant, instant: datetime) -> str:
    """A day and time in the participant's zone and language: "Tue, December 8, 6:30 AM"."""
    local = instant.astimezone(ZoneInfo(participant.timezone))
    language = language_of(runtime, participant)
    return f"{languages.day_text(local, language)}, {languages.time_text(local, language)}"


def plan_for(
    runtime: Runtime, plan: Plan, participant: Participant, overrides: dict[str, str]
) -> Plan:
    """The plan as this participant's calendar shows it: titles in their language; for a
    discreet participant, neutral titles ("your evening practice"), the plan called
    Tend, no category or link that could tell what it is about. The schedule is the
    plan's own (what is expanded does not change)."""
    language = language_of(runtime, participant)
    if not participant.discreet and not _translated(plan, language):
        return plan
    practices = []
    if participant.discreet:
        titles = discreet_titles(runtime, plan, participant, overrides)
        for practice in plan.practices:
            neutral = titles[practice.id]
            practices.append(replace(practice, title=neutral, category="other", url=None))
        title = "Tend"
    else:
        for practice in plan.practices:
            practices.append(
                replace(practice, title=languages.local(practice.title, language) or practice.title)
            )
        title = languages.local(plan.title, language) or plan.title
    return replace(
        plan, title=title, practices=tuple(practices), practice_index={p.id: p for p in practices}
    )


def discreet_titles(
    runtime: Runtime, plan: Plan, participant: Participant, overrides: dict[str, str]
) -> dict[str, str]:
    """A discreet participant's names for the plan's practices ("your evening practice"),
    by the local hour each is at for them (noon when it cannot be worked out)."""
    try:
        values = resolve_plan_variables(plan, variables_for(plan, participant, overrides))
    except ValueError:
        values = {}
    language = language_of(runtime, participant)
    titles = {}
    for practice in plan.practices:
        try:
            hour = practice.base.at.resolve(values) // 60
        except (KeyError, ValueError):
            hour = 12
        titles[practice.id] = languages.discreet_title(hour, language)
    return titles


def _translated(plan: Plan, language: str) -> bool:
    texts = [plan.title, *(p.title for p in plan.practices)]
    return any(
        isinstance(t, languages.Localized) and languages.pick(t.translations, language) is not None
        for t in texts
    )
