"""`GET|HEAD /calendar/{token}.ics`: a participant's calendar subscription feed.

The feed shows the occurrence rows Tend reminds about (those with `calendar` among their
channels, still scheduled, from 30 days back to the horizon), under stable UIDs, in the
participant's zone with a VTIMEZONE; it answers polling with ETag / 304, and a token that
does not verify with a bare 404. Every feed is read back with vobject (not the icalendar
library that writes the VTIMEZONEs), its DTSTARTs turned into aware UTC datetimes and
compared with `occurrences.instant`.

Every test runs on SQLite and on PostgreSQL (`db_url`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
import vobject
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from service import cli
from service.actions.links import check_in_link, feed_link, webcal_link
from service.core.tokens import check_in_token, feed_token
from service.storage import checkins
from service.storage import enrollments as enrollment_rows
from service.storage import participants as participant_rows
from service.storage.db import transaction
from service.storage.tables import enrollments, occurrences
from service.web.app import create_app
from tests.support.engine import Folders, Harness, publish

LINE_OCTETS = 75
DAYS_BACK = 30

# --- reading a feed with vobject -----------------------------------------------------------


@dataclass(frozen=True)
class Event:
    uid: str
    start: datetime  # vobject's DTSTART, aware, converted to UTC
    own_start: datetime  # the same local time read with the feed's own VTIMEZONE
    end: datetime  # DTEND (or DTSTART + DURATION), in UTC
    tzid: str
    summary: str
    description: str | None
    url: str | None
    sequence: int
    last_modified: datetime
    stamp: datetime
    alarm: bool


@dataclass(frozen=True)
class Feed:
    text: str
    calendar: Any
    events: dict[str, Event]

    def starts(self) -> dict[str, datetime]:
        return {uid: e.start for uid, e in self.events.items()}


def _tzid(prop: Any) -> str:
    (tzid,) = prop.params.get("TZID") or prop.params["X-VOBJ-ORIGINAL-TZID"]
    return str(tzid)


def _own(zones: dict[str, tzinfo], prop: Any) -> datetime:
    local = prop.value.replace(tzinfo=None)
    return local.replace(tzinfo=zones[_tzid(prop)]).astimezone(UTC)


def read_feed(body: bytes) -> Feed:
    """The feed as vobject reads it, after the checks every feed must pass: UTF-8, CRLF
    line ends, lines of at most 75 octets, a VTIMEZONE for every TZID used."""
    assert body.endswith(b"END:VCALENDAR\r\n")
    for raw in body.split(b"\r\n"):
        assert len(raw) <= LINE_OCTETS, raw
        assert b"\n" not in raw
        assert b"\r" not in raw
        raw.decode("utf-8")  # no character cut in two by a fold
    text = body.decode("utf-8")
    calendar = vobject.readOne(text)
    zones = {vtz.tzid.value: vtz.tzinfo for vtz in calendar.contents.get("vtimezone", [])}
    events: dict[str, Event] = {}
    for vevent in calendar.contents.get("vevent", []):
        start = vevent.dtstart
        assert isinstance(start.value, datetime)
        assert start.value.tzinfo is not None  # never floating
        tzid = _tzid(start)
        assert tzid in zones, f"no VTIMEZONE for {tzid}"
        if "dtend" in vevent.contents:
            assert _tzid(vevent.dtend) == tzid
            end = vevent.dtend.value.astimezone(UTC)
        else:
            end = start.value.astimezone(UTC) + vevent.duration.value
        uid = vevent.uid.value
        assert uid not in events, f"UID {uid} twice"
        description = vevent.contents.get("description")
        url = vevent.contents.get("url")
        events[uid] = Event(
            uid=uid,
            start=start.value.astimezone(UTC),
            own_start=_own(zones, start),
            end=end,
            tzid=tzid,
            summary=vevent.summary.value,
            description=description[0].value if description else None,
            url=url[0].value if url else None,
            sequence=int(vevent.sequence.value),
            last_modified=vevent.last_modified.value.astimezone(UTC),
            stamp=vevent.dtstamp.value.astimezone(UTC),
            alarm="valarm" in vevent.contents,
        )
    return Feed(text, calendar, events)


# --- the database side ---------------------------------------------------------------------


def db_occurrences(h: Harness, participant_id: str) -> list[dict[str, Any]]:
    with transaction(h.runtime.engine) as conn:
        rows = conn.execute(
            select(occurrences, enrollments.c.status.label("enrollment_status"))
            .join(enrollments, enrollments.c.id == occurrences.c.enrollment_id)
            .where(enrollments.c.participant_id == participant_id)
            .order_by(occurrences.c.instant, occurrences.c.id)
        ).mappings()
        return [dict(r) for r in rows]


def uid(row: dict[str, Any]) -> str:
    return f"{row['key']}.{row['enrollment_id']}@tend"


def occurrence(h: Harness, key: str) -> dict[str, Any]:
    with transaction(h.runtime.engine) as conn:
        row = conn.execute(select(occurrences).where(occurrences.c.key == key)).mappings().one()
        return dict(row)


def feed_path(h: Harness, participant_id: str) -> str:
    with transaction(h.runtime.engine) as conn:
        version = participant_rows.get_participant(conn, participant_id).feed_version
    return urlsplit(feed_link(h.runtime, participant_id, version)).path


def get_feed(client: TestClient, path: str, **headers: str) -> Feed:
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return read_feed(response.content)


def extend_to(h: Harness, moment: datetime) -> None:
    """Move the clock to `moment` a week at a time, running the scheduler's maintenance
    (which materialises the days ahead) at each step, as a running Tend does."""
    while h.clock.now() + timedelta(days=7) < moment:
        h.clock.advance(days=7)
        h.maintain()
    h.clock.set(moment)
    h.maintain()


@pytest.fixture
def client(harness: Harness) -> Iterator[TestClient]:
    with TestClient(create_app(harness.runtime)) as c:
        yield c


# --- the feed across clock changes ---------------------------------------------------------

NIGHT_SHIFT = """
    plan: night-shift
    title: Night shift
    weeks: 8
    practices:
      - id: early-check
        category: mindfulness
        title: Early check
        at: "01:45"
        channels: [calendar]
      - id: late-check
        category: sleep
        title: Late check
        at: "02:15"
        duration: 30m
        channels: [sms, calendar]
      - id: morning-walk
        category: movement
        title: Morning walk
        at: "09:00"
        channels: [sms]
