"""Reading inbound SMS replies: what a participant meant, before anything is recorded.

Two steps, both pure. `parse_reply` classifies a message body on its own (a keyword,
done, skipped, a number, free text) without knowing which practice it answers;
`interpret` then says what that reply means for one occurrence's check-in. Keeping the
steps apart lets the webhook handle keywords (STOP, PAUSE, HELP) before it even looks for
an open window, and lets the check-in link page reuse `interpret`.

Compliance keywords (STOP and its synonyms, START, HELP) count only when they are the
whole message: carriers apply them that way, and "stop please" or "can't stop smiling"
must not silently end someone's reminders. Everything else is read leniently: case,
punctuation, emoji and a few filler words ("I", "just", "today") are ignored.
"""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from service.core.quiet import OFF, Unreadable, parse_clock, parse_quiet

ReplyKind = Literal[
    "opt_out",
    "opt_in",
    "yes",
    "help",
    "pause",
    "resume",
    "done",
    "skipped",
    "number",
    "text",
    "invalid",
    "later",
    "times",
    "quiet",
]
Outcome = Literal["done", "skipped", "rating", "number", "text", "not_applicable"]

# Whole-message keywords. YES stays its own kind: only the caller knows whether the
# participant opted out (then YES opts back in) or is answering a reminder (then done).
# Every language's words count for everyone: a Spanish speaker's BAJA or an English
# speaker's STOP must never be missed because of the language on their record. Only
# the answers are in the participant's language.
KEYWORDS: dict[str, ReplyKind] = {
    **dict.fromkeys(
        ("stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"),
        "opt_out",
    ),
    **dict.fromkeys(("alto", "parar", "para", "baja", "cancelar"), "opt_out"),  # Spanish
    "start": "opt_in",
    "unstop": "opt_in",
    "yes": "yes",
    "help": "help",
    "info": "help",
    "ayuda": "help",
    **dict.fromkeys(("times", "horarios", "horas"), "times"),
}
DONE_WORDS = frozenset({"done", "yes", "y", "listo", "lista", "hecho", "hecha", "si", "sí", "hice"})
SKIP_WORDS = frozenset({"skip", "skipped", "no", "n", "saltar", "salto", "salté", "omitir"})
LATER_WORDS = frozenset({"later", "snooze", "después", "despues", "luego"})
QUIET_WORDS = frozenset({"quiet", "silencio"})
PAUSE_WORDS = frozenset({"pause", "pausa"})
RESUME_WORDS = frozenset({"resume", "seguir", "reanudar", "continuar"})
# Dropped before reading a reply, so "I just did it today" reads as "did it", and "ya lo
# hice" as "hice".
FILLER = frozenset(
    {"i", "just", "for", "today", "tonight", "now", "ok", "okay", "please", "thanks", "thx", "ty"}
    | {"ya", "lo", "la", "hoy", "gracias", "vale"}
)
# A reply containing one of these is not read as done/skipped/number: "not done",
# "didn't do it", "can't walk 25 minutes" must reach a human, not the log.
NEGATIONS = frozenset(
    {
        *("not", "never", "didn't", "didnt", "don't", "dont", "haven't", "havent"),
        *("can't", "cant", "couldn't", "couldnt", "won't", "wont"),
        *("nunca", "tampoco"),
    }
)
# Words a plan's variable must not be named: a participant texting "<VARIABLE> 6:30"
# would be read as the keyword instead.
RESERVED_WORDS = frozenset(
    set(KEYWORDS)
    | DONE_WORDS
    | SKIP_WORDS
    | LATER_WORDS
    | QUIET_WORDS
    | PAUSE_WORDS
    | RESUME_WORDS
    | {"join", "unstop", "pause", "resume"}
)
LATER_DEFAULT = 30  # minutes
LATER_MAX = 12 * 60
LATER_USAGE = "LATER takes minutes or hours, e.g. LATER 20 or LATER 2h"
QUIET_USAGE = "QUIET takes a span of hours, e.g. QUIET 22:00-07:00, or QUIET OFF"
# Emoji that mean done when they are the whole message.
DONE_EMOJI = frozenset({"👍", "✅", "✔", "☑", "👌"})
UNIT_ALIASES: dict[str, str] = {
    **dict.fromkeys(("minutes", "minute", "mins", "min", "m", "mn"), "minutes"),
    **dict.fromkeys(("hours", "hour", "hrs", "hr", "h"), "hours"),
}
PAUSE_MAX_DAYS = 365
MAX_HINT_WORDS = 3
MAX_UNIT = 32  # as long as a stored unit may be (occurrences.check_in_unit)
PAUSE_USAGE = f"PAUSE takes a whole number of days from 1 to {PAUSE_MAX_DAYS}, e.g. PAUSE 3"

