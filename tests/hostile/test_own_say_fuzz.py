"""Participants' own say (issue 18, CONTRACT 5.4), fuzzed: LATER, QUIET, TIMES and
`<VARIABLE> <time>`, in English and Spanish, with the times people really type and the
nonsense they might (99:99, 25pm, emoji, right-to-left text, numbers hundreds of digits
long).

- `parse_reply` never raises, and what it reads is always sound: a LATER is 1 to 720
  minutes, a QUIET span is `off` or a real HH:MM-HH:MM whose ends differ, anything it
  cannot read is `invalid` with a problem saying why, a clock time is a minute of the day.
- `decide` never raises on those replies, in random situations (open windows with
  repeats used up or not, the participant's variables, opted out, paused), and what it
  decides stays inside the rules: a repeat only for a waiting check-in, at most
  MAX_REPEATS, never at or after its window's end; a time set only for one of the
  participant's own variables.

Hypothesis is derandomized, as in test_bad_input.py.
"""

from __future__ import annotations

import json
import re
import time
import traceback
import unicodedata
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from service.core.conversation import (
    ANSWERS,
    MAX_REPEATS,
    Decision,
    OpenCheckIn,
    Situation,
    decide,
)
from service.core.plan import CheckIn
from service.core.replies import (
    LATER_MAX,
    LATER_WORDS,
    QUIET_WORDS,
    RESERVED_WORDS,
    Reply,
    parse_reply,
)

FUZZ = settings(
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
KINDS = frozenset(
    {
        *("opt_out", "opt_in", "yes", "help", "pause", "resume", "done", "skipped"),
        *("number", "text", "invalid", "later", "times", "quiet"),
    }
)
ACTIONS = frozenset(
    {
        *("opt_out", "opt_in", "help", "pause", "resume", "check_in", "ask", "none"),
        *("later", "set_time", "times", "quiet"),
    }
)
SPAN = re.compile(r"(?P<start>(?:[01]\d|2[0-3]):[0-5]\d)-(?P<end>(?:[01]\d|2[0-3]):[0-5]\d)")
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
MAX_BODY = 1600  # actions/inbound_sms.py cuts a body to this before reading it
VARIABLES = {"wake": 6 * 60 + 30, "bedtime": 23 * 60, "lunch": 12 * 60, "walk-time": 17 * 60}
PRACTICES = {"walk": "Morning walk", "breathe": "Breathing", "journal": "Evening journal"}
SPECS = [
    CheckIn("done"),
    CheckIn("none"),
    CheckIn("text"),
    CheckIn("rating", (1, 5)),
    CheckIn("number", unit="minutes"),
]

# --- messages ------------------------------------------------------------------------

LATER_SAID = [*sorted(LATER_WORDS), "más tarde", "mas tarde", "MÁS TARDE", "Después", "SNOOZE"]
QUIET_SAID = [*sorted(QUIET_WORDS), "QUIET", "Silencio", "SILENCIO"]
TIMES_SAID = ["times", "TIMES", "horarios", "Horarios", "horas"]
WORDS_SAID = [*sorted(VARIABLES), "WAKE", "Bedtime", "dinner", "later", "quiet", "stop"]
TIMES = [
    "6:30", "06:30", "6.30", "6h30", "630", "0630", "6", "6am", "6 am", "6:30 pm", "6:30p.m.",
    "18:30", "23:59", "0:00", "00:00", "12am", "12pm", "24:00", "99:99", "25pm", "13pm", "0am",
    "6:60", "6:5", "6::30", "-6:30", "6:30:00", "٦:٣٠", "６:３０", "⁶:³⁰", "6:30🙂", "1" * 300,
    "9" * 40 + ":00", "18h", "h30", ":30", "6 : 30", "6h", "noon", "mañana", "🕡",
]  # fmt: skip
AMOUNTS = [
    "0", "1", "5", "20", "30", "45", "90", "719.6", "720", "720.4", "721", "1000", "-5", "-0",
    "0.5", "1,5", "10,000", ".5", "½", "²", "٤٠", "４０", "1/2", "2:30", "1e3", "NaN", "inf",
    "∞", "9" * 400, "0" * 50 + "1", "3.999999999999999999",
]  # fmt: skip
UNITS = ["", "m", "min", "mins", "minutes", "minutos", "h", "hr", "hours", "hora", "horas",
         "days", "pm", "am", "🙂", "s", "hh"]  # fmt: skip
SEPARATORS = ["-", "–", "—", " to ", " until ", " a ", " hasta ", " ", "", "--", "/", "~"]
ODD = [
    "", "👍", "🛑", "🙂", "\u200f", "\u200e", "\u202e", "\u200d", "\u200b", "\ufeff", "\t",
    "\n", "\u00a0", "\u3000", "!", "?", "...", "¡", "¿", "مرحبا", "שלום", "\u0301", "İ", "ß",
]  # fmt: skip


def _cased(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.upper(), word.title(), word.swapcase()])


