"""Days of the week as coaches write them: `sunday`, `Sundays`, `SUN`, `Sun.`, `Mon, Wed`.

Every spelling is read to the same day number (0 is Monday), so a plan means the same
whatever the case or form; `every`'s keywords have their forgiving forms too (`daily`,
`weekdays`). No imports from the rest of Tend: `plan` builds its JSON Schema from here.
"""

from __future__ import annotations

import re

DAY_NAMES: tuple[str, ...] = (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
)  # fmt: skip
# Each day's spellings, lower case, without a trailing "." or a plural "s": the full
# name, its first three letters and the common longer abbreviations.
_SPELLINGS: dict[str, int] = {
    **{name: number for number, name in enumerate(DAY_NAMES)},
    **{name[:3]: number for number, name in enumerate(DAY_NAMES)},
    "tues": 1,
    "weds": 2,
    "thur": 3,
    "thurs": 3,
}
# `every`'s keywords as written, to the plan's canonical keyword.
EVERY_WORDS: dict[str, str] = {
    "day": "day",
    "days": "day",
    "daily": "day",
    "everyday": "day",
    "every day": "day",
    "weekday": "weekday",
    "weekdays": "weekday",
    "weekend": "weekend",
    "weekends": "weekend",
}
# What a near miss is compared with, for a did-you-mean.
DAY_CHOICES: tuple[str, ...] = (*(name[:3] for name in DAY_NAMES), *DAY_NAMES)


def _word(text: str) -> str:
    return " ".join(text.lower().split())


def day_number(text: str) -> int | None:
    """The day `text` names, 0 for Monday; None when it names none. Any case, full or
    abbreviated, singular or plural, with or without a final dot."""
    word = _word(text)
    if not word.isascii():
        return None
    word = word.removesuffix(".")
    found = _SPELLINGS.get(word)
    if found is None and word.endswith("s") and word[:-1] in DAY_NAMES:
        found = DAY_NAMES.index(word[:-1])
    return found


def every_keyword(text: str) -> str | None:
    """The canonical `every` keyword (day, weekday, weekend) `text` spells, or None."""
    word = _word(text)
    return EVERY_WORDS.get(word) if word.isascii() else None


def near_word(text: str) -> str:
    """`text` as compared for a did-you-mean: lower case, without a final dot."""
    return _word(text).removesuffix(".")


def split_days(text: str) -> list[tuple[str, int]]:
    """The items of a comma-separated list of days, each with its offset in `text`;
    empty items (a trailing comma) are left out."""
    return [
        (match.group(), match.start()) for match in re.finditer(r"[^,\s](?:[^,]*[^,\s])?", text)
    ]


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c}]" if c.isalpha() else re.escape(c) for c in word)


def _day_regex() -> str:
    plural = "|".join(f"{_any_case(name)}[Ss]?" for name in DAY_NAMES)
    short = "|".join(_any_case(word) for word in sorted(_SPELLINGS) if word not in DAY_NAMES)
    return rf"(?:{plural}|{short})\.?"


_DAY = _day_regex()
# For the JSON Schema (ECMA-262 regular expressions have no case-insensitive flag).
DAY_PATTERN = rf"^\s*{_DAY}\s*$"
DAYS_TEXT_PATTERN = rf"^\s*{_DAY}(?:\s*,\s*{_DAY})*\s*,?\s*$"
EVERY_WORD_PATTERN = (
    r"^\s*(?:" + "|".join(_any_case(word).replace(r"\ ", r"\s+") for word in EVERY_WORDS) + r")\s*$"
)
