"""SMS segment counting (GSM-7 and UCS-2) and cleaning text so it stays GSM-7."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.core.sms import GSM7_BASIC, GSM7_EXTENSION, clean_for_sms, count_segments

APOSTROPHE = "\u2019"  # the curly one, which forces UCS-2


@pytest.mark.parametrize(
    ("length", "segments"),
    [(0, 1), (1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_gsm7_segments(length: int, segments: int) -> None:
    result = count_segments("a" * length)
    assert (result.encoding, result.count, result.length) == ("GSM-7", segments, length)
    assert result.forcing == ()


@pytest.mark.parametrize("char", ["€", "[", "]", "{", "}", "\\", "^", "~", "|"])
def test_extension_characters_count_two_septets(char: str) -> None:
    assert count_segments(char * 80).count == 1
    assert count_segments(char * 80).length == 160
    over = count_segments(char * 80 + "a")
    assert (over.encoding, over.count, over.length) == ("GSM-7", 2, 161)


def test_extension_characters_mixed_with_plain_ones() -> None:
    result = count_segments("€" * 10 + "a" * 140)
    assert (result.count, result.length) == (1, 160)
    assert count_segments("€" * 10 + "a" * 141).count == 2


@pytest.mark.parametrize("text", ["@£$¥èéùìòÇ", "ÄÖÑÜ§¿äöñüà", "ΔΦΓΛΩΠΨΣΘΞ", "line\nbreak"])
def test_gsm7_basic_characters_beyond_ascii(text: str) -> None:
    result = count_segments(text)
    assert (result.encoding, result.length) == ("GSM-7", len(text))


@pytest.mark.parametrize(
    ("length", "segments"), [(70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)]
)
def test_ucs2_segments(length: int, segments: int) -> None:
    text = "ç" + "a" * (length - 1)  # ç is not in GSM-7 (Ç is)
    result = count_segments(text)
    assert (result.encoding, result.count, result.length) == ("UCS-2", segments, length)
    assert result.forcing == ("ç",)


def test_emoji_counts_two_utf16_units() -> None:
    assert count_segments("😀" * 35).length == 70
    assert count_segments("😀" * 35).count == 1
    result = count_segments("😀" * 35 + "a")
    assert (result.encoding, result.count, result.length) == ("UCS-2", 2, 71)


def test_forcing_characters_in_order_of_appearance_once_each() -> None:
    result = count_segments(f"x{APOSTROPHE}y😀z{APOSTROPHE}ç")
    assert result.forcing == (APOSTROPHE, "😀", "ç")


def test_describe_names_the_forcing_characters() -> None:
    text = count_segments(APOSTROPHE + "a" * 80).describe()
    assert text == f"2 segments (UCS-2, 81 UTF-16 units, UCS-2 forced by '{APOSTROPHE}' U+2019)"
    assert count_segments("a" * 200).describe() == "2 segments (GSM-7, 200 characters)"


def test_describe_shows_at_most_five_forcing_characters() -> None:
    text = count_segments("αβγδεζηθ" + "a" * 70).describe()
    assert "and 3 more" in text
    assert text.count("U+") == 5


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("It\u2019s", "It's"),  # right single quotation mark
        ("\u2018quoted\u2019", "'quoted'"),
        ("\u201cquoted\u201d", '"quoted"'),
        ("a\u00a0b", "a b"),  # no-break space
        ("a\u202fb", "a b"),  # narrow no-break space
        ("a\u200bb", "ab"),  # zero-width space
        ("10\u201312", "10-12"),  # en dash
        ("wait—now", "wait-now"),  # em dash
        ("5 \u2212 3", "5 - 3"),  # minus sign
        ("and…", "and..."),
        ("tab\there", "tab here"),
    ],
)
def test_clean_for_sms_replaces_look_alikes(raw: str, clean: str) -> None:
    assert clean_for_sms(raw) == clean
    assert count_segments(clean_for_sms(raw)).encoding == "GSM-7"


@pytest.mark.parametrize("text", ["Well done 😀", "Çava ç", "日本語", "Здравствуйте"])
def test_clean_for_sms_keeps_what_has_no_plain_twin(text: str) -> None:
    assert clean_for_sms(text) == text


def test_clean_for_sms_replaces_around_kept_emoji() -> None:
    assert clean_for_sms(f"It{APOSTROPHE}s done 🎉 — well done") == "It's done 🎉 - well done"


def test_clean_for_sms_leaves_plain_text_alone() -> None:
    text = "Screens off now. Alex, bedtime is 22:30."
    assert clean_for_sms(text) is text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=500))
def test_gsm7_length_is_septets(text: str) -> None:
    result = count_segments(text)
    septets = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
    assert result.encoding == "GSM-7"
    assert result.length == septets
    expected = 1 if septets <= 160 else -(-septets // 153)
    assert result.count == expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_segments_hold_the_whole_message(text: str) -> None:
    result = count_segments(text)
    if result.encoding == "GSM-7":
        per, single = 153, 160
    else:
        per, single = 67, 70
        assert result.length == len(text.encode("utf-16-le")) // 2
    assert result.length <= (single if result.count == 1 else per * result.count)
    if result.count > 1:
        assert result.length > (single if result.count == 2 else per * (result.count - 1))


_LOOK_ALIKES = "\u00a0\u2009\u200b\u2018\u2019\u201c\u201d\u2013\u2014\u2026\t"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(sorted(GSM7_BASIC) + list(_LOOK_ALIKES)), max_size=100))
def test_cleaning_look_alikes_gives_gsm7(text: str) -> None:
    cleaned = clean_for_sms(text)
    assert count_segments(cleaned).encoding == "GSM-7"
    assert clean_for_sms(cleaned) == cleaned


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=100))
def test_cleaning_is_idempotent_and_keeps_other_characters(text: str) -> None:
    cleaned = clean_for_sms(text)
    assert clean_for_sms(cleaned) == cleaned
    kept = [
        c
        for c in text
        if c not in _LOOK_ALIKES
        and c
        not in "\u2007\u202f\u200a\u2002\u2003"
        "\u201a\u2032\u201e\u2033\u2212\u2010\u2011\u00b4\u02bc"
    ]
    assert all(c in cleaned for c in kept)
