"""Deciding what to do with an inbound SMS, and which answer to send back.

`decide` takes a reply already read by `replies.parse_reply` and what the caller knows of
the sender right now (a `Situation`: subscribed or not, paused or not, which check-in
windows are open, the question Tend asked last) and returns a `Decision`: what to record,
which answer template to send, and a sentence for coaches. It records nothing and sends
nothing; the webhook does both, in one transaction, from the decision.

The order of the rules matters and follows the carriers' rules first: an unknown sender
learns who we are and nothing else; STOP always wins and is confirmed once; START and
HELP work even after STOP; while someone is opted out Tend stays silent, though a
check-in they send is still logged. Only then does a reply count as a check-in, for the
most recent open window it fits. When it fits several and the newest is not one of them,
Tend asks which one rather than guess.

Answers are named templates under templates/replies/ (`ANSWERS`), each rendered with the
decision's `context`, plus `participant` and, for "logged", `streak` and `done_total`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from service.core.plan import CheckIn
from service.core.replies import Interpretation, Reply, interpret, match_practice, parse_reply
from service.core.states import CheckInResult

Action = Literal[
    "opt_out",
    "opt_in",
    "help",
    "pause",
    "resume",
    "check_in",
    "ask",
    "none",
    "later",
    "set_time",
    "times",
    "quiet",
]

ANSWERS: tuple[str, ...] = (
    "stranger",
    "opted_out",
    "opted_in",
    "help",
    "paused",
    "resumed",
    "not_understood",
    "no_window",
    "window_closed",
    "ask",
    "logged",
    "joined",
    "join_known",
    "later",
    "later_refused",
    "times",
    "time_set",
    "quiet_set",
)
MAX_REPEATS = 3  # LATER brings a reminder back at most this many times
CHECK_IN_KINDS = frozenset({"done", "skipped", "yes", "number", "text"})
DEFAULT_SCALE = (1, 5)


@dataclass(frozen=True, slots=True)
class OpenCheckIn:
    """An occurrence of the participant's whose check-in window is open now."""

    occurrence_id: int
    practice_id: str
    title: str
    instant: datetime  # aware UTC
    window_end: datetime
    check_in: CheckIn
    current: CheckInResult | None = None  # what is recorded already: done, skipped, or None
    repeats: int = 0  # how many times LATER has brought it back already


@dataclass(frozen=True, slots=True)
class Asked:
    """The question Tend asked last ("Which one: walk or yoga?"), still standing."""

    body: str  # the original message that was ambiguous
    candidates: tuple[int, ...]  # occurrence ids it could have been for


