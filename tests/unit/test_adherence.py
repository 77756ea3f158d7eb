"""Adherence maths (service/core/adherence.py) against hand-computed cases and properties."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.adherence import (
    Outcome,
    PracticeAdherence,
    multiplier,
    per_day,
    summarise,
)

START = datetime(2026, 3, 2, 21, 30, tzinfo=UTC)
WINDOW = timedelta(hours=12)
# Long after every window below has closed.
LATER = START + timedelta(days=400)

# Daily: m = 0.5 ** (sqrt(1) / 13) = 2 ** (-1/13) = 0.948078 (1 - m = 0.051922).
M_DAILY = 0.5 ** (1 / 13)


def day(n: int, result: str | None, **values: float) -> Outcome:
    """The occurrence on day `n` (from 0) of a daily practice."""
    instant = START + timedelta(days=n)
    return Outcome(instant, instant + WINDOW, result, **values)  # type: ignore[arg-type]


def history(results: str, spacing: timedelta = timedelta(days=1)) -> list[Outcome]:
    """`D` done, `S` skipped, `M` missed (recorded), `-` no check-in, one per `spacing`."""
    names = {"D": "done", "S": "skipped", "M": "missed", "-": None}
    out = []
    for n, c in enumerate(results):
        instant = START + n * spacing
        out.append(Outcome(instant, instant + WINDOW, names[c]))  # type: ignore[arg-type]
    return out


def test_multiplier_daily_and_twice_a_week() -> None:
    assert round(M_DAILY, 6) == 0.948078
    assert multiplier(1.0) == pytest.approx(0.948078, abs=1e-6)
    # f = 2/7: m = 0.5 ** (sqrt(2/7) / 13) = 0.5 ** (0.534522 / 13) = 0.971902
    assert multiplier(2 / 7) == pytest.approx(0.971902, abs=1e-6)
    # Thirteen dones in a row from 0 reach half strength for a daily practice.
    assert 1 - multiplier(1.0) ** 13 == pytest.approx(0.5)


def test_an_all_done_week() -> None:
    a = summarise(history("DDDDDDD"), LATER, 1.0)
    # From 0, each done gives s' = s*m + (1 - m), so after k dones s = 1 - m**k.
    # 1 - 0.948078**7 = 1 - 0.688505 = 0.311495
    assert a.strength == pytest.approx(0.311495, abs=1e-6)
    assert a.strength == pytest.approx(1 - M_DAILY**7)
    assert (a.scheduled, a.done, a.skipped, a.missed, a.pending) == (7, 7, 0, 0, 0)
    assert a.completion_rate == 1.0
    assert (a.current_streak, a.longest_streak) == (7, 7)


def test_done_and_missed_alternating() -> None:
    a = summarise(history("DMDMDM"), LATER, 1.0)
    # s = (1-m) * (m**5 + m**3 + m): each done adds (1 - m), decayed by every later step.
    # = 0.051922 * (0.765983 + 0.852180 + 0.948078) = 0.051922 * 2.566241 = 0.133246
    assert a.strength == pytest.approx(0.133246, abs=1e-6)
    assert (a.done, a.missed, a.completion_rate) == (3, 3, 0.5)
    assert (a.current_streak, a.longest_streak) == (0, 1)


def test_no_check_in_after_the_window_is_missed() -> None:
    a = summarise(history("DM-D"), LATER, 1.0)
    assert (a.done, a.missed, a.pending) == (2, 2, 0)
    assert a == summarise(history("DMMD"), LATER, 1.0)


def test_skipped_in_a_streak_neither_extends_nor_breaks_it() -> None:
    a = summarise(history("MDDSDD"), LATER, 1.0)
    assert (a.current_streak, a.longest_streak) == (4, 4)
    assert (a.done, a.skipped, a.missed) == (4, 1, 1)
    # done / (scheduled - pending) = 4 / 6
    assert a.completion_rate == pytest.approx(0.666667, abs=1e-6)
    # The skip leaves the score alone: the same as M D D D D, i.e. (1 - m**4) after a miss
    # from 0. 1 - 0.948078**4 = 1 - 0.807933 = 0.192067
    assert a.strength == pytest.approx(0.192067, abs=1e-6)
    assert a.strength == summarise(history("MDDDD"), LATER, 1.0).strength


def test_a_miss_breaks_the_streak() -> None:
    a = summarise(history("DDDMD"), LATER, 1.0)
    assert (a.current_streak, a.longest_streak) == (1, 3)
    # (1 - m**3) * m**2 + (1 - m) = 0.147820 * 0.898851 + 0.051922 = 0.184790
    assert a.strength == pytest.approx(0.184790, abs=1e-6)


def test_pending_at_the_end_is_left_out() -> None:
    outcomes = history("DDM-")
    last = outcomes[-1]
    now = last.instant + timedelta(hours=1)  # its window is still open
    a = summarise(outcomes, now, 1.0)
    assert (a.scheduled, a.done, a.missed, a.pending) == (4, 2, 1, 1)
    assert a.completion_rate == pytest.approx(2 / 3)
    assert (a.current_streak, a.longest_streak) == (0, 2)
    assert a.strength == summarise(outcomes[:-1], now, 1.0).strength
    # A pending occurrence after dones does not end the current streak either.
    b = summarise(history("MDD-"), now, 1.0)
    assert (b.current_streak, b.pending) == (2, 1)


def test_the_window_closes_at_window_end() -> None:
    [o] = history("-")
    assert summarise([o], o.window_end - timedelta(seconds=1), 1.0).pending == 1
    assert summarise([o], o.window_end, 1.0).missed == 1


def test_future_occurrences_are_not_scheduled() -> None:
    outcomes = history("D---")
    now = outcomes[1].instant + timedelta(hours=1)
    a = summarise(outcomes, now, 1.0)
    assert (a.scheduled, a.done, a.pending) == (2, 1, 1)
    # At the instant itself the occurrence is scheduled.
    assert summarise(outcomes, outcomes[2].instant, 1.0).scheduled == 3


def test_completion_rate_is_none_when_nothing_is_decided() -> None:
    empty = summarise([], LATER, 1.0)
    assert empty == PracticeAdherence(0, 0, 0, 0, 0, None, 0, 0, 0.0)
    [o] = history("-")
    only_pending = summarise([o], o.instant, 1.0)
    assert (only_pending.scheduled, only_pending.pending) == (1, 1)
    assert only_pending.completion_rate is None
    assert only_pending.as_json("walk")["completion_rate"] is None


def test_all_skipped_gives_rate_zero_and_no_strength() -> None:
    a = summarise(history("SSS"), LATER, 1.0)
    assert (a.completion_rate, a.strength, a.longest_streak) == (0.0, 0.0, 0)


def test_twice_a_week_moves_more_slowly_than_daily() -> None:
    f = per_day(16, 56)  # every: [mon, thu] over an 8-week plan
    assert f == 2 / 7
    weekly = summarise(history("DDDDDDD", timedelta(days=3)), LATER, f)
    daily = summarise(history("DDDDDDD"), LATER, 1.0)
    # 1 - 0.971902**7 = 1 - 0.819139 = 0.180861, against 0.311495 daily.
    assert weekly.strength == pytest.approx(0.180861, abs=1e-6)
    assert weekly.strength < daily.strength
    # A miss after the same run costs it less, too.
    weekly_miss = summarise(history("DDDDDDDM", timedelta(days=3)), LATER, f)
    daily_miss = summarise(history("DDDDDDDM"), LATER, 1.0)
    assert weekly.strength - weekly_miss.strength < daily.strength - daily_miss.strength


def test_outcomes_are_taken_in_time_order() -> None:
    outcomes = history("DDMDD")
    assert summarise(list(reversed(outcomes)), LATER, 1.0) == summarise(outcomes, LATER, 1.0)


def test_rating_and_number_summaries() -> None:
    outcomes = [
        day(0, "done", rating=4.0),
        day(1, "done", rating=2.0, number=25.0),
        day(2, "skipped"),
        day(3, "done", rating=5.0, number=10.0),
    ]
    a = summarise(outcomes, LATER, 1.0)
    assert a.rating is not None
    assert a.number is not None
    assert (a.rating.count, a.rating.min, a.rating.max, a.rating.last) == (3, 2.0, 5.0, 5.0)
    assert a.rating.mean == pytest.approx(11 / 3)
    assert (a.number.count, a.number.mean, a.number.last) == (2, 17.5, 10.0)
    j = a.as_json("walk")
    assert j["rating"] == {"count": 3, "mean": 3.67, "min": 2.0, "max": 5.0, "last": 5.0}
    assert j["number"] == {"count": 2, "mean": 17.5, "min": 10.0, "max": 25.0, "last": 10.0}
    plain = summarise(history("DD"), LATER, 1.0)
    assert (plain.rating, plain.number) == (None, None)
    assert "rating" not in plain.as_json("walk")


def test_as_json_has_the_contract_shape_rounded() -> None:
    a = summarise(history("MDDSDDDM"), LATER, 1.0)
    assert a.as_json("screens-off") == {
        "practice": "screens-off",
        "scheduled": 8,
        "done": 5,
        "skipped": 1,
        "missed": 2,
        "pending": 0,
        "completion_rate": 0.62,  # 5 / 8 = 0.625; round() ties to even
        "current_streak": 0,
        "longest_streak": 5,
        "strength": round(a.strength, 2),
    }
    assert list(a.as_json("x")) == [
        "practice",
        "scheduled",
        "done",
        "skipped",
        "missed",
        "pending",
        "completion_rate",
        "current_streak",
        "longest_streak",
        "strength",
    ]
    # Full precision stays in the dataclass.
    assert a.completion_rate == 0.625


def test_per_day() -> None:
    assert per_day(56, 56) == 1.0
    assert per_day(40, 56) == 5 / 7
    assert per_day(3, 8) == 0.375
    assert per_day(0, 7) == 0.0
    with pytest.raises(ValueError, match="days"):
        per_day(3, 0)
    with pytest.raises(ValueError, match="occurrences"):
        per_day(-1, 7)
    with pytest.raises(ValueError, match="frequency"):
        summarise([], LATER, -1.0)
    with pytest.raises(ValueError, match="frequency"):
        summarise([], LATER, math.nan)


# Properties ---------------------------------------------------------------------------

RESULTS = st.sampled_from(["done", "skipped", "missed", None])
FREQS = st.sampled_from([1 / 14, 1 / 7, 2 / 7, 5 / 7, 1.0, 2.0])


@st.composite
def outcome_lists(draw: st.DrawFn) -> list[Outcome]:
    results = draw(st.lists(RESULTS, max_size=60))
    gaps = draw(st.lists(st.integers(1, 72), min_size=len(results), max_size=len(results)))
    out = []
    instant = START
    for result, gap in zip(results, gaps, strict=True):
        instant += timedelta(hours=gap)
        window = timedelta(hours=draw(st.integers(0, 24)))
        out.append(Outcome(instant, instant + window, result))  # type: ignore[arg-type]
    return out


NOWS = st.integers(0, 60 * 72 + 48).map(lambda h: START + timedelta(hours=h))


@given(outcome_lists(), NOWS, FREQS)
def test_counts_add_up_and_stay_in_range(outcomes: list[Outcome], now: datetime, f: float) -> None:
    a = summarise(outcomes, now, f)
    assert 0.0 <= a.strength <= 1.0
    assert a.done + a.skipped + a.missed + a.pending == a.scheduled
    assert a.scheduled == sum(o.instant <= now for o in outcomes)
    assert 0 <= a.current_streak <= a.longest_streak <= a.done
    if a.completion_rate is not None:
        assert 0.0 <= a.completion_rate <= 1.0


@given(outcome_lists(), FREQS)
def test_a_done_at_the_end_never_lowers_strength(outcomes: list[Outcome], f: float) -> None:
    last = outcomes[-1].instant if outcomes else START
    extra = Outcome(last + timedelta(hours=1), last + timedelta(hours=2), "done")
    before = summarise(outcomes, LATER, f)
    after = summarise([*outcomes, extra], LATER, f)
    assert after.strength >= before.strength
    assert after.current_streak == before.current_streak + 1


@given(outcome_lists(), NOWS, FREQS, st.lists(st.integers(0, 60), max_size=5))
def test_skipped_occurrences_change_neither_strength_nor_streaks(
    outcomes: list[Outcome], now: datetime, f: float, positions: list[int]
) -> None:
    with_skips = list(outcomes)
    for p in positions:
        i = min(p, len(with_skips))
        # Half an hour before the i-th occurrence (or after the last): between neighbours.
        instant = (
            with_skips[i].instant - timedelta(minutes=30)
            if i < len(with_skips)
            else (with_skips[-1].instant if with_skips else START) + timedelta(minutes=30)
        )
        with_skips.insert(i, Outcome(instant, instant + WINDOW, "skipped"))
    a = summarise(outcomes, now, f)
    b = summarise(with_skips, now, f)
    assert b.strength == a.strength
    assert (b.current_streak, b.longest_streak) == (a.current_streak, a.longest_streak)
    assert (b.done, b.missed, b.pending) == (a.done, a.missed, a.pending)