"""


@dataclass(frozen=True)
class DstCase:
    zone: str
    start: date  # the enrollment's first day
    enrolled: datetime  # local midnight of that day: every occurrence is materialised
    now: datetime  # when the feed is read: the clock change within the last 30 days
    expected: dict[str, datetime]  # hand-worked instants around the change


DST_CASES = {
    # Spring forward at 02:00 EST: 01:45 is still EST, 02:15 does not exist (03:15 EDT).
    "new-york-spring": DstCase(
        "America/New_York",
        date(2026, 1, 29),
        datetime(2026, 1, 29, 5, 0, tzinfo=UTC),
        datetime(2026, 3, 10, 12, 0, tzinfo=UTC),
        {
            "early-check:2026-03-07": datetime(2026, 3, 7, 6, 45, tzinfo=UTC),
            "late-check:2026-03-07": datetime(2026, 3, 7, 7, 15, tzinfo=UTC),
            "early-check:2026-03-08": datetime(2026, 3, 8, 6, 45, tzinfo=UTC),
            "late-check:2026-03-08": datetime(2026, 3, 8, 7, 15, tzinfo=UTC),
            "early-check:2026-03-09": datetime(2026, 3, 9, 5, 45, tzinfo=UTC),
            "late-check:2026-03-09": datetime(2026, 3, 9, 6, 15, tzinfo=UTC),
        },
    ),
    # Fall back at 02:00 EDT: 01:45 happens twice (the first, EDT), 02:15 is EST.
    "new-york-fall": DstCase(
        "America/New_York",
        date(2026, 9, 24),
        datetime(2026, 9, 24, 4, 0, tzinfo=UTC),
        datetime(2026, 11, 3, 12, 0, tzinfo=UTC),
        {
            "early-check:2026-10-31": datetime(2026, 10, 31, 5, 45, tzinfo=UTC),
            "late-check:2026-10-31": datetime(2026, 10, 31, 6, 15, tzinfo=UTC),
            "early-check:2026-11-01": datetime(2026, 11, 1, 5, 45, tzinfo=UTC),
            "late-check:2026-11-01": datetime(2026, 11, 1, 7, 15, tzinfo=UTC),
            "early-check:2026-11-02": datetime(2026, 11, 2, 6, 45, tzinfo=UTC),
            "late-check:2026-11-02": datetime(2026, 11, 2, 7, 15, tzinfo=UTC),
        },
    ),
    # Spring forward at 01:00 GMT: 01:45 does not exist (02:45 BST), 02:15 is BST, so
    # that night the later practice comes first.
    "london-spring": DstCase(
        "Europe/London",
        date(2026, 2, 19),
        datetime(2026, 2, 19, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 31, 12, 0, tzinfo=UTC),
        {
            "early-check:2026-03-28": datetime(2026, 3, 28, 1, 45, tzinfo=UTC),
            "late-check:2026-03-28": datetime(2026, 3, 28, 2, 15, tzinfo=UTC),
            "early-check:2026-03-29": datetime(2026, 3, 29, 1, 45, tzinfo=UTC),
            "late-check:2026-03-29": datetime(2026, 3, 29, 1, 15, tzinfo=UTC),
            "early-check:2026-03-30": datetime(2026, 3, 30, 0, 45, tzinfo=UTC),
            "late-check:2026-03-30": datetime(2026, 3, 30, 1, 15, tzinfo=UTC),
        },
    ),
    # Lord Howe falls back half an hour at 02:00 (+11 to +10:30): 01:45 happens twice
    # (the first, +11), 02:15 is +10:30.
    "lord-howe-april": DstCase(
        "Australia/Lord_Howe",
        date(2026, 2, 26),
        datetime(2026, 2, 25, 13, 0, tzinfo=UTC),
        datetime(2026, 4, 7, 0, 0, tzinfo=UTC),
        {
            "early-check:2026-04-04": datetime(2026, 4, 3, 14, 45, tzinfo=UTC),
            "late-check:2026-04-04": datetime(2026, 4, 3, 15, 15, tzinfo=UTC),
            "early-check:2026-04-05": datetime(2026, 4, 4, 14, 45, tzinfo=UTC),
            "late-check:2026-04-05": datetime(2026, 4, 4, 15, 45, tzinfo=UTC),
            "early-check:2026-04-06": datetime(2026, 4, 5, 15, 15, tzinfo=UTC),
            "late-check:2026-04-06": datetime(2026, 4, 5, 15, 45, tzinfo=UTC),
        },
    ),
    # and springs forward half an hour at 02:00 (+10:30 to +11): 02:15 does not exist
    # (02:45 +11).
    "lord-howe-october": DstCase(
        "Australia/Lord_Howe",
        date(2026, 8, 27),
        datetime(2026, 8, 26, 13, 30, tzinfo=UTC),
        datetime(2026, 10, 6, 0, 0, tzinfo=UTC),
        {
            "early-check:2026-10-03": datetime(2026, 10, 2, 15, 15, tzinfo=UTC),
            "late-check:2026-10-03": datetime(2026, 10, 2, 15, 45, tzinfo=UTC),
            "early-check:2026-10-04": datetime(2026, 10, 3, 15, 15, tzinfo=UTC),
            "late-check:2026-10-04": datetime(2026, 10, 3, 15, 45, tzinfo=UTC),
            "early-check:2026-10-05": datetime(2026, 10, 4, 14, 45, tzinfo=UTC),
            "late-check:2026-10-05": datetime(2026, 10, 4, 15, 15, tzinfo=UTC),
        },
    ),
}


@pytest.fixture(params=sorted(DST_CASES))
def dst(
    request: pytest.FixtureRequest, harness: Harness, folders: Folders
) -> tuple[DstCase, str, str]:
    """A participant in the case's zone, enrolled in night-shift six weeks before the
    case's `now`, the clock run on to `now`: (case, participant, enrollment)."""
    case = DST_CASES[request.param]
    folders.write_plan("night-shift", NIGHT_SHIFT)
    publish(harness.runtime)
    harness.clock.set(case.enrolled)
    person = harness.participant(tz=case.zone)
    enrollment = harness.enroll(person, "night-shift", case.start)
    extend_to(harness, case.now)
    return case, person, enrollment