@dataclass(frozen=True, slots=True)
class Situation:
    """What the caller knows of the sender at the moment the reply arrived."""

    known: bool  # the sender is a participant
    opted_out: bool
    paused_until: datetime | None
    open: Sequence[OpenCheckIn]  # any order; kind "none" is ignored
    practices: Mapping[str, str]  # id -> title of every practice of the current plans
    now: datetime
    asked: Asked | None = None
    # The times the participant can set by text (their plans' variables), name -> minutes
    # after midnight as they stand for them.
    variables: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one reply. `answer` None means send nothing back.

    For action "check_in", `occurrence_id` and `interpretation` say what to record. For a
    reply that was read against one occurrence but did not fit it, they say which one
    and why, for coaches; nothing is recorded then.
    """

    action: Action
    understood: str  # short label stored with the reply and shown to coaches
    answer: str | None  # a name in ANSWERS
    context: dict[str, object]  # what the answer template needs; JSON values only
    detail: str  # one sentence for coaches
    occurrence_id: int | None = None
    interpretation: Interpretation | None = None
    pause_days: int | None = None
    candidates: tuple[int, ...] = field(default=())  # for action "ask"
    minutes: int | None = None  # later: how long until the repeat; set_time: the time
    variable: str | None = None  # set_time: which
    quiet: str | None = None  # quiet: the span as stored, or "off"
    repeat: int | None = None  # later: which repeat this is (1 to MAX_REPEATS)


def decide(reply: Reply, situation: Situation) -> Decision:
    """What to do with `reply`, given `situation`. The rules are in the module docstring."""
    if not situation.known:
        if reply.kind == "opt_out":
            return Decision("none", "unknown_sender", None, {}, "unknown sender opted out")
        return Decision("none", "unknown_sender", "stranger", {}, "unknown sender: told who we are")

    if reply.kind == "opt_out":
        if situation.opted_out:
            return Decision("opt_out", "opt_out", None, {}, "opted out again; not answered")
        return Decision("opt_out", "opt_out", "opted_out", {}, "opted out of all texts")

    if reply.kind == "opt_in" or (reply.kind == "yes" and situation.opted_out):
        already = not situation.opted_out
        detail = "opted in, but was subscribed already" if already else "opted back in"
        return Decision("opt_in", "opt_in", "opted_in", {"already": already}, detail)

    if reply.kind == "help":
        return Decision("help", "help", "help", {}, "sent the help text")

    if situation.opted_out:
        if reply.kind in CHECK_IN_KINDS:
            decision = _check_in(reply, situation)
            if decision.action == "check_in":
                detail = f"{decision.detail}; opted out, so not answered"
                return replace(decision, answer=None, detail=detail)
        return Decision("none", "ignored", None, {}, "opted out: not read and not answered")

    if reply.kind == "pause":
        days = reply.days or 1
        return Decision(
            "pause",
            "pause",
            "paused",
            {"days": days},
            f"paused reminders for {_plural(days, 'day')}",
            pause_days=days,
        )

    if reply.kind == "resume":
        was_paused = situation.paused_until is not None and situation.paused_until > situation.now
        detail = "resumed reminders" if was_paused else "asked to resume, but was not paused"
        return Decision("resume", "resume", "resumed", {"was_paused": was_paused}, detail)

    own = _own_time(reply, situation)
    if own is not None:
        return own

    if reply.kind == "later":
        return _later(reply, situation)

    if reply.kind == "times":
        return Decision("times", "times", "times", {}, "asked for their times")

    if reply.kind == "quiet":
        off = reply.quiet == "off"
        detail = "turned quiet hours off" if off else f"set quiet hours to {reply.quiet}"
        return Decision("quiet", "quiet", "quiet_set", {"off": off}, detail, quiet=reply.quiet)

    if reply.kind == "invalid":
        reason = reply.problem or "the message could not be read"
        return _not_understood(reason, None)

    return _check_in(reply, situation)


def _own_time(reply: Reply, situation: Situation) -> Decision | None:
    """ "WAKE 6:30" (or "WAKE 6") for one of the participant's variables: set it."""
    found: tuple[str, int] | None = reply.clock
    if (
        found is None
        and reply.kind == "number"
        and reply.practice_hint is not None
        and reply.unit in (None, "am", "pm")
        and reply.number is not None
        and reply.number.is_integer()
        and 1 <= reply.number <= (12 if reply.unit else 23)
    ):
        hour = (
            int(reply.number) % 12 + (12 if reply.unit == "pm" else 0)
            if reply.unit
            else int(reply.number)
        )
        found = (reply.practice_hint, hour * 60)
    if found is None:
        return None
    name, minutes = found
    if name not in situation.variables:
        return None
    shown = f"{minutes // 60:02d}:{minutes % 60:02d}"
    return Decision(
        "set_time",
        "set_time",
        "time_set",
        {"name": name.upper()},
        f"set {name} to {shown}",
        minutes=minutes,
        variable=name,
    )


def _later(reply: Reply, situation: Situation) -> Decision:
    """LATER: the reminder a reply would count for now comes again in N minutes."""
    minutes = reply.minutes or 30
    open_ = sorted(
        (o for o in situation.open if o.check_in.kind != "none"),
        key=lambda o: (o.instant, o.occurrence_id),
        reverse=True,
    )
    waiting = [o for o in open_ if o.current is None]
    if not waiting:
        if open_:
            title = open_[0].title
            context: dict[str, object] = {"why": "done", "title": title, "closes": None}
            return Decision("none", "later", "later_refused", context, f"{title} is logged already")
        context = {"why": "nothing", "title": None, "closes": None}
        return Decision("none", "later", "later_refused", context, "nothing to repeat")
    target = waiting[0]
    refused: dict[str, object] = {"title": target.title, "closes": None}
    if target.repeats >= MAX_REPEATS:
        detail = f"no repeats left for {target.title}"
        return Decision(
            "none", "later", "later_refused", {**refused, "why": "none_left"}, detail,
            occurrence_id=target.occurrence_id,
        )  # fmt: skip
    due = situation.now + timedelta(minutes=minutes)
    if due >= target.window_end:
        detail = f"a repeat of {target.title} would come after its window closes"
        return Decision(
            "none", "later", "later_refused", {**refused, "why": "window"}, detail,
            occurrence_id=target.occurrence_id,
        )  # fmt: skip
    repeat = target.repeats + 1
    return Decision(
        "later",
        "later",
        "later",
        {"title": target.title, "left": MAX_REPEATS - repeat},
        f"{target.title} again in {minutes} minutes (repeat {repeat} of {MAX_REPEATS})",
        occurrence_id=target.occurrence_id,
        minutes=minutes,
        repeat=repeat,
    )


