"""Reading inbound SMS replies (service/core/replies.py): keywords, done/skip, numbers,
practice hints, and what a reply means for each kind of check-in."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.core.replies import (
    KEYWORDS,
    PAUSE_USAGE,
    Interpretation,
    Reply,
    interpret,
    match_practice,
    parse_reply,
    to_minutes,
)

OPT_OUT = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"]


def kind(text: str) -> str:
    return parse_reply(text).kind


# --- compliance keywords -------------------------------------------------------------


@pytest.mark.parametrize("word", OPT_OUT)
@pytest.mark.parametrize(
    "dress", ["{}", "{}!", " {}. ", "¡{}!", "  {}\n", '"{}"', "{} 🛑", "...{}?"]
)
def test_opt_out_keywords_with_punctuation(word: str, dress: str) -> None:
    for variant in (word, word.lower(), word.title(), word[0].lower() + word[1:]):
        assert kind(dress.format(variant)) == "opt_out", dress.format(variant)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Stop!", "opt_out"),
        (" stop. ", "opt_out"),
        ("stopall", "opt_out"),
        ("ＳＴＯＰ", "opt_out"),  # fullwidth letters
        ("Start", "opt_in"),
        ("START!", "opt_in"),
        ("Unstop", "opt_in"),
        ("unstop.", "opt_in"),
        ("HELP", "help"),
        ("help?", "help"),
        ("Info", "help"),
        ("yes", "yes"),
        ("YES!", "yes"),
        ("Yes 👍", "yes"),
    ],
)
def test_whole_message_keywords(text: str, expected: str) -> None:
    assert kind(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "STOP PLEASE",
        "please stop",
        "stop it",
        "can't stop smiling",
        "end of the day",
        "S.T.O.P",
        "stop stop",
        "help me",
        "start tomorrow",
    ],
)
def test_keywords_inside_a_sentence_are_text(text: str) -> None:
    reply = parse_reply(text)
    assert reply.kind == "text"
    assert reply.text == text


def test_keyword_reply_keeps_the_trimmed_message() -> None:
    assert parse_reply("  Stop!  \n") == Reply("opt_out", text="Stop!")


# --- pause and resume ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("PAUSE", 1),
        ("pause", 1),
        ("Pause.", 1),
        ("pause 3", 3),
        ("PAUSE 3!", 3),
        ("pause 3 days", 3),
        ("pause for 3 days", 3),
        ("pause 1 day", 1),
        ("pause 2 weeks", 14),
        ("pause 365", 365),
        ("pause 1", 1),
    ],
)
def test_pause(text: str, days: int) -> None:
    reply = parse_reply(text)
    assert (reply.kind, reply.days, reply.problem) == ("pause", days, None)


@pytest.mark.parametrize(
    "text",
    [
        "pause 0",
        "pause -3",
        "pause 1000",
        "pause 366",
        "pause 53 weeks",
        "pause 2.5",
        "pause 1,5",
        "pause 3/4",
        "pause until monday",
        "pause 3 hours",
        "pause 3 4",
        "pause " + "9" * 400,
    ],
)
def test_pause_out_of_range_or_malformed_is_invalid(text: str) -> None:
    reply = parse_reply(text)
    assert reply.kind == "invalid"
    assert reply.days is None
    assert reply.problem == PAUSE_USAGE
    assert "1 to 365" in PAUSE_USAGE


@pytest.mark.parametrize("text", ["RESUME", "resume", "Resume!", "resume please"])
def test_resume(text: str) -> None:
    assert kind(text) == "resume"


# --- done and skipped ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "DONE",
        "done",
        "Done.",
        "done!!",
        "done ✅",
        "done 👍",
        "Y",
        "y",
        "DID IT",
        "did it!",
        "Did it 💪",
        "I did it",
        "just did it today",
        "yes done",
        "done, thanks",
        "👍",
        "✅",
        "✔️",
        "👍🏽",
    ],
)
def test_done(text: str) -> None:
    reply = parse_reply(text)
    assert (reply.kind, reply.practice_hint) == ("done", None)


@pytest.mark.parametrize("text", ["SKIP", "skip", "Skip.", "NO", "no", "No!", "N", "n", "skipped"])
def test_skipped(text: str) -> None:
    reply = parse_reply(text)
    assert (reply.kind, reply.practice_hint) == ("skipped", None)


@pytest.mark.parametrize(
    "text", ["not done", "didn't do it", "didn’t do it", "never did it", "no, done", "done not"]
)
def test_negated_or_contradictory_replies_are_text(text: str) -> None:
    assert kind(text) == "text"


# --- numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number", "unit", "hint"),
    [
        ("4", 4.0, None, None),
        (" 4. ", 4.0, None, None),
        ("4/5", 4.0, "/5", None),
        ("4 / 5", 4.0, "/5", None),
        ("25", 25.0, None, None),
        ("25 min", 25.0, "minutes", None),
        ("25min", 25.0, "minutes", None),
        ("25 mins", 25.0, "minutes", None),
        ("25 minutes", 25.0, "minutes", None),
        ("25m", 25.0, "minutes", None),
        ("25 Minutes!", 25.0, "minutes", None),
        ("walked 25 minutes", 25.0, "minutes", "walked"),
        ("I walked for 25 minutes today", 25.0, "minutes", "walked"),
        ("1.5 hours", 1.5, "hours", None),
        ("1.5h", 1.5, "hours", None),
        ("2 hrs", 2.0, "hours", None),
        ("1 hour", 1.0, "hours", None),
        ("1,5 hr", 1.5, "hours", None),
        (".5 hours", 0.5, "hours", None),
        ("10,000 steps", 10000.0, "steps", None),
        ("3 km", 3.0, "km", None),
        ("walk 25", 25.0, None, "walk"),
        ("done, 4", 4.0, None, None),
        ("4 👍", 4.0, None, None),
        ("4️⃣", 4.0, None, None),  # keycap emoji
        ("４", 4.0, None, None),  # fullwidth digit
        ("-3", -3.0, None, None),
        ("evening walk 30 min", 30.0, "minutes", "evening walk"),
    ],
)
def test_numbers(text: str, number: float, unit: str | None, hint: str | None) -> None:
    reply = parse_reply(text)
    assert (reply.kind, reply.number, reply.unit, reply.practice_hint) == (
        "number",
        number,
        unit,
        hint,
    )


@pytest.mark.parametrize(
    "text",
    [
        "1 hour 30 minutes",  # two numbers: ambiguous
        "3 or 4",
        "skip 25",  # contradicts itself
        "I have 2 kids and no time at all",  # a sentence with a number in it
        "9" * 500,  # too large to be a number
    ],
)
def test_numbers_that_are_text(text: str) -> None:
    assert kind(text) == "text"


def test_to_minutes() -> None:
    assert to_minutes(1.5, "hours") == 90
    assert to_minutes(1.5, "hr") == 90
    assert to_minutes(25, "minutes") == 25
    assert to_minutes(25, "min") == 25
    assert to_minutes(3, "km") is None
    assert to_minutes(3, None) is None


# --- practice hints ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected_kind", "hint"),
    [
        ("done walk", "done", "walk"),
        ("walk done", "done", "walk"),
        ("Walk: DONE!", "done", "walk"),
        ("did it walk", "done", "walk"),
        ("skip yoga", "skipped", "yoga"),
        ("yoga - skip", "skipped", "yoga"),
        ("evening walk done", "done", "evening walk"),
        ("walk 25", "number", "walk"),
    ],
)
def test_practice_hints(text: str, expected_kind: str, hint: str) -> None:
    reply = parse_reply(text)
    assert (reply.kind, reply.practice_hint) == (expected_kind, hint)


@pytest.mark.parametrize(
    "text", ["walk done yoga", "done with my walk around the lake", "done walk skip"]
)
def test_action_words_in_the_middle_or_too_many_words_are_text(text: str) -> None:
    assert kind(text) == "text"


PRACTICES = {
    "morning-walk": "Morning walk",
    "yoga": "Yoga flow",
    "journal": "Gratitude journal",
}


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        ("walk", "morning-walk"),
        ("WALK", "morning-walk"),
        ("walked", "morning-walk"),
        ("morning walk", "morning-walk"),
        ("morning-walk", "morning-walk"),
        ("yoga", "yoga"),
        ("yoga flow", "yoga"),
        ("yog", "yoga"),
        ("yooga", "yoga"),  # a typo: close match
        ("talk", None),  # one letter off a four-letter word is too far
        ("journl", "journal"),
        ("gratitude", "journal"),
        ("swim", None),
        ("", None),
        ("  ", None),
        ("wa", None),  # too short to be a prefix
    ],
)
def test_match_practice(hint: str, expected: str | None) -> None:
    assert match_practice(hint, PRACTICES) == expected


def test_match_practice_ambiguous_is_none() -> None:
    two_walks = {"morning-walk": "Morning walk", "evening-walk": "Evening walk"}
    assert match_practice("walk", two_walks) is None
    assert match_practice("evening walk", two_walks) == "evening-walk"
    assert match_practice("evening", two_walks) == "evening-walk"
    assert match_practice("walk", {}) is None


def test_match_practice_exact_beats_prefix() -> None:
    assert match_practice("walk", {"walk": "Walk", "walking-meeting": "Walking meeting"}) == "walk"


# --- text, empty, long ---------------------------------------------------------------


@pytest.mark.parametrize("text", ["💪", "felt great, slept well", "?", "!!!", "hello"])
def test_free_text(text: str) -> None:
    reply = parse_reply(text)
    assert (reply.kind, reply.text) == ("text", text)


@pytest.mark.parametrize("text", ["", " ", "\n\t ", "\u3000"])
def test_empty_and_whitespace_only_are_invalid(text: str) -> None:
    reply = parse_reply(text)
    assert reply.kind == "invalid"
    assert reply.problem == "the message is empty"


def test_long_messages_are_text_kept_whole() -> None:
    body = "Today I walked along the river and it was lovely. " * 60
    reply = parse_reply(body)
    assert reply.kind == "text"
    assert reply.text == body.strip()
    assert kind("stop " * 1000) == "text"
    assert kind("done " * 1000) == "done"  # only action words: still plainly done


# --- interpret -----------------------------------------------------------------------


def meaning(
    text: str, check_in: str, scale: tuple[int, int] | None = None, unit: str | None = None
) -> Interpretation:
    return interpret(parse_reply(text), check_in, scale=scale, unit=unit)


@pytest.mark.parametrize("check_in", ["done", "rating", "number", "text"])
def test_done_and_skip_count_for_every_check_in(check_in: str) -> None:
    assert meaning("done", check_in).outcome == "done"
    assert meaning("did it!", check_in).outcome == "done"
    assert meaning("YES", check_in).outcome == "done"  # the caller ruled out an opt-in
    assert meaning("skip", check_in).outcome == "skipped"


@pytest.mark.parametrize("text", ["done", "4", "hello"])
def test_no_check_in_takes_nothing(text: str) -> None:
    result = meaning(text, "none")
    assert result == Interpretation("not_applicable", reason="this practice asks for no check-in")
    assert not result.applies


@pytest.mark.parametrize("text", ["STOP", "start", "help", "pause 3", "resume"])
def test_keywords_are_not_check_ins(text: str) -> None:
    result = meaning(text, "done")
    assert result.outcome == "not_applicable"
    assert result.reason is not None
    assert "keyword" in result.reason


def test_invalid_reply_gives_its_problem() -> None:
    assert meaning("", "text").reason == "the message is empty"
    assert meaning("pause 0", "done").reason == PAUSE_USAGE


@pytest.mark.parametrize(
    ("text", "rating"), [("1", 1), ("4", 4), ("5", 5), ("4/5", 4), ("3 stars", 3)]
)
def test_rating_within_scale(text: str, rating: int) -> None:
    assert meaning(text, "rating") == Interpretation("rating", rating=rating)


@pytest.mark.parametrize(
    ("text", "scale", "reason"),
    [
        ("6", None, "6 is not on the 1-5 scale"),
        ("0", None, "0 is not on the 1-5 scale"),
        ("-3", None, "-3 is not on the 1-5 scale"),
        ("3.5", None, "3.5 is not on the 1-5 scale"),
        ("4", (0, 3), "4 is not on the 0-3 scale"),
        ("8/10", None, "8/10 is not on the 1-5 scale"),
        ("25 minutes", None, "a rating is a number from 1 to 5, not minutes"),
        ("great", None, "expected a rating from 1 to 5"),
    ],
)
def test_rating_problems(text: str, scale: tuple[int, int] | None, reason: str) -> None:
    assert meaning(text, "rating", scale=scale) == Interpretation("not_applicable", reason=reason)


def test_rating_on_another_scale() -> None:
    assert meaning("8/10", "rating", scale=(1, 10)).rating == 8
    assert meaning("0", "rating", scale=(0, 3)).rating == 0


@pytest.mark.parametrize(
    ("text", "unit", "number", "final_unit"),
    [
        ("25", "minutes", 25.0, "minutes"),
        ("25 min", "minutes", 25.0, "minutes"),
        ("walked 25 minutes", "minutes", 25.0, "minutes"),
        ("1.5 hours", "minutes", 90.0, "minutes"),
        ("90 min", "hours", 1.5, "hours"),
        ("25", "min", 25.0, "minutes"),  # the plan's unit is normalised too
        ("10,000 steps", "steps", 10000.0, "steps"),
        ("12", None, 12.0, None),
        ("3 km", None, 3.0, "km"),
    ],
)
def test_number_check_ins(text: str, unit: str | None, number: float, final_unit: str) -> None:
    assert meaning(text, "number", unit=unit) == Interpretation(
        "number", number=number, unit=final_unit
    )


@pytest.mark.parametrize(
    ("text", "unit", "reason"),
    [
        ("3 km", "minutes", "expected minutes, got km"),
        ("4/5", "minutes", "4/5 is a rating, not a number of minutes"),
        ("-5 min", "minutes", "-5 minutes is not a duration"),
        ("a lot", "minutes", "expected a number of minutes"),
        ("a lot", None, "expected a number"),
    ],
)
def test_number_check_in_problems(text: str, unit: str | None, reason: str) -> None:
    assert meaning(text, "number", unit=unit) == Interpretation("not_applicable", reason=reason)


@pytest.mark.parametrize("text", ["felt calm", "4", "walked 25 minutes", "💪"])
def test_text_check_ins_take_any_text(text: str) -> None:
    assert meaning(text, "text") == Interpretation("text", text=text)


def test_done_check_in_refuses_numbers_and_text() -> None:
    assert meaning("4", "done").reason == "expected DONE or SKIP"
    assert meaning("hello", "done").reason == "expected DONE or SKIP"


# --- properties ----------------------------------------------------------------------

PUNCTUATION = st.text(alphabet=" \t\n.!?,;:'\"()-*~🛑👋✋", max_size=4)


@settings(max_examples=500)
@given(st.text())
def test_parse_reply_never_raises(text: str) -> None:
    reply = parse_reply(text)
    assert reply.text == text.strip()
    assert (reply.kind == "invalid") == (reply.problem is not None)


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(codec="utf-8")), st.sampled_from(["done", "4", "skip"]))
def test_interpret_never_raises(text: str, check_in: str) -> None:
    for kind_ in ("none", "done", "rating", "number", "text"):
        result = interpret(parse_reply(text), kind_, scale=(1, 5), unit="minutes")
        assert result.applies == (result.reason is None)
    interpret(parse_reply(check_in), "rating")


@given(st.sampled_from(sorted(KEYWORDS)), st.data(), PUNCTUATION, PUNCTUATION)
def test_keywords_under_random_case_and_punctuation(
    word: str, data: st.DataObject, before: str, after: str
) -> None:
    flips = data.draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    cased = "".join(c.upper() if up else c for c, up in zip(word, flips, strict=True))
    assert kind(before + cased + after) == KEYWORDS[word]


WORD = st.one_of(
    st.sampled_from([*(w.lower() for w in OPT_OUT), "please", "now", "it", "4", "yes"]),
    st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True),
)


@given(st.lists(WORD, min_size=2, max_size=6), st.sampled_from([" ", "  ", "\n", ", ", " - "]))
def test_two_or_more_words_never_opt_out(words: list[str], separator: str) -> None:
    text = separator.join(w.upper() if i % 2 else w for i, w in enumerate(words))
    assert kind(text) != "opt_out"