ODD_ST = st.sampled_from(ODD)
# Before a keyword, only what cannot join it into another word (a letter glued to
# LATER makes a different word, and so text).
PRE_ST = st.sampled_from([odd for odd in ODD if not any(ch.isalnum() for ch in odd)])
TIME_ST = st.one_of(
    st.sampled_from(TIMES),
    st.tuples(st.integers(0, 120), st.integers(0, 120)).map(lambda t: f"{t[0]}:{t[1]:02d}"),
    st.integers(-(10**30), 10**30).map(str),
    st.text(alphabet="0123456789:.hHapmAPM ", max_size=12),
)
LATER_BODY = st.builds(
    lambda pre, word, sep, amount, space, unit, post: (
        f"{pre}{word}{sep}{amount}{space}{unit}{post}"
    ),
    PRE_ST,
    st.sampled_from(LATER_SAID).flatmap(_cased),
    st.sampled_from([" ", "  ", ", ", "\n", "\u00a0"]),
    st.one_of(st.sampled_from(AMOUNTS), st.integers(-(10**6), 10**6).map(str), st.just("")),
    st.sampled_from(["", " "]),
    st.sampled_from(UNITS),
    ODD_ST,
)
QUIET_BODY = st.builds(
    lambda pre, word, start, sep, end, post: f"{pre}{word} {start}{sep}{end}{post}",
    PRE_ST,
    st.sampled_from(QUIET_SAID).flatmap(_cased),
    TIME_ST,
    st.sampled_from(SEPARATORS),
    TIME_ST,
    ODD_ST,
)
QUIET_OFF_BODY = st.builds(
    lambda word, what: f"{word} {what}",
    st.sampled_from(QUIET_SAID).flatmap(_cased),
    st.sampled_from(["off", "OFF", "none", "no", "", "on", "please", "off off", "🙂"]),
)
CLOCK_BODY = st.builds(
    lambda pre, word, joint, when, post: f"{pre}{word}{joint}{when}{post}",
    ODD_ST,
    st.sampled_from(WORDS_SAID).flatmap(_cased),
    st.sampled_from([" ", " at ", " a las ", " = ", ": ", "", " to ", "  "]),
    TIME_ST,
    ODD_ST,
)
PIECE = st.one_of(
    st.sampled_from(LATER_SAID + QUIET_SAID + TIMES_SAID + WORDS_SAID),
    st.sampled_from(TIMES + AMOUNTS + UNITS + SEPARATORS + ODD),
)
BODY = st.one_of(
    LATER_BODY,
    QUIET_BODY,
    QUIET_OFF_BODY,
    CLOCK_BODY,
    st.sampled_from(TIMES_SAID).flatmap(_cased),
    st.lists(PIECE, max_size=8).map(" ".join),
    st.lists(PIECE, max_size=8).map("".join),
    st.tuples(st.sampled_from(LATER_SAID + QUIET_SAID + WORDS_SAID), st.text(max_size=40)).map(
        " ".join
    ),
    st.tuples(PIECE, st.integers(50, 400)).map(lambda r: ((r[0] + " ") * r[1])[:MAX_BODY]),
)


@st.composite
def situations(draw: st.DrawFn) -> Situation:
    open_: list[OpenCheckIn] = []
    for number, practice in enumerate(draw(st.lists(st.sampled_from(sorted(PRACTICES)))), 1):
        instant = NOW - timedelta(minutes=draw(st.integers(0, 600)))
        open_.append(
            OpenCheckIn(
                occurrence_id=number,
                practice_id=practice,
                title=PRACTICES[practice],
                instant=instant,
                window_end=NOW + timedelta(minutes=draw(st.integers(1, 900))),
                check_in=draw(st.sampled_from(SPECS)),
                current=draw(st.sampled_from([None, None, "done", "skipped"])),
                repeats=draw(st.integers(0, MAX_REPEATS + 1)),
            )
        )
    names = draw(st.lists(st.sampled_from(sorted(VARIABLES)), unique=True))
    return Situation(
        known=draw(st.integers(0, 5)) > 0,
        opted_out=draw(st.integers(0, 4)) == 0,
        paused_until=draw(
            st.sampled_from([None, NOW - timedelta(days=1), NOW + timedelta(days=2)])
        ),
        open=open_,
        practices=PRACTICES,
        now=NOW,
        variables={name: VARIABLES[name] for name in names},
    )