def sample_answer_context(name: str) -> dict[str, object]:
    """A realistic context for the answer template `name`, everything it may use included.

    Used to check that every answer renders and fits one SMS segment.
    """
    participant: dict[str, object] = {"name": "Alex Morgan", "first_name": "Alex"}
    samples: dict[str, dict[str, object]] = {
        "stranger": {},
        "joined": {
            "participant": participant,
            "program": "Sleep Hygiene",
            "first": "Tue 8 Dec at 21:30",
        },
        "join_known": {"participant": participant},
        "later": {"participant": participant, "title": "Morning walk", "at": "9:50 PM", "left": 2},
        "later_refused": {
            "participant": participant,
            "why": "window",
            "title": "Evening body scan",
            "closes": "10:30 PM",
        },
        "times": {
            "participant": participant,
            "times": [{"name": "WAKE", "at": "6:30 AM"}, {"name": "BEDTIME", "at": "10:30 PM"}],
            "example": "WAKE 6:45",
        },
        "time_set": {
            "participant": participant,
            "name": "WAKE",
            "at": "6:30 AM",
            "next_title": "Morning walk",
            "next_at": "Tue, Dec 8 at 6:30 AM",
            "quiet": True,
            "quiet_until": "7:00 AM",
        },
        "quiet_set": {
            "participant": participant,
            "off": False,
            "start": "10:00 PM",
            "end": "7:00 AM",
        },
        "opted_out": {"participant": participant},
        "opted_in": {"participant": participant, "already": False},
        "help": {"participant": participant},
        "paused": {"participant": participant, "days": 3},
        "resumed": {"participant": participant, "was_paused": True},
        "not_understood": {
            "participant": participant,
            "reason": "7 is not on the 1-5 scale",
            "title": "Evening body scan",
        },
        "no_window": {"participant": participant},
        "window_closed": {"participant": participant, "title": "Morning walk"},
        "ask": {
            "participant": participant,
            "titles": ["Morning walk", "Evening body scan", "Gentle strength"],
            "example": "walk",
        },
        "logged": {
            "participant": participant,
            **logged_context(
                Interpretation("number", number=25.0, unit="minutes"),
                "Morning walk",
                None,
                updated=True,
            ),
            "streak": 12,
            "done_total": 40,
        },
    }
    if name not in samples:
        raise KeyError(f"no answer template named '{name}'; the answers are {', '.join(ANSWERS)}")
    return samples[name]


# --- check-ins -----------------------------------------------------------------------


def _check_in(reply: Reply, situation: Situation) -> Decision:
    """A done, skipped, yes, number or text reply: which open occurrence it counts for."""
    open_ = sorted(
        (o for o in situation.open if o.check_in.kind != "none"),
        key=lambda o: (o.instant, o.occurrence_id),
        reverse=True,
    )

    followed = _follow_up(reply, situation.asked, open_)
    if followed is not None:
        return followed

    if reply.practice_hint:
        titles = {o.practice_id: o.title for o in reversed(open_)}
        named = match_practice(reply.practice_hint, titles)
        if named is not None:
            target = next(o for o in open_ if o.practice_id == named)
            found = _interpret(reply, target)
            if found.applies:
                return _logged(target, found)
            return _not_understood(_reason(found), target)
        closed = match_practice(reply.practice_hint, situation.practices)
        if closed is not None and closed not in titles:
            title = situation.practices[closed]
            return Decision(
                "none",
                "no_window",
                "window_closed",
                {"title": title},
                f"the window for {title} has closed",
            )

    if not open_:
        return Decision("none", "no_window", "no_window", {}, "no check-in window open")

    newest = open_[0]
    newest_reading = _interpret(reply, newest)
    if newest_reading.applies:
        return _logged(newest, newest_reading)
    fitting: list[tuple[OpenCheckIn, Interpretation]] = []
    seen: set[str] = set()
    for candidate in open_[1:]:
        reading = _interpret(reply, candidate)
        if reading.applies and candidate.practice_id not in seen:
            seen.add(candidate.practice_id)  # an older occurrence of the same practice: no
            fitting.append((candidate, reading))
    if len(fitting) == 1:
        return _logged(*fitting[0])
    if fitting:
        return _ask([o for o, _ in fitting])
    return _not_understood(_reason(newest_reading), newest)


