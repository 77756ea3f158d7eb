"""Send rate limits: at most `rate` sends a second for each key (a sender), so that a long
code's one message a second holds however many workers send at once.

Both limiters reserve slots: each key has the time its next send may go out; `acquire`
takes that slot (or now, when it has passed), moves the key's next slot one interval on,
and sleeps until its own slot comes. Reserving rather than polling means waiting senders
neither spin nor race, and they go out in the order they asked. `LocalRateLimiter` holds
within one process; `RedisRateLimiter` across processes, with the reservation made by
one Lua script on Redis's own clock (TIME), so that machines whose clocks differ agree.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from service.channels.base import ChannelError

DEFAULT_MAX_WAIT = 30.0  # seconds; a send that would wait longer is retried later instead


@dataclass(frozen=True, slots=True)
class Reservation:
    """A slot taken for one send: its time on the limiter's clock, and how long from now."""

    slot: float
    wait: float


class RateLimiter:
    """The interface: `acquire(key)` returns when a send for `key` may go out."""

    def acquire(self, key: str) -> None:
        """Block until a slot for `key` is free; raise a transient ChannelError (with
        `retry_after`) instead when that would take longer than the limiter's max wait."""
        reservation = self.reserve(key)
        if reservation.wait > 0:
            self._sleep(reservation.wait)

    def reserve(self, key: str) -> Reservation:
        raise NotImplementedError

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def close(self) -> None:
        """Release connections; the default holds none."""


class Unlimited(RateLimiter):
    """No limit: for tests and for senders whose provider queues on its own."""

    def reserve(self, key: str) -> Reservation:
        return Reservation(slot=0.0, wait=0.0)


def _interval(rate: float) -> float:
    if not rate > 0:
        raise ValueError(f"a send rate must be above 0 messages a second (got {rate})")
    return 1.0 / rate


def _too_long(key: str, wait: float, max_wait: float) -> ChannelError:
    return ChannelError(
        f"the send rate limit for {key} has a queue of {wait:.1f} s, longer than "
        f"{max_wait:.0f} s; will retry",
        permanent=False,
        code="rate-limit",
        retry_after=wait,
    )


class LocalRateLimiter(RateLimiter):
    """Slots kept in this process, shared by its threads. `clock` and `sleep` are
    injectable, so tests need not wait in real time."""

    def __init__(
        self,
        rate: float,
        *,
        max_wait: float = DEFAULT_MAX_WAIT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = _interval(rate)
        self.max_wait = max_wait
        self.clock = clock
        self.sleep = sleep
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def reserve(self, key: str) -> Reservation:
        with self._lock:
            now = self.clock()
            slot = max(now, self._next.get(key, now))
            wait = slot - now
            if wait > self.max_wait:
                raise _too_long(key, wait, self.max_wait)
            self._next[key] = slot + self.interval
        return Reservation(slot=slot, wait=wait)

    def _sleep(self, seconds: float) -> None:
        self.sleep(seconds)


# KEYS[1]: the key's next free slot (microseconds on Redis's clock); ARGV: the interval
# and the longest wait, both in microseconds. Returns {taken (1 or 0), wait, slot}.
# Integers are formatted with %d: Lua 5.1 would print 16-digit numbers in e-notation.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local slot = tonumber(redis.call('GET', KEYS[1]) or 0)
if slot < now then slot = now end
local wait = slot - now
if wait > max_wait then return {0, wait, slot} end
local ttl = math.floor((wait + interval) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', slot + interval), 'PX', ttl)
return {1, wait, slot}
"""


class RedisRateLimiter(RateLimiter):
    """Slots kept in Redis: one atomic script reserves a slot on Redis's clock, so the
    rate holds across every process that shares the Redis. Keys expire on their own once
    idle. Needs Redis 5 or newer (TIME in a script that writes)."""

    def __init__(
        self,
        client: redis.Redis,
        rate: float,
        *,
        max_wait: float = DEFAULT_MAX_WAIT,
        prefix: str = "tend:rate:",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.interval = _interval(rate)
        self.max_wait = max_wait
        self.prefix = prefix
        self.sleep = sleep
        self._script = client.register_script(_RESERVE)

    def reserve(self, key: str) -> Reservation:
        interval_us = max(round(self.interval * 1_000_000), 1)
        max_wait_us = round(self.max_wait * 1_000_000)
        try:
            reply: Any = self._script(keys=[self.prefix + key], args=[interval_us, max_wait_us])
        except redis.RedisError as exc:
            raise ChannelError(
                f"the send rate limiter cannot reach Redis ({type(exc).__name__}); will retry",
                permanent=False,
                code="rate-limit",
            ) from exc
        taken, wait_us, slot_us = (int(v) for v in reply)
        wait = wait_us / 1_000_000
        if not taken:
            raise _too_long(key, wait, self.max_wait)
        return Reservation(slot=slot_us / 1_000_000, wait=wait)

    def _sleep(self, seconds: float) -> None:
        self.sleep(seconds)