_NUMBER = (
    r"(?:(?<!\S)-)?"  # a minus sign only at the start of a word: "1-5" is not 1 and -5
    r"(?:\d{1,3}(?:,\d{3})+(?![\d,])|\d+(?:[.,]\d+)?|\.\d+)"  # 10,000 / 1.5 / 1,5 / .5
    r"(?:\s*/\s*\d+)?"  # 4/5
)
_WORD = r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*"
_TOKEN = re.compile(rf"(?P<num>{_NUMBER})|(?P<word>{_WORD})")


@dataclass(frozen=True, slots=True)
class Reply:
    """One inbound message, classified. `text` is always the whole message, trimmed."""

    kind: ReplyKind
    number: float | None = None
    unit: str | None = None  # normalised: "minutes", "hours", "/5" for "4/5", else as written
    days: int | None = None  # for pause
    practice_hint: str | None = None  # words naming the practice: "walk" in "done walk"
    text: str = ""
    problem: str | None = None  # why an `invalid` reply could not be read
    minutes: int | None = None  # for later: how long until the repeat
    quiet: str | None = None  # for quiet: the span as stored (22:00-07:00), or "off"
    # `<word> <clock time>` ("WAKE 6:30"): the word and the minutes after midnight. It
    # sets a variable only when the word is one of the participant's (the caller knows);
    # otherwise `kind` says what the message is.
    clock: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Interpretation:
    """What a reply means for one occurrence's check-in."""

    outcome: Outcome
    rating: int | None = None
    number: float | None = None
    unit: str | None = None
    text: str | None = None
    reason: str | None = None  # set when the outcome is not_applicable

    @property
    def applies(self) -> bool:
        return self.outcome != "not_applicable"


@dataclass(frozen=True, slots=True)
class _Token:
    word: str | None = None
    number: float | None = None
    raw_number: str | None = None  # the digits as written, to tell 3 from 3.0 and 1,000
    denominator: int | None = None


def normalise_unit(unit: str) -> str:
    """ "min", "mins", "m" -> "minutes"; "hr", "h" -> "hours"; any other unit as written."""
    folded = unicodedata.normalize("NFKC", unit).casefold().strip()
    return UNIT_ALIASES.get(folded, folded)


def to_minutes(number: float, unit: str | None) -> float | None:
    """The duration in minutes, or None when `unit` is not a duration."""
    normal = normalise_unit(unit) if unit is not None else None
    if normal == "minutes":
        return number
    if normal == "hours":
        return number * 60
    return None


def parse_reply(text: str) -> Reply:
    """Classify an SMS body. Never raises: whatever cannot be read becomes text or invalid."""
    trimmed = text.strip()
    if not trimmed:
        return Reply("invalid", text=trimmed, problem="the message is empty")

    bare = _fold(_strip_ends(trimmed))
    if bare and len(bare.split()) == 1 and bare in KEYWORDS:
        return Reply(KEYWORDS[bare], text=trimmed)
    quiet = _QUIET.match(_fold(trimmed))
    if quiet is not None:
        return _quiet(quiet["span"], trimmed)
    clock = _clock(trimmed)
    reply = _read(trimmed)
    return replace(reply, clock=clock) if clock is not None else reply


def _read(trimmed: str) -> Reply:
    tokens = _tokens(_fold(trimmed))
    words = [t.word for t in tokens if t.word is not None]
    if words[:2] in (["más", "tarde"], ["mas", "tarde"]):
        return _later(tokens[2:], trimmed)
    if tokens and tokens[0].word in LATER_WORDS:
        return _later(tokens[1:], trimmed)
    if tokens and tokens[0].word in PAUSE_WORDS:
        return _pause(tokens[1:], trimmed)
    if len(words) == 1 and words[0] in RESUME_WORDS and len(tokens) == 1:
        return Reply("resume", text=trimmed)
    if not tokens:
        # Variation selectors (Mn), skin tones (Sk) and joiners (Cf) do not change meaning.
        emoji = {
            ch
            for ch in trimmed
            if not ch.isspace() and unicodedata.category(ch) not in ("Mn", "Sk", "Cf")
        }
        if emoji and emoji <= DONE_EMOJI:
            return Reply("done", text=trimmed)
        return Reply("text", text=trimmed)
    if NEGATIONS & set(words):
        return Reply("text", text=trimmed)

    numbers = [t for t in tokens if t.number is not None]
    if len(numbers) == 1:
        return _number(tokens, trimmed)
    if numbers:
        return Reply("text", text=trimmed)
    return _action(words, trimmed)