def _follow_up(reply: Reply, asked: Asked | None, open_: list[OpenCheckIn]) -> Decision | None:
    """The answer to "Which one?": the asked message, applied to the practice now named.

    Only a reply with no practice of its own ("walk", not "walk 30") answers the question;
    a full check-in like "walk 30" is read on its own.
    """
    if asked is None or reply.practice_hint:
        return None
    still_open = [o for o in open_ if o.occurrence_id in asked.candidates]
    titles = {o.practice_id: o.title for o in reversed(still_open)}
    named = match_practice(reply.text, titles)
    if named is None:
        return None
    target = next(o for o in still_open if o.practice_id == named)
    found = _interpret(parse_reply(asked.body), target)
    if not found.applies:
        return None
    return _logged(target, found)


def _ask(candidates: list[OpenCheckIn]) -> Decision:
    titles = [o.title for o in candidates]
    shown = _either(titles)
    ids = tuple(o.occurrence_id for o in candidates)
    context: dict[str, object] = {"titles": titles, "example": _example(candidates)}
    return Decision("ask", "ask", "ask", context, f"asked which: {shown}", candidates=ids)


def _example(candidates: list[OpenCheckIn]) -> str | None:
    """A word of the first title that names it alone among the candidates: "walk".

    Later words first (they tend to be the noun: Morning *walk*); never a word that reads
    as a keyword or check-in itself ("stop", "yes", "5"), since the answer would be that.
    """
    first = candidates[0]
    titles = {o.practice_id: o.title for o in candidates}
    words = [w.strip(".,!?:;()\"'").lower() for w in first.title.split()]
    for word in [*reversed(words), first.title.lower()]:
        if (
            word
            and word.isascii()
            and parse_reply(word).kind == "text"
            and match_practice(word, titles) == first.practice_id
        ):
            return word
    return None


def _interpret(reply: Reply, target: OpenCheckIn) -> Interpretation:
    check_in = target.check_in
    return interpret(reply, check_in.kind, check_in.scale, check_in.unit)


def _logged(target: OpenCheckIn, found: Interpretation) -> Decision:
    updated = target.current is not None
    context = logged_context(found, target.title, target.check_in.scale, updated=updated)
    detail = f"{_describe(found, target)} for {target.title}"
    if updated:
        detail += f" (was {target.current})"
    return Decision(
        "check_in",
        found.outcome,
        "logged",
        context,
        detail,
        occurrence_id=target.occurrence_id,
        interpretation=found,
    )


def logged_context(
    found: Interpretation, title: str, scale: tuple[int, int] | None, *, updated: bool
) -> dict[str, object]:
    """What the "logged" answer says of a check-in, wherever it came from; the caller adds
    `participant`, `streak` and `done_total`."""
    low, high = scale or DEFAULT_SCALE
    return {
        "outcome": found.outcome,
        "title": title,
        "rating": found.rating,
        "scale": [low, high],
        "number": _plain(found.number),
        "unit": found.unit,
        "text": found.text,
        "updated": updated,
    }


def _describe(found: Interpretation, target: OpenCheckIn) -> str:
    if found.outcome in ("done", "skipped"):
        return f"counted as {found.outcome}"
    if found.outcome == "rating":
        _, high = target.check_in.scale or DEFAULT_SCALE
        return f"rated {found.rating} of {high}"
    if found.outcome == "number":
        unit = f" {found.unit}" if found.unit else ""
        return f"logged {_plain(found.number)}{unit}"
    return "logged a note"


def _not_understood(reason: str, target: OpenCheckIn | None) -> Decision:
    title = target.title if target is not None else None
    return Decision(
        "none",
        "not_understood",
        "not_understood",
        {"reason": reason, "title": title},
        f"not understood for {title}: {reason}" if title else f"not understood: {reason}",
        occurrence_id=target.occurrence_id if target is not None else None,
    )


def _reason(found: Interpretation) -> str:
    return found.reason or "the reply does not fit this check-in"


# --- small helpers -------------------------------------------------------------------


def _plain(value: float | None) -> float | int | None:
    """25.0 -> 25, 0.3333 -> 0.33: a number as a person writes it."""
    if value is None:
        return None
    rounded = round(float(value), 2)
    return int(rounded) if rounded.is_integer() and abs(rounded) < 1e15 else rounded


def _either(titles: list[str]) -> str:
    """ "A", "A or B", "A, B or C"."""
    return titles[0] if len(titles) == 1 else f"{', '.join(titles[:-1])} or {titles[-1]}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
