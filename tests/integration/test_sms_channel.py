"""The SMS channel: the real twilio library, end to end against a fake of Twilio's API.

Each test talks HTTP to tests/support/fake_twilio.py on a loopback port: what the client sends
(form fields, auth), how each of Twilio's error answers is classified, and how a
reminder is never sent twice after a 5xx, a timeout or a worker that stopped mid-send.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import requests

from service.channels.base import ChannelError, OutgoingMessage
from service.channels.ratelimit import LocalRateLimiter, Unlimited
from service.channels.sms import (
    Attempt,
    AttemptJournal,
    MemoryJournal,
    RedisJournal,
    TwilioSMSChannel,
    hide_number,
    retry_after,
)
from service.clock import ManualClock
from service.settings import load_settings
from tests.support.fake_twilio import ACCOUNT_SID, FakeTwilio, Fault
from tests.support.services import RedisServer, free_port, wait_for

TO = "+14155550123"
FROM = "+15005550006"
SERVICE = "MG" + "ab" * 16
PUBLIC = "https://tend.example"
TIMEOUT = 0.3  # seconds: the client's timeout, so that a fake that hangs costs little

MakeChannel = Callable[..., TwilioSMSChannel]


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server


@pytest.fixture
def make_channel(fake: FakeTwilio) -> Iterator[MakeChannel]:
    """Channels pointed at the fake; each is closed after the test."""
    made: list[TwilioSMSChannel] = []

    def make(**overrides: Any) -> TwilioSMSChannel:
        options: dict[str, Any] = {
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "from_": FROM,
            "public_base": PUBLIC,
            "api_base": fake.url,
            "timeout": TIMEOUT,
            "limiter": Unlimited(),
            "journal": MemoryJournal(),
        }
        options.update(overrides)
        channel = TwilioSMSChannel(**options)
        made.append(channel)
        return channel

    yield make
    for channel in made:
        channel.close()


@pytest.fixture
def channel(make_channel: MakeChannel) -> TwilioSMSChannel:
    return make_channel()


@pytest.fixture
def redis_client(redis_session: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_session.url)
    client.flushall()
    yield client
    client.close()


def sms(
    delivery_id: int | None, body: str = "Screens off now, Rae.", to: str = TO
) -> OutgoingMessage:
    return OutgoingMessage(delivery_id, "sms", to, body)


def refused(channel: TwilioSMSChannel, message: OutgoingMessage) -> ChannelError:
    with pytest.raises(ChannelError) as caught:
        channel.send(message)
    return caught.value


def assert_no_full_number(text: str, number: str = TO) -> None:
    digits = re.sub(r"\D", "", number)
    assert digits not in re.sub(r"\D", "", text.replace(hide_number(number), "")), text
    assert number not in text


# --- sending ---------------------------------------------------------------------------


def test_a_send_posts_what_twilio_expects_and_returns_the_message_sid(
    fake: FakeTwilio, channel: TwilioSMSChannel
) -> None:
    body = "It\u2019s time \u2014 \u201cscreens off\u201d,\u00a0Rae."
    receipt = channel.send(sms(1, body))

    [message] = fake.accepted()
    assert message.form == {
        "To": TO,
        "From": FROM,
        "Body": 'It\'s time - "screens off", Rae.',  # GSM-7 twins, not UCS-2
        "StatusCallback": f"{PUBLIC}/twilio/status",
    }
    assert receipt.provider_id == message.sid
    assert re.fullmatch(r"SM[0-9a-f]{32}", receipt.provider_id)
    assert receipt.segments == 1
    [request] = fake.seen()
    assert (request.method, request.path) == (
        "POST",
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
    )
    assert request.authorized


def test_segments_are_counted_on_the_cleaned_text(
    fake: FakeTwilio, channel: TwilioSMSChannel
) -> None:
    long_plain = "Wind down \u2019" + "x" * 150  # 161 characters once the quote is plain
    assert channel.send(sms(1, long_plain)).segments == 2
    assert channel.send(sms(2, "Sleep well \U0001f319")).segments == 1  # UCS-2, 13 units
    assert [m.resource["num_segments"] for m in fake.accepted()] == ["2", "1"]


def test_a_messaging_service_sid_is_sent_as_messaging_service_sid(
    fake: FakeTwilio, make_channel: MakeChannel
) -> None:
    receipt = make_channel(from_=SERVICE).send(sms(1))
    [message] = fake.accepted()
    assert message.form is not None
    assert message.form["MessagingServiceSid"] == SERVICE
    assert "From" not in message.form
    assert message.resource["status"] == "accepted"
    assert receipt.provider_id == message.sid


def test_from_settings_points_the_client_at_the_api_base(fake: FakeTwilio) -> None:
    settings = load_settings(
        twilio_account_sid=fake.account_sid,
        twilio_auth_token=fake.auth_token,
        twilio_from=FROM,
        twilio_api_base=fake.url,
        public_url="https://tend.example/",
    )
    channel = TwilioSMSChannel.from_settings(settings, rate=100)
    try:
        channel.send(sms(1))
    finally:
        channel.close()
    [message] = fake.accepted()
    assert message.status_callback == "https://tend.example/twilio/status"


# --- errors, classified ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "opted_out", "words"),
    [
        (21610, True, "+1********23 has opted out of SMS from this sender (replied STOP)"),
        (21211, False, "+1********23 is not a valid phone number (Twilio 21211"),
        (
            21614,
            False,
            "the number +1********23 cannot receive SMS (Twilio 21614: not a mobile number)",
        ),
        (21612, False, "Twilio cannot reach +1********23 by SMS from this sender (Twilio 21612"),
        (
            21606,
            False,
            "the sender in TEND_TWILIO_FROM cannot send SMS to +1********23 (Twilio 21606",
        ),
        (21408, False, "may not send SMS to the country of +1********23"),
    ],
)
def test_refusals_for_a_number_are_permanent_in_plain_words(
    fake: FakeTwilio, channel: TwilioSMSChannel, code: int, opted_out: bool, words: str
) -> None:
    fake.refuse_number(TO, code)
    error = refused(channel, sms(1))
    assert error.permanent
    assert error.opted_out is opted_out
    assert error.code == f"twilio-{code}"
    assert words in str(error)
    assert_no_full_number(str(error))
    assert fake.accepted() == []


def test_a_too_long_body_is_permanent_and_says_how_long(
    fake: FakeTwilio, channel: TwilioSMSChannel
) -> None:
    error = refused(channel, sms(1, "z" * 1700))
    assert error.permanent
    assert not error.opted_out
    assert "too long for SMS (1700 characters; Twilio takes at most 1600)" in str(error)
    assert "Twilio 21617" in str(error)


def test_wrong_credentials_are_permanent_and_name_the_settings(
    fake: FakeTwilio, make_channel: MakeChannel
) -> None:
    error = refused(make_channel(auth_token="not-the-token"), sms(1))
    assert error.permanent
    assert error.code == "twilio-20003"
    assert "TEND_TWILIO_AUTH_TOKEN" in str(error)
    [request] = fake.seen()
    assert not request.authorized


def test_an_unknown_4xx_is_permanent_with_twilios_words_and_no_number(
    fake: FakeTwilio, channel: TwilioSMSChannel
) -> None:
    fake.error(21666, message=f"The number {TO} did something new; and +442071838750 too")
    error = refused(channel, sms(1))
    assert error.permanent
    assert error.code == "twilio-21666"
    assert "Twilio refused the SMS to +1********23 (Twilio 21666: The number" in str(error)
    assert_no_full_number(str(error))
    assert_no_full_number(str(error), "+442071838750")


def test_problem_details_errors_are_caught_too(fake: FakeTwilio, channel: TwilioSMSChannel) -> None:
    """Twilio's newer APIs answer RFC 9457 problem details: TwilioServiceException."""
    fake.error(21614, problem=True)
    error = refused(channel, sms(1))
    assert error.permanent
    assert error.code == "twilio-21614"
    assert "cannot receive SMS" in str(error)