def interpret(
    reply: Reply,
    check_in_kind: str,
    scale: tuple[int, int] | None = None,
    unit: str | None = None,
) -> Interpretation:
    """What `reply` means for an occurrence whose check-in is `check_in_kind`.

    DONE and SKIP count for every kind that asks for a check-in (someone who texts "done"
    to a rating question did the practice, they just gave no rating). A YES reaching here
    means done: the caller has already ruled out an opt-in. Keywords never count.
    """
    if check_in_kind == "none":
        return _not_applicable("this practice asks for no check-in")
    if reply.kind in ("done", "yes"):
        return Interpretation("done")
    if reply.kind == "skipped":
        return Interpretation("skipped")
    if reply.kind == "invalid":
        return _not_applicable(reply.problem or "the message could not be read")
    if reply.kind not in ("number", "text"):
        return _not_applicable(f"{reply.kind.replace('_', '-')} is a keyword, not a check-in")
    if check_in_kind == "text":
        return Interpretation("text", text=reply.text)
    if check_in_kind == "rating" and reply.kind == "number" and reply.number is not None:
        return _rating(reply.number, reply.unit, scale or (1, 5))
    if check_in_kind == "number" and reply.kind == "number" and reply.number is not None:
        return _quantity(reply.number, reply.unit, unit)
    return _not_applicable(_expected(check_in_kind, scale, unit))


def match_practice(hint: str, practices: Mapping[str, str]) -> str | None:
    """The id of the one practice `hint` names, or None when none or several fit.

    `practices` maps ids to titles. Tried in order, stopping at the first step that finds
    anything: exact id or title; a prefix of the id, title or one of its words ("walk" for
    "Morning walk", and the other way round for "walked"); a close match (difflib), for
    typos. Several practices at one step is ambiguous: better to ask than to guess.
    """
    wanted = _name(hint)
    if not wanted:
        return None
    names = {pid: {_name(pid), _name(title)} - {""} for pid, title in practices.items()}
    parts = {pid: ns | {w for n in ns for w in n.split()} for pid, ns in names.items()}

    exact = {pid for pid, ns in names.items() if wanted in ns}
    if exact:
        return _only(exact)
    if len(wanted) >= 3:
        prefix = {
            pid
            for pid, ns in parts.items()
            if any(n.startswith(wanted) or (len(n) >= 3 and wanted.startswith(n)) for n in ns)
        }
        if prefix:
            return _only(prefix)
    close = {
        pid for pid, ns in parts.items() if difflib.get_close_matches(wanted, ns, n=1, cutoff=0.8)
    }
    return _only(close)


# --- parsing helpers -----------------------------------------------------------------


def _fold(text: str) -> str:
    """Compatibility forms (fullwidth letters, circled digits) and case folded away."""
    return unicodedata.normalize("NFKC", text).casefold()


def _strip_ends(text: str) -> str:
    """The text without surrounding punctuation, emoji or whitespace: "¡Stop! 🛑" -> "Stop"."""
    start, end = 0, len(text)
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return text[start:end]


def _tokens(folded: str) -> list[_Token]:
    """Words and numbers, in order; punctuation and emoji dropped. "did it" becomes "done"."""
    found: list[_Token] = []
    for match in _TOKEN.finditer(folded):
        if match["word"] is not None:
            word = match["word"].replace("\u2019", "'")
            if word == "it" and found and found[-1].word == "did":
                found[-1] = _Token(word="done")
            elif word not in FILLER:
                found.append(_Token(word=word))
            continue
        raw, _, denominator = match["num"].partition("/")
        value = _to_float(raw.strip())
        if value is None:
            found.append(_Token(word=raw.strip()))  # unreadable: keep it, as a word
            continue
        den = denominator.strip()
        found.append(
            _Token(number=value, raw_number=raw.strip(), denominator=int(den) if den else None)
        )
    return found


def _to_float(raw: str) -> float | None:
    """ "10,000" -> 10000, "1,5" -> 1.5 (a decimal comma), infinities refused."""
    digits = raw.replace(",", "") if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+", raw) else raw
    try:
        value = float(digits.replace(",", "."))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


