"""Participants' own say by text, read and decided without a database: LATER, their own
times, TIMES, QUIET, and the Spanish words (contract section 5.4)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from service.core.conversation import MAX_REPEATS, decide
from service.core.quiet import parse_clock, parse_quiet
from service.core.replies import parse_reply
from tests.unit.test_conversation import NOW, SCAN, STRETCH, WALK, occ, situation

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("LATER", 30),
        ("later", 30),
        ("Later 20", 20),
        ("later 20 min", 20),
        ("LATER 2h", 120),
        ("later 1 hour", 60),
        ("snooze", 30),
        ("SNOOZE 10!", 10),
        ("después", 30),
        ("DESPUÉS 15", 15),
        ("despues 15 minutos", 15),
        ("luego", 30),
        ("más tarde 45", 45),
        ("⏰ later 5", 5),
    ],
)
def test_later_as_people_write_it(text: str, minutes: int) -> None:
    reply = parse_reply(text)
    assert (reply.kind, reply.minutes) == ("later", minutes)


@pytest.mark.parametrize("text", ["later soon", "later 0", "later 13h", "LATER 6:30", "later -5"])
def test_a_later_that_cannot_be_read_says_how_to_write_it(text: str) -> None:
    reply = parse_reply(text)
    assert reply.kind == "invalid"
    assert reply.problem == "LATER takes minutes or hours, e.g. LATER 20 or LATER 2h"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("LISTO", "done"),
        ("listo!", "done"),
        ("Hecho 👍", "done"),
        ("ya lo hice", "done"),
        ("sí", "done"),
        ("SALTAR", "skipped"),
        ("no lo hice", "text"),  # a sentence for the coach, not a skip or a done
        ("AYUDA", "help"),
        ("ALTO", "opt_out"),
        ("parar", "opt_out"),
        ("Baja", "opt_out"),
        ("CANCELAR", "opt_out"),
        ("pausa 3 días", "pause"),
        ("seguir", "resume"),
        ("HORARIOS", "times"),
        ("times", "times"),
        ("SILENCIO 22:00-07:00", "quiet"),
    ],
)
def test_spanish_and_the_new_words_for_everyone(text: str, kind: str) -> None:
    assert parse_reply(text).kind == kind


def test_later_brings_back_the_newest_reminder_waiting_for_an_answer() -> None:
    decision = decide(parse_reply("later 20"), situation(WALK, SCAN, STRETCH))
    assert decision.action == "later"
    assert (decision.occurrence_id, decision.minutes, decision.repeat) == (3, 20, 1)
    assert decision.context == {"title": "Stretch break", "left": 2}


def test_later_skips_what_is_logged_and_refuses_at_the_limit_or_past_the_window() -> None:
    logged = replace(STRETCH, current="done")
    assert decide(parse_reply("later"), situation(WALK, logged)).occurrence_id == WALK.occurrence_id
    only_logged = decide(parse_reply("later"), situation(logged))
    assert (only_logged.answer, only_logged.context["why"]) == ("later_refused", "done")
    nothing = decide(parse_reply("later"), situation())
    assert (nothing.answer, nothing.context["why"]) == ("later_refused", "nothing")
    used = replace(STRETCH, repeats=MAX_REPEATS)
    spent = decide(parse_reply("later"), situation(used))
    assert (spent.action, spent.context["why"]) == ("none", "none_left")
    closing = occ(5, "scan", "Scan", 11.8)  # its window closes in 12 minutes
    late = decide(parse_reply("later 15"), situation(closing))
    assert (late.action, late.context["why"]) == ("none", "window")
    assert decide(parse_reply("later 10"), situation(closing)).action == "later"


def test_a_time_is_set_only_for_the_participants_own_variables() -> None:
    mine = replace(situation(WALK), variables={"wake": 7 * 60, "bedtime": 22 * 60 + 30})
    for text, minutes in (("WAKE 6:30", 390), ("wake 6.30am", 390), ("Bedtime 11pm", 1380),
                          ("bedtime at 23:15", 1395), ("WAKE 6", 360)):  # fmt: skip
        decision = decide(parse_reply(text), mine)
        assert (decision.action, decision.variable, decision.minutes) == (
            "set_time",
            text.split()[0].lower(),
            minutes,
        ), text
        assert decision.context == {"name": text.split()[0].upper()}
    # Not a variable of theirs: read as anything else would be ("walk 17:30" is text).
    assert decide(parse_reply("lunch 12:30"), mine).action != "set_time"
    assert decide(parse_reply("walk 25"), mine).action == "check_in"  # 25 minutes walked


def test_quiet_hours_by_text() -> None:
    decision = decide(parse_reply("QUIET 22:00-07:00"), situation())
    assert (decision.action, decision.quiet, decision.context) == (
        "quiet",
        "22:00-07:00",
        {"off": False},
    )
    off = decide(parse_reply("quiet off"), situation())
    assert (off.action, off.quiet) == ("quiet", "off")
    bad = decide(parse_reply("quiet 25:00-07:00"), situation())
    assert bad.answer == "not_understood"
    assert "'25:00' is not a time" in str(bad.context["reason"])


def test_nothing_of_ones_own_say_is_done_for_someone_opted_out() -> None:
    for text in ("later", "QUIET 22:00-07:00", "times"):
        decision = decide(parse_reply(text), situation(WALK, opted_out=True))
        assert (decision.action, decision.answer) == ("none", None), text


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("6:30", 390), ("06:30", 390), ("6.30", 390), ("6h30", 390), ("630", 390), ("6", 360),
     ("6am", 360), ("6:30 pm", 1110), ("12am", 0), ("12pm", 720), ("23:59", 1439)],
)  # fmt: skip
def test_clock_times_as_people_text_them(text: str, minutes: int) -> None:
    assert parse_clock(text) == minutes


def test_quiet_hours_end_at_their_local_end_across_midnight_and_a_clock_change() -> None:
    from zoneinfo import ZoneInfo

    new_york = ZoneInfo("America/New_York")
    hours = parse_quiet("22:00-07:00")
    assert hours is not None
    # 23:30 on Saturday 7 March: they end at 07:00 on Sunday, after the clocks went forward.
    late = NOW.replace(day=8, hour=4, minute=30)  # 23:30 EST on the 7th
    end = hours.end_after(late, new_york)
    assert end is not None
    assert end.astimezone(new_york).strftime("%d %H:%M") == "08 07:00"
    assert end - late == timedelta(hours=6, minutes=30)  # an hour less: 02:00 never came
    assert hours.end_after(NOW, new_york) is None  # 08:00 in New York: not quiet
    assert parse_quiet("off") is None
    assert parse_quiet("10pm-7am") == hours