def test_the_feed_is_exactly_the_calendar_occurrences_from_30_days_back_across_dst(
    harness: Harness, client: TestClient, dst: tuple[DstCase, str, str]
) -> None:
    case, person, enrollment = dst
    since = case.now - timedelta(days=DAYS_BACK)
    rows = db_occurrences(harness, person)
    calendar_rows = [r for r in rows if "calendar" in r["channels"]]
    wanted = [r for r in calendar_rows if r["state"] == "scheduled" and r["instant"] >= since]

    # The test means something: occurrences older than 30 days exist and are left out,
    # SMS-only practices exist, and the horizon reaches well past now.
    assert any(r["instant"] < since for r in calendar_rows)
    assert any(r["channels"] == ["sms"] for r in rows)
    assert max(r["instant"] for r in wanted) > case.now + timedelta(days=10)
    assert {r["enrollment_id"] for r in rows} == {enrollment}

    feed = get_feed(client, feed_path(harness, person))

    # Exactly those rows, by UID and by instant.
    assert feed.starts() == {uid(r): r["instant"] for r in wanted}
    # The local times also read back right with the feed's own VTIMEZONE.
    assert {u: e.own_start for u, e in feed.events.items()} == feed.starts()
    # The hand-worked instants around the change, so that the rows are right too.
    for key, moment in case.expected.items():
        assert feed.events[f"{key}.{enrollment}@tend"].start == moment, key
    assert not any(u.startswith("morning-walk:") for u in feed.events)
    assert {e.tzid for e in feed.events.values()} == {case.zone}
    assert [vtz.tzid.value for vtz in feed.calendar.vtimezone_list] == [case.zone]
    for row in wanted:
        event = feed.events[uid(row)]
        assert event.sequence == row["sequence"] == 0
        assert event.last_modified == row["updated_at"].replace(microsecond=0)
        assert event.stamp == event.last_modified
        assert event.alarm
        assert event.summary in ("Early check", "Late check")


