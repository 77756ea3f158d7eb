"""`tend demo`: a self-contained walk-through on simulated time.

Everything happens in a fresh folder (its own SQLite database), on the shipped plans,
with no network: SMS and email go to the development outbox whatever the environment
says. A few participants in different time zones are enrolled on 2 March 2026 (Rae in
New York crosses the 8 March change to summer time), then a ManualClock is moved from
one due reminder, reply or maintenance pass to the next for two simulated weeks, with
the real scheduler and an in-process dramatiq worker doing the sending.

The participants answer as people do, through the real inbound-SMS logic (so the
answers they get, and what their replies count for, are Tend's own): some keep up, one
slips in the second week, one texts STOP on day 5. Email reminders with a check-in
are answered through the check-in link's logic by those who keep up. Their replies are
drawn from a `random.Random` seeded per participant, so a seed gives the same run.

At the end: the adherence report (as `tend report` makes it), `report.json`, and
`report.html`, a self-contained page with the dashboard's SVG charts.
"""

from __future__ import annotations

import heapq
import json
import random
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from html import escape
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import dramatiq
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import func, select

from service import report
from service.actions import checkins as recording
from service.actions import coaches, cohorts, signups
from service.actions import enrollments as enrolling
from service.actions import plans as publishing
from service.actions.inbound_sms import handle_sms
from service.actions.plans import push
from service.clock import ManualClock
from service.core.replies import Reply, interpret
from service.core.states import Channel, DeliveryKind, EnrollmentStatus
from service.engine.scheduler import Scheduler
from service.engine.tasks import QUEUE, declare, middleware, weekly_sender
from service.logging import configure_logging
from service.runtime import Runtime
from service.settings import Settings, load_settings
from service.storage import checkins
from service.storage import cohorts as cohort_rows
from service.storage import deliveries as delivery_rows
from service.storage import participants as participant_rows
from service.storage import replies as reply_rows
from service.storage.cohorts import Cohort
from service.storage.db import make_engine, record, transaction, upgrade
from service.storage.tables import (
    deliveries,
    enrollments,
    occurrences,
    outbox,
    replies,
)
from service.web import charts, dashboard_data

START = date(2026, 3, 2)  # a Monday; New York moves its clocks on Sunday 8 March
CLOCK_START = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)  # a day before anyone's first reminder,
# so that every confirmation SMS goes in the day where its person is (08:00 to 21:00)
MAINTAIN_EVERY = timedelta(hours=1)  # windows, nudges, weekly messages, horizons
DEMO_SECRET = "tend-demo-secret-not-for-production"
COACH = "coach@example.com"
MARKER = ".tend-demo"  # the folder is ours to replace only when it holds this
STOP_DAY = 5  # the day (1-based) the one who stops texts STOP
# The coach publishes version 2 of a plan before week 2: gentle strength moves after
# dinner. Those enrolled follow it from then; what was sent stays as it was.
REVISION_AT = datetime(2026, 3, 9, 6, 0, tzinfo=UTC)
REVISION = (
    "rhythmic-movement",
    "    at: 18:00\n    every: [tue, fri]\n",
    '    at: "18:30"\n    every: [tue, fri]\n',
    "week 2: strength after dinner",
)

Style = Literal["keeps_up", "slips", "stops"]


@dataclass(frozen=True, slots=True)
class Persona:
    name: str
    timezone: str
    phone: str
    email: str
    plans: tuple[str, ...]
    style: Style
    variables: tuple[tuple[str, str], ...] = ()
    coached: bool = False  # one of coach Cora's own people, in her cohort
    joins: bool = False  # signs up on the cohort's page and answers YES (in Spanish)
    language: str | None = None
    discreet: bool = False  # texts that never name the practice
    snoozes_on: int = 0  # the day (1-based) they answer a reminder with LATER 20
    # Texts of their own say: (day, their local time, the text), e.g. WAKE 6:45.
    says: tuple[tuple[int, str, str], ...] = ()

    @property
    def described(self) -> str:
        said = {
            "keeps_up": "keeps up",
            "slips": "slips in week 2",
            "stops": f"texts STOP on day {STOP_DAY}",
        }[self.style]
        if self.joins:
            said = f"signs up on Cora's page, answers Sí; {said}"
        elif self.coached:
            said = f"Cora's; {said}"
        if self.language == "es":
            said += "; in Spanish"
        if self.discreet:
            said += "; discreet texts"
        if self.snoozes_on:
            said += f"; LATER 20 on day {self.snoozes_on}"
        for day, _, text in self.says:
            said += f"; {text} on day {day}"
        return said


