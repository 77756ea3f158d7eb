"""Send rate limits, in one process and across processes through a real Redis.

Slots are checked on the limiter's own clock (an injected one, or Redis's), not by
timing sleeps: two threads reserving at once must get slots exactly one interval apart.
One short test per limiter also checks the rate in real time.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.channels.base import ChannelError
from service.channels.ratelimit import (
    LocalRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    Reservation,
    Unlimited,
)
from tests.support.services import RedisServer, free_port

RATE = 20.0  # a second: slots 50 ms apart
INTERVAL = 1 / RATE


class FakeTime:
    """A clock that moves only when told to, or when someone sleeps on it (`advancing`)."""

    def __init__(self, advancing: bool = True) -> None:
        self.now = 1000.0
        self.advancing = advancing
        self.sleeps: list[float] = []
        self.lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps.append(round(seconds, 6))
            if self.advancing:
                self.now += seconds


def in_threads(count: int, each: Callable[[int], None]) -> None:
    """Run `each(i)` in `count` threads that start together; re-raise any failure."""
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            start.wait(timeout=5)
            each(index)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    if errors:
        raise errors[0]


def reserve_from_threads(limiters: list[RateLimiter], per_thread: int) -> list[Reservation]:
    taken: list[Reservation] = []
    lock = threading.Lock()

    def each(index: int) -> None:
        for _ in range(per_thread):
            reservation = limiters[index].reserve("sms:+15005550006")
            with lock:
                taken.append(reservation)

    in_threads(len(limiters), each)
    return sorted(taken, key=lambda r: r.slot)


def gaps(reservations: list[Reservation]) -> list[float]:
    return [round(b.slot - a.slot, 6) for a, b in itertools.pairwise(reservations)]


# --- in one process --------------------------------------------------------------------


def test_local_slots_from_two_threads_are_one_interval_apart() -> None:
    clock = FakeTime(advancing=False)
    limiter = LocalRateLimiter(RATE, clock=clock.clock, sleep=clock.sleep)
    taken = reserve_from_threads([limiter, limiter], per_thread=10)
    assert gaps(taken) == [INTERVAL] * 19
    assert sorted(round(r.wait, 6) for r in taken) == [round(i * INTERVAL, 6) for i in range(20)]


def test_local_acquire_sleeps_until_its_slot_and_an_idle_key_is_free() -> None:
    clock = FakeTime()
    limiter = LocalRateLimiter(RATE, clock=clock.clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire("a")
    assert clock.sleeps == [INTERVAL, INTERVAL]
    clock.now += 5  # idle for a while: no backlog left
    limiter.acquire("a")
    assert clock.sleeps == [INTERVAL, INTERVAL]


def test_local_keys_are_independent() -> None:
    clock = FakeTime(advancing=False)
    limiter = LocalRateLimiter(RATE, clock=clock.clock, sleep=clock.sleep)
    assert limiter.reserve("sms:+15005550006").wait == 0
    assert limiter.reserve("sms:+15005550007").wait == 0
    assert limiter.reserve("sms:+15005550006").wait == pytest.approx(INTERVAL)


def test_local_too_long_a_wait_is_transient_and_takes_no_slot() -> None:
    clock = FakeTime(advancing=False)
    limiter = LocalRateLimiter(RATE, max_wait=0.12, clock=clock.clock, sleep=clock.sleep)
    assert [round(limiter.reserve("a").wait, 6) for _ in range(3)] == [0, 0.05, 0.1]
    for _ in range(2):  # the refused reservation left the queue as it was
        with pytest.raises(ChannelError) as caught:
            limiter.acquire("a")
        assert not caught.value.permanent
        assert caught.value.code == "rate-limit"
        assert caught.value.retry_after == pytest.approx(0.15)
    assert clock.sleeps == []


def test_local_rate_holds_in_real_time() -> None:
    limiter = LocalRateLimiter(50)  # 20 ms apart
    began = time.monotonic()
    in_threads(2, lambda _: [limiter.acquire("a") for _ in range(5)])
    assert time.monotonic() - began >= 9 * 0.02 - 0.005


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="above 0"):
        LocalRateLimiter(0)


def test_unlimited_never_waits() -> None:
    assert Unlimited().reserve("a") == Reservation(slot=0.0, wait=0.0)


# --- across processes, through Redis -----------------------------------------------------


@pytest.fixture
def clients(redis_session: RedisServer) -> Iterator[list[redis.Redis]]:
    """Two separate connections, as two worker processes would have."""
    made = [redis.Redis.from_url(redis_session.url) for _ in range(2)]
    made[0].flushall()
    yield made
    for client in made:
        client.close()


@pytest.mark.services
def test_redis_slots_from_two_clients_are_one_interval_apart(clients: list[redis.Redis]) -> None:
    limiters: list[RateLimiter] = [RedisRateLimiter(c, RATE) for c in clients]
    taken = reserve_from_threads(limiters, per_thread=10)
    assert gaps(taken) == [INTERVAL] * 19


@pytest.mark.services
def test_redis_slots_are_on_redis_clock(clients: list[redis.Redis]) -> None:
    seconds, micros = clients[0].time()
    reservation = RedisRateLimiter(clients[0], RATE).reserve("a")
    assert abs(reservation.slot - (seconds + micros / 1e6)) < 1.0
    assert reservation.wait == 0
    ttl = int(clients[0].pttl("tend:rate:a"))
    assert 0 < ttl <= 1000 + 50


@pytest.mark.services
def test_redis_too_long_a_wait_is_transient_and_takes_no_slot(clients: list[redis.Redis]) -> None:
    # Slots 0.5 s apart (nothing sleeps: `reserve` only says how long to wait), so that
    # the test holds while the machine is busy for up to 0.3 s between the calls.
    limiter = RedisRateLimiter(clients[0], 2.0, max_wait=1.2)
    # Waits are counted on Redis's clock from each call: real time passes between the
    # calls (more on a busy machine), so each is its slot's offset less what has passed.
    began = time.monotonic()
    waits = [limiter.reserve("a").wait for _ in range(3)]
    for wait, offset in zip(waits, (0.0, 0.5, 1.0), strict=True):
        assert offset - (time.monotonic() - began) - 0.005 <= wait <= offset + 0.005
    for _ in range(2):
        with pytest.raises(ChannelError) as caught:
            limiter.reserve("a")
        assert not caught.value.permanent
        # The next free slot is 1.5 s after the first: no slot was taken by the refusal.
        assert caught.value.retry_after is not None
        elapsed = time.monotonic() - began
        assert 1.5 - elapsed - 0.005 <= caught.value.retry_after <= 1.5 + 0.005


@pytest.mark.services
def test_redis_rate_holds_in_real_time_across_clients(clients: list[redis.Redis]) -> None:
    limiters = [RedisRateLimiter(c, RATE) for c in clients]
    returned: list[float] = []
    lock = threading.Lock()

    def each(index: int) -> None:
        for _ in range(5):
            limiters[index].acquire("a")
            with lock:
                returned.append(time.monotonic())

    began = time.monotonic()
    in_threads(2, each)
    # Ten sends at 20 a second: the last may not go before 9 intervals have passed.
    assert max(returned) - began >= 9 * INTERVAL - 0.01
    assert max(returned) - began < 3.0


@pytest.mark.services
def test_redis_unreachable_is_transient() -> None:
    client = redis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(ChannelError) as caught:
            RedisRateLimiter(client, RATE).acquire("a")
    finally:
        client.close()
    assert not caught.value.permanent
    assert "cannot reach Redis" in str(caught.value)