@pytest.mark.parametrize("case_name", ["new-york-fall", "lord-howe-april"])
def test_every_event_lasts_its_duration_even_across_a_fall_back(
    harness: Harness, folders: Folders, client: TestClient, case_name: str
) -> None:
    case = DST_CASES[case_name]
    folders.write_plan("night-shift", NIGHT_SHIFT)
    publish(harness.runtime)
    harness.clock.set(case.enrolled)
    person = harness.participant(tz=case.zone)
    harness.enroll(person, "night-shift", case.start)
    extend_to(harness, case.now)
    rows = {uid(r): r for r in db_occurrences(harness, person)}
    feed = get_feed(client, feed_path(harness, person))
    assert feed.events
    durations = {u: e.end - e.start for u, e in feed.events.items()}
    assert durations == {u: timedelta(minutes=rows[u]["duration_minutes"]) for u in durations}


# --- HTTP ----------------------------------------------------------------------------------

EVENING = """
    plan: evening
    title: Evening
    weeks: 2
    practices:
      - id: walk
        category: movement
        title: Evening walk
        at: "18:00"
        duration: 30m
        channels: [sms, calendar]
      - id: breathe
        category: mindfulness
        title: Slow breathing
        at: "21:00"
        channels: [calendar]
        message: "Five slow breaths: in for four, out for six."
      - id: stretch
        category: movement
        title: Morning stretch
        at: "07:30"
        channels: [sms]
"""
MONDAY = date(2026, 3, 2)
WALK_MONDAY = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # 18:00 EST


@pytest.fixture
def rae(harness: Harness, folders: Folders) -> tuple[str, str]:
    """Rae (New York) enrolled in the evening plan on Monday 2 March, at 07:00 EST."""
    folders.write_plan("evening", EVENING)
    publish(harness.runtime)
    person = harness.participant()
    return person, harness.enroll(person, "evening", MONDAY)


def test_headers_etag_head_and_not_modified(
    harness: Harness, client: TestClient, rae: tuple[str, str]
) -> None:
    person, _ = rae
    path = feed_path(harness, person)
    assert re.fullmatch(r"/calendar/p_[a-z0-9]+\.[A-Za-z0-9_-]{27}\.ics", path)  # 160-bit mac

    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    etag = response.headers["etag"]
    assert re.fullmatch(r'"[^"]+"', etag)
    cache = [part.strip() for part in response.headers["cache-control"].split(",")]
    assert "private" in cache
    assert "public" not in cache
    rows = db_occurrences(harness, person)
    changed = max(r["updated_at"] for r in rows)
    assert parsedate_to_datetime(response.headers["last-modified"]) == changed.replace(
        microsecond=0
    )
    feed = read_feed(response.content)
    assert len(feed.events) == 28  # two weeks of walks and breathing, no stretches
    assert feed.calendar.contents["x-wr-calname"][0].value == "Tend: Rae's practices"
    assert feed.calendar.contents["name"][0].value == "Tend: Rae's practices"
    assert feed.calendar.contents["refresh-interval"][0].params["VALUE"] == ["DURATION"]
    assert feed.calendar.contents["refresh-interval"][0].value.startswith("PT")
    assert feed.calendar.contents["x-published-ttl"][0].value.startswith("PT")

    # The same content later: the same bytes and the same ETag (nothing depends on "now").
    harness.clock.advance(minutes=5)
    again = client.get(path)
    assert again.headers["etag"] == etag
    assert again.content == response.content

    head = client.head(path)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == etag
    assert head.headers["content-type"] == "text/calendar; charset=utf-8"
    assert head.headers["last-modified"] == response.headers["last-modified"]

    for header in (etag, f"W/{etag}", f'"something-else", {etag}', "*"):
        cached = client.get(path, headers={"If-None-Match": header})
        assert cached.status_code == 304, header
        assert cached.content == b""
        assert cached.headers["etag"] == etag
        assert "private" in cached.headers["cache-control"]
    assert client.head(path, headers={"If-None-Match": etag}).status_code == 304
    stale = client.get(path, headers={"If-None-Match": '"something-else"'})
    assert stale.status_code == 200
    assert stale.content == response.content


def test_head_sends_no_content_length_or_the_one_get_would_send(
    harness: Harness, client: TestClient, rae: tuple[str, str]
) -> None:
    person, _ = rae
    path = feed_path(harness, person)
    body = client.get(path).content
    assert len(body) > 1000
    head = client.head(path)
    assert head.status_code == 200
    assert head.headers.get("content-length", str(len(body))) == str(len(body))


