"""How Tend speaks to one participant: their language, their quiet hours, and what a
discreet participant's texts call a practice. One place, so that reminders, answers,
weekly messages and the confirmation agree."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from service.core import language as languages
from service.core import quiet
from service.core.plan import Practice
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
