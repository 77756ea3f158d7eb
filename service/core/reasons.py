"""Why a reply was not logged, in the participant's language.

The reply parser and the check-in rules say why in English (`Interpretation.reason`,
`Reply.problem`): those words are also the coaches' (the reply log). An answer to a
participant who reads another language says it in theirs: each known reason has its
translation here, matched by pattern; one without a translation stays as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from service.core.language import base

_N = r"(-?[\d.,]+(?:/\d+)?)"
_SPANISH: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), words)
    for pattern, words in (
        (r"^the message is empty$", "el mensaje está vacío"),
        (r"^the message could not be read$", "no pude leer el mensaje"),
        (r"^the reply does not fit this check-in$", "la respuesta no encaja con esta práctica"),
        (r"^this practice asks for no check-in$", "esta práctica no pide respuesta"),
        (r"^([\w-]+) is a keyword, not a check-in$", r"\1 es una palabra clave, no un registro"),
        (rf"^{_N} is not on the (\d+)-(\d+) scale$", r"\1 no está en la escala del \2 al \3"),
        (
            r"^a rating is a number from (\d+) to (\d+), not (.+)$",
            r"una valoración es un número del \1 al \2, no \3",
        ),
        (r"^expected a rating from (\d+) to (\d+)$", r"esperaba un número del \1 al \2"),
        (r"^expected a number of (.+)$", r"esperaba un número de \1"),
        (r"^expected a number$", "esperaba un número"),
        (r"^expected DONE or SKIP$", "esperaba LISTO o SALTAR"),
        (r"^expected (.+), got (.+)$", r"esperaba \1, no \2"),
        (rf"^{_N} (minutes|hours) is not a duration$", r"\1 no es una duración"),
        (r"^a unit is at most (\d+) letters$", r"una unidad tiene como mucho \1 letras"),
        (
            r"^PAUSE takes a whole number of days from 1 to (\d+), e\.g\. PAUSE 3$",
            r"PAUSA lleva un número de días del 1 al \1, por ejemplo PAUSA 3",
        ),
        (
            r"^LATER takes minutes or hours, e\.g\. LATER 20 or LATER 2h$",
            "DESPUÉS lleva minutos u horas, por ejemplo DESPUÉS 20 o DESPUÉS 2h",
        ),
        (
            r"^QUIET takes a span of hours, e\.g\. QUIET 22:00-07:00, or QUIET OFF$",
            "SILENCIO lleva un horario, por ejemplo SILENCIO 22:00-07:00, o SILENCIO OFF",
        ),
        (
            r"^'(.+)' is not a time; write it like 6:30 or 18:30\. QUIET takes .*$",
            r"'\1' no es una hora; escríbela como 6:30 o 18:30, por ejemplo SILENCIO 22:00-07:00",
        ),
        (
            r"^'(.+)' is not a span of quiet hours; write it like 22:00-07:00\. .*$",
            r"'\1' no es un horario; escríbelo como 22:00-07:00",
        ),
        (
            r"^quiet hours need an end that differs from their start\. .*$",
            "el silencio necesita un final distinto de su inicio",
        ),
    )
)
_TABLES = {"es": _SPANISH}


def in_language(reason: str, language: str | None) -> str:
    """`reason` said in `language` when Tend knows how; else as it is."""
    table = _TABLES.get(base(language))
    if table is None:
        return reason
    for pattern, words in table:
        if pattern.match(reason):
            said = pattern.sub(words, reason)
            units = _UNITS.get(base(language))
            return units(said) if units is not None else said
    return reason


def _spanish_units(text: str) -> str:
    return re.sub(r"\bminutes\b", "minutos", re.sub(r"\bhours\b", "horas", text))


_UNITS: dict[str, Callable[[str], str]] = {"es": _spanish_units}
