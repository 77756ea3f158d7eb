"""The confirmation SMS: the first text a number gets from Tend (CTIA's opt-in
confirmation: the program's name, how often messages come, that message and data rates
may apply, and how to get help and to stop). WELCOME goes to a participant a coach
added (on their word that the person agreed); JOIN asks a person who signed up
themselves to answer YES first. Pure: the words are the templates'
(templates/consent/*.sms.j2), the facts are worked out here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from service.core.plan import Plan

WELCOME = "welcome"
JOIN = "join"
TEMPLATES = (WELCOME, JOIN)
# Words each template must keep, as whole words in capitals: how to get help and to
# stop (CTIA, and Twilio's messaging policy), and for JOIN how to confirm.
REQUIRED: dict[str, tuple[str, ...]] = {WELCOME: ("HELP", "STOP"), JOIN: ("YES", "HELP", "STOP")}


def most_per_day(plans: Iterable[Plan]) -> int:
    """At most how many texts a day the plans send: each practice that texts once a day
    at most, and its nudge."""
    count = 0
    for plan in plans:
        for practice in plan.practices:
            if "sms" in practice.channels:
                count += 1 + (practice.nudge is not None)
            elif practice.nudge is not None:
                count += 1
    return count


def frequency(per_day: int) -> str:
    """How often messages come, as the confirmation says it."""
    if per_day <= 0:
        return "Msg frequency varies"
    return f"Up to {per_day} msg{'s' if per_day != 1 else ''}/day"


def context(program: str, per_day: int, coach: str | None) -> dict[str, Any]:
    """`frequency` in English words; `per_day` for templates in other languages."""
    return {
        "program": program,
        "frequency": frequency(per_day),
        "per_day": per_day,
        "coach": coach,
    }


def sample_context() -> dict[str, Any]:
    return context("Sleep Hygiene", 3, "Cora")


def missing_words(name: str, text: str) -> list[str]:
    """The required words a rendered confirmation lacks."""
    return [w for w in REQUIRED[name] if not re.search(rf"\b{w}\b", text)]