def test_a_queue_overflow_is_transient(fake: FakeTwilio, channel: TwilioSMSChannel) -> None:
    fake.error(21611)
    error = refused(channel, sms(1))
    assert not error.permanent
    assert "the sender's queue at Twilio is full; will retry (Twilio 21611" in str(error)


@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), (None, None)])
def test_429_is_transient_and_carries_retry_after(
    fake: FakeTwilio, channel: TwilioSMSChannel, header: str | None, expected: float | None
) -> None:
    fake.rate_limit(retry_after=header)
    error = refused(channel, sms(1))
    assert not error.permanent
    assert error.code == "twilio-20429"
    assert error.retry_after == expected
    assert "Twilio 20429" in str(error)
    assert fake.accepted() == []
    # A 429 is never processed by Twilio: the retry sends it, once.
    receipt = channel.send(sms(1))
    [message] = fake.accepted()
    assert receipt.provider_id == message.sid
    assert [r.method for r in fake.seen()] == ["POST", "POST"]  # no lookup needed


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert retry_after({"Retry-After": "12"}, now) == 12.0
    assert retry_after({"Retry-After": "Mon, 02 Mar 2026 12:00:30 GMT"}, now) == 30.0
    assert retry_after({"Retry-After": "Mon, 02 Mar 2026 11:00:00 GMT"}, now) == 0.0
    assert retry_after({"Retry-After": "soon"}, now) is None
    assert retry_after({}, now) is None


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_transient(fake: FakeTwilio, channel: TwilioSMSChannel, status: int) -> None:
    fake.server_error(status)
    error = refused(channel, sms(1))
    assert not error.permanent
    assert not error.opted_out
    assert f"Twilio answered HTTP {status}, a problem on Twilio's side; will retry" in str(error)