# --- what must hold ------------------------------------------------------------------


def _crash(what: str, shown: object) -> str:
    return f"{what}\n{traceback.format_exc(limit=-6, chain=False)}\ninput: {repr(shown)[:1500]}"


def _read(body: str) -> Reply:
    try:
        reply = parse_reply(body)
    except Exception:
        pytest.fail(_crash("parse_reply raised", body), pytrace=False)
    assert_sound_reply(reply, body)
    return reply


def assert_sound_reply(reply: Reply, body: str) -> None:
    assert reply.kind in KINDS, (body, reply)
    assert reply.text == body.strip()
    if reply.kind == "invalid":
        assert reply.problem, (body, reply)
    if reply.kind == "later":
        assert isinstance(reply.minutes, int), (body, reply)
        assert 1 <= reply.minutes <= LATER_MAX == 720, (body, reply)
    if reply.kind == "quiet":
        assert_span(reply.quiet, body)
    if reply.clock is not None:
        word, minutes = reply.clock
        assert word, (body, reply)
        assert word == word.casefold(), (body, reply)
        assert isinstance(minutes, int), (body, reply)
        assert 0 <= minutes < 24 * 60, (body, reply)


def assert_span(quiet: str | None, body: str) -> None:
    if quiet == "off":
        return
    found = SPAN.fullmatch(quiet or "")
    assert found is not None, f"QUIET stored as {quiet!r} for {body!r}"
    assert found["start"] != found["end"], f"QUIET with equal ends for {body!r}"


def assert_sound_decision(decision: Decision, situation: Situation, reply: Reply) -> None:
    assert decision.action in ACTIONS, decision
    assert decision.answer is None or decision.answer in ANSWERS, decision
    assert decision.understood
    assert len(decision.understood) <= 32  # replies.understood
    assert decision.detail.strip()
    json.dumps(decision.context, allow_nan=False)
    if not situation.known:
        assert decision.action == "none"
        return
    if situation.opted_out:
        assert decision.action in ("none", "check_in", "opt_out", "opt_in", "help"), decision
        if decision.action not in ("opt_in", "help"):
            assert decision.answer is None, "nothing but START and HELP is answered after STOP"
    by_id = {o.occurrence_id: o for o in situation.open}
    if decision.action == "later":
        assert reply.kind == "later"
        target = by_id[decision.occurrence_id]  # type: ignore[index]
        assert target.check_in.kind != "none"
        assert target.current is None, "a repeat of a reminder already checked in"
        assert target.repeats < MAX_REPEATS, "more repeats than MAX_REPEATS"
        assert decision.repeat == target.repeats + 1 <= MAX_REPEATS
        assert decision.minutes is not None
        assert 1 <= decision.minutes <= LATER_MAX
        due = situation.now + timedelta(minutes=decision.minutes)
        assert due < target.window_end, "a repeat at or after the window closes"
    if decision.action == "set_time":
        assert decision.variable in situation.variables, decision
        assert decision.minutes is not None
        assert 0 <= decision.minutes < 24 * 60
    if decision.action == "quiet":
        assert reply.kind == "quiet"
        assert_span(decision.quiet, reply.text)
    if decision.action == "times":
        assert reply.kind == "times"


# --- the tests -----------------------------------------------------------------------


@settings(FUZZ, max_examples=600)
@given(body=BODY, situation=situations())
@example(body="LATER 99:99", situation=Situation(True, False, None, [], PRACTICES, NOW))
@example(
    body="WAKE 25pm", situation=Situation(True, False, None, [], PRACTICES, NOW, None, VARIABLES)
)
@example(
    body="wake 6:30", situation=Situation(True, False, None, [], PRACTICES, NOW, None, VARIABLES)
)
@example(body="QUIET 22:00-07:00 🙂", situation=Situation(True, True, None, [], PRACTICES, NOW))
def test_own_say_never_raises_and_decides_soundly(body: str, situation: Situation) -> None:
    reply = _read(body)
    try:
        decision = decide(reply, situation)
    except Exception:
        pytest.fail(_crash("decide raised", (body, situation)), pytrace=False)
    assert_sound_decision(decision, situation, reply)


