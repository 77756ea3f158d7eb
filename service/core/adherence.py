"""Adherence: what a participant did with one practice's occurrences, as coaches read it.

Pure: no I/O and no clock. The caller passes every occurrence of one practice for one
enrollment (as `Outcome`s), the moment to judge them at (`now`) and how often the
practice occurs (`per_day`); `summarise` returns the figures of `tend report`.

How each occurrence counts, at `now`:

- an occurrence whose instant is after `now` is not counted at all (not yet scheduled);
- otherwise it is *scheduled*, and then exactly one of:
  - *done* or *skipped*: the participant checked in so;
  - *missed*: the check-in was recorded as missed, or no check-in came and the window
    has closed (`now >= window_end`);
  - *pending*: no check-in yet and the window is still open (`now < window_end`).

Done, skipped and missed occurrences are *decided*; pending ones are not, and they do
not count towards the completion rate, the streaks or the strength until they are.

Habit strength follows Loop Habit Tracker (iSoron/uhabits, `Score.compute` in
uhabits-core `models/Score.kt`): with `f` the practice's occurrences per day,

    m = 0.5 ** (sqrt(f) / 13)
    score = previous * m + value * (1 - m)

applied once at each decided occurrence in time order, starting from 0, with value 1
for done and 0 for missed; a skipped occurrence leaves the score as it was. In words:
each occurrence moves the score a small step (a fraction `1 - m` of the way) towards 1
when it is done and towards 0 when it is missed, so a long run of dones builds strength
slowly and a single miss costs only a little of it. For a daily practice `m` is about
0.948: every done closes about 5.2% of the gap to 1, and it takes 13 dones in a row to
reach half strength (1 - m**13 = 0.5). A practice that occurs less often has `m` closer
to 1, so each occurrence moves the score less.

Unlike Loop, which updates once per calendar day and, for habits less frequent than
daily, scores a rolling share of the repetitions in the period, Tend applies the step
once per occurrence, as the adherence issue specifies.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from service.core.expand import expand
from service.core.plan import Plan
from service.core.states import CheckInResult

Result = Literal["done", "skipped", "missed"]
_RESULTS: dict[str, Result] = {
    CheckInResult.DONE: "done",
    CheckInResult.SKIPPED: "skipped",
    CheckInResult.MISSED: "missed",
}


def result_of(check_in: str | None) -> Result | None:
    """A stored check-in as adherence counts it: None for none yet (and for excused)."""
    return _RESULTS.get(check_in or "")


@dataclass(frozen=True, slots=True)
class Outcome:
    """One occurrence of a practice as adherence sees it.

    `instant` is when the reminder was due (timezone-aware), `window_end` when its
    check-in window closes; `result` is the check-in (None: none yet). `rating` and
    `number` carry the value of a rating or number check-in, when there was one.
    """

    instant: datetime
    window_end: datetime
    result: Result | None = None
    rating: float | None = None
    number: float | None = None


@dataclass(frozen=True, slots=True)
class ValueSummary:
    """Rating or number check-ins of one practice: how many, their mean, least, greatest,
    and the latest one (by occurrence instant)."""

    count: int
    mean: float
    min: float
    max: float
    last: float

    def as_json(self) -> dict[str, object]:
        """The summary as JSON; the mean is rounded to 2 decimals, the rest as recorded."""
        return {
            "count": self.count,
            "mean": round(self.mean, 2),
            "min": self.min,
            "max": self.max,
            "last": self.last,
        }


@dataclass(frozen=True, slots=True)
class PracticeAdherence:
    """The contract's adherence figures for one practice, at full precision."""

    scheduled: int
    done: int
    skipped: int
    missed: int
    pending: int
    completion_rate: float | None
    current_streak: int
    longest_streak: int
    strength: float
    rating: ValueSummary | None = None
    number: ValueSummary | None = None

    def as_json(self, practice: str) -> dict[str, object]:
        """One entry of a report's `practices` list, in the contract's key order.

        `completion_rate` and `strength` are rounded to 2 decimals (Python's `round`);
        `completion_rate` is None (JSON null) when nothing is decided yet. `rating` and
        `number` summaries are added only for practices that have such check-ins.
        """
        out: dict[str, object] = {
            "practice": practice,
            "scheduled": self.scheduled,
            "done": self.done,
            "skipped": self.skipped,
            "missed": self.missed,
            "pending": self.pending,
            "completion_rate": (
                None if self.completion_rate is None else round(self.completion_rate, 2)
            ),
            "current_streak": self.current_streak,
            "longest_streak": self.longest_streak,
            "strength": round(self.strength, 2),
        }
        if self.rating is not None:
            out["rating"] = self.rating.as_json()
        if self.number is not None:
            out["number"] = self.number.as_json()
        return out


