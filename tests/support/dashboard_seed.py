"""A small cohort for the dashboard's tests, made the way Tend makes one.

Four participants enrolled in one plan on Monday 2 March 2026, in four time zones, and
a fifth enrolled in nothing. Time moves on a manual clock, event by event, to Thursday
26 March 16:00 UTC (`NOW`): each reminder is marked sent at its instant (as a worker
would), and the participants text back through the real inbound handler
(`tracking.inbound.handle_sms`), so the reply log says what each text was understood
as. Along the way Dee's enrollment is paused, Jo texts STOP and Sam sends something
that is not a check-in.

- Rae (New York) does nearly everything; her walk of the 26th is pending at NOW.
- Sam (Berlin) kept up for two weeks and then stopped: he has slipped this week.
- Jo (London) kept up, then texted STOP on the 23rd: slipped (opted out this week).
- Dee (New York) paused on the 19th.
- Ana (Tokyo) is enrolled in nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from service.actions import enrollments as enrolling
from service.actions import inbound_sms as inbound
from service.clock import ManualClock
from service.runtime import Runtime
from service.storage import enrollments as enrollment_rows
from service.storage import participants as participant_rows
from service.storage.db import transaction
from service.storage.tables import deliveries, occurrences
from tests.support import engine
from tests.support.engine import Folders

PLAN_ID = "walks-and-moods"
PLAN = """
    plan: walks-and-moods
    title: Walks and moods
    summary: A walk each morning, a word on the evening's mood.
    weeks: 6
    practices:
      - id: walk
        category: movement
        title: Morning walk
        at: "09:00"
        channels: [sms]
      - id: mood
        category: mindfulness
        title: Evening mood
        at: "20:00"
        every: weekday
        channels: [sms]
        check_in: {kind: rating, scale: [1, 5], question: "How was today, 1 to 5?"}
      - id: breathe
        category: mindfulness
        title: Breathe
        at: "12:00"
        channels: [sms]
        check_in: none
"""

START = date(2026, 3, 2)  # a Monday
BEGIN = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)  # when they are added and enrolled
NOW = datetime(2026, 3, 26, 16, 0, tzinfo=UTC)  # a Thursday
DAYS = (NOW.date() - START).days + 1

# One character a day from the 2nd: D done, S skip, M no answer (missed), - nothing
# (the reminder did not reach them, or is still open). Moods: a digit on weekdays.
WALKS = {
    "rae": "DDDDSDDDDDDMDDDDDDDSDDDD-",
    "sam": "DDDDDDDDDDDDSDDDDMDMMMMMM",
    "jo": "DDDDDDDSDDDDDDDDDDDDD----",
    "dee": "DDMDDDDMDDDMDDDDD--------",
}
MOODS = {
    "rae": "43545..44354..45454..4445",
    "sam": "34334..33432..2MMMM..MMMM",
    "jo": "55454..45455..54545..----",
    "dee": "3M434..34343..334--..----",
}
PEOPLE = {
    "rae": ("Rae Example", "America/New_York", "+14155550101", "rae@example.com"),
    "sam": ("Sam Rivera", "Europe/Berlin", "+4915112345678", "sam@example.com"),
    "jo": ("Jo Park", "Europe/London", "+447700900123", None),
    "dee": ("Dee Okafor", "America/New_York", "+14155550104", "dee@example.com"),
    "ana": ("Ana Sato", "Asia/Tokyo", None, "ana@example.com"),
}
PAUSE_DEE = datetime(2026, 3, 19, 2, 0, tzinfo=UTC)
STOP_JO = datetime(2026, 3, 23, 7, 0, tzinfo=UTC)
ODD_SAM = datetime(2026, 3, 10, 19, 0, tzinfo=UTC)  # 20:00 in Berlin, between windows


@dataclass(frozen=True, slots=True)
class Cohort:
    ids: dict[str, str]  # participant ids by short name
    enrollments: dict[str, str]  # enrollment ids by short name


def make_folders(root: Path) -> Folders:
    """Schedules (with PLAN) and templates under `root`, as the `folders` fixture makes
    them, for fixtures that outlive one test."""
    folders = engine.make_folders(root)
    folders.write_plan(PLAN_ID, PLAN)
    return folders


def _mark_sent(runtime: Runtime, until: datetime) -> None:
    """Reminders due by `until` went out, as a worker would have sent them."""
    with transaction(runtime.engine) as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.state == "pending")
            .where(deliveries.c.due_at <= until)
            .values(state="sent", attempts=1, sent_at=deliveries.c.due_at, updated_at=until)
        )


def _refresh(runtime: Runtime, now: datetime) -> None:
    """Materialise active enrollments ahead, as the scheduler's upkeep does."""
    plan = runtime.plans.get(PLAN_ID)
    assert plan is not None
    with transaction(runtime.engine) as conn:
        for enrollment in enrollment_rows.list_enrollments(conn, statuses=("active",)):
            person = participant_rows.get_participant(conn, enrollment.participant_id)
            enrolling.refresh(conn, enrollment, person, plan, now)