@settings(FUZZ, max_examples=400)
@given(body=LATER_BODY)
def test_later_is_one_to_720_minutes_or_refused(body: str) -> None:
    reply = _read(body)
    assert reply.kind in ("later", "invalid"), (body, reply)
    if reply.kind == "invalid":
        assert "LATER" in (reply.problem or "")


@settings(FUZZ, max_examples=300)
@given(word=st.sampled_from(LATER_SAID).flatmap(_cased), amount=st.integers(-50, 2000))
def test_later_whole_minutes_are_taken_as_written(word: str, amount: int) -> None:
    reply = _read(f"{word} {amount}")
    if 1 <= amount <= LATER_MAX:
        assert (reply.kind, reply.minutes) == ("later", amount)
    else:
        assert reply.kind == "invalid"


@settings(FUZZ, max_examples=100)
@given(
    word=st.sampled_from(LATER_SAID),
    hours=st.integers(0, 30),
    unit=st.sampled_from(["h", "hours", "horas"]),
)
def test_later_hours_are_converted(word: str, hours: int, unit: str) -> None:
    reply = _read(f"{word} {hours} {unit}")
    if 1 <= hours * 60 <= LATER_MAX:
        assert (reply.kind, reply.minutes) == ("later", hours * 60)
    else:
        assert reply.kind == "invalid"


@settings(FUZZ, max_examples=500)
@given(body=st.one_of(QUIET_BODY, QUIET_OFF_BODY))
def test_quiet_is_refused_or_a_real_span(body: str) -> None:
    reply = _read(body)
    assert reply.kind in ("quiet", "invalid"), (body, reply)
    if reply.kind == "invalid":
        assert "QUIET" in (reply.problem or "")


@settings(FUZZ, max_examples=300)
@given(
    word=st.sampled_from(QUIET_SAID),
    start=st.integers(0, 24 * 60 - 1),
    end=st.integers(0, 24 * 60 - 1),
    sep=st.sampled_from(["-", "–", " to ", " a ", " hasta "]),
)
def test_quiet_spans_written_plainly_are_kept(word: str, start: int, end: int, sep: str) -> None:
    def clock(minutes: int) -> str:
        return f"{minutes // 60:02d}:{minutes % 60:02d}"

    reply = _read(f"{word} {clock(start)}{sep}{clock(end)}")
    if start == end:
        assert reply.kind == "invalid"
    else:
        assert (reply.kind, reply.quiet) == ("quiet", f"{clock(start)}-{clock(end)}")


@settings(FUZZ, max_examples=300)
@given(body=CLOCK_BODY)
def test_clock_times_are_minutes_of_the_day(body: str) -> None:
    reply = _read(body)  # the clock, when read, is checked there
    if reply.clock is not None and reply.clock[0] in VARIABLES:
        situation = Situation(True, False, None, [], PRACTICES, NOW, None, VARIABLES)
        decision = decide(reply, situation)
        assert (decision.action, decision.variable, decision.minutes) == (
            "set_time",
            reply.clock[0],
            reply.clock[1],
        )


def test_the_variables_used_here_are_not_reply_keywords() -> None:
    assert not set(VARIABLES) & RESERVED_WORDS


@pytest.mark.parametrize(
    "body",
    [
        "a" + " " * (MAX_BODY - 4) + "6:3",
        "wake" + "\t" * (MAX_BODY - 8) + "6:3",
        "quiet " + "!" * (MAX_BODY - 7) + "a",
        "later " + "9" * (MAX_BODY - 6),
        "WAKE " + "6:30 " * ((MAX_BODY - 5) // 5),
    ],
)
def test_a_longest_sms_is_read_quickly(body: str) -> None:
    started = time.perf_counter()
    _read(body)
    assert time.perf_counter() - started < 1.0, "reading one SMS took over a second"


def test_unicode_forms_of_the_words_still_count() -> None:
    decomposed = unicodedata.normalize("NFD", "después 20")
    assert (parse_reply(decomposed).kind, parse_reply(decomposed).minutes) == ("later", 20)
    assert parse_reply("ＱＵＩＥＴ ２２:００-０７:００").quiet == "22:00-07:00"
