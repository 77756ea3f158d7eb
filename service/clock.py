"""Clocks. Everything with time in it takes one, so tests can move time by hand."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def real_seconds(self, span: timedelta) -> float:
        """How many real seconds `span` of this clock's time takes: what a wait for a
        moment on this clock (a retry's backoff, the next due reminder) must sleep."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def real_seconds(self, span: timedelta) -> float:
        return span.total_seconds()


class ManualClock:
    """A clock that moves only when told to; thread-safe."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment.astimezone(UTC)

    def real_seconds(self, span: timedelta) -> float:
        """As long as the span itself: this clock moves only by hand, so a real wait
        neither brings a moment nearer nor is shortened."""
        return span.total_seconds()

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        with self._lock:
            self._now += delta if delta is not None else timedelta(**kwargs)
            return self._now


def clock_span(clock: Clock, real_seconds: float) -> timedelta:
    """The span of `clock`'s time that `real_seconds` of real time make: a provider's
    Retry-After is real time, whatever the clock."""
    per_second = clock.real_seconds(timedelta(seconds=1))
    seconds = real_seconds / per_second if per_second > 0 else real_seconds
    return timedelta(seconds=seconds)
