"""The retry backoff: the first wait, doubled each attempt, capped; and the three
schedules Tend retries on (reminders, calendar invitations, weekly messages)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.backoff import Backoff

S = timedelta(seconds=1)
M = timedelta(minutes=1)


def test_doubles_from_the_first_wait_up_to_the_ceiling() -> None:
    backoff = Backoff(first=10 * S, ceiling=4 * M)
    waits = [backoff.after(attempt) for attempt in range(1, 8)]
    assert waits == [10 * S, 20 * S, 40 * S, 80 * S, 160 * S, 4 * M, 4 * M]


@pytest.mark.parametrize("attempt", [0, -1])
def test_an_attempt_below_one_waits_the_first(attempt: int) -> None:
    assert Backoff(first=30 * S, ceiling=M).after(attempt) == 30 * S


def test_a_huge_attempt_waits_the_ceiling() -> None:
    assert Backoff(first=S, ceiling=timedelta(hours=1)).after(10**9) == timedelta(hours=1)


@pytest.mark.parametrize(("first", "ceiling"), [(0 * S, M), (-S, M), (2 * M, M)])
def test_nonsense_is_refused(first: timedelta, ceiling: timedelta) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(first=first, ceiling=ceiling)


@given(
    st.integers(min_value=1, max_value=3600),
    st.integers(min_value=1, max_value=100),
    st.integers(min_value=-3, max_value=80),
)
def test_is_min_of_doubling_and_ceiling(first_s: int, factor: int, attempt: int) -> None:
    first, ceiling = first_s * S, first_s * factor * S
    expected = min(first_s * 2 ** max(attempt - 1, 0), first_s * factor) * S
    assert Backoff(first, ceiling).after(attempt) == expected


def test_the_schedules_tend_retries_on() -> None:
    from service.engine.delivery import REMINDER_BACKOFF
    from service.engine.invitations import INVITATION_BACKOFF
    from service.engine.summaries import SUMMARY_BACKOFF

    reminders, invitations, summaries = REMINDER_BACKOFF, INVITATION_BACKOFF, SUMMARY_BACKOFF
    assert reminders == Backoff(first=10 * S, ceiling=4 * M)  # fits a 15-minute grace
    assert invitations == Backoff(first=30 * S, ceiling=timedelta(hours=1))
    assert summaries == Backoff(first=30 * S, ceiling=10 * M)
    assert [SUMMARY_BACKOFF.after(a) for a in (1, 2, 5, 6)] == [30 * S, M, 8 * M, 10 * M]
