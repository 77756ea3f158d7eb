"""More hand-computed cases of `core.adherence`: `summarise` worked step by step at
several frequencies, how skipped and pending occurrences count, and `frequencies()`
for each way a plan says when a practice happens. Pure: no database, no clock.

Strength is Loop Habit Tracker's score: m = 0.5 ** (sqrt(f) / 13), and at each decided
occurrence in time order score = score * m + value * (1 - m), with value 1 for done and
0 for missed; a skipped one leaves it as it was.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest

from service.core.adherence import Outcome, frequencies, multiplier, summarise
from service.core.plan import Plan
from tests.support.plans import load_ok

T0 = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
WINDOW = timedelta(hours=12)
AFTER_ALL = T0 + timedelta(days=365)
MONDAY = date(2026, 3, 2)

# Daily, f = 1: m = 0.5 ** (1/13) = 0.9480775, 1 - m = 0.0519225.
M1 = 0.5 ** (1 / 13)
# Weekdays, f = 5/7: sqrt(5/7) = 0.8451543, / 13 = 0.0650119,
# m = 0.5 ** 0.0650119 = 0.9559375, 1 - m = 0.0440625.
M_WEEKDAY = 0.5 ** (math.sqrt(5 / 7) / 13)


def seq(results: str, *, every: timedelta = timedelta(days=1)) -> list[Outcome]:
    """One occurrence per `every` from T0: D done, S skipped, M missed (recorded), '-' none."""
    names = {"D": "done", "S": "skipped", "M": "missed", "-": None}
    return [
        Outcome(T0 + n * every, T0 + n * every + WINDOW, names[c])  # type: ignore[arg-type]
        for n, c in enumerate(results)
    ]


def figures(results: str, f: float = 1.0) -> tuple[int, int, int, int, int, int, int]:
    a = summarise(seq(results), AFTER_ALL, f)
    return (a.scheduled, a.done, a.skipped, a.missed, a.pending, a.current_streak,
            a.longest_streak)  # fmt: skip


# --- summarise, step by step -------------------------------------------------------------


def test_multipliers_for_the_usual_frequencies() -> None:
    assert round(M1, 7) == 0.9480775
    assert multiplier(5 / 7) == pytest.approx(0.9559375, abs=1e-7)
    # every other week, f = 1/14: sqrt = 0.2672612, / 13 = 0.0205586, m = 0.9858509
    assert multiplier(1 / 14) == pytest.approx(0.9858509, abs=1e-7)
    # f = 0 (a practice with no occurrences): m = 0.5 ** 0 = 1, the score never moves.
    assert multiplier(0.0) == 1.0
    # Twice a day, f = 2: sqrt(2) / 13 = 0.1087857, m = 0.5 ** 0.1087857
    # = exp(-0.1087857 * ln 2) = exp(-0.0754045) = 0.9273683
    assert multiplier(2.0) == pytest.approx(0.9273683, abs=1e-7)
    with pytest.raises(ValueError, match="frequency"):
        multiplier(math.inf)


def test_daily_done_done_missed_done() -> None:
    a = summarise(seq("DDMD"), AFTER_ALL, 1.0)
    # s1 = 0         * m + (1 - m) = 0.0519225
    # s2 = 0.0519225 * m + 0.0519225 = 0.0492265 + 0.0519225 = 0.1011490
    # s3 = 0.1011490 * m             = 0.0958971              (missed: value 0)
    # s4 = 0.0958971 * m + 0.0519225 = 0.0909179 + 0.0519225 = 0.1428404
    assert a.strength == pytest.approx(0.1428404, abs=1e-7)
    assert a.strength == pytest.approx(((1 - M1) * M1 + (1 - M1)) * M1 * M1 + (1 - M1))
    # done 3 of 4 decided: 0.75; the miss ends the run of 2, the last done starts one of 1.
    assert (a.scheduled, a.done, a.missed, a.completion_rate) == (4, 3, 1, 0.75)
    assert (a.current_streak, a.longest_streak) == (1, 2)
    assert a.as_json("walk")["strength"] == 0.14


def test_weekdays_done_done_missed_done_moves_less_than_daily() -> None:
    a = summarise(seq("DDMD"), AFTER_ALL, 5 / 7)
    # m = 0.9559375, 1 - m = 0.0440625
    # s1 = 0.0440625
    # s2 = 0.0440625 * m + 0.0440625 = 0.0421211 + 0.0440625 = 0.0861836
    # s3 = 0.0861836 * m             = 0.0823861
    # s4 = 0.0823861 * m + 0.0440625 = 0.0787560 + 0.0440625 = 0.1228185
    assert a.strength == pytest.approx(0.1228185, abs=1e-7)
    assert a.strength < summarise(seq("DDMD"), AFTER_ALL, 1.0).strength  # 0.1428404
    # Only the strength depends on f.
    assert figures("DDMD", 5 / 7) == figures("DDMD", 1.0)


def test_a_first_miss_leaves_the_score_at_zero() -> None:
    # M: 0 * m = 0; D: 0 * m + (1 - m) = 0.0519225. The same as a lone done.
    a = summarise(seq("MD"), AFTER_ALL, 1.0)
    assert a.strength == pytest.approx(0.0519225, abs=1e-7)
    assert a.strength == summarise(seq("D"), AFTER_ALL, 1.0).strength
    assert a.completion_rate == 0.5


def test_a_practice_with_frequency_zero_never_gains_strength() -> None:
    # m = 1: score = score * 1 + 1 * 0, it stays 0 whatever is done.
    a = summarise(seq("DDDD"), AFTER_ALL, 0.0)
    assert (a.strength, a.done, a.current_streak, a.completion_rate) == (0.0, 4, 4, 1.0)


# --- skipped ---------------------------------------------------------------------------


def test_a_skip_between_dones_leaves_score_and_streak_unchanged() -> None:
    with_skip = summarise(seq("DSD"), AFTER_ALL, 1.0)
    without = summarise(seq("DD"), AFTER_ALL, 1.0)
    # D: 0.0519225; S: unchanged; D: 0.0519225 * m + 0.0519225 = 0.1011490 = 1 - m**2
    assert with_skip.strength == without.strength
    assert with_skip.strength == pytest.approx(0.1011490, abs=1e-7)
    assert (with_skip.current_streak, with_skip.longest_streak) == (2, 2)
    # The skip still counts as scheduled and decided: done 2 of 3 -> 0.67.
    assert (with_skip.scheduled, with_skip.skipped) == (3, 1)
    assert with_skip.completion_rate == pytest.approx(2 / 3)
    assert with_skip.as_json("walk")["completion_rate"] == 0.67


def test_a_skip_after_a_miss_does_not_restart_the_streak() -> None:
    a = summarise(seq("DMS"), AFTER_ALL, 1.0)
    # D: 0.0519225; M: 0.0519225 * m = 0.0492265; S: unchanged = 0.0492265
    assert a.strength == pytest.approx(0.0492265, abs=1e-7)
    assert (a.current_streak, a.longest_streak) == (0, 1)


def test_skips_at_the_start_and_the_end_change_nothing() -> None:
    assert figures("SSDDSS")[5:] == figures("DD")[5:] == (2, 2)
    assert summarise(seq("SSDDSS"), AFTER_ALL, 1.0).strength == (
        summarise(seq("DD"), AFTER_ALL, 1.0).strength
    )
    # But the rate counts them: 2 done of 6 decided.
    assert summarise(seq("SSDDSS"), AFTER_ALL, 1.0).completion_rate == pytest.approx(1 / 3)


# --- pending ---------------------------------------------------------------------------


def test_a_pending_occurrence_is_excluded_until_its_window_closes() -> None:
    # Mon done; Tue no answer yet, with a 3-day window; Wed done.
    mon, wed = seq("D-D")[0], seq("D-D")[2]
    tue = Outcome(T0 + timedelta(days=1), T0 + timedelta(days=4), None)
    outcomes = [mon, tue, wed]

    thursday = T0 + timedelta(days=3)  # Tue's window is still open
    a = summarise(outcomes, thursday, 1.0)
    # Decided: D, D -> 1 - m**2 = 0.1011490, a streak of 2; Tue waits.
    assert (a.scheduled, a.done, a.missed, a.pending) == (3, 2, 0, 1)
    assert a.completion_rate == 1.0  # 2 / (3 - 1)
    assert (a.current_streak, a.longest_streak) == (2, 2)
    assert a.strength == pytest.approx(0.1011490, abs=1e-7)

    friday = T0 + timedelta(days=4)  # Tue's window has closed with no answer: missed
    b = summarise(outcomes, friday, 1.0)
    # D, M, D in time order: 0.0519225 -> 0.0492265 -> 0.0492265 * m + 0.0519225 = 0.0985931
    assert (b.scheduled, b.done, b.missed, b.pending) == (3, 2, 1, 0)
    assert b.completion_rate == pytest.approx(2 / 3)
    assert (b.current_streak, b.longest_streak) == (1, 1)
    assert b.strength == pytest.approx(0.0985931, abs=1e-7)


def test_an_answer_counts_at_once_even_while_the_window_is_open() -> None:
    [o] = seq("D")
    a = summarise([o], o.instant + timedelta(minutes=1), 1.0)
    assert (a.done, a.pending, a.completion_rate, a.current_streak) == (1, 0, 1.0, 1)
    # A recorded miss is a miss, whatever the window.
    m = Outcome(o.instant, o.window_end, "missed")
    assert summarise([m], o.instant, 1.0).missed == 1


def test_only_pending_gives_no_rate_and_no_strength() -> None:
    outcomes = seq("--")
    now = outcomes[1].instant + timedelta(hours=1)  # the second's window is open
    a = summarise(outcomes, now, 1.0)
    # The first's window has closed with no answer: missed. Second: pending.
    assert (a.scheduled, a.missed, a.pending, a.completion_rate) == (2, 1, 1, 0.0)
    b = summarise(outcomes[1:], now, 1.0)
    assert (b.scheduled, b.pending, b.completion_rate, b.strength) == (1, 1, None, 0.0)


# --- frequencies() -----------------------------------------------------------------------


def plan(length: str, *practices: str) -> Plan:
    """A plan whose practices are given as `id: rest-of-keys` one-liners."""
    body = ""
    for spec in practices:
        pid, _, keys = spec.partition(": ")
        body += f"  - id: {pid}\n    category: sleep\n    title: {pid}\n    at: '07:00'\n"
        body += "".join(f"    {k.strip()}\n" for k in keys.split(";;"))
    return load_ok(f"plan: f\ntitle: F\n{length}\npractices:\n{body}")


EIGHT_WEEKS = plan(
    "weeks: 8",
    "daily: every: day",
    "weekdays: every: weekday",
    "weekend: every: weekend",
    "twice: every: [mon, thu]",
    "fortnightly: rrule: FREQ=WEEKLY;INTERVAL=2;BYDAY=MO",
    "every-third: rrule: FREQ=DAILY;INTERVAL=3",
    "late: every: day;;weeks: '3-4'",
    "late-monday: every: [mon];;weeks: '3-4'",
    "split: every: weekday;;weeks: [1, '5-6']",
)


def test_frequencies_over_eight_weeks_from_a_monday() -> None:
    f = frequencies(EIGHT_WEEKS, MONDAY)
    assert f == {
        "daily": 1.0,  # 56 / 56
        "weekdays": 40 / 56,  # 5 a week for 8 weeks = 5/7
        "weekend": 16 / 56,  # 2/7
        "twice": 16 / 56,  # 2/7
        # From Monday 2 March every other Monday: weeks 1, 3, 5, 7 -> 4 / 56 = 1/14
        "fortnightly": 4 / 56,
        # Days 0, 3, ..., 54: 19 of 56
        "every-third": 19 / 56,
        # Active only in weeks 3-4: 14 occurrences over those 14 days, not 14 / 56
        "late": 1.0,
        "late-monday": 2 / 14,  # two Mondays in two weeks = 1/7
        # Weeks 1, 5 and 6: 15 weekdays over 21 active days = 5/7
        "split": 15 / 21,
    }
    assert f["weekdays"] == pytest.approx(5 / 7)
    assert f["fortnightly"] == pytest.approx(1 / 14)


def test_frequencies_from_a_wednesday() -> None:
    f = frequencies(EIGHT_WEEKS, date(2026, 3, 4))
    # Any 56 consecutive days hold 40 weekdays and 8 of each weekday.
    assert (f["daily"], f["weekdays"], f["twice"]) == (1.0, 40 / 56, 16 / 56)
    # Every other week from Wednesday 4 March: the first period's Monday has passed;
    # Mondays 16 and 30 March, 13 and 27 April (day 54 of 56) -> 4 / 56.
    assert f["fortnightly"] == 4 / 56
    # Weeks 3-4 run Wednesday 18 to Tuesday 31 March: Mondays 23 and 30 -> 2 / 14.
    assert f["late-monday"] == 2 / 14


def test_frequencies_of_a_plan_in_days_depend_on_the_start() -> None:
    ten = plan("days: 10", "weekdays: every: weekday", "late: every: day;;weeks: 2")
    # From Monday: Mon-Fri, then Mon-Wed of week 2 -> 8 weekdays in 10 days.
    assert frequencies(ten, MONDAY) == {"weekdays": 0.8, "late": 1.0}
    # From Saturday 7 March: Sat Sun (Mon-Fri) Sat Sun Mon -> 6 weekdays in 10 days.
    # Week 2 has only days 7-9 of the plan: 3 occurrences over 3 active days.
    assert frequencies(ten, date(2026, 3, 7)) == {"weekdays": 0.6, "late": 1.0}


def test_frequencies_feed_the_strength_of_a_less_frequent_practice() -> None:
    f = frequencies(EIGHT_WEEKS, MONDAY)["fortnightly"]
    a = summarise(seq("DDD", every=timedelta(days=14)), AFTER_ALL, f)
    # m = 0.9858509, 1 - m = 0.0141491
    # 0.0141491 -> 0.0141491 * m + 0.0141491 = 0.0280979 -> 0.0280979 * m + 0.0141491
    # = 0.0418494 (= 1 - m**3)
    assert a.strength == pytest.approx(0.0418494, abs=1e-7)
    assert a.as_json("fortnightly")["strength"] == 0.04
