"""Calendar subscription feeds: `GET|HEAD /calendar/{token}.ics`.

The token is `<participant>.<mac>`, the mac an HMAC of the secret key over the
participant and their feed version (160 bits): `tend participants feed-url` can print it
again, `--rotate` bumps the version and every earlier token stops working. It is
compared in constant time; a token that does not verify, for whatever reason, gets the
same bare 404.

The feed shows the occurrence rows the scheduler fires (see `storage.feeds`), so the
calendar says exactly what the reminders say. Calendar apps poll, so the answer is
built for polling: an ETag from one cheap statement (`feed_state`) answers an unchanged
feed with 304 before any event is read, and each event's text is kept once written
(`core.feed.event_text`) until the occurrence changes.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from datetime import datetime, timedelta
from email.utils import format_datetime
from threading import Lock
from typing import cast
from zoneinfo import ZoneInfo

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from service.actions import wording
from service.actions.links import check_in_link
from service.core.expand import Occurrence, resolve_plan_variables
from service.core.feed import FeedEvent, write_feed
from service.core.plan import Plan
from service.core.records import Participant
from service.core.render import Person, RenderError
from service.core.states import CheckInResult
from service.core.tokens import feed_participant, feed_token_valid
from service.runtime import Runtime
from service.storage import feeds
from service.storage import participants as participant_rows
from service.storage.db import reading

log = structlog.get_logger("tend.calendar")

router = APIRouter(tags=["calendar"])

DAYS_BACK = 30
REFRESH = timedelta(hours=1)
FORMAT = "1"  # bump when the feed's text changes for the same rows
HEADERS = {
    "Cache-Control": "private, max-age=900",  # personal: no shared cache keeps it
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
}
MEDIA_TYPE = "text/calendar; charset=utf-8"


def _runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


@router.api_route("/calendar/{token}.ics", methods=["GET", "HEAD"], include_in_schema=False)
async def calendar_feed(token: str, request: Request) -> Response:
    runtime = _runtime(request)
    participant_id = feed_participant(token)
    if participant_id is None:
        return _not_found()
    now = runtime.clock.now()
    since = now - timedelta(days=DAYS_BACK)
    # The state is one short read; on SQLite (in process, no lock taken) it is cheaper
    # to do it here than to hop to a thread. PostgreSQL is a network round trip away.
    if runtime.engine.dialect.name == "sqlite":
        state = _state(runtime, participant_id, since, now)
    else:
        state = await run_in_threadpool(_state, runtime, participant_id, since, now)
    if state is None or not feed_token_valid(
        runtime.secret, token, participant_id, state.feed_version
    ):
        return _not_found()
    etag = _etag(runtime, state)
    headers = {**HEADERS, "ETag": etag}
    if state.last_modified is not None:
        headers["Last-Modified"] = format_datetime(state.last_modified, usegmt=True)
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if request.method == "HEAD":
        head = Response(headers=headers, media_type=MEDIA_TYPE)
        del head.headers["content-length"]  # not 0: a GET's length would differ (RFC 9110)
        return head
    body = _BODIES.get((participant_id, etag))
    if body is None:
        body = await run_in_threadpool(_render, runtime, participant_id, since, now)
        _BODIES.put((participant_id, etag), body)
    return Response(body, headers=headers, media_type=MEDIA_TYPE)


def _state(
    runtime: Runtime, participant_id: str, since: datetime, now: datetime
) -> feeds.FeedState | None:
    with reading(runtime.engine) as conn:
        return feeds.feed_state(conn, participant_id, since=since, now=now)


def _render(runtime: Runtime, participant_id: str, since: datetime, now: datetime) -> bytes:
    with reading(runtime.engine) as conn:
        participant = participant_rows.get_participant(conn, participant_id)
        rows = feeds.feed_rows(conn, participant_id, since=since, now=now)
    return render_feed(runtime, participant, rows)


class _Bodies:
    """Feeds as last written, by participant and ETag: the ETag changes whenever what
    the feed shows changes, so a body found here is the body. Bounded by size."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._lock = Lock()

    def get(self, key: tuple[str, str]) -> bytes | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[str, str], body: bytes) -> None:
        with self._lock:
            # One body per participant: an older version is of no use any more.
            for stale in [k for k in self._items if k[0] == key[0] and k != key][:4]:
                self.size -= len(self._items.pop(stale))
            if key not in self._items:
                self._items[key] = body
                self.size += len(body)
            while self.size > self.max_bytes and self._items:
                self.size -= len(self._items.popitem(last=False)[1])


_BODIES = _Bodies(max_bytes=64 * 1024 * 1024)


def render_feed(runtime: Runtime, participant: Participant, rows: list[feeds.FeedRow]) -> bytes:
    events = [_event(runtime, participant, row) for row in rows]
    first = participant.name.split()[0] if participant.name.split() else participant.name
    return write_feed(
        events,
        name=f"Tend: {first}'s practices",
        refresh=REFRESH,
        description="Your practices, as Tend reminds you of them.",
    )