_QUIET = re.compile(r"^\W*(?:quiet|silencio)\b\W*(?P<span>.*?)\W*$", re.DOTALL)
_CLOCK_REPLY = re.compile(
    r"^\W*(?P<word>[^\W\d_][\w-]*)\s*(?:at|a las|a la|to|=|:)?\s*"
    r"(?P<time>\d{1,2}(?:\s*[:.h]\s*\d{2})?\s*(?:[ap]\.?\s*m\.?)?)\W*$",
    re.IGNORECASE,
)


def _quiet(span: str, trimmed: str) -> Reply:
    """QUIET 22:00-07:00, QUIET OFF."""
    if not span.strip():
        return Reply("invalid", text=trimmed, problem=QUIET_USAGE)
    try:
        found = parse_quiet(span)
    except Unreadable as exc:
        return Reply("invalid", text=trimmed, problem=f"{exc}. {QUIET_USAGE}")
    return Reply("quiet", quiet=found.text if found is not None else OFF, text=trimmed)


def _clock(trimmed: str) -> tuple[str, int] | None:
    """ "WAKE 6:30", "bedtime 11pm", "walk at 17:30": a word and an unmistakable clock
    time (with a colon, an h, or am/pm; "walk 5" is a number, not five o'clock)."""
    # One space for any run of them: the pattern then reads in time linear in the text.
    found = _CLOCK_REPLY.match(" ".join(unicodedata.normalize("NFKC", trimmed).split()))
    if found is None:
        return None
    time = found["time"]
    if not re.search(r"[:h]|[ap]\.?\s*m", time, re.IGNORECASE):
        return None
    try:
        minutes = parse_clock(time)
    except Unreadable:
        return None
    return found["word"].casefold(), minutes


def _later(rest: list[_Token], trimmed: str) -> Reply:
    """LATER, LATER 20, LATER 20 min, LATER 2h, SNOOZE, DESPUÉS 15."""
    if not rest:
        return Reply("later", minutes=LATER_DEFAULT, text=trimmed)
    count, *tail = rest
    units = [t.word for t in tail]
    if count.number is None or count.denominator is not None or len(units) > 1:
        return Reply("invalid", text=trimmed, problem=LATER_USAGE)
    if units and units[0] is None:  # a second number: LATER 6:30, LATER 20 30
        return Reply("invalid", text=trimmed, problem=LATER_USAGE)
    unit = normalise_unit(units[0]) if units and units[0] else "minutes"
    unit = {"minutos": "minutes", "hora": "hours", "horas": "hours"}.get(unit, unit)
    minutes = to_minutes(count.number, unit)
    if minutes is None or not math.isfinite(minutes) or minutes < 1 or minutes > LATER_MAX:
        return Reply("invalid", text=trimmed, problem=LATER_USAGE)
    return Reply("later", minutes=round(minutes), text=trimmed)


def _pause(rest: list[_Token], trimmed: str) -> Reply:
    """PAUSE, PAUSE 3, PAUSE 3 days, PAUSE 2 weeks; anything else says how to write it."""
    if not rest:
        return Reply("pause", days=1, text=trimmed)
    count, *tail = rest
    units = [t.word for t in tail]
    per = {(): 1, ("day",): 1, ("days",): 1, ("d",): 1, ("week",): 7, ("weeks",): 7, ("w",): 7}
    per |= {("día",): 1, ("días",): 1, ("dia",): 1, ("dias",): 1, ("semana",): 7, ("semanas",): 7}
    factor = per.get(tuple(u or "" for u in units)) if all(units) else None
    raw = count.raw_number or ""
    if count.number is None or count.denominator is not None or factor is None:
        return Reply("invalid", text=trimmed, problem=PAUSE_USAGE)
    if not re.fullmatch(r"-?(?:\d+|\d{1,3}(?:,\d{3})+)", raw) or count.number < 1:
        return Reply("invalid", text=trimmed, problem=PAUSE_USAGE)
    days = int(count.number) * factor
    if days > PAUSE_MAX_DAYS:
        return Reply("invalid", text=trimmed, problem=PAUSE_USAGE)
    return Reply("pause", days=days, text=trimmed)


