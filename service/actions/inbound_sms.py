"""An inbound SMS, from the stored message to the answer sent back.

One transaction: it locks the sender's row (two texts from one person are handled one
after the other), stores the message as it came (once per MessageSid: a second delivery
of the same webhook waits on the unique key, then finds it handled), decides
(`core.conversation.decide`), acts (opt-out, opt-in, pause, resume, a check-in) and
records what it did and the answer, all or nothing. A replay of a handled message gets
the answer the first attempt decided, and nothing is done twice.

Should acting fail, the message is stored on its own, unhandled, and the scheduler's
upkeep acts on it a minute later (`handle_left_over`): Twilio does not retry incoming
message webhooks, and a STOP must not be lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection

from service.actions import checkins as recording
from service.actions import consent, own_times, signups, wording
from service.actions.enrollments import variables_for
from service.core import reasons
from service.core.conversation import Asked, Decision, OpenCheckIn, Situation, decide
from service.core.expand import resolve_plan_variables
from service.core.records import Participant
from service.core.render import LANGUAGE, Names, Person, RenderError
from service.core.replies import Reply, parse_reply
from service.core.sms import clean_for_sms
from service.core.states import LIVE_STATUSES, REPEAT_KINDS, Channel, SmsState
from service.runtime import Runtime
from service.storage import checkins
from service.storage import deliveries as delivery_rows
from service.storage import enrollments as enrollment_rows
from service.storage import participants as participant_rows
from service.storage import replies as reply_rows
from service.storage.checkins import CheckInTarget
from service.storage.db import transaction

log = structlog.get_logger("tend.inbound")

MAX_BODY = 1600  # Twilio's limit for one message, in characters
QUESTION_STANDS = timedelta(hours=2)  # how long "Which one?" waits for its answer
STRANGER_ANSWERED_FOR = timedelta(days=30)  # an unknown number is answered once in this
SOURCE = "sms"


def handle_sms(runtime: Runtime, *, sid: str, sender: str, body: str) -> str | None:
    """Store, decide, act; returns the text to answer with, or None for no answer."""
    body = body[:MAX_BODY]
    now = runtime.clock.now()
    _ = runtime.secret  # read before the transaction: in development, the first read writes
    try:
        with transaction(runtime.engine) as conn:
            participant, stored = _store(conn, sid, sender, body, now, lock=True)
            handled = stored.handled or (
                not stored.new and not reply_rows.claim_reply(conn, stored.id, now=now)
            )
            if handled:
                log.info("sms reply seen before; answered again", reply=stored.id)
                return reply_rows.reply_answer(conn, stored.id)
            return _act_on(runtime, conn, stored.id, participant, sender, body, now)
    except Exception:
        # Acting failed: the message is kept, unhandled, and the scheduler's upkeep acts
        # on it a minute later (`handle_left_over`). Twilio does not retry this webhook.
        with suppress(Exception), transaction(runtime.engine) as conn:
            _store(conn, sid, sender, body, now)
        raise


def _store(
    conn: Connection, sid: str, sender: str, body: str, now: datetime, *, lock: bool = False
) -> tuple[Participant | None, reply_rows.StoredReply]:
    """The message as it came, once per MessageSid, with the participant it is from."""
    participant = participant_rows.find_participant_by_phone(conn, sender, lock=lock)
    stored = reply_rows.store_reply(
        conn,
        channel=Channel.SMS,
        body=body,
        now=now,
        provider_id=sid,
        sender=sender,
        participant_id=participant.id if participant else None,
    )
    return participant, stored


LEFT_OVER_AFTER = timedelta(minutes=1)


def handle_left_over(runtime: Runtime) -> int:
    """Act on texts whose handling failed, a minute on: an opt-out must not be lost. They
    get no answer (a late one would answer out of turn); what they did is recorded."""
    now = runtime.clock.now()
    _ = runtime.secret  # read before the transactions (see handle_sms)
    with transaction(runtime.engine) as conn:
        ids = reply_rows.unhandled_replies(conn, before=now - LEFT_OVER_AFTER)
    done = 0
    for reply_id in ids:
        try:
            with transaction(runtime.engine) as conn:
                row = reply_rows.get_reply(conn, reply_id)
                sender = row["sender"] or ""
                participant = participant_rows.find_participant_by_phone(conn, sender, lock=True)
                if not reply_rows.claim_reply(conn, reply_id, now=now):
                    continue
                _act_on(runtime, conn, reply_id, participant, sender, row["body"], now, late=True)
                done += 1
        except Exception:
            log.exception("a left-over text could not be handled; trying again", reply=reply_id)
    if done:
        log.warning("texts handled late, without an answer", count=done)
    return done


def _act_on(
    runtime: Runtime,
    conn: Connection,
    reply_id: int,
    participant: Participant | None,
    sender: str,
    body: str,
    now: datetime,
    *,
    late: bool = False,
) -> str | None:
    """Decide and act on a stored message, and record both with the answer."""
    joining = signups.handle_text(runtime, conn, runtime.secret, sender, body, participant, now)
    if joining is not None:  # JOIN <keyword>, or YES/STOP from a number asked to confirm
        answer = None if late else joining.answer
        reply_rows.finish_reply(
            conn, reply_id, understood=joining.understood, detail=joining.detail,
            answer=answer, occurrence_id=None, context=None, now=now,
        )  # fmt: skip
        if joining.participant is not None:  # YES made them a participant: theirs now
            reply_rows.set_participant(conn, reply_id, joining.participant.id)
        log.info("sms about joining handled", reply=reply_id, understood=joining.understood)
        return answer
    reply = parse_reply(body)
    targets = checkins.open_check_ins(conn, participant, now=now) if participant else []
    situation = _situation(runtime, conn, participant, targets, reply, now)
    decision = decide(reply, situation)
    told = decision.understood == "unknown_sender" and decision.answer is not None
    if told and reply_rows.stranger_answered(conn, sender, since=now - STRANGER_ANSWERED_FOR):
        decision = replace(decision, answer=None, detail="unknown sender, told once already")
    context = _act(runtime, conn, participant, targets, decision, now)
    answer = None if late else _answer(runtime, decision, participant, context)
    reply_rows.finish_reply(
        conn,
        reply_id,
        understood=decision.understood,
        detail=decision.detail + ("; handled late, not answered" if late else ""),
        answer=answer,
        occurrence_id=decision.occurrence_id,
        context=_question(decision, body),
        now=now,
    )
    log.info(
        "sms reply handled",
        reply=reply_id,
        participant=participant.id if participant else None,
        understood=decision.understood,
        occurrence=decision.occurrence_id,
    )
    return answer


def _situation(
    runtime: Runtime,
    conn: Connection,
    participant: Participant | None,
    targets: list[CheckInTarget],
    reply: Reply,
    now: datetime,
) -> Situation:
    if participant is None:
        return Situation(False, False, None, (), {}, now)
    repeats = (
        delivery_rows.repeat_counts(conn, [t.occurrence_id for t in targets])
        if reply.kind == "later"
        else {}
    )
    open_ = [
        OpenCheckIn(
            occurrence_id=t.occurrence_id,
            practice_id=t.practice_id,
            title=recording.title_of(runtime, t),
            instant=t.instant,
            window_end=t.window_end,
            check_in=recording.check_in_spec(runtime, t),
            current=t.check_in,
            repeats=repeats.get(t.occurrence_id, 0),
        )
        for t in targets
    ]
    asked = None
    # Only a reply that could answer "Which one?" (a few words naming a practice) needs
    # the question; only one naming a practice needs the practices.
    if reply.kind == "text" and targets:
        question = reply_rows.last_question(conn, participant.id, since=now - QUESTION_STANDS)
        if question is not None:
            asked = Asked(str(question["body"]), tuple(int(i) for i in question["candidates"]))
    practices: Mapping[str, str] = (
        _practices(runtime, conn, participant) if reply.practice_hint else {}
    )
    own_times = reply.clock is not None or reply.kind in ("times", "number")
    return Situation(
        known=True,
        opted_out=participant.sms_state == SmsState.OPTED_OUT,
        paused_until=participant.paused_until,
        open=open_,
        practices=practices,
        now=now,
        asked=asked,
        variables=own_times_of(runtime, conn, participant) if own_times else {},
    )


def own_times_of(runtime: Runtime, conn: Connection, participant: Participant) -> dict[str, int]:
    """The times the participant can set by text: the variables of the plans they follow
    now, name -> minutes after midnight as they stand for them (their own value, or the
    plan's default)."""
    found: dict[str, int] = {}
    for enrollment in enrollment_rows.list_enrollments(
        conn, participant_id=participant.id, statuses=LIVE_STATUSES
    ):
        plan = runtime.plans.get(enrollment.plan_id, enrollment.plan_hash)
        if plan is None or not plan.variables:
            continue
        with suppress(ValueError):
            resolved = resolve_plan_variables(
                plan, variables_for(plan, participant, enrollment.variables)
            )
            for name in plan.variables:
                found.setdefault(name, resolved[name])
    return found


def _practices(runtime: Runtime, conn: Connection, participant: Participant) -> dict[str, str]:
    """Every practice of the participant's current plans, id -> title."""
    found: dict[str, str] = {}
    for enrollment in enrollment_rows.list_enrollments(
        conn, participant_id=participant.id, statuses=LIVE_STATUSES
    ):
        plan = runtime.plans.get(enrollment.plan_id, enrollment.plan_hash)
        if plan is not None:
            found.update({p.id: p.title for p in plan.practices})
    return found


def _act(
    runtime: Runtime,
    conn: Connection,
    participant: Participant | None,
    targets: list[CheckInTarget],
    decision: Decision,
    now: datetime,
) -> dict[str, Any]:
    """Do what the decision says; returns what the answer needs on top of its context."""
    if participant is None:
        return {}
    source = f"{SOURCE}:{decision.understood}"
    if decision.action == "opt_out":
        consent.opt_out_sms(conn, participant, source=source, now=now)
    elif decision.action == "opt_in":
        consent.opt_in_sms(conn, participant, source=source, now=now)
    elif decision.action == "pause":
        until = now + timedelta(days=decision.pause_days or 1)
        consent.pause_sms(conn, participant, until, source=source, now=now)
    elif decision.action == "resume":
        consent.resume_sms(conn, participant, source=source, now=now)
    elif decision.action == "later":
        assert decision.repeat is not None
        assert decision.minutes is not None
        due = now + timedelta(minutes=decision.minutes)
        kind = REPEAT_KINDS[decision.repeat - 1]
        assert decision.occurrence_id is not None
        delivery_rows.add_repeat(conn, decision.occurrence_id, kind, due_at=due, now=now)
        return {"at": wording.time_text(runtime, participant, due)}
    elif decision.answer == "later_refused" and decision.occurrence_id is not None:
        target = next(t for t in targets if t.occurrence_id == decision.occurrence_id)
        return {"closes": wording.time_text(runtime, participant, target.window_end)}
    elif decision.action == "set_time":
        assert decision.variable is not None
        assert decision.minutes is not None
        return own_times.set_time(
            runtime, conn, participant, decision.variable, decision.minutes, now
        )
    elif decision.action == "times":
        return own_times.listed(runtime, participant, own_times_of(runtime, conn, participant), now)
    elif decision.action == "quiet":
        return own_times.set_quiet(runtime, conn, participant, decision.quiet, now)
    elif decision.action == "check_in":
        target = next(t for t in targets if t.occurrence_id == decision.occurrence_id)
        assert decision.interpretation is not None
        practice = recording.practice_of(runtime, target)
        nudge = practice is None or practice.nudge is not None
        recording.record(conn, target, decision.interpretation, source=SOURCE, now=now, nudge=nudge)
        done = recording.progress(conn, target, now=now)
        return {"streak": done.streak, "done_total": done.done_total}
    return {}


def _answer(
    runtime: Runtime,
    decision: Decision,
    participant: Participant | None,
    extra: dict[str, Any],
) -> str | None:
    if decision.answer is None:
        return None
    context: dict[str, Any] = {**decision.context, **extra}
    if participant is not None:
        person = Person(participant.name)
        context["participant"] = Names(
            "participant", {"name": person.name, "first_name": person.first_name}
        )
        context[LANGUAGE] = language = wording.language_of(runtime, participant)
        if isinstance(context.get("reason"), str):
            context["reason"] = reasons.in_language(context["reason"], language)
        if participant.discreet and decision.answer == "window_closed":
            context["title"] = wording.title_for(
                runtime, participant, None, "", runtime.clock.now()
            )
    if "answer" in context:  # set_time refused: said as not understood
        return _render_answer(runtime, str(context.pop("answer")), context)
    return _render_answer(runtime, decision.answer, context)


def _render_answer(runtime: Runtime, name: str, context: dict[str, Any]) -> str | None:
    try:
        return clean_for_sms(runtime.catalog.renderer.answer(name, context))
    except RenderError as exc:
        # What the reply asked for is done and recorded; only the words are missing.
        log.error("answer template failed; no answer sent", answer=name, error=str(exc))
        return None


def _question(decision: Decision, body: str) -> dict[str, Any] | None:
    """What a question asked back was about, for the reply that answers it."""
    if decision.action != "ask":
        return None
    return {"body": body, "candidates": list(decision.candidates)}
