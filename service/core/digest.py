"""The coach's weekly digest: who has slipped, in a few plain words.

Pure. The caller brings, for every active enrollment, its figures for the week that
just ended and the week before (done and decided occurrences: done, skipped or missed),
and `digest` sorts them into those who slipped, with the reason, and those keeping up.

Someone has slipped when, this week:
- they opted out of texts (that week: `sms` is "opted_out" only then);
- nothing was done out of at least `MIN_DECIDED` occurrences;
- under half was done out of at least `MIN_DECIDED`;
- the rate fell by `DROP` or more from the week before (both weeks with `MIN_DECIDED`).
A week with fewer decided occurrences says too little to judge and is never a slip.

Each entry names the participant's cohort (None: none), and both lists go by cohort
name first (people in no cohort last); the template gives each cohort a small heading
when the digest holds more than one group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from service.core.states import SmsStatus

MIN_DECIDED = 3
LOW_RATE = 0.5
DROP = 0.25


@dataclass(frozen=True, slots=True)
class Week:
    done: int
    decided: int  # done + skipped + missed

    @property
    def rate(self) -> float | None:
        return self.done / self.decided if self.decided else None


@dataclass(frozen=True, slots=True)
class CohortEntry:
    participant: str  # id
    name: str
    plan: str
    sms: str  # a SmsStatus; opted_out only when they opted out during the week
    this_week: Week
    last_week: Week
    streak: int  # the best current streak among the enrollment's practices
    cohort: str | None = None  # the participant's cohort's name (None: in no cohort)


NO_COHORT = "Not in a cohort"


@dataclass(frozen=True, slots=True)
class Line:
    entry: CohortEntry
    reason: str | None  # why they slipped; None when they are keeping up


def slip_reason(entry: CohortEntry) -> str | None:
    """Why `entry` slipped this week, or None."""
    week, before = entry.this_week, entry.last_week
    if entry.sms == SmsStatus.OPTED_OUT:
        return "opted out of text reminders"
    if week.decided >= MIN_DECIDED and week.done == 0:
        return f"nothing done this week (0 of {week.decided})"
    if week.rate is not None and week.decided >= MIN_DECIDED and week.rate < LOW_RATE:
        return f"{week.done} of {week.decided} done this week"
    if (
        week.rate is not None
        and before.rate is not None
        and week.decided >= MIN_DECIDED
        and before.decided >= MIN_DECIDED
        and before.rate - week.rate >= DROP
    ):
        return f"down from {before.rate:.0%} to {week.rate:.0%}"
    return None


def _cohort_key(entry: CohortEntry) -> tuple[bool, str, str]:
    """Cohorts by name, people in none last."""
    name = entry.cohort or ""
    return (entry.cohort is None, name.casefold(), name)


def digest(entries: Sequence[CohortEntry]) -> tuple[list[Line], list[Line]]:
    """(slipped, keeping up), each by cohort (by name; people in none last): within a
    cohort, the slipped by their rate this week, lowest first, the others by name."""
    lines = [Line(e, slip_reason(e)) for e in entries]
    slipped = sorted(
        (line for line in lines if line.reason is not None),
        key=lambda line: (
            _cohort_key(line.entry),
            line.entry.this_week.rate or 0.0,
            line.entry.name.casefold(),
        ),
    )
    steady = sorted(
        (line for line in lines if line.reason is None),
        key=lambda line: (_cohort_key(line.entry), line.entry.name.casefold()),
    )
    return slipped, steady


def _grouped(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows (already in cohort order) as consecutive groups: the cohort's name (None:
    none), its heading, and its people."""
    groups: list[dict[str, Any]] = []
    for row in rows:
        if not groups or groups[-1]["cohort"] != row["cohort"]:
            heading = row["cohort"] if row["cohort"] is not None else NO_COHORT
            groups.append({"cohort": row["cohort"], "heading": heading, "people": []})
        groups[-1]["people"].append(row)
    return groups


def digest_context(
    entries: Sequence[CohortEntry], period: tuple[date, date], dashboard_url: str
) -> dict[str, Any]:
    """What templates/digest/coach.email.j2 sees."""
    slipped, steady = digest(entries)
    done = sum(e.this_week.done for e in entries)
    decided = sum(e.this_week.decided for e in entries)

    def row(line: Line) -> dict[str, Any]:
        e = line.entry
        return {
            "participant": e.participant,
            "name": e.name,
            "plan": e.plan,
            "reason": line.reason,
            "done": e.this_week.done,
            "decided": e.this_week.decided,
            "rate": e.this_week.rate,
            "streak": e.streak,
            "cohort": e.cohort,
        }

    slipped_rows = [row(line) for line in slipped]
    steady_rows = [row(line) for line in steady]
    return {
        "period": {"start": period[0], "end": period[1]},
        "active": len(entries),
        "done": done,
        "decided": decided,
        "rate": done / decided if decided else None,
        "slipped": slipped_rows,
        "steady": steady_rows,
        # A heading per cohort only when there is more than one group to tell apart.
        "by_cohort": len({e.cohort for e in entries}) > 1,
        "slipped_groups": _grouped(slipped_rows),
        "steady_groups": _grouped(steady_rows),
        "dashboard_url": dashboard_url,
    }


def sample_digest_context() -> dict[str, Any]:
    """A realistic digest, for checking the template."""
    people = [
        ("Alex Morgan", "sleep-hygiene", SmsStatus.SUBSCRIBED, (6, 7), (5, 7), 6, "Mornings"),
        ("Sam Rivera", "rhythmic-movement", SmsStatus.SUBSCRIBED, (1, 6), (5, 6), 0, "Mornings"),
        ("Jo Park", "morning-affirmations", SmsStatus.OPTED_OUT, (2, 4), (4, 7), 1, None),
        ("Dee Okafor", "sleep-hygiene", SmsStatus.SUBSCRIBED, (5, 5), (4, 5), 3, None),
    ]
    entries = [
        CohortEntry(f"p_sample{n}", name, plan, sms, Week(*week), Week(*before), streak, cohort)
        for n, (name, plan, sms, week, before, streak, cohort) in enumerate(people, 1)
    ]
    period = (date(2026, 3, 2), date(2026, 3, 8))
    return digest_context(entries, period, "http://127.0.0.1:8000/dashboard")