def _number(tokens: list[_Token], trimmed: str) -> Reply:
    """One number, the word after it as its unit, other words naming the practice.

    "walked 25 minutes" -> 25 minutes, hint "walked"; "done, 4" -> 4. A skip word beside
    a number contradicts it, and more than a few other words make it a sentence: text.
    """
    at = next(i for i, t in enumerate(tokens) if t.number is not None)
    token = tokens[at]
    assert token.number is not None
    after = tokens[at + 1].word if at + 1 < len(tokens) else None
    unit: str | None = None
    if token.denominator is not None:
        unit = f"/{token.denominator}"
    elif after is not None and after not in DONE_WORDS | SKIP_WORDS:
        unit = normalise_unit(after)
    others = [t.word for i, t in enumerate(tokens) if i != at and t.word is not None]
    if unit is not None and token.denominator is None:
        others.remove(after or "")
    if SKIP_WORDS & set(others):
        return Reply("text", text=trimmed)
    hint = [w for w in others if w not in DONE_WORDS]
    if len(hint) > MAX_HINT_WORDS:
        return Reply("text", text=trimmed)
    return Reply("number", number=token.number, unit=unit, practice_hint=_hint(hint), text=trimmed)


def _action(words: list[str], trimmed: str) -> Reply:
    """DONE / SKIP at the start or end of the message, the words between naming the practice.

    "done walk", "walk done", "yes, done!" read; "walk done yoga" (an action word in the
    middle) and "no, done" (both kinds) are sentences, left as text.
    """
    actions = DONE_WORDS | SKIP_WORDS
    start, end = 0, len(words)
    while start < end and words[start] in actions:
        start += 1
    while end > start and words[end - 1] in actions:
        end -= 1
    said = {"done" if w in DONE_WORDS else "skipped" for w in words[:start] + words[end:]}
    hint = words[start:end]
    if len(said) != 1 or actions & set(hint) or len(hint) > MAX_HINT_WORDS:
        return Reply("text", text=trimmed)
    kind: ReplyKind = "done" if said == {"done"} else "skipped"
    return Reply(kind, practice_hint=_hint(hint), text=trimmed)


def _hint(words: list[str]) -> str | None:
    return " ".join(words) or None


def _name(text: str) -> str:
    """An id or title as compared: folded, hyphens and punctuation as spaces."""
    return " ".join(re.findall(r"[^\W_]+", _fold(text)))


def _only(ids: set[str]) -> str | None:
    return next(iter(ids)) if len(ids) == 1 else None


# --- interpreting helpers ------------------------------------------------------------


def _rating(value: float, unit: str | None, scale: tuple[int, int]) -> Interpretation:
    low, high = scale
    if unit is not None and unit.startswith("/") and unit != f"/{high}":
        return _not_applicable(f"{_fmt(value)}{unit} is not on the {low}-{high} scale")
    if unit is not None and not unit.startswith("/") and unit not in ("star", "stars"):
        return _not_applicable(f"a rating is a number from {low} to {high}, not {unit}")
    if not value.is_integer() or not low <= value <= high:
        return _not_applicable(f"{_fmt(value)} is not on the {low}-{high} scale")
    return Interpretation("rating", rating=int(value))


def _quantity(value: float, unit: str | None, wanted: str | None) -> Interpretation:
    """A number check-in: hours and minutes convert; other units must match as written."""
    expected = normalise_unit(wanted) if wanted else None
    if unit is not None and len(unit) > MAX_UNIT:
        return _not_applicable(f"a unit is at most {MAX_UNIT} letters")
    if unit is not None and unit.startswith("/"):
        return _not_applicable(f"{_fmt(value)}{unit} is a rating, not a number of {wanted}")
    if unit is None or expected is None or unit == expected:
        final = unit or expected
    elif (minutes := to_minutes(value, unit)) is not None and expected in ("minutes", "hours"):
        value = minutes if expected == "minutes" else minutes / 60
        final = expected
    else:
        return _not_applicable(f"expected {expected}, got {unit}")
    if value < 0 and final in ("minutes", "hours"):
        return _not_applicable(f"{_fmt(value)} {final} is not a duration")
    return Interpretation("number", number=value, unit=final)


def _expected(kind: str, scale: tuple[int, int] | None, unit: str | None) -> str:
    if kind == "rating":
        low, high = scale or (1, 5)
        return f"expected a rating from {low} to {high}"
    if kind == "number":
        return f"expected a number of {unit}" if unit else "expected a number"
    return "expected DONE or SKIP"


def _not_applicable(reason: str) -> Interpretation:
    return Interpretation("not_applicable", reason=reason)


def _fmt(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