def _etag(runtime: Runtime, state: feeds.FeedState) -> str:
    templates = runtime.catalog.templates_digest  # descriptions come from them
    basis = f"{FORMAT}|{templates}|{runtime.settings.public_base}|{state.version()}"
    return '"' + hashlib.sha256(basis.encode()).hexdigest()[:32] + '"'


def _matches(header: str | None, etag: str) -> bool:
    """If-None-Match holds `etag` (or *); weak comparison, as RFC 9110 asks for GET."""
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag in tags


# Descriptions come from the plan's calendar template: rendered once per version of an
# occurrence, then kept (a feed is fetched far more often than it changes).
_DESCRIPTIONS: OrderedDict[tuple[object, ...], tuple[str, str]] = OrderedDict()
_DESCRIPTIONS_LOCK = Lock()
MAX_DESCRIPTIONS = 50_000


def _event(runtime: Runtime, participant: Participant, row: feeds.FeedRow) -> FeedEvent:
    plan = runtime.plans.get(row.plan_id, row.plan_hash)
    practice = plan.practice_index.get(row.practice_id) if plan is not None else None
    zone = participant.timezone
    start = row.instant.astimezone(ZoneInfo(zone))
    end = (row.instant + timedelta(minutes=row.duration_minutes)).astimezone(ZoneInfo(zone))
    if plan is None or practice is None:
        # A practice the plan no longer has (or a plan gone): its history stays, plainly.
        return FeedEvent(
            uid=f"{row.key}.{row.enrollment_id}@tend",
            start=start,
            end=end,
            zone=zone,
            summary=row.practice_id.replace("-", " ").capitalize(),
            description="",
            category="other",
            sequence=row.sequence,
            last_modified=max(t for t in (row.updated_at, row.check_in_at) if t is not None),
            done=row.check_in == CheckInResult.DONE,
            alarm=False,
        )
    description, link = _description(runtime, plan, participant, row, start)
    if practice.check_in.asks and link not in description:  # templates may carry it
        description = f"{description}\n\nCheck in: {link}" if description else f"Check in: {link}"
    changed = max(t for t in (row.updated_at, row.check_in_at) if t is not None)
    return FeedEvent(
        uid=f"{row.key}.{row.enrollment_id}@tend",
        start=start,
        end=end,
        zone=zone,
        summary=wording.title_for(runtime, participant, practice, practice.id, row.instant),
        description=description,
        # A discreet participant's events say no more than their texts do.
        category="other" if participant.discreet else practice.category,
        sequence=row.sequence,
        last_modified=changed,
        url=(None if participant.discreet else practice.url)
        or (link if practice.check_in.asks else None),
        location=practice.location,
        done=row.check_in == CheckInResult.DONE,
    )


def _description(
    runtime: Runtime, plan: Plan, participant: Participant, row: feeds.FeedRow, start: datetime
) -> tuple[str, str]:
    """The event's description from the calendar template, and its check-in link."""
    key = (
        row.occurrence_id,
        row.fingerprint,
        row.sequence,
        plan.content_hash,
        participant.name,
        participant.language,
        participant.discreet,
        tuple(sorted(participant.variables.items())),
        tuple(sorted(row.variables.items())),
    )
    with _DESCRIPTIONS_LOCK:
        found = _DESCRIPTIONS.get(key)
        if found is not None:
            _DESCRIPTIONS.move_to_end(key)
            return found
    practice = plan.practice(row.practice_id)
    occurrence = Occurrence(
        practice=practice,
        date=row.local_date,
        week=row.week,
        index=row.seq,
        utc=row.instant,
        zone=start.tzinfo,  # type: ignore[arg-type]
        variant=practice.variant(row.week),
        item=row.item,
        window_end=row.window_end,
    )
    merged = {k: v for k, v in participant.variables.items() if k in plan.variables}
    merged.update(row.variables)
    link = check_in_link(runtime, row.occurrence_id, row.window_end)
    try:
        variables = resolve_plan_variables(plan, merged)
        renderer = runtime.plans.renderer(plan)
        context = renderer.context(
            plan,
            occurrence,
            Person(participant.name),
            variables,
            link,
            language=wording.language_of(runtime, participant),
            discreet=participant.discreet,
        )
        text = renderer.calendar(occurrence.variant, practice, context)
    except (RenderError, ValueError) as exc:
        log.warning("calendar description failed", occurrence=row.occurrence_id, error=str(exc))
        text = ""
    with _DESCRIPTIONS_LOCK:
        _DESCRIPTIONS[key] = (text, link)
        if len(_DESCRIPTIONS) > MAX_DESCRIPTIONS:
            _DESCRIPTIONS.popitem(last=False)
    return text, link


def _not_found() -> Response:
    return Response("Not found\n", status_code=404, media_type="text/plain")
