"""How long to wait before trying a send again: the first wait, doubled each attempt,
never more than a ceiling. Pure: the caller adds the wait to its own `now`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class Backoff:
    first: timedelta
    ceiling: timedelta

    def __post_init__(self) -> None:
        if self.first <= timedelta(0) or self.ceiling < self.first:
            raise ValueError(f"a backoff needs 0 < first <= ceiling, not {self}")

    def after(self, attempt: int) -> timedelta:
        """The wait after the `attempt`-th try (from 1): first, twice first, ... at most
        the ceiling. An attempt below 1 counts as the first."""
        wait = self.first
        for _ in range(attempt - 1):  # stops at the ceiling, however large the attempt
            wait *= 2
            if wait >= self.ceiling:
                return self.ceiling
        return wait