def test_a_check_in_marks_the_event_done_and_changes_the_etag(
    harness: Harness, client: TestClient, rae: tuple[str, str]
) -> None:
    person, enrollment = rae
    path = feed_path(harness, person)
    walk = occurrence(harness, "walk:2026-03-02")
    walk_uid = f"walk:2026-03-02.{enrollment}@tend"
    harness.clock.set(WALK_MONDAY + timedelta(minutes=20))
    before = client.get(path)
    etag = before.headers["etag"]
    assert read_feed(before.content).events[walk_uid].alarm

    done_at = harness.clock.now()
    with transaction(harness.runtime.engine) as conn:
        assert checkins.record_check_in(conn, walk["id"], "done", now=done_at, source="sms")

    assert client.get(path, headers={"If-None-Match": etag}).status_code == 200
    after = client.get(path)
    assert after.headers["etag"] != etag
    assert parsedate_to_datetime(after.headers["last-modified"]) == done_at
    events = read_feed(after.content).events
    done = events[walk_uid]
    assert done.summary == "\u2713 Evening walk"
    assert not done.alarm
    assert done.last_modified == done_at
    assert done.start == WALK_MONDAY  # still where it was
    # Only that one: the next walk still has its alarm and no mark.
    following = events[f"walk:2026-03-03.{enrollment}@tend"]
    assert following.summary == "Evening walk"
    assert following.alarm
    assert client.get(path, headers={"If-None-Match": after.headers["etag"]}).status_code == 304

    # A skip is not done: the mark goes, the alarm stays off only for done events.
    with transaction(harness.runtime.engine) as conn:
        assert checkins.record_check_in(
            conn, walk["id"], "skipped", now=done_at + timedelta(minutes=1), source="sms"
        )
    skipped = client.get(path)
    assert skipped.headers["etag"] != after.headers["etag"]
    assert read_feed(skipped.content).events[walk_uid].summary == "Evening walk"