PEOPLE = (
    Persona("Rae Okafor", "America/New_York", "+12125550141", "rae@example.com",
            ("sleep-hygiene", "rhythmic-movement"), "keeps_up", coached=True,
            says=((4, "08:30", "WAKE 6:45"),)),
    Persona("Kenji Sato", "Asia/Tokyo", "+819012345678", "kenji@example.com",
            ("morning-affirmations",), "keeps_up", (("wake", "06:30"),), snoozes_on=3),
    Persona("Amara Mensah", "Europe/London", "+447700900123", "amara@example.com",
            ("rhythmic-movement",), "slips"),
    Persona("Sam Taylor", "Australia/Sydney", "+61412345678", "sam@example.com",
            ("sleep-hygiene",), "stops", (("bedtime", "23:00"),), coached=True),
    Persona("Priya Nair", "Asia/Kolkata", "+919812345678", "priya@example.com",
            ("body-awareness",), "keeps_up", says=((1, "12:00", "QUIET 22:00-07:00"),)),
    Persona("Noor Haddad", "Europe/London", "+447700900456", "",
            ("body-awareness",), "keeps_up", discreet=True),
    Persona("Lucía Fernández", "America/Chicago", "+13125550190", "",
            ("sleep-hygiene",), "keeps_up", (("bedtime", "22:45"),), coached=True, joins=True,
            language="es"),
)  # fmt: skip
# Coach Cora's account and her cohort: Rae and Sam are hers; Lucía joins it herself
# through its sign-up page (double opt-in: a text asking YES, and her "Sí").
CORA = ("cora@example.com", "Cora Lindqvist")
COHORT = "Spring sleep group"
SIGNS_UP_AT = time(9, 10)  # Lucía's time, on the first day


class DemoError(Exception):
    """The demo cannot run; the message says why."""


@dataclass
class DemoResult:
    folder: Path
    database: Path
    html: Path
    json: Path
    report: report.Report
    sent: dict[str, int]  # messages kept in the outbox, by channel
    replies: int  # texts and link check-ins the participants sent
    answers: int  # texts Tend answered with
    check_ins: dict[str, int]  # occurrences by check-in (done, skipped)
    delivery_states: dict[str, int]
    cohort: str = ""  # coach Cora's cohort, in words
    people: tuple[Persona, ...] = PEOPLE
    # Texts by which participants changed their own reminders, one line each.
    own_say: list[str] = field(default_factory=list)


def demo_settings(folder: Path) -> Settings:
    """The environment's schedules and templates folders; everything else the demo's:
    its own database, no Twilio, SMTP or Redis, a fixed key, quiet logs."""
    return load_settings(
        env="development",
        database_url=f"sqlite:///{folder / 'demo.db'}",
        redis_url=None,
        twilio_account_sid=None,
        twilio_auth_token=None,
        twilio_from=None,
        smtp_host=None,
        smtp_user=None,
        smtp_password=None,
        secret_key=DEMO_SECRET,
        admin_token=None,
        log_level="warning",
        grace_minutes=15,
        coach_email=COACH,
        digest_day="mon",
        digest_at="08:00",
        digest_timezone="UTC",
    )