def test_a_5xx_without_a_twilio_body_is_transient(
    fake: FakeTwilio, channel: TwilioSMSChannel
) -> None:
    fake.fail_next(Fault(status=502))
    error = refused(channel, sms(1))
    assert not error.permanent
    assert error.code == "twilio-502"


def test_a_timeout_is_transient_and_says_so(fake: FakeTwilio, channel: TwilioSMSChannel) -> None:
    fake.hang()
    error = refused(channel, sms(1))
    assert not error.permanent
    assert error.code == "twilio-network"
    assert f"no answer within {TIMEOUT:g} s" in str(error)


def test_an_unreachable_twilio_is_transient(make_channel: MakeChannel) -> None:
    channel = make_channel(api_base=f"http://127.0.0.1:{free_port()}")
    error = refused(channel, sms(1))
    assert not error.permanent
    assert "could not connect" in str(error)


# --- never twice -----------------------------------------------------------------------


def test_a_5xx_after_twilio_took_the_message_is_not_sent_again(
    fake: FakeTwilio, channel: TwilioSMSChannel
) -> None:
    fake.server_error(500, accept=True)
    refused(channel, sms(1))
    [taken] = fake.accepted()

    receipt = channel.send(sms(1))  # the engine's retry

    assert fake.accepted() == [taken]
    assert receipt.provider_id == taken.sid
    assert [r.method for r in fake.seen()] == ["POST", "GET"]  # looked up, not resent


def test_a_5xx_before_twilio_took_the_message_is_sent_on_retry(
    fake: FakeTwilio, make_channel: MakeChannel
) -> None:
    clock = ManualClock(datetime.now(UTC))
    channel = make_channel(now=clock.now)
    fake.server_error(503)
    refused(channel, sms(1))
    # Too soon to be sure: Twilio could still stamp that POST until its window closes.
    early = refused(channel, sms(1))
    assert early.code == "twilio-lookup"
    assert not early.permanent
    assert early.retry_after is not None
    assert TIMEOUT + 29 < early.retry_after <= TIMEOUT + 30
    assert [r.method for r in fake.seen()] == ["POST", "GET"]
    clock.advance(seconds=early.retry_after + 0.01)
    receipt = channel.send(sms(1))
    [message] = fake.accepted()
    assert receipt.provider_id == message.sid
    assert [r.method for r in fake.seen()] == ["POST", "GET", "GET", "POST"]


def test_a_message_twilio_stamps_after_the_timeout_is_found_not_sent_again(
    fake: FakeTwilio, make_channel: MakeChannel
) -> None:
    """Twilio answers the POST late (after the client gave up) and only then creates the
    message: a retry that came before it did must not send a second one."""
    clock = ManualClock(datetime.now(UTC))
    channel = make_channel(now=clock.now)
    fake.hang(TIMEOUT * 3, accept=False)
    refused(channel, sms(1))  # timed out; Twilio has nothing yet
    assert fake.accepted() == []
    assert refused(channel, sms(1)).code == "twilio-lookup"  # not listed yet: wait
    wait_for(lambda: len(fake.accepted()) == 1, 10, "Twilio to take the late POST")
    clock.advance(seconds=TIMEOUT + 31)
    receipt = channel.send(sms(1))
    [message] = fake.accepted()
    assert receipt.provider_id == message.sid
    assert [r.method for r in fake.seen()].count("POST") == 1


def test_a_timeout_after_twilio_took_the_message_is_not_sent_again(
    fake: FakeTwilio, channel: TwilioSMSChannel
) -> None:
    fake.hang(accept=True)
    refused(channel, sms(1))
    receipt = channel.send(sms(1))
    [message] = fake.accepted()
    assert receipt.provider_id == message.sid


