"""A plan's texts per language, read before the plan is compiled.

Every text a person reads may be written once, in the plan's language (`language:`,
English unless set), or as a mapping by language: `message: {en: ..., es: ...}`. This
pass finds those mappings (titles, the summary, messages, discreet messages, check-in
questions, nudges, rotate lines, in practices, defaults and phases), checks their keys
and replaces each with a `Localized` text (or `LocalizedLines`): the plan's-language
text, carrying its translations. The compiler then reads plain strings as before.

It also says which languages the plan is written in, so that the compiler can warn of
each text (or template) that lacks one of them: a participant in that language would
get the plan's-language text instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.core.language import Localized, LocalizedLines, translations_of
from service.core.plan import LANGUAGE_KEY_PATTERN

Loc = tuple[str | int, ...]
_KEY = re.compile(LANGUAGE_KEY_PATTERN)
TEMPLATED = frozenset({"message", "discreet_message"})  # Jinja text: compiled per language
_PRACTICE_TEXTS = ("title", "message", "discreet_message")
NAMES = {"en": "English", "es": "Spanish", "fr": "French", "pt": "Portuguese", "de": "German"}


def language_name(key: str) -> str:
    return NAMES.get(key.split("-")[0], key)


@dataclass(slots=True)
class Texts:
    """What the pass found: every text with where it is, and the languages used."""

    language: str
    fields: list[tuple[Loc, Any]] = field(default_factory=list)
    languages: set[str] = field(default_factory=set)


Report = Callable[[str, Loc, str, bool], None]  # severity, where, message, at the key


def localize(
    data: dict[str, Any], report: Report, compile_inline: Callable[[str, Loc], None]
) -> Texts:
    """Replace `data`'s per-language mappings with Localized texts, in place."""
    declared = data.get("language")
    language = (
        declared.lower() if isinstance(declared, str) and _KEY.match(declared.lower()) else "en"
    )
    texts = Texts(language)

    def one(holder: dict[str, Any], key: str, loc: Loc, *, lines: bool = False) -> None:
        if key not in holder or holder[key] is None:
            return
        value = holder[key]
        where = (*loc, key)
        if isinstance(value, dict):
            made = (
                _lines(value, where, language, report)
                if lines
                else _text(value, where, language, report)
            )
            if made is None:
                return
            holder[key] = made
            if isinstance(made, Localized) and key in TEMPLATED:
                for lang, text in made.translations.items():
                    compile_inline(text, (*where, lang))
            texts.languages |= translations_of(made)
            texts.fields.append((where, made))
        elif isinstance(value, (str, list)):
            texts.fields.append((where, value))

    def practice(raw: Any, loc: Loc) -> None:
        if not isinstance(raw, dict):
            return
        for key in _PRACTICE_TEXTS:
            one(raw, key, loc)
        one(raw, "rotate", loc, lines=True)
        if isinstance(raw.get("check_in"), dict):
            one(raw["check_in"], "question", (*loc, "check_in"))
        if isinstance(raw.get("nudge"), dict):
            one(raw["nudge"], "message", (*loc, "nudge"))
        phases = raw.get("phases")
        if isinstance(phases, list):
            for i, phase in enumerate(phases):
                if isinstance(phase, dict):
                    one(phase, "message", (*loc, "phases", i))
                    one(phase, "rotate", (*loc, "phases", i), lines=True)

    one(data, "title", ())
    one(data, "summary", ())
    practice(data.get("defaults"), ("defaults",))
    raw_practices = data.get("practices")
    if isinstance(raw_practices, list):
        for index, raw in enumerate(raw_practices):
            practice(raw, ("practices", index))
    texts.languages.discard(language)
    return texts


def missing(texts: Texts, report: Report) -> None:
    """Warn of each text that lacks one of the plan's languages."""
    for lang in sorted(texts.languages):
        for where, value in texts.fields:
            if lang not in translations_of(value):
                report(
                    "warning",
                    where,
                    f"no {language_name(lang)} ({lang}) text: participants who read "
                    f"{language_name(lang)} get the {language_name(texts.language)} one",
                    True,
                )


def _keys(
    value: dict[Any, Any], where: Loc, language: str, report: Report
) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for key, text in value.items():
        lang = key.lower() if isinstance(key, str) else ""
        if not _KEY.match(lang):
            report(
                "error",
                (*where, key),
                f"'{key}' is not a language; write a language tag such as en, es or es-mx",
                True,
            )
            return None
        out[lang] = text
    if language not in out:
        report(
            "error",
            where,
            f"give the {language_name(language)} ({language}) text too: it is what "
            "participants in other languages get (the plan's `language:` is "
            f"{language})",
            True,
        )
        return None
    return out


def _text(value: dict[Any, Any], where: Loc, language: str, report: Report) -> Localized | None:
    found = _keys(value, where, language, report)
    if found is None or not all(isinstance(t, str) for t in found.values()):
        return None  # a value that is not text is reported with the structure
    default = found.pop(language)
    return Localized(default, found)


def _lines(
    value: dict[Any, Any], where: Loc, language: str, report: Report
) -> LocalizedLines | None:
    found = _keys(value, where, language, report)
    if found is None or not all(isinstance(t, list) for t in found.values()):
        return None
    default = [t for t in found.pop(language) if isinstance(t, str)]
    translations: dict[str, tuple[str, ...]] = {}
    for lang, lines in found.items():
        kept = tuple(t for t in lines if isinstance(t, str))
        if len(kept) != len(default):
            report(
                "error",
                (*where, lang),
                f"{len(kept)} {language_name(lang)} lines for {len(default)} "
                f"{language_name(language)} ones: give as many, in the same order",
                False,
            )
            continue
        translations[lang] = kept
    return LocalizedLines(default, translations)