def per_day(occurrences: int, days: int) -> float:
    """A practice's frequency `f`: its occurrences divided by the days they span.

    Count the occurrences over the days the practice is active (the whole plan, or its
    active weeks): `every: day` gives 1.0, `every: weekday` 5/7, twice a week 2/7, an
    rrule every other Monday 1/14. This is Loop's "repetitions divided by the length of
    the interval" (3 times in 8 days is 0.375).
    """
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    if occurrences < 0:
        raise ValueError(f"occurrences must not be negative, got {occurrences}")
    return occurrences / days


def frequencies(plan: Plan, start: date) -> dict[str, float]:
    """Each practice's `f` for an enrollment starting on `start`: its occurrences over the
    days of the weeks it is active (see `per_day`). The count is the same in every time
    zone, so the expansion runs in UTC with the plan's default variables."""
    counts = Counter(o.practice.id for o in expand(plan, start, UTC))
    found = {}
    for practice in plan.practices:
        weeks = practice.weeks
        days = sum(1 for d in range(plan.days) if weeks is None or d // 7 + 1 in weeks)
        found[practice.id] = per_day(counts[practice.id], days) if days else 0.0
    return found


def multiplier(frequency: float) -> float:
    """Loop's multiplier `m = 0.5 ** (sqrt(f) / 13)` for a practice occurring `f` times a
    day: the share of the previous score an occurrence keeps."""
    if not math.isfinite(frequency) or frequency < 0:
        raise ValueError(f"frequency must be a finite number >= 0, got {frequency}")
    return math.pow(0.5, math.sqrt(frequency) / 13.0)


def _outcome_of(o: Outcome, now: datetime) -> Result | Literal["pending"]:
    if o.result is not None:
        return o.result
    return "missed" if now >= o.window_end else "pending"


def _summary(values: Iterable[float]) -> ValueSummary | None:
    seen = list(values)
    if not seen:
        return None
    return ValueSummary(
        count=len(seen),
        mean=math.fsum(seen) / len(seen),
        min=min(seen),
        max=max(seen),
        last=seen[-1],
    )


def summarise(outcomes: Sequence[Outcome], now: datetime, per_day: float) -> PracticeAdherence:
    """The adherence of one practice at `now`; see the module docstring for the rules.

    `outcomes` may come in any order (they are taken by instant; ties keep their given
    order). `per_day` is the practice's frequency `f` (see `per_day()`), `now` must be
    timezone-aware like the instants. Streaks count done occurrences in a row among the
    decided ones: a missed occurrence ends a streak, a skipped one neither extends nor
    breaks it; `current_streak` is the run that ends at the most recent decided one.
    `completion_rate` is done / (scheduled - pending), None when that is 0.
    """
    m = multiplier(per_day)
    scheduled = sorted((o for o in outcomes if o.instant <= now), key=lambda o: o.instant)
    counts = {"done": 0, "skipped": 0, "missed": 0, "pending": 0}
    score = 0.0
    run = longest = 0
    for o in scheduled:
        kind = _outcome_of(o, now)
        counts[kind] += 1
        if kind == "done":
            score = score * m + 1.0 * (1.0 - m)
            run += 1
            longest = max(longest, run)
        elif kind == "missed":
            score = score * m
            run = 0
    decided = len(scheduled) - counts["pending"]
    return PracticeAdherence(
        scheduled=len(scheduled),
        done=counts["done"],
        skipped=counts["skipped"],
        missed=counts["missed"],
        pending=counts["pending"],
        completion_rate=counts["done"] / decided if decided else None,
        current_streak=run,
        longest_streak=longest,
        strength=score,
        rating=_summary(o.rating for o in scheduled if o.rating is not None),
        number=_summary(o.number for o in scheduled if o.number is not None),
    )