def seed(runtime: Runtime, clock: ManualClock) -> Cohort:
    """The cohort above, in `runtime`'s database; leaves the clock at NOW. The plan must
    be in the runtime's schedules folder (PLAN)."""
    plan = runtime.plans.get(PLAN_ID)
    assert plan is not None, "write PLAN to the schedules folder first"
    clock.set(BEGIN)
    ids: dict[str, str] = {}
    enrolled: dict[str, str] = {}
    with transaction(runtime.engine) as conn:
        for key, (name, zone_name, phone, email) in PEOPLE.items():
            ids[key] = participant_rows.add_participant(
                conn,
                name=name,
                timezone=zone_name,
                phone=phone,
                email=email,
                now=BEGIN,
                welcomed_at=BEGIN,  # their confirmation went when they were added
            ).id
    for key in WALKS:
        enrolled[key] = enrolling.enroll(runtime, ids[key], plan, START, {}).id
    # The texts each participant sends, and the moments they send them.
    events: list[tuple[datetime, str, str]] = []  # (when, who, body)
    for day in range(DAYS):
        local_day = START + timedelta(days=day)
        for key, walks in WALKS.items():
            zone = ZoneInfo(PEOPLE[key][1])
            walk_reply = datetime.combine(local_day, time(9, 20), zone).astimezone(UTC)
            mood_reply = datetime.combine(local_day, time(20, 20), zone).astimezone(UTC)
            said = {"D": "done", "S": "skip"}.get(walks[day])
            if said:
                events.append((walk_reply, key, said))
            mood = MOODS[key][day]
            if mood.isdigit():
                events.append((mood_reply, key, mood))
    events.append((STOP_JO, "jo", "STOP"))
    events.append((ODD_SAM, "sam", "what is this?"))
    events.append((PAUSE_DEE, "dee", ""))  # no text: the coach pauses Dee's enrollment
    events = sorted(e for e in events if e[0] < NOW)
    refreshed = START - timedelta(days=1)
    for count, (moment, key, body) in enumerate(events):
        clock.set(moment)
        if moment.date() - refreshed >= timedelta(days=5):
            _refresh(runtime, moment)
            refreshed = moment.date()
        _mark_sent(runtime, moment)
        if not body:
            with transaction(runtime.engine) as conn:
                enrollment_rows.set_enrollment_status(conn, enrolled[key], "paused", now=moment)
            continue
        phone = PEOPLE[key][2]
        assert phone is not None
        inbound.handle_sms(runtime, sid=f"SM{count:032d}", sender=phone, body=body)
    clock.set(NOW)
    _refresh(runtime, NOW)
    _mark_sent(runtime, NOW)
    return Cohort(ids, enrolled)


def occurrence_result(runtime: Runtime, enrollment_id: str, key: str) -> str | None:
    """The check-in recorded on one occurrence (for asserting the seed went as meant)."""
    with transaction(runtime.engine) as conn:
        found = conn.execute(
            select(occurrences.c.check_in)
            .where(occurrences.c.enrollment_id == enrollment_id)
            .where(occurrences.c.key == key)
        ).scalar_one()
    return None if found is None else str(found)
