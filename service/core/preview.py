"""`tend plans preview`: a plan expanded for a sample participant, as a table, JSON or ICS."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from service.core.expand import Occurrence, expand, resolve_plan_variables
from service.core.ical import CalendarEvent, build_calendar
from service.core.plan import Plan
from service.core.render import SAMPLE_PERSON, Person, Renderer


@dataclass(frozen=True, slots=True)
class PreviewItem:
    occurrence: Occurrence
    text: str


@dataclass(frozen=True, slots=True)
class Preview:
    plan: Plan
    start: date
    zone: ZoneInfo
    variables: dict[str, int]
    items: list[PreviewItem]


def build_preview(
    plan: Plan,
    start: date,
    zone: ZoneInfo,
    overrides: Mapping[str, str],
    renderer: Renderer,
    check_in_url: str,
    person: Person = SAMPLE_PERSON,
) -> Preview:
    variables = resolve_plan_variables(plan, overrides)
    items = [
        PreviewItem(
            occurrence,
            renderer.occurrence_text(plan, occurrence, person, variables, check_in_url),
        )
        for occurrence in expand(plan, start, zone, overrides)
    ]
    return Preview(plan, start, zone, variables, items)


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_json(preview: Preview) -> dict[str, Any]:
    return {
        "plan": preview.plan.id,
        "start": preview.start.isoformat(),
        "timezone": preview.zone.key,
        "occurrences": [_occurrence_json(item) for item in preview.items],
    }


def _occurrence_json(item: PreviewItem) -> dict[str, Any]:
    """One occurrence; a group session also says its own zone's time, where and its link
    (those keys only for practices that have them)."""
    occurrence = item.occurrence
    practice = occurrence.practice
    out: dict[str, Any] = {
        "key": occurrence.key,
        "practice": practice.id,
        "category": practice.category,
        "title": practice.title,
        "week": occurrence.week,
        "local": occurrence.local.isoformat(),
        "utc": utc_text(occurrence.utc),
        "duration_minutes": occurrence.variant.duration_minutes,
        "channels": list(practice.channels),
        "check_in": practice.check_in.kind,
        "text": item.text,
    }
    if practice.timezone is not None:
        out["session"] = {
            "timezone": practice.timezone,
            "local": occurrence.session_local.isoformat(),
        }
    if practice.location is not None:
        out["location"] = practice.location
    if practice.url is not None:
        out["url"] = practice.url
    return out


def as_table(preview: Preview, width: int = 100) -> str:
    """A readable layout: one heading per day, one line per reminder."""
    plan = preview.plan
    lines = [
        f"{plan.title} ({plan.id}): {plan.days} days from {preview.start.isoformat()}, "
        f"{preview.zone.key}",
        f"{len(preview.items)} reminders",
    ]
    id_width = max((len(p.id) for p in plan.practices), default=8)
    channel_width = max((len(", ".join(p.channels)) for p in plan.practices), default=3)
    current: date | None = None
    for item in preview.items:
        occurrence = item.occurrence
        local = occurrence.local
        if local.date() != current:
            current = local.date()
            lines.append("")
            lines.append(f"{local:%a %d %b %Y}  week {occurrence.week}")
        prefix = (
            f"  {local:%H:%M}  {occurrence.practice.id:<{id_width}}  "
            f"{', '.join(occurrence.practice.channels):<{channel_width}}  "
            f"{occurrence.practice.check_in.kind:<6}  "
        )
        text = " ".join(item.text.split())
        room = max(width - len(prefix), 20)
        if len(text) > room:
            text = text[: room - 1] + "…"
        lines.append(prefix + text)
    return "\n".join(lines) + "\n"


def as_ics(preview: Preview, renderer: Renderer, check_in_url: str, stamp: datetime) -> bytes:
    """The occurrences whose channels include calendar, as one VCALENDAR."""
    plan = preview.plan
    events = []
    for item in preview.items:
        occurrence = item.occurrence
        practice = occurrence.practice
        if "calendar" not in practice.channels:
            continue
        context = renderer.context(plan, occurrence, SAMPLE_PERSON, preview.variables, check_in_url)
        start = occurrence.local
        events.append(
            CalendarEvent(
                uid=f"{occurrence.key}.{plan.id}@preview.tend",
                start=start,
                end=start + timedelta(minutes=occurrence.variant.duration_minutes),
                summary=practice.title,
                description=renderer.calendar(occurrence.variant, practice, context),
                categories=(practice.category,),
                alarm_minutes=0,
                location=practice.location,
                url=practice.url,
            )
        )
    return build_calendar(
        events,
        name=f"{plan.title} (preview)",
        stamp=stamp,
        timezone=preview.zone.key,
    )