def test_the_description_carries_a_check_in_link_that_works(
    harness: Harness, client: TestClient, rae: tuple[str, str]
) -> None:
    person, enrollment = rae
    path = feed_path(harness, person)
    breathe = occurrence(harness, "breathe:2026-03-02")
    link = check_in_link(harness.runtime, breathe["id"], breathe["window_end"])
    event = get_feed(client, path).events[f"breathe:2026-03-02.{enrollment}@tend"]
    assert event.description == f"Five slow breaths: in for four, out for six.\n\nCheck in: {link}"
    assert event.url == link
    assert link.startswith("https://tend.test/check-in/")

    page = client.get(urlsplit(link).path)
    assert page.status_code == 200
    assert "Slow breathing" in page.text

    # In its window the link records the check-in, and the feed shows it done.
    harness.clock.set(breathe["instant"] + timedelta(minutes=10))
    posted = client.post(
        urlsplit(link).path,
        content="outcome=done",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert posted.status_code == 200
    assert occurrence(harness, "breathe:2026-03-02")["check_in"] == "done"
    event = get_feed(client, path).events[f"breathe:2026-03-02.{enrollment}@tend"]
    assert event.summary == "\u2713 Slow breathing"
    assert not event.alarm


def test_tokens_that_do_not_verify_all_get_the_same_bare_404(
    harness: Harness, client: TestClient, rae: tuple[str, str]
) -> None:
    person, _ = rae
    other = harness.participant(name="Sam Other", phone="+14155550199", email="sam@example.com")
    secret = harness.runtime.secret
    good = feed_token(secret, person, 1)
    assert client.get(f"/calendar/{good}.ics").status_code == 200
    participant_id, _, mac = good.rpartition(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    bad = {
        "unknown participant": feed_token(secret, "p_doesnotexist", 1),
        "wrong mac": f"{participant_id}.{flipped}",
        "mac cut short": f"{participant_id}.{mac[:-1]}",
        "another participant's mac": f"{other}.{mac}",
        "another secret": feed_token(b"some-other-secret", person, 1),
        "a version not yet issued": feed_token(secret, person, 2),
        "a check-in token": check_in_token(secret, 1, datetime(2030, 1, 1, tzinfo=UTC)),
        "garbage": "not-a-token",
        "dots only": "...",
        "no mac": f"{person}.",
        "no participant": f".{mac}",
    }
    first: bytes | None = None
    for name, token in bad.items():
        response = client.get(f"/calendar/{token}.ics")
        assert response.status_code == 404, name
        assert "etag" not in response.headers, name
        assert "last-modified" not in response.headers, name
        first = first if first is not None else response.content
        assert response.content == first, name  # no hint of which check failed
        assert client.head(f"/calendar/{token}.ics").status_code == 404, name
        star = client.get(f"/calendar/{token}.ics", headers={"If-None-Match": "*"})
        assert star.status_code == 404, name
    assert first is not None
    assert person.encode() not in first


def test_feed_url_rotate_revokes_the_old_url_and_the_new_one_works(
    harness: Harness, folders: Folders, client: TestClient, rae: tuple[str, str]
) -> None:
    person, _ = rae
    settings = harness.runtime.settings
    env = {
        "TEND_DATABASE_URL": settings.database_url,
        "TEND_SCHEDULES_DIR": str(folders.schedules),
        "TEND_TEMPLATES_DIR": str(folders.templates),
        "TEND_SECRET_KEY": "test-secret",
        "TEND_PUBLIC_URL": "https://tend.test",
    }

    def tend(*args: str) -> Any:
        result = CliRunner().invoke(cli.main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    printed = tend("participants", "feed-url", person)
    old = printed.stdout.strip()
    assert old == feed_link(harness.runtime, person, 1)
    assert webcal_link(old) in printed.stderr
    assert webcal_link(old).startswith("webcal://tend.test/calendar/")
    assert tend("participants", "feed-url", person).stdout.strip() == old  # same again
    old_path = urlsplit(old).path
    before = client.get(old_path)
    assert before.status_code == 200

    rotated = tend("participants", "feed-url", person, "--rotate")
    new = rotated.stdout.strip()
    assert new != old
    assert "no longer works" in rotated.stderr
    assert client.get(old_path).status_code == 404
    assert client.head(old_path).status_code == 404
    revalidated = client.get(old_path, headers={"If-None-Match": before.headers["etag"]})
    assert revalidated.status_code == 404
    response = client.get(urlsplit(new).path)
    assert response.status_code == 200
    # The new URL shows the same events (same UIDs), under a new ETag.
    assert read_feed(response.content).starts() == read_feed(before.content).starts()
    assert response.headers["etag"] != before.headers["etag"]

    # And once more through the repository: only the latest version works.
    with transaction(harness.runtime.engine) as conn:
        assert participant_rows.rotate_feed(conn, person) == 3
    assert client.get(urlsplit(new).path).status_code == 404
    assert client.get(feed_path(harness, person)).status_code == 200


def test_an_empty_feed_is_a_valid_calendar(
    harness: Harness, folders: Folders, client: TestClient
) -> None:
    folders.write_plan("evening", EVENING)
    publish(harness.runtime)
    nobody = harness.participant(name="Noor Empty", phone="+14155550111", email=None)
    response = client.get(feed_path(harness, nobody))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    assert "etag" in response.headers
    feed = read_feed(response.content)
    assert feed.events == {}
    assert feed.calendar.contents.get("vtimezone", []) == []
    assert feed.calendar.contents["x-wr-calname"][0].value == "Tend: Noor's practices"
    cached = client.get(
        feed_path(harness, nobody), headers={"If-None-Match": response.headers["etag"]}
    )
    assert cached.status_code == 304


def test_sms_only_practices_give_an_empty_feed(
    harness: Harness, folders: Folders, client: TestClient
) -> None:
    folders.write_plan(
        "mornings",
        """
        plan: mornings
        title: Mornings
        weeks: 1
        practices:
          - id: stretch
            category: movement
            title: Morning stretch
            at: "07:30"
            channels: [sms]
        """,
    )
    publish(harness.runtime)
    person = harness.participant()
    harness.enroll(person, "mornings", MONDAY)
    assert len(db_occurrences(harness, person)) == 7
    assert get_feed(client, feed_path(harness, person)).events == {}


@pytest.mark.parametrize("status", ["paused", "cancelled"])
def test_pausing_or_cancelling_removes_the_events_ahead_and_keeps_the_past(
    harness: Harness, client: TestClient, rae: tuple[str, str], status: str
) -> None:
    person, enrollment = rae
    path = feed_path(harness, person)
    now = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)  # Thursday, 07:00 EST
    harness.clock.set(now)
    before = client.get(path)
    events = read_feed(before.content).events
    past = {u for u, e in events.items() if e.start <= now}
    ahead = {u for u, e in events.items() if e.start > now}
    assert len(past) == 6  # walks and breathing on Monday to Wednesday
    assert len(ahead) == 22

    harness.clock.advance(minutes=1)
    with transaction(harness.runtime.engine) as conn:
        enrollment_rows.set_enrollment_status(conn, enrollment, status, now=harness.clock.now())

    after = client.get(path)
    assert after.headers["etag"] != before.headers["etag"]
    assert client.get(path, headers={"If-None-Match": before.headers["etag"]}).status_code == 200
    assert set(read_feed(after.content).events) == past
    # The past events are as they were.
    kept = read_feed(after.content).events
    assert {u: kept[u].start for u in past} == {u: events[u].start for u in past}

    if status == "paused":
        with transaction(harness.runtime.engine) as conn:
            enrollment_rows.set_enrollment_status(
                conn, enrollment, "active", now=harness.clock.now()
            )
        assert set(get_feed(client, path).events) == past | ahead


DAILY = """
    plan: daily
    title: Daily
    weeks: 8
    practices:
      - id: breathe
        category: mindfulness
        title: Slow breathing
        at: "21:00"
        channels: [calendar]
"""


def test_as_days_pass_events_older_than_30_days_leave_and_the_etag_changes(
    harness: Harness, folders: Folders, client: TestClient
) -> None:
    folders.write_plan("daily", DAILY)
    publish(harness.runtime)
    person = harness.participant()
    enrollment = harness.enroll(person, "daily", MONDAY)
    extend_to(harness, datetime(2026, 4, 6, 12, 0, tzinfo=UTC))  # five weeks on
    path = feed_path(harness, person)
    first = client.get(path)
    # A day later, with nothing else changed: the 8 March breathing is 30 days old.
    harness.clock.set(datetime(2026, 4, 7, 12, 0, tzinfo=UTC))
    second = client.get(path)
    old, new = read_feed(first.content).events, read_feed(second.content).events
    assert set(old) - set(new) == {f"breathe:2026-03-07.{enrollment}@tend"}
    assert set(new) <= set(old)
    assert min(e.start for e in new.values()) == datetime(2026, 3, 9, 1, 0, tzinfo=UTC)
    assert second.headers["etag"] != first.headers["etag"]
    revalidated = client.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert revalidated.status_code == 200


def test_the_etag_changes_whenever_the_feed_does_also_while_paused(
    harness: Harness, folders: Folders, client: TestClient
) -> None:
    folders.write_plan("daily", DAILY)
    publish(harness.runtime)
    person = harness.participant()
    enrollment = harness.enroll(person, "daily", MONDAY)
    extend_to(harness, datetime(2026, 4, 6, 12, 0, tzinfo=UTC))  # five weeks on
    with transaction(harness.runtime.engine) as conn:
        enrollment_rows.set_enrollment_status(conn, enrollment, "paused", now=harness.clock.now())
    path = feed_path(harness, person)
    harness.clock.set(datetime(2026, 4, 7, 12, 0, tzinfo=UTC))
    first = client.get(path)
    harness.clock.set(datetime(2026, 4, 8, 12, 0, tzinfo=UTC))  # a day later
    second = client.get(path)
    # What the feed is to show changed: 8 March left the 30 days, and 7 April (paused,
    # now past: history) came in. The count of rows shown did not.
    now = harness.clock.now()
    shown = {
        uid(r)
        for r in db_occurrences(harness, person)
        if r["state"] == "scheduled" and now - timedelta(days=DAYS_BACK) <= r["instant"] <= now
    }
    assert set(read_feed(first.content).events) ^ shown == {
        f"breathe:2026-03-08.{enrollment}@tend",
        f"breathe:2026-04-07.{enrollment}@tend",
    }
    # So the ETag must change, the feed must show it, and a calendar that asks with the
    # old ETag must get the new feed, not a 304.
    assert second.headers["etag"] != first.headers["etag"]
    assert set(read_feed(second.content).events) == shown
    revalidated = client.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert revalidated.status_code == 200


def test_a_plan_edit_moves_the_event_under_the_same_uid_with_a_higher_sequence(
    harness: Harness, folders: Folders, client: TestClient, rae: tuple[str, str]
) -> None:
    person, enrollment = rae
    path = feed_path(harness, person)
    before = client.get(path)
    old = read_feed(before.content).events
    walk_uid = f"walk:2026-03-04.{enrollment}@tend"
    assert old[walk_uid].start == datetime(2026, 3, 4, 23, 0, tzinfo=UTC)
    assert old[walk_uid].sequence == 0

    # The coach moves the walk half an hour later.
    folders.write_plan(
        "evening", EVENING.replace('at: "18:00"', 'at: "18:30"  # after dinner, not before')
    )
    harness.clock.set(datetime(2026, 3, 3, 15, 0, tzinfo=UTC))
    applied = publish(harness.runtime)
    assert [line.enrollment_id for line in applied] == [enrollment]

    after = client.get(path)
    assert after.headers["etag"] != before.headers["etag"]
    assert client.get(path, headers={"If-None-Match": before.headers["etag"]}).status_code == 200
    new = read_feed(after.content).events
    assert set(new) == set(old)  # the same UIDs: calendars update, not duplicate
    moved = new[walk_uid]
    assert moved.start == datetime(2026, 3, 4, 23, 30, tzinfo=UTC)
    assert moved.end - moved.start == timedelta(minutes=30)
    assert moved.sequence == old[walk_uid].sequence + 1
    assert moved.last_modified > old[walk_uid].last_modified
    assert moved.last_modified == harness.clock.now()
    assert occurrence(harness, "walk:2026-03-04")["instant"] == moved.start
    # Breathing did not change.
    breathe_uid = f"breathe:2026-03-04.{enrollment}@tend"
    assert new[breathe_uid] == old[breathe_uid]
    assert parsedate_to_datetime(after.headers["last-modified"]) == harness.clock.now()


EVENING_WITHOUT_BREATHING = """
    plan: evening
    title: Evening
    weeks: 2
    practices:
      - id: walk
        category: movement
        title: Evening walk
        at: "18:00"
        duration: 30m
        channels: [sms, calendar]
      - id: stretch
        category: movement
        title: Morning stretch
        at: "07:30"
        channels: [sms]
"""


WEDNESDAY = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # 07:00 EST


def test_occurrences_the_plan_no_longer_has_leave_the_feed(
    harness: Harness, folders: Folders, client: TestClient, rae: tuple[str, str]
) -> None:
    person, enrollment = rae
    path = feed_path(harness, person)
    before = client.get(path)
    # The coach keeps breathing to weekdays: the weekend ones ahead are cancelled.
    harness.clock.set(WEDNESDAY)
    folders.write_plan(
        "evening",
        EVENING.replace('at: "21:00"\n', 'at: "21:00"\n        every: weekday\n'),
    )
    (line,) = publish(harness.runtime)
    assert line.changes.summary() == "+0 added, ~0 changed, -4 cancelled"

    rows = db_occurrences(harness, person)
    cancelled = {uid(r) for r in rows if r["state"] == "cancelled"}
    assert cancelled == {
        f"breathe:{day}.{enrollment}@tend"
        for day in ("2026-03-07", "2026-03-08", "2026-03-14", "2026-03-15")
    }
    after = client.get(path)
    assert after.headers["etag"] != before.headers["etag"]
    old, new = read_feed(before.content).events, read_feed(after.content).events
    assert set(new) == set(old) - cancelled
    assert all(new[u] == old[u] for u in new)  # the others did not change at all


def drop_breathing(h: Harness, folders: Folders, now: datetime) -> None:
    """The coach drops the breathing practice at `now`; the walk stays as it was."""
    h.clock.set(now)
    folders.write_plan("evening", EVENING_WITHOUT_BREATHING)
    (line,) = publish(h.runtime)
    assert line.changes.summary() == "+0 added, ~0 changed, -12 cancelled"


def test_a_practice_dropped_from_the_plan_leaves_the_feed_ahead(
    harness: Harness, folders: Folders, client: TestClient, rae: tuple[str, str]
) -> None:
    person, _ = rae
    path = feed_path(harness, person)
    before = client.get(path)
    drop_breathing(harness, folders, WEDNESDAY)

    rows = db_occurrences(harness, person)
    dropped = [r for r in rows if r["practice_id"] == "breathe" and r["instant"] > WEDNESDAY]
    assert len(dropped) == 12
    assert {r["state"] for r in dropped} == {"cancelled"}
    after = client.get(path)
    assert after.headers["etag"] != before.headers["etag"]
    events = read_feed(after.content).events
    assert not any(uid(r) in events for r in dropped)
    walks = {u: e.start for u, e in events.items() if u.startswith("walk:")}
    assert walks == {
        u: e.start for u, e in read_feed(before.content).events.items() if u.startswith("walk:")
    }
    assert len(walks) == 14


def test_the_past_of_a_dropped_practice_stays_in_the_feed(
    harness: Harness, folders: Folders, client: TestClient, rae: tuple[str, str]
) -> None:
    person, enrollment = rae
    path = feed_path(harness, person)
    drop_breathing(harness, folders, WEDNESDAY)
    rows = db_occurrences(harness, person)
    history = {uid(r) for r in rows if r["practice_id"] == "breathe" and r["instant"] <= WEDNESDAY}
    assert history == {
        f"breathe:2026-03-02.{enrollment}@tend",
        f"breathe:2026-03-03.{enrollment}@tend",
    }
    events = read_feed(client.get(path).content).events
    # Exactly the rows: scheduled, with calendar, in the 30 days or ahead.
    assert set(events) == {
        uid(r) for r in rows if r["state"] == "scheduled" and "calendar" in r["channels"]
    }
    assert history <= set(events)


LONG_PLAN = """
    plan: gentle
    title: Gentle
    weeks: 1
    practices:
      - id: soir
        category: mindfulness
        title: "Méditation du soir 🧘‍♀️: respirer, ralentir; écouter \\\\ sentir — Zoë’s café crème ☕, très doucement; encore"
        at: "20:00"
        channels: [calendar]
        check_in: none
        message: |-
          Première ligne, avec virgule; et point-virgule.
          Deuxième ligne: 🌙 bonne nuit \\ à demain.
"""
LONG_TITLE = (
    "Méditation du soir 🧘‍♀️: respirer, ralentir; écouter \\ sentir — "
    "Zoë’s café crème ☕, très doucement; encore"
)
LONG_MESSAGE = (
    "Première ligne, avec virgule; et point-virgule.\nDeuxième ligne: 🌙 bonne nuit \\ à demain."
)


def test_a_long_non_ascii_title_and_a_multiline_message_read_back_exactly(
    harness: Harness, folders: Folders, client: TestClient
) -> None:
    folders.write_plan("gentle", LONG_PLAN)
    publish(harness.runtime)
    assert harness.plan("gentle").practice("soir").title == LONG_TITLE
    person = harness.participant(name="Zoë Ångström")
    enrollment = harness.enroll(person, "gentle", MONDAY)
    response = client.get(feed_path(harness, person))
    assert response.status_code == 200
    lines = response.content.split(b"\r\n")
    assert max(len(line) for line in lines) <= LINE_OCTETS
    assert any(line.startswith(b" ") for line in lines)  # it was folded
    feed = read_feed(response.content)
    assert len(feed.events) == 7
    event = feed.events[f"soir:2026-03-02.{enrollment}@tend"]
    assert event.summary == LONG_TITLE
    assert event.description == LONG_MESSAGE  # no check-in asked: no link added
    assert event.url is None
    assert feed.calendar.contents["x-wr-calname"][0].value == "Tend: Zoë's practices"
    vevent = next(v for v in feed.calendar.vevent_list if v.uid.value == event.uid)
    assert vevent.valarm.description.value == LONG_TITLE
    assert vevent.categories.value == ["mindfulness"]
