"""Languages: which text a participant gets, and dates and times written their way.

A participant has a language tag (BCP 47: `en`, `es`, `es-MX`); none means the
deployment's default (TEND_DEFAULT_LANGUAGE). Texts are looked up from the most to the
least specific tag and then fall back to the text without a language, which is written
in the plan's own language (English unless the plan says `language:`):

- a plan's `message: {en: ..., es: ...}` (and `discreet_message`, a nudge's message,
  `rotate` lines) by key;
- a template file `name.<lang>.<channel>.j2` before `name.<channel>.j2` (template names
  have no dots, so the language is never mistaken for part of the name).

Dates and times are formatted with Babel's CLDR data for the language, so a Spanish
speaker reads "martes, 8 de diciembre" and "21:30", an English one "Tuesday, December 8"
and "9:30 PM".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import datetime

from babel import Locale, UnknownLocaleError
from babel.dates import format_skeleton, format_time

from service.core.diagnostics import one_line

DEFAULT_LANGUAGE = "en"
MAX_TAG = 16  # characters of a language tag, as stored
# A simple BCP 47 tag: a language (2 or 3 letters), an optional script (4 letters) and
# an optional region (2 letters or 3 digits): en, es, es-MX, zh-Hant-TW, es-419.
_TAG = re.compile(r"^([A-Za-z]{2,3})(?:-([A-Za-z]{4}))?(?:-([A-Za-z]{2}|[0-9]{3}))?$")
NAMES = {"en": "English", "es": "Spanish"}  # the languages Tend's own texts come in


class NotATag(ValueError):
    """Text that is not a simple BCP 47 language tag."""


def tag(text: str) -> str:
    """A simple BCP 47 tag (en, es, es-MX, zh-Hant-TW) in its usual case: the language
    lower case, a script capitalised, a region upper case. Raises NotATag."""
    written = text.strip()
    found = _TAG.match(written)
    if found is None or len(written) > MAX_TAG:
        hint = " (write es-MX, with a hyphen)" if "_" in written else ""
        shown = one_line(written if len(written) <= 40 else f"{written[:40]}...")
        raise NotATag(f"'{shown}' is not a language tag{hint}; write one such as en, es or es-MX")
    lang, script, region = found.groups()
    parts = [lang.lower()]
    if script:
        parts.append(script.title())
    if region:
        parts.append(region.upper())
    return "-".join(parts)


def key(language: str) -> str:
    """A tag as it appears in file names and plan keys: lower case (es-mx)."""
    return language.lower()


def candidates(language: str | None) -> tuple[str, ...]:
    """The keys to look for, most specific first: es-MX -> ("es-mx", "es")."""
    if not language:
        return ()
    parts = key(language).split("-")
    return tuple("-".join(parts[:n]) for n in range(len(parts), 0, -1))


def pick(texts: dict[str, str] | Iterable[tuple[str, str]], language: str | None) -> str | None:
    """The text for `language` among `texts` (keyed by lower-case tag), or None."""
    table = dict(texts)
    for candidate in candidates(language):
        if candidate in table:
            return table[candidate]
    return None


def base(language: str | None) -> str:
    """The language without script or region: es-MX -> es."""
    return key(language or DEFAULT_LANGUAGE).split("-")[0]


@functools.lru_cache(maxsize=64)
def locale(language: str | None) -> Locale:
    """Babel's locale for a tag; English for one it does not know."""
    for candidate in (language or "", base(language), DEFAULT_LANGUAGE):
        try:
            return Locale.parse(candidate.replace("-", "_"))
        except (UnknownLocaleError, ValueError):
            continue
    return Locale("en")


def time_text(moment: datetime, language: str | None) -> str:
    """A time of day as the language writes it: 9:30 PM, 21:30."""
    return format_time(moment, "short", locale=locale(language))


def day_text(moment: datetime, language: str | None) -> str:
    """A day as the language writes it: Tuesday, December 8; martes, 8 de diciembre."""
    return format_skeleton("MMMMEEEEd", moment, locale=locale(language))


def short_day_text(moment: datetime, language: str | None) -> str:
    """A day, briefly: Tue, Dec 8; mar, 8 dic."""
    return format_skeleton("MMMEd", moment, locale=locale(language))


class Localized(str):
    """Text written in a plan's own language that may carry translations: it is the
    plan's-language text wherever a plain string is expected, and `in_language` gives a
    participant's. Translations are keyed by lower-case tag (es, es-mx)."""

    translations: dict[str, str]

    def __new__(cls, text: str, translations: dict[str, str] | None = None) -> Localized:
        made = super().__new__(cls, text)
        made.translations = dict(translations or {})
        return made

    def in_language(self, language: str | None) -> str:
        return pick(self.translations, language) or str(self)


class LocalizedLines(tuple[str, ...]):
    """`rotate` lines in the plan's language, with the same lines per translation."""

    translations: dict[str, tuple[str, ...]]

    def __new__(
        cls, lines: Iterable[str], translations: dict[str, tuple[str, ...]] | None = None
    ) -> LocalizedLines:
        made = super().__new__(cls, tuple(lines))
        made.translations = dict(translations or {})
        return made

    def line(self, item: str | None, language: str | None) -> str | None:
        """The translation of `item` (one of these lines): the line at its place."""
        if item is None or not self.translations:
            return item
        for candidate in candidates(language):
            lines = self.translations.get(candidate)
            if lines is not None and item in self:
                return lines[self.index(item)]
        return item


def local(text: str | None, language: str | None) -> str | None:
    """`text` in `language` when it is Localized and has it; else as it is."""
    if isinstance(text, Localized):
        return text.in_language(language)
    return text


def translations_of(value: object) -> set[str]:
    """The languages a Localized text or LocalizedLines has translations in."""
    found = getattr(value, "translations", None)
    return set(found) if isinstance(found, dict) else set()


# The neutral name a discreet participant's texts give a practice: its part of the day.
_DISCREET = {
    "en": ("your morning practice", "your afternoon practice", "your evening practice"),
    "es": ("tu práctica de la mañana", "tu práctica de la tarde", "tu práctica de la noche"),
}


def discreet_title(local_hour: int, language: str | None) -> str:
    """ "your evening practice": what a discreet text calls a practice at `local_hour`."""
    names = _DISCREET.get(base(language), _DISCREET[DEFAULT_LANGUAGE])
    if 4 <= local_hour < 12:
        return names[0]
    if 12 <= local_hour < 17:
        return names[1]
    return names[2]


# A LATER repeat is the reminder again, marked.
_REPEAT = {"en": "Again: ", "es": "De nuevo: "}


def repeat_mark(language: str | None) -> str:
    return _REPEAT.get(base(language), _REPEAT[DEFAULT_LANGUAGE])