def test_a_retry_that_cannot_check_twilio_does_not_send(
    fake: FakeTwilio, channel: TwilioSMSChannel
) -> None:
    fake.server_error(500, accept=True)
    refused(channel, sms(1))
    fake.server_error(500, method="GET")
    error = refused(channel, sms(1))
    assert not error.permanent
    assert "could not ask Twilio whether an earlier attempt went out" in str(error)
    assert len(fake.accepted()) == 1
    assert [r.method for r in fake.seen()] == ["POST", "GET"]


# --- already_sent ----------------------------------------------------------------------


def test_already_sent_after_a_send_is_true_without_asking_twilio(
    fake: FakeTwilio, channel: TwilioSMSChannel
) -> None:
    channel.send(sms(5))
    assert channel.already_sent(5) is True
    assert [r.method for r in fake.seen()] == ["POST"]


def test_already_sent_when_the_answer_was_lost_is_true(
    fake: FakeTwilio, channel: TwilioSMSChannel
) -> None:
    fake.hang(accept=True)
    refused(channel, sms(5))
    assert channel.provider_id(5) is None  # not known until it is looked up
    assert channel.already_sent(5) is True
    assert channel.already_sent(5) is True  # remembered: no second lookup
    assert [r.method for r in fake.seen()] == ["POST", "GET"]
    [message] = fake.accepted()
    assert channel.provider_id(5) == message.sid
    assert channel.provider_id(6) is None


def test_already_sent_when_twilio_never_got_it_is_false(
    fake: FakeTwilio, channel: TwilioSMSChannel
) -> None:
    fake.server_error(500)
    refused(channel, sms(5))
    assert channel.already_sent(5) is False


def test_already_sent_ignores_the_same_text_sent_before_the_attempt(
    fake: FakeTwilio, channel: TwilioSMSChannel
) -> None:
    """Yesterday's identical reminder, or one to another number, is not this one."""
    at = datetime.now(UTC)
    text = "Screens off now, Rae."
    channel.journal.put(5, Attempt.of(TO, text, at))
    fake.add_message(TO, text, created=at - timedelta(days=1), sent=at - timedelta(days=1))
    fake.add_message("+14155550199", text, created=at)
    fake.add_message(TO, "Screens off now, Sam.", created=at)
    assert channel.already_sent(5) is False
    fake.add_message(TO, text, created=at + timedelta(seconds=1))
    assert channel.already_sent(5) is True


def test_already_sent_recognises_opt_out_wording_appended_by_twilio(
    fake: FakeTwilio, make_channel: MakeChannel
) -> None:
    channel = make_channel(from_=SERVICE)
    at = datetime.now(UTC)
    channel.journal.put(5, Attempt.of(TO, "Move!", at))
    fake.add_message(
        TO,
        "Move! Reply STOP to unsubscribe.",
        from_=None,
        messaging_service_sid=SERVICE,
        created=at,
    )
    assert channel.already_sent(5) is True


def test_already_sent_is_none_when_twilio_cannot_be_asked(
    fake: FakeTwilio, channel: TwilioSMSChannel
) -> None:
    channel.journal.put(5, Attempt.of(TO, "Move!", datetime.now(UTC)))
    fake.server_error(503, method="GET")
    assert channel.already_sent(5) is None


def test_already_sent_is_none_when_twilio_lists_no_bodies(
    fake: FakeTwilio, channel: TwilioSMSChannel
) -> None:
    at = datetime.now(UTC)
    channel.journal.put(5, Attempt.of(TO, "Move!", at))
    fake.add_message(TO, "", created=at)
    assert channel.already_sent(5) is None


def test_already_sent_without_a_journal_entry_in_memory_is_none(channel: TwilioSMSChannel) -> None:
    """In memory, no entry may mean the process that wrote it is gone: cannot tell."""
    assert channel.already_sent(5) is None


@pytest.mark.services
def test_already_sent_across_workers_through_redis(
    fake: FakeTwilio,
    make_channel: MakeChannel,
    redis_session: RedisServer,
    redis_client: redis.Redis,
) -> None:
    """A worker stopped mid-send; another process, with its own Redis connection, asks."""
    first = make_channel(journal=RedisJournal(redis_client))
    fake.hang(accept=True)
    refused(first, sms(5))  # as good as a worker that stopped while waiting for Twilio

    other_client = redis.Redis.from_url(redis_session.url)
    try:
        second = make_channel(journal=RedisJournal(other_client))
        assert second.already_sent(5) is True
        assert second.already_sent(6) is False  # never attempted, and the journal would say
        receipt = second.send(sms(5))
    finally:
        other_client.close()
    [message] = fake.accepted()
    assert receipt.provider_id == message.sid


