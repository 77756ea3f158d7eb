"""Deciding what to do with an inbound SMS (service/core/conversation.py), and the answer
templates under templates/replies/ that the decisions name."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.core.conversation import (
    ANSWERS,
    Asked,
    Decision,
    OpenCheckIn,
    Situation,
    decide,
    sample_answer_context,
)
from service.core.plan import CheckIn
from service.core.render import LANGUAGE, Renderer, RenderError
from service.core.replies import PAUSE_USAGE, parse_reply
from service.core.sms import count_segments
from tests.support.plans import REPO

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PARTICIPANT = {"name": "Alex Morgan", "first_name": "Alex"}


def occ(
    occurrence_id: int,
    practice_id: str,
    title: str,
    hours_ago: float,
    kind: str = "done",
    *,
    scale: tuple[int, int] | None = None,
    unit: str | None = None,
    current: str | None = None,
) -> OpenCheckIn:
    instant = NOW - timedelta(hours=hours_ago)
    return OpenCheckIn(
        occurrence_id=occurrence_id,
        practice_id=practice_id,
        title=title,
        instant=instant,
        window_end=instant + timedelta(hours=12),
        check_in=CheckIn(kind=kind, scale=scale, unit=unit),
        current=current,
    )


WALK = occ(1, "walk", "Morning walk", 5, "number", unit="minutes")
SCAN = occ(2, "body-scan", "Body scan", 3, "rating", scale=(1, 5))
STRETCH = occ(3, "stretch", "Stretch break", 1)
JOURNAL = occ(4, "journal", "Evening journal", 2, "text")
PRACTICES = {
    "walk": "Morning walk",
    "body-scan": "Body scan",
    "stretch": "Stretch break",
    "journal": "Evening journal",
    "yoga": "Yoga",
}


def situation(
    *open_: OpenCheckIn,
    known: bool = True,
    opted_out: bool = False,
    paused_until: datetime | None = None,
    asked: Asked | None = None,
) -> Situation:
    return Situation(
        known=known,
        opted_out=opted_out,
        paused_until=paused_until,
        open=list(open_),
        practices=PRACTICES,
        now=NOW,
        asked=asked,
    )


def run(text: str, *open_: OpenCheckIn, **kwargs: Any) -> Decision:
    return decide(parse_reply(text), situation(*open_, **kwargs))


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(jinja2.FileSystemLoader(REPO / "templates"))


def answer(renderer: Renderer, decision: Decision, streak: int = 3, done_total: int = 9) -> str:
    """The answer as the webhook would render it."""
    assert decision.answer is not None
    context: dict[str, Any] = {**decision.context, "participant": PARTICIPANT}
    if decision.answer == "logged":
        context |= {"streak": streak, "done_total": done_total}
    return renderer.answer(decision.answer, context)


# --- unknown senders -----------------------------------------------------------------


@pytest.mark.parametrize("text", ["STOP", "stop!", "Unsubscribe."])
def test_unknown_sender_opting_out_gets_no_answer(text: str) -> None:
    decision = run(text, STRETCH, known=False)
    assert (decision.action, decision.understood, decision.answer) == (
        "none",
        "unknown_sender",
        None,
    )


@pytest.mark.parametrize("text", ["hello?", "done", "START", "HELP", "PAUSE 3", "4"])
def test_unknown_sender_gets_the_stranger_answer_and_nothing_else(text: str) -> None:
    decision = run(text, STRETCH, known=False)
    assert (decision.action, decision.understood, decision.answer) == (
        "none",
        "unknown_sender",
        "stranger",
    )
    assert decision.occurrence_id is None
    assert decision.interpretation is None


# --- opting out and in ---------------------------------------------------------------


def test_stop_opts_out_and_is_confirmed_once() -> None:
    first = run("STOP", STRETCH)
    assert (first.action, first.understood, first.answer) == ("opt_out", "opt_out", "opted_out")
    second = run("stop", STRETCH, opted_out=True)
    assert (second.action, second.understood, second.answer) == ("opt_out", "opt_out", None)


@pytest.mark.parametrize("text", ["START", "unstop", "Yes!", "yes"])
def test_start_unstop_and_yes_opt_back_in_when_opted_out(text: str) -> None:
    decision = run(text, STRETCH, opted_out=True)
    assert (decision.action, decision.answer) == ("opt_in", "opted_in")
    assert decision.context == {"already": False}
    assert decision.occurrence_id is None


def test_start_when_subscribed_says_already() -> None:
    decision = run("Start.", STRETCH)
    assert (decision.action, decision.answer, decision.context) == (
        "opt_in",
        "opted_in",
        {"already": True},
    )


def test_yes_from_a_subscribed_participant_counts_as_done() -> None:
    decision = run("YES", STRETCH)
    assert (decision.action, decision.understood, decision.answer) == ("check_in", "done", "logged")
    assert decision.occurrence_id == STRETCH.occurrence_id


@pytest.mark.parametrize("text", ["HELP", "info?"])
def test_help_is_answered_even_when_opted_out(text: str) -> None:
    for opted_out in (False, True):
        decision = run(text, STRETCH, opted_out=opted_out)
        assert (decision.action, decision.understood, decision.answer) == ("help", "help", "help")


def test_stop_please_is_not_an_opt_out_but_text() -> None:
    as_text = run("STOP PLEASE", JOURNAL)
    assert (as_text.action, as_text.understood) == ("check_in", "text")
    assert as_text.interpretation is not None
    assert as_text.interpretation.text == "STOP PLEASE"
    not_read = run("STOP PLEASE", STRETCH)
    assert (not_read.action, not_read.understood) == ("none", "not_understood")


@pytest.mark.parametrize(
    ("text", "action", "understood"),
    [
        ("Stop!", "opt_out", "opt_out"),
        ("sToP.", "opt_out", "opt_out"),
        ("UnSubscribe", "opt_out", "opt_out"),
        ("cancel?", "opt_out", "opt_out"),
        ("Quit", "opt_out", "opt_out"),
        ("OPTOUT!!", "opt_out", "opt_out"),
        ("start!", "opt_in", "opt_in"),
        ("UnStop.", "opt_in", "opt_in"),
        ("Help?", "help", "help"),
        ("INFO!", "help", "help"),
        ("Pause!", "pause", "pause"),
        ("pause 3 days.", "pause", "pause"),
        ("Resume.", "resume", "resume"),
        ("Done!", "check_in", "done"),
        ("did it!", "check_in", "done"),
        ("Yes.", "check_in", "done"),
        ("y", "check_in", "done"),
        ("Skip.", "check_in", "skipped"),
        ("no!", "check_in", "skipped"),
        ("N", "check_in", "skipped"),
    ],
)
def test_keywords_in_any_case_and_punctuation(text: str, action: str, understood: str) -> None:
    decision = run(text, STRETCH)
    assert (decision.action, decision.understood) == (action, understood)


def test_while_opted_out_a_check_in_is_logged_without_an_answer() -> None:
    decision = run("done", STRETCH, opted_out=True)
    assert (decision.action, decision.understood, decision.answer) == ("check_in", "done", None)
    assert decision.occurrence_id == STRETCH.occurrence_id


@pytest.mark.parametrize("text", ["hello there", "PAUSE 3", "RESUME", "PAUSE 0", "4"])
def test_while_opted_out_anything_else_is_ignored(text: str) -> None:
    decision = run(text, STRETCH, opted_out=True)
    assert (decision.action, decision.understood, decision.answer) == ("none", "ignored", None)


def test_while_opted_out_a_check_in_with_no_window_is_ignored() -> None:
    decision = run("done", opted_out=True)
    assert (decision.action, decision.understood, decision.answer) == ("none", "ignored", None)


# --- pause and resume ----------------------------------------------------------------


def test_pause_defaults_to_one_day() -> None:
    decision = run("PAUSE")
    assert (decision.action, decision.answer, decision.pause_days) == ("pause", "paused", 1)
    assert decision.context == {"days": 1}


def test_pause_three_days() -> None:
    decision = run("pause 3", STRETCH)
    assert (decision.action, decision.understood, decision.pause_days) == ("pause", "pause", 3)
    assert decision.context == {"days": 3}
    assert decision.detail == "paused reminders for 3 days"


def test_pause_zero_is_not_understood() -> None:
    decision = run("PAUSE 0", STRETCH)
    assert (decision.action, decision.understood, decision.answer) == (
        "none",
        "not_understood",
        "not_understood",
    )
    assert decision.context == {"reason": PAUSE_USAGE, "title": None}
    assert decision.pause_days is None


@pytest.mark.parametrize(
    ("paused_until", "was_paused"),
    [(NOW + timedelta(days=2), True), (NOW - timedelta(minutes=1), False), (None, False)],
)
def test_resume(paused_until: datetime | None, was_paused: bool) -> None:
    decision = run("RESUME", paused_until=paused_until)
    assert (decision.action, decision.understood, decision.answer) == (
        "resume",
        "resume",
        "resumed",
    )
    assert decision.context == {"was_paused": was_paused}


# --- check-ins: which occurrence -----------------------------------------------------


def test_thumbs_up_emoji_is_done() -> None:
    decision = run("👍", STRETCH)
    assert (decision.action, decision.understood, decision.occurrence_id) == ("check_in", "done", 3)


def test_no_open_window() -> None:
    decision = run("done")
    assert (decision.action, decision.understood, decision.answer) == (
        "none",
        "no_window",
        "no_window",
    )
    assert decision.detail == "no check-in window open"


def test_check_in_kind_none_is_never_a_window() -> None:
    silent = occ(9, "yoga", "Yoga", 0.5, "none")
    decision = run("done", silent)
    assert decision.understood == "no_window"
    assert run("done", silent, STRETCH).occurrence_id == STRETCH.occurrence_id


def test_done_counts_for_the_most_recent_open_window() -> None:
    older = occ(10, "yoga", "Yoga", 6)
    for order in ((older, STRETCH), (STRETCH, older)):
        decision = run("done", *order)
        assert decision.occurrence_id == STRETCH.occurrence_id
        assert decision.detail == "counted as done for Stretch break"


def test_a_number_goes_to_the_one_open_practice_it_fits() -> None:
    decision = run("4", STRETCH, SCAN)
    assert (decision.action, decision.understood, decision.occurrence_id) == (
        "check_in",
        "rating",
        SCAN.occurrence_id,
    )
    assert decision.interpretation is not None
    assert decision.interpretation.rating == 4


def test_a_number_fitting_two_practices_asks_which() -> None:
    decision = run("4", WALK, SCAN, STRETCH)
    assert (decision.action, decision.understood, decision.answer) == ("ask", "ask", "ask")
    assert decision.candidates == (SCAN.occurrence_id, WALK.occurrence_id)  # most recent first
    assert decision.context == {"titles": ["Body scan", "Morning walk"], "example": "scan"}
    assert decision.detail == "asked which: Body scan or Morning walk"
    assert decision.occurrence_id is None


def test_the_answer_to_which_one_applies_the_asked_message() -> None:
    asked = Asked(body="4", candidates=(SCAN.occurrence_id, WALK.occurrence_id))
    decision = run("walk", WALK, SCAN, STRETCH, asked=asked)
    assert (decision.action, decision.understood, decision.occurrence_id) == (
        "check_in",
        "number",
        WALK.occurrence_id,
    )
    assert decision.interpretation is not None
    assert (decision.interpretation.number, decision.interpretation.unit) == (4, "minutes")


def test_naming_a_practice_that_was_not_asked_about_is_read_on_its_own() -> None:
    asked = Asked(body="4", candidates=(SCAN.occurrence_id,))
    decision = run("walk", WALK, SCAN, STRETCH, asked=asked)
    assert decision.understood == "not_understood"  # "walk" is no check-in for Stretch break


def test_the_asked_candidate_must_still_be_open() -> None:
    asked = Asked(body="4", candidates=(SCAN.occurrence_id, WALK.occurrence_id))
    decision = run("walk", SCAN, STRETCH, asked=asked)
    assert (decision.action, decision.understood) == ("none", "not_understood")
    assert decision.context == {"reason": "expected DONE or SKIP", "title": "Stretch break"}


def test_two_open_occurrences_of_one_practice_do_not_make_a_question() -> None:
    older_scan = occ(20, "body-scan", "Body scan", 26, "rating", scale=(1, 5))
    decision = run("4", older_scan, SCAN, STRETCH)
    assert (decision.action, decision.occurrence_id) == ("check_in", SCAN.occurrence_id)


def test_ask_example_is_a_word_naming_the_first_title_alone() -> None:
    evening = occ(21, "evening-walk", "Evening walk", 2, "number", unit="minutes")
    decision = run("4", WALK, evening, STRETCH)
    assert decision.context["titles"] == ["Evening walk", "Morning walk"]
    assert decision.context["example"] == "evening"  # "walk" would name both


@pytest.mark.parametrize(
    ("text", "understood", "number", "unit"),
    [
        ("done walk", "done", None, None),
        ("walk 25", "number", 25, "minutes"),
        ("walked 25 minutes", "number", 25, "minutes"),
        ("Walk: 1 hour", "number", 60, "minutes"),
    ],
)
def test_a_reply_naming_the_practice(
    text: str, understood: str, number: float | None, unit: str | None
) -> None:
    decision = run(text, WALK, SCAN, STRETCH)
    assert (decision.action, decision.understood, decision.occurrence_id) == (
        "check_in",
        understood,
        WALK.occurrence_id,
    )
    assert decision.interpretation is not None
    assert (decision.interpretation.number, decision.interpretation.unit) == (number, unit)


def test_a_named_practice_the_reply_does_not_fit_is_not_understood() -> None:
    decision = run("scan 9", WALK, SCAN, STRETCH)
    assert (decision.action, decision.understood, decision.answer) == (
        "none",
        "not_understood",
        "not_understood",
    )
    assert decision.context == {"reason": "9 is not on the 1-5 scale", "title": "Body scan"}
    assert decision.occurrence_id == SCAN.occurrence_id


def test_naming_a_practice_whose_window_has_closed() -> None:
    decision = run("done yoga", STRETCH)
    assert (decision.action, decision.understood, decision.answer) == (
        "none",
        "no_window",
        "window_closed",
    )
    assert decision.context == {"title": "Yoga"}
    assert decision.detail == "the window for Yoga has closed"


def test_a_late_reply_naming_a_practice_says_its_window_closed() -> None:
    assert run("walk done").answer == "window_closed"
    assert run("done").answer == "no_window"


def test_a_hint_naming_nothing_is_ignored() -> None:
    decision = run("done gardening", STRETCH)
    assert (decision.understood, decision.occurrence_id) == ("done", STRETCH.occurrence_id)


@pytest.mark.parametrize(
    ("scale", "text", "reason"),
    [
        ((1, 5), "7", "7 is not on the 1-5 scale"),
        ((0, 10), "11", "11 is not on the 0-10 scale"),
        ((1, 5), "4/10", "4/10 is not on the 1-5 scale"),
    ],
)
def test_a_rating_out_of_scale_is_not_understood(
    scale: tuple[int, int], text: str, reason: str
) -> None:
    mood = occ(30, "mood", "Mood check", 1, "rating", scale=scale)
    decision = run(text, mood)
    assert (decision.action, decision.understood, decision.answer) == (
        "none",
        "not_understood",
        "not_understood",
    )
    assert decision.context == {"reason": reason, "title": "Mood check"}


def test_text_to_a_done_practice_is_not_understood_for_the_most_recent() -> None:
    decision = run("running late", WALK, STRETCH)
    assert decision.understood == "not_understood"
    assert decision.context == {"reason": "expected DONE or SKIP", "title": "Stretch break"}


def test_updated_when_something_was_recorded_before() -> None:
    skipped_before = occ(40, "stretch", "Stretch break", 1, current="skipped")
    decision = run("done", skipped_before)
    assert decision.context["updated"] is True
    assert decision.detail == "counted as done for Stretch break (was skipped)"
    assert run("done", STRETCH).context["updated"] is False


def test_logged_context_has_every_key() -> None:
    decision = run("4", STRETCH, SCAN)
    assert decision.context == {
        "outcome": "rating",
        "title": "Body scan",
        "rating": 4,
        "scale": [1, 5],
        "number": None,
        "unit": None,
        "text": None,
        "updated": False,
    }


@pytest.mark.parametrize(
    ("text", "opted_out", "known"),
    [
        ("done", False, True),
        ("4", False, True),
        ("walk 25", False, True),
        ("dear diary", False, True),
        ("PAUSE 0", False, True),
        ("done yoga", False, True),
        ("START", True, True),
        ("hi", False, False),
    ],
)
def test_contexts_are_json(text: str, opted_out: bool, known: bool) -> None:
    decision = run(text, WALK, SCAN, STRETCH, JOURNAL, opted_out=opted_out, known=known)
    assert json.loads(json.dumps(decision.context)) == decision.context


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(max_size=40),
    opened=st.lists(st.sampled_from([WALK, SCAN, STRETCH, JOURNAL]), unique=True),
    known=st.booleans(),
    opted_out=st.booleans(),
    asked=st.none() | st.builds(Asked, st.sampled_from(["4", "done", "25"]), st.just((1, 2))),
)
def test_decide_always_decides_and_the_answer_renders(
    renderer: Renderer,
    text: str,
    opened: list[OpenCheckIn],
    known: bool,
    opted_out: bool,
    asked: Asked | None,
) -> None:
    decision = decide(
        parse_reply(text),
        situation(*opened, known=known, opted_out=opted_out, asked=asked),
    )
    assert decision.answer is None or decision.answer in ANSWERS
    assert json.loads(json.dumps(decision.context)) == decision.context
    assert decision.detail
    if decision.action == "check_in":
        assert decision.occurrence_id in {o.occurrence_id for o in opened}
        assert decision.interpretation is not None
        assert decision.interpretation.applies
    if decision.action == "ask":
        assert len(decision.candidates) >= 2
    if decision.answer is not None and known:
        rendered = answer(renderer, decision)
        assert rendered
        assert "None" not in rendered


# --- the answer templates ------------------------------------------------------------


def test_every_answer_has_a_template_and_no_template_is_unused() -> None:
    folder = REPO / "templates" / "replies"
    english = {
        p.name.removesuffix(".sms.j2") for p in folder.glob("*.sms.j2") if p.name.count(".") == 2
    }
    spanish = {p.name.removesuffix(".es.sms.j2") for p in folder.glob("*.es.sms.j2")}
    assert english == set(ANSWERS)
    assert spanish == set(ANSWERS)  # Spanish is shipped for every answer


@pytest.mark.parametrize("name", ANSWERS)
def test_every_answer_renders_as_one_plain_segment(renderer: Renderer, name: str) -> None:
    text = renderer.answer(name, sample_answer_context(name))
    assert text
    assert text.isascii()
    assert len(text) <= 160
    segments = count_segments(text)
    assert (segments.encoding, segments.count) == ("GSM-7", 1)
    assert "None" not in text
    assert "  " not in text
    assert "\n" not in text


def test_the_stranger_answer_needs_no_participant() -> None:
    assert "participant" not in sample_answer_context("stranger")


def test_unknown_sample_name() -> None:
    with pytest.raises(KeyError, match="no answer template named 'nope'"):
        sample_answer_context("nope")


def test_logged_needs_streak_and_done_total(renderer: Renderer) -> None:
    context = dict(sample_answer_context("logged"))
    del context["streak"]
    with pytest.raises(RenderError, match="streak"):
        renderer.answer("logged", context)


@pytest.mark.parametrize(
    ("text", "open_", "streak", "done_total", "expected"),
    [
        ("done", [STRETCH], 4, 10, "Logged: Stretch break. 4 days in a row."),
        ("done", [STRETCH], 1, 1, "Logged: Stretch break. Nice start."),
        ("done", [STRETCH], 1, 7, "Logged: Stretch break. Back at it: 7 done so far."),
        ("skip", [STRETCH], 0, 7, "Noted: Stretch break skipped. Tomorrow is a fresh start."),
        ("4", [SCAN], 3, 9, "Logged: Body scan, 4 of 5. 3 days in a row."),
        ("25", [WALK], 2, 9, "Logged: Morning walk, 25 minutes. 2 days in a row."),
        ("1.5 hours", [WALK], 2, 9, "Logged: Morning walk, 90 minutes. 2 days in a row."),
        (
            "slept badly, calm after",
            [JOURNAL],
            1,
            1,
            "Logged: Evening journal, thanks for writing. Nice start.",
        ),
        (
            "done",
            [occ(5, "stretch", "Stretch break", 1, current="skipped")],
            5,
            12,
            "Updated: Stretch break. 5 days in a row.",
        ),
        (
            "skip",
            [occ(5, "stretch", "Stretch break", 1, current="done")],
            0,
            11,
            "Updated: Stretch break skipped. Tomorrow is a fresh start.",
        ),
    ],
)
def test_logged_answers(
    renderer: Renderer,
    text: str,
    open_: list[OpenCheckIn],
    streak: int,
    done_total: int,
    expected: str,
) -> None:
    decision = run(text, *open_)
    assert decision.answer == "logged"
    assert answer(renderer, decision, streak, done_total) == expected


def test_opted_out_answer(renderer: Renderer) -> None:
    assert answer(renderer, run("STOP")) == (
        "You're unsubscribed from Tend and will get no more texts. Reply START to come back."
    )


def test_opted_in_answers(renderer: Renderer) -> None:
    back = answer(renderer, run("START", opted_out=True))
    assert back.startswith("Welcome back to Tend, Alex.")
    assert "STOP" in back
    assert answer(renderer, run("START")).startswith("You're already subscribed")


def test_help_answer(renderer: Renderer) -> None:
    text = answer(renderer, run("HELP"))
    for needed in ("Tend", "STOP", "PAUSE 3", "DONE", "SKIP", "ask your coach"):
        assert needed in text


def test_pause_and_resume_answers(renderer: Renderer) -> None:
    assert answer(renderer, run("PAUSE 3")) == (
        "Reminders paused for 3 days. Reply RESUME to start again."
    )
    assert answer(renderer, run("PAUSE")) == (
        "Reminders paused for 1 day. Reply RESUME to start again."
    )
    resumed = run("RESUME", paused_until=NOW + timedelta(days=1))
    assert answer(renderer, resumed) == "Welcome back, Alex. Your reminders are on again."
    assert "already on" in answer(renderer, run("RESUME"))


def test_ask_answer(renderer: Renderer) -> None:
    stretch = occ(50, "stretch", "Stretch break", 0.5)
    walk = occ(51, "walk", "Morning walk", 1, "number", unit="minutes")
    yoga = occ(52, "yoga", "Yoga", 2, "rating")
    decision = run("4", stretch, walk, yoga)
    assert answer(renderer, decision) == (
        'Which one: Morning walk or Yoga? Reply with its name, e.g. "walk".'
    )


def test_not_understood_answers(renderer: Renderer) -> None:
    assert answer(renderer, run("7", SCAN)) == (
        "Sorry, that wasn't logged for Body scan: 7 is not on the 1-5 scale. "
        "Reply HELP for options."
    )
    assert answer(renderer, run("PAUSE 0")) == (
        f"Sorry, I couldn't read that: {PAUSE_USAGE}. Reply HELP for options."
    )


def test_no_window_and_window_closed_answers(renderer: Renderer) -> None:
    no_window = answer(renderer, run("done"))
    assert "Nothing is waiting for a reply right now" in no_window
    assert "wasn't logged" in no_window
    closed = answer(renderer, run("done yoga", STRETCH))
    assert closed.startswith("The window to check in for Yoga has closed")


def test_stranger_answer(renderer: Renderer) -> None:
    decision = run("hello", known=False)
    assert decision.answer == "stranger"
    text = renderer.answer("stranger", decision.context)  # no participant: unknown sender
    assert "Tend" in text
    assert "ask your coach" in text


@pytest.mark.parametrize("name", ANSWERS)
def test_every_answer_in_spanish_renders_in_at_most_two_segments(
    renderer: Renderer, name: str
) -> None:
    context = {**sample_answer_context(name), LANGUAGE: "es"}
    spanish = renderer.answer(name, context)
    english = renderer.answer(name, sample_answer_context(name))
    assert spanish
    assert spanish != english  # the translation, not the fallback
    assert "None" not in spanish
    assert "\n" not in spanish
    assert count_segments(spanish).count <= 2, (spanish, count_segments(spanish).describe())