def prepare(folder: Path) -> None:
    """A fresh folder: made, or emptied when it is one an earlier demo made."""
    if folder.exists():
        if not folder.is_dir():
            raise DemoError(f"{folder} exists and is not a folder")
        if any(folder.iterdir()) and not (folder / MARKER).exists():
            raise DemoError(
                f"{folder} is not empty and was not made by tend demo; choose another --out"
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("made by tend demo; replaced by the next run\n")


# --- the simulation ------------------------------------------------------------------


@dataclass(order=True)
class _Event:
    when: datetime
    seq: int
    action: Callable[[], None] = field(compare=False)


@dataclass
class _Sent:
    """An outbox message with what it reminded of, when it was a reminder or a nudge."""

    channel: str
    participant_id: str | None
    occurrence_id: int | None
    practice_id: str | None
    kind: str | None  # reminder, nudge
    check_in_kind: str | None
    window_end: datetime | None
    key: str


class Simulation:
    def __init__(self, runtime: Runtime, clock: ManualClock, seed: int, end: datetime) -> None:
        self.runtime = runtime
        self.clock = clock
        self.seed = seed
        self.end = end
        self.broker = StubBroker(middleware=middleware())
        self.broker.emit_after("process_boot")
        actor = declare(self.broker, runtime)
        self.worker = dramatiq.Worker(self.broker, worker_threads=1, worker_timeout=20)
        self.worker.start()
        self.scheduler = Scheduler(runtime, actor.send, enqueue_weekly=weekly_sender(self.broker))
        self.events: list[_Event] = []
        self._seq = 0
        self._last_outbox = 0
        self._sids = 0
        self.people: dict[str, Persona] = {}  # by participant id
        self.rngs: dict[str, random.Random] = {}
        self.stopped: set[str] = set()
        self.replies = 0
        self.answers = 0
        self.cora = ""
        self.cohort: Cohort
        self.joining: dict[str, Persona] = {}  # by phone: signed up, not yet answered
        self.snoozed: set[str] = set()  # who has texted their LATER

    def close(self) -> None:
        self.worker.stop()
        self.broker.close()

    # set-up

    def coach_and_cohort(self) -> None:
        """Coach Cora's account, and her cohort with a plan, a JOIN keyword and a
        sign-up page (as she would make them in the dashboard)."""
        email, name = CORA
        made = coaches.add(self.runtime, coaches.operator(), email=email, name=name)
        self.cora = made.coach.id
        cora = coaches.Actor.of(made.coach)
        self.cohort = cohorts.create(self.runtime, name=COHORT, plan="sleep-hygiene",
                                     keyword="SLEEP", signup=True, actor=cora)  # fmt: skip

    def enroll(self, persona: Persona) -> str | None:
        """Add the persona and enroll them; one who joins on their own signs up on the
        cohort's page on the first morning instead (None: no participant yet)."""
        if persona.joins:
            moment = datetime.combine(START, SIGNS_UP_AT, ZoneInfo(persona.timezone))
            self.at(moment, lambda: self.sign_up(persona))
            return None
        # Stored as they are, not through actions.participants.create: the personas'
        # numbers are in ranges set aside for fiction (Ofcom's 07700 900xxx, 555-01xx),
        # which a real participant's number must not be.
        with transaction(self.runtime.engine) as conn:
            person = participant_rows.add_participant(
                conn,
                name=persona.name,
                timezone=persona.timezone,
                phone=persona.phone,
                email=persona.email or None,
                variables=dict(persona.variables),
                now=self.clock.now(),
                coach_id=self.cora if persona.coached else None,
                cohort_id=self.cohort.id if persona.coached else None,
                language=persona.language,
                discreet=persona.discreet,
            )
        for plan_id in persona.plans:
            plan = self.runtime.plans.get(plan_id)
            if plan is None:
                raise DemoError(
                    f"the shipped plan '{plan_id}' is not in {self.runtime.settings.schedules_dir}"
                    " (TEND_SCHEDULES_DIR); run tend demo from Tend's folder"
                )
            enrolling.enroll(self.runtime, person.id, plan, START, {})
        self.meet(person.id, persona)
        return person.id

    def meet(self, participant_id: str, persona: Persona) -> None:
        self.people[participant_id] = persona
        self.rngs[participant_id] = random.Random(f"{self.seed}:{persona.name}")
        zone = ZoneInfo(persona.timezone)
        if persona.style == "stops":
            moment = datetime.combine(START + timedelta(days=STOP_DAY - 1), time(20, 5), zone)
            self.at(moment, lambda: self.text(participant_id, "STOP"))
        for day, clock, body in persona.says:
            moment = datetime.combine(
                START + timedelta(days=day - 1), time.fromisoformat(clock), zone
            )
            self.at(moment, partial(self.text, participant_id, body))

    def sign_up(self, persona: Persona) -> None:
        """The sign-up page's form, filled in; the text asking YES follows."""
        assert self.cohort.signup_token is not None
        signups.sign_up(
            self.runtime, self.cohort.signup_token, name=persona.name, phone=persona.phone,
            timezone=persona.timezone, variables=dict(persona.variables),
            language=persona.language or "", address="demo",
        )  # fmt: skip
        self.joining[persona.phone] = persona

    def answer_yes(self, persona: Persona) -> None:
        """'Sí' to the question: she is a participant now, enrolled by Tend."""
        self._sids += 1
        answer = handle_sms(self.runtime, sid=f"SMdemo{self._sids:08d}", sender=persona.phone,
                            body="Sí")  # fmt: skip
        self.replies += 1
        self.answers += answer is not None
        with transaction(self.runtime.engine) as conn:
            person = participant_rows.find_participant_by_phone(conn, persona.phone)
        if person is None:
            raise DemoError(f"{persona.name}'s YES did not make her a participant")
        self.meet(person.id, persona)

    def revise_plan(self) -> None:
        """The coach's edit of `REVISION`, published as a plan's next version."""
        plan_id, old, new, note = REVISION
        current = self.runtime.plans.get(plan_id)
        text = publishing.version(self.runtime, plan_id, current.version).yaml if current else ""
        if old not in text:
            raise DemoError(
                f"plan '{plan_id}' no longer has the line the demo's coach edits: {old!r}"
            )
        publishing.publish(self.runtime, text.replace(old, new), by="coach (demo)", note=note)

    def at(self, when: datetime, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self.events, _Event(when.astimezone(UTC), self._seq, action))

    # running

    def run(self, progress: Callable[[datetime], None]) -> None:
        next_maintain = self.clock.now()
        last = self.clock.now()
        while True:
            with transaction(self.runtime.engine) as conn:
                due = delivery_rows.next_due(conn)
            moments = [next_maintain]
            if due is not None:
                moments.append(due)
            if self.events:
                moments.append(self.events[0].when)
            moment = max(min(moments), last)
            if moment > self.end:
                break
            self.clock.set(moment)
            while self.events and self.events[0].when <= moment:
                heapq.heappop(self.events).action()
            self.tick()
            if moment >= next_maintain:
                self.maintain()
                while next_maintain <= moment:
                    next_maintain += MAINTAIN_EVERY
            self.collect()
            progress(moment)
            last = moment + timedelta(seconds=1)  # time only moves on
        self.clock.set(self.end)
        self.tick()
        self.maintain()
        self.collect()
        progress(self.end)

    def tick(self) -> None:
        self.scheduler.tick()
        self._drain()

    def maintain(self) -> None:
        self.scheduler.maintain(force=True)
        self._drain()

    def _drain(self) -> None:
        self.broker.join(QUEUE, fail_fast=True)
        self.worker.join()

    # the participants' side

    def collect(self) -> None:
        """What went out since last time; the participants decide what to do about it."""
        query = (
            select(
                outbox.c.id,
                outbox.c.channel,
                outbox.c.recipient,
                deliveries.c.kind,
                occurrences.c.id.label("occurrence_id"),
                occurrences.c.key,
                occurrences.c.practice_id,
                occurrences.c.check_in_kind,
                occurrences.c.window_end,
                enrollments.c.participant_id,
            )
            .select_from(
                outbox.outerjoin(deliveries, deliveries.c.id == outbox.c.delivery_id)
                .outerjoin(occurrences, occurrences.c.id == deliveries.c.occurrence_id)
                .outerjoin(enrollments, enrollments.c.id == occurrences.c.enrollment_id)
            )
            .where(outbox.c.id > self._last_outbox)
            .order_by(outbox.c.id)
        )
        with transaction(self.runtime.engine) as conn:
            rows = list(conn.execute(query).mappings())
        if not rows:
            return
        self._last_outbox = max(r["id"] for r in rows)
        for row in rows:  # the text asking YES, to someone who signed up: she answers
            joining = self.joining.pop(row["recipient"], None)
            if joining is not None and row["occurrence_id"] is None:
                later = self.clock.now() + timedelta(minutes=4)
                self.at(later, partial(self.answer_yes, joining))
        sent = [record(_Sent, r) for r in rows if r["occurrence_id"] is not None]
        # The worker's order is its own: decide in an order of our own, for the seed.
        for item in sorted(
            sent, key=lambda s: (s.participant_id or "", s.key, s.kind or "", s.channel or "")
        ):
            persona = self.people.get(item.participant_id or "")
            if persona is not None and item.check_in_kind not in (None, "none"):
                self.decide(persona, item)

    def decide(self, persona: Persona, item: _Sent) -> None:
        assert item.participant_id is not None
        assert item.window_end is not None
        pid = item.participant_id
        rng = self.rngs[pid]
        now = self.clock.now()
        day = (now.astimezone(ZoneInfo(persona.timezone)).date() - START).days + 1
        chance = {"keeps_up": 0.9, "stops": 0.75, "slips": 0.8 if day <= 7 else 0.12}[persona.style]
        if item.kind == DeliveryKind.NUDGE:
            chance *= 0.6
        replying = rng.random() < chance
        delay = timedelta(minutes=rng.randint(2, 40))
        words = _words(rng, item.check_in_kind or "done", persona.language)
        if not replying or pid in self.stopped:
            return
        if (
            persona.snoozes_on == day
            and pid not in self.snoozed
            and item.kind == DeliveryKind.REMINDER
            and item.channel == Channel.SMS
        ):  # not now: the same reminder in 20 minutes, and the answer to that one
            self.snoozed.add(pid)
            self.at(now + timedelta(minutes=2), lambda: self.text(pid, "LATER 20"))
            return
        delay = min(delay, (item.window_end - now) - timedelta(minutes=1))
        if delay <= timedelta(0):
            return
        if item.channel == Channel.SMS:
            self.at(now + delay, lambda: self.text(pid, words))
        elif item.channel == Channel.EMAIL and persona.style == "keeps_up":
            occurrence = item.occurrence_id
            assert occurrence is not None
            self.at(now + delay, lambda: self.tap_link(pid, occurrence, words))

    def text(self, participant_id: str, body: str) -> None:
        """A text from the participant, through the webhook's logic."""
        persona = self.people[participant_id]
        if participant_id in self.stopped:
            return
        self._sids += 1
        answer = handle_sms(self.runtime, sid=f"SMdemo{self._sids:08d}", sender=persona.phone,
                            body=body)  # fmt: skip
        self.replies += 1
        if answer is not None:
            self.answers += 1
        if body.strip().upper() == "STOP":
            self.stopped.add(participant_id)

    def tap_link(self, participant_id: str, occurrence_id: int, words: str) -> None:
        """A check-in link from an email, as the check-in page records one."""
        now = self.clock.now()
        with transaction(self.runtime.engine) as conn:
            target = checkins.check_in_target(conn, occurrence_id)
            if target is None or not (target.instant <= now < target.window_end):
                return
            if target.check_in is not None or target.enrollment_status != EnrollmentStatus.ACTIVE:
                return
            spec = recording.check_in_spec(self.runtime, target)
            reading = interpret(
                Reply("text", text=words) if spec.kind == "text" else Reply("done"),
                spec.kind,
                spec.scale,
                spec.unit,
            )
            if not reading.applies:
                return
            stored = reply_rows.store_reply(
                conn, channel="link", body=words, now=now, participant_id=participant_id
            )
            reply_rows.claim_reply(conn, stored.id, now=now)
            recorded = recording.record(conn, target, reading, source="link", now=now)
            reply_rows.finish_reply(
                conn,
                stored.id,
                understood=reading.outcome if recorded else "no_window",
                detail=f"checked in by link for {recording.title_of(self.runtime, target)}",
                answer=None,
                occurrence_id=target.occurrence_id,
            )
        self.replies += 1


DONE_WORDS = ("DONE", "done", "Done!", "did it", "done, felt good", "Done \u2713")
SKIP_WORDS = ("skip", "skipped today", "not today, sorry")
# As a Spanish speaker texts them (Tend reads every language's words for everyone).
SPANISH_DONE = ("LISTO", "listo", "Listo!", "ya lo hice", "hecho \U0001f44d")
SPANISH_SKIP = ("saltar", "hoy no")
LINES = (
    "You are allowed to rest.",
    "I'm here now, and I'm staying.",
    "You did your best with what you had.",
    "you never had to earn it",
    "It's safe to take up space",
    "You are enough, as you are today.",
)


def _words(rng: random.Random, kind: str, language: str | None = None) -> str:
    """What someone texts back for a check-in of `kind`, as people write it (in
    Spanish for a Spanish speaker)."""
    if kind == "rating":
        score = rng.choice((2, 3, 3, 4, 4, 4, 5))
        return rng.choice((str(score), f"{score}/5", f"about a {score}"))
    if kind == "number":
        minutes = rng.choice((10, 12, 15, 20, 25))
        return rng.choice((str(minutes), f"walked {minutes} minutes", f"{minutes} min"))
    if kind == "text":
        return rng.choice(LINES)
    spanish = language == "es"
    if rng.random() < 0.08:
        return rng.choice(SPANISH_SKIP if spanish else SKIP_WORDS)
    return rng.choice(SPANISH_DONE if spanish else DONE_WORDS)


# --- the whole run -------------------------------------------------------------------


def end_of(days: int) -> datetime:
    """The end of day `days` where it ends last (midnight in New York, among ours)."""
    return max(
        datetime.combine(START + timedelta(days=days), time(0), ZoneInfo(p.timezone))
        for p in PEOPLE
    ).astimezone(UTC)


def run(
    folder: Path,
    *,
    days: int = 14,
    seed: int = 7,
    progressbar: Callable[[int], AbstractContextManager[Any]] | None = None,
) -> DemoResult:
    """Run the demo in `folder` (replaced); `progressbar(length)` makes a bar that is
    updated by the hour of simulated time, with the simulated moment as its item."""
    if days < 1:
        raise DemoError("--days must be at least 1")
    folder = folder.resolve()
    prepare(folder)
    settings = demo_settings(folder)
    configure_logging(settings.effective_log_format, "warning")
    engine = make_engine(settings.database_url)
    upgrade(engine)
    clock = ManualClock(CLOCK_START)
    runtime = Runtime.build(settings, clock=clock, engine=engine)
    pushed = push(runtime, by="tend demo")
    if pushed.errors:
        raise DemoError(f"the shipped plans have errors: {pushed.errors[0]}")
    end = end_of(days)
    simulation = Simulation(runtime, clock, seed, end)
    try:
        simulation.coach_and_cohort()
        for persona in PEOPLE:
            simulation.enroll(persona)
        simulation.at(REVISION_AT, simulation.revise_plan)
        hours = int((end - CLOCK_START).total_seconds() // 3600)
        bar = progressbar(hours) if progressbar else nullcontext(None)
        with bar as shown:
            done = [0]

            def progress(moment: datetime) -> None:
                reached = min(int((moment - CLOCK_START).total_seconds() // 3600), hours)
                if shown is not None and reached > done[0]:
                    shown.update(reached - done[0], moment)
                    done[0] = reached

            simulation.run(progress)
        return _finish(runtime, simulation, folder, end)
    finally:
        simulation.close()
        runtime.close()


def _finish(runtime: Runtime, simulation: Simulation, folder: Path, end: datetime) -> DemoResult:
    built = report.build(runtime, now=end)
    json_path = folder / "report.json"
    json_path.write_text(json.dumps(built.as_json(), indent=2, ensure_ascii=False) + "\n")
    html_path = folder / "report.html"
    html_path.write_text(html_report(runtime, built, end), encoding="utf-8")
    with transaction(runtime.engine) as conn:
        sent: dict[str, int] = dict(
            conn.execute(select(outbox.c.channel, func.count()).group_by(outbox.c.channel)).all()
        )
        checked: dict[str, int] = dict(
            conn.execute(
                select(occurrences.c.check_in, func.count())
                .where(occurrences.c.check_in.is_not(None))
                .group_by(occurrences.c.check_in)
            ).all()
        )
        states = delivery_rows.delivery_states(conn)
    return DemoResult(
        folder=folder,
        database=folder / "demo.db",
        html=html_path,
        json=json_path,
        report=built,
        sent={str(k): int(v) for k, v in sorted(sent.items())},
        replies=simulation.replies,
        answers=simulation.answers,
        check_ins={str(k): int(v) for k, v in sorted(checked.items())},
        delivery_states=dict(sorted(states.items())),
        cohort=_cohort_line(runtime, simulation),
        own_say=_own_say_lines(runtime, simulation),
    )


def _own_say_lines(runtime: Runtime, simulation: Simulation) -> list[str]:
    lines = []
    for participant_id, persona in simulation.people.items():
        zone = ZoneInfo(persona.timezone)
        for said in own_say(runtime, participant_id):
            when = said["received_at"].astimezone(zone)
            lines.append(
                f"{persona.name}, {when:%a %d %b %H:%M}: {said['body']} ({said['detail']})"
            )
    return lines


def _cohort_line(runtime: Runtime, simulation: Simulation) -> str:
    """Who is in coach Cora's cohort, and how the one who joined got there."""
    with transaction(runtime.engine) as conn:
        names = [
            participant_rows.get_participant(conn, pid).name.split()[0]
            for pid in cohort_rows.member_ids(conn, simulation.cohort.id)
        ]
    joined = [p.name.split()[0] for p in PEOPLE if p.joins]
    listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)
    return (
        f'Coach {CORA[1]}\'s cohort "{COHORT}" (her own people; others are the '
        f"operator's): {listed}. {' and '.join(joined)} joined through its sign-up page "
        "and answered the text asking YES; everyone's first text was the confirmation."
    )


# --- the HTML report -------------------------------------------------------------------

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; color: #2e2e2e; background: #faf8f3;
       max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-weight: 600; margin-bottom: .2rem; }
.lede { color: #6b6b6b; margin-top: 0; }
section { background: #fff; border: 1px solid #e4e0d6; border-radius: 8px;
          padding: 1rem 1.25rem; margin: 1.25rem 0; }
h2 { margin: 0 0 .25rem; font-size: 1.2rem; }
h3 { margin: 1rem 0 .25rem; font-size: 1rem; }
.meta { color: #6b6b6b; margin: 0 0 .5rem; }
.opted_out { color: #a4452c; font-weight: 600; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { text-align: left; padding: .2rem .6rem .2rem 0; vertical-align: middle; }
th { font-weight: 600; font-size: .85rem; color: #6b6b6b; }
.practice { display: flex; flex-wrap: wrap; gap: 1rem 2rem; align-items: flex-start;
            margin: .5rem 0 1rem; }
.legend { display: flex; flex-wrap: wrap; gap: .4rem 1rem; color: #6b6b6b; font-size: .85rem; }
.legend span { display: inline-flex; gap: .3rem; align-items: center; }
"""


OWN_SAY = ("later", "set_time", "quiet", "times")


def own_say(runtime: Runtime, participant_id: str) -> list[dict[str, Any]]:
    """The participant's texts that changed their own reminders (LATER, WAKE 6:45,
    QUIET, TIMES), oldest first, from the reply log."""
    with transaction(runtime.engine) as conn:
        rows = conn.execute(
            select(replies.c.received_at, replies.c.body, replies.c.detail, replies.c.answer)
            .where(replies.c.participant_id == participant_id)
            .where(replies.c.understood.in_(OWN_SAY))
            .order_by(replies.c.id)
        ).mappings()
        return [dict(r) for r in rows]


def _own_say(runtime: Runtime, participant_id: str, zone: ZoneInfo) -> str:
    found = own_say(runtime, participant_id)
    if not found:
        return ""
    items = "".join(
        f"<li><strong>{escape(r['body'])}</strong> "
        f"({r['received_at'].astimezone(zone):%a %d %b %H:%M}): {escape(r['detail'] or '')}"
        + (
            f"<br><span class='meta'>Tend answered: {escape(r['answer'])}</span>"
            if r["answer"]
            else ""
        )
        + "</li>"
        for r in found
    )
    return f"<h3>Their own say, by text</h3><ul class='own'>{items}</ul>"


def html_report(runtime: Runtime, built: report.Report, now: datetime) -> str:
    """A page on its own: inline CSS, inline SVG, no scripts, nothing fetched."""
    cohort = {row.entry.enrollment: row for row in dashboard_data.cohort(runtime, now) if row.entry}
    legend = "".join(
        f"<span>{charts.swatch(state)}{escape(words)}</span>"
        for state, words in charts.STATES.items()
    )
    sections = []
    seen: list[str] = []
    for entry in built.entries:
        if entry.participant.id not in seen:
            seen.append(entry.participant.id)
    styles = {p.name: p.described for p in PEOPLE}
    headers, table = report.table_rows(built)  # the values column, as the terminal has it
    column = headers.index("values")
    said = {(row[0], row[1], row[4]): row[column] for row in table}
    for participant_id in seen:
        view = dashboard_data.participant_view(runtime, participant_id, now)
        person = view.participant
        parts = [
            f"<h2>{escape(person.name)}</h2>",
            f'<p class="meta">{escape(person.timezone)} &middot; texts: '
            f'<span class="{escape(view.sms)}">{escape(view.sms)}</span> &middot; '
            f"in this demo, {escape(styles.get(person.name, ''))}</p>",
        ]
        for enrolled in view.enrollments:
            row = cohort.get(enrolled.entry.enrollment)
            spark = ""
            if row is not None:
                rates = row.rates[-2:]
                labels = list(dashboard_data.SPARK_LABELS[-2:])
                spark = charts.sparkline(rates, labels, title="Completion, week by week")
            parts.append(
                f"<h3>{escape(enrolled.plan_title)} ({escape(enrolled.entry.status)}, "
                f"{escape(enrolled.week_text)}; plan {escape(enrolled.entry.versions_text())})"
                f"</h3>{spark}"
            )
            for practice in enrolled.practices:
                line = practice.line
                a = line.adherence
                rate = "-" if a.completion_rate is None else f"{a.completion_rate:.0%}"
                values = said.get((person.name, enrolled.entry.plan, line.practice), "")
                figures = (
                    "<table><tr><th>scheduled</th><th>done</th><th>skipped</th><th>missed</th>"
                    "<th>pending</th><th>rate</th><th>streak</th><th>best</th><th>values</th>"
                    f"</tr><tr><td>{a.scheduled}</td><td>{a.done}</td><td>{a.skipped}</td>"
                    f"<td>{a.missed}</td><td>{a.pending}</td><td>{rate}</td>"
                    f"<td>{a.current_streak}</td><td>{a.longest_streak}</td>"
                    f"<td>{escape(values) or '-'}</td></tr></table>"
                )
                heat = charts.heatmap(practice.cells, title=line.title, today=view.today)
                strength = charts.strength_bar(a.strength)
                parts.append(
                    f"<div class='practice'><div><strong>{escape(line.title)}</strong>"
                    f"{figures}<div>Habit strength {a.strength:.2f} {strength}</div></div>"
                    f"<div>{heat}</div></div>"
                )
        parts.append(_own_say(runtime, person.id, ZoneInfo(person.timezone)))
        sections.append(f"<section>{''.join(parts)}</section>")
    stamp = f"{now:%Y-%m-%d %H:%M} UTC"
    days = (now.date() - START).days
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Tend demo: adherence</title><style>{CSS}</style></head><body>"
        f"<h1>Tend demo: adherence after {days} simulated days</h1>"
        f"<p class='lede'>Made by <code>tend demo</code> at simulated {escape(stamp)}, from "
        "its own database. Nothing here was sent: every text and email is in the "
        "development outbox.</p>"
        f"<div class='legend'>{legend}</div>{''.join(sections)}</body></html>\n"
    )