def test_the_memory_journal_drops_entries_older_than_two_days() -> None:
    clock = [datetime(2026, 3, 2, 12, 0, tzinfo=UTC)]
    journal = MemoryJournal(now=lambda: clock[0])

    def put(delivery_id: int, hours: float) -> None:
        clock[0] += timedelta(hours=hours)
        journal.put(delivery_id, Attempt.of(TO, f"reminder {delivery_id}", clock[0]))

    put(1, 0)
    put(2, 1)
    put(1, 1)  # tried again: written anew, so now the newest
    put(3, 47)  # 2 days after the first write of 1, 1 day after 2
    assert [journal.get(i) is not None for i in (1, 2, 3)] == [True, True, True]
    put(4, 0.5)  # now 2 is over 2 days old, 1 (rewritten) is not
    assert [journal.get(i) is not None for i in (1, 2, 3, 4)] == [True, False, True, True]


@pytest.mark.services
def test_the_redis_journal_round_trips_and_expires(redis_client: redis.Redis) -> None:
    journal: AttemptJournal = RedisJournal(redis_client)
    attempt = Attempt.of(TO, "Move!", datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    journal.put(9, attempt)
    assert journal.get(9) == attempt
    assert 0 < int(redis_client.ttl("tend:sms-attempt:9")) <= 2 * 24 * 3600
    journal.forget(9)
    assert journal.get(9) is None


# --- the rate limit ----------------------------------------------------------------------


class FakeTime:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_sends_keep_to_the_senders_rate(fake: FakeTwilio, make_channel: MakeChannel) -> None:
    time = FakeTime()
    limiter = LocalRateLimiter(20, clock=time.clock, sleep=time.sleep)
    channel = make_channel(limiter=limiter)
    for delivery_id in range(3):
        channel.send(sms(delivery_id))
    assert time.sleeps == [0.05, 0.05]
    assert len(fake.accepted()) == 3


def test_a_send_that_would_wait_too_long_is_retried_later(
    fake: FakeTwilio, make_channel: MakeChannel
) -> None:
    time = FakeTime()
    limiter = LocalRateLimiter(1, max_wait=0.5, clock=time.clock, sleep=time.sleep)
    channel = make_channel(limiter=limiter)
    channel.send(sms(1))
    error = refused(channel, sms(2))
    assert not error.permanent
    assert error.code == "rate-limit"
    assert error.retry_after == pytest.approx(1.0)
    assert len(fake.accepted()) == 1
    assert time.sleeps == []


# --- the fake answers as Twilio does -------------------------------------------------------


def test_the_fake_lists_by_number_and_date_sent(
    fake: FakeTwilio, channel: TwilioSMSChannel
) -> None:
    day = datetime(2026, 3, 2, 21, 30, tzinfo=UTC)
    fake.add_message(TO, "one", created=day, sent=day)
    fake.add_message(TO, "two", created=day + timedelta(days=1), sent=day + timedelta(days=1))
    fake.add_message("+14155550199", "three", created=day, sent=day)
    fake.add_message(TO, "queued", created=day + timedelta(days=2))
    messages = channel.client.messages
    assert [m.body for m in messages.list(to=TO)] == ["queued", "two", "one"]
    assert [m.body for m in messages.list(to=TO, date_sent=day)] == ["one"]
    assert [m.body for m in messages.list(to=TO, date_sent_after=day + timedelta(hours=1))] == [
        "two"
    ]
    assert [m.body for m in messages.list(to=TO, limit=2, page_size=1)] == ["queued", "two"]
    # As Twilio's documentation writes the filter, by hand.
    response = requests.get(
        f"{fake.url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json?To=%2B14155550123"
        "&DateSent>=2026-03-03",
        auth=(fake.account_sid, fake.auth_token),
        timeout=5,
    )
    assert [m["body"] for m in response.json()["messages"]] == ["two"]


def test_a_retry_does_not_take_another_deliverys_identical_message_for_its_own(
    fake: FakeTwilio, make_channel: MakeChannel
) -> None:
    clock = ManualClock(datetime.now(UTC))
    channel = make_channel(now=clock.now)
    to = "+14155550123"
    first = channel.send(OutgoingMessage(1, "sms", to, "Time to check in!"))
    fake.server_error(500, accept=False)  # the second delivery's POST fails, nothing made
    with pytest.raises(ChannelError):
        channel.send(OutgoingMessage(2, "sms", to, "Time to check in!"))
    clock.advance(seconds=TIMEOUT + 31)  # the first attempt's window has closed
    second = channel.send(OutgoingMessage(2, "sms", to, "Time to check in!"))
    assert second.provider_id != first.provider_id
    assert len(fake.accepted()) == 2  # it was really sent, not mistaken for the first
