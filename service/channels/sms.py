"""SMS through Twilio: the real twilio client, pointed at TEND_TWILIO_API_BASE.

Beyond calling `messages.create`, this channel
- classifies Twilio's errors as Twilio documents them (retry later, give up, or the
  participant opted out), in words a coach understands and never with a whole number;
- never sends a reminder twice: every attempt is written to a journal before its POST, so
  that after a 5xx, a timeout or a worker that died mid-send, Twilio's own message list
  can say whether that attempt went out (see `TwilioSMSChannel.already_sent`);
- keeps to the sender's rate (a long code sends about one message a second), across
  processes when Redis is there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import redis
import requests
import structlog
from twilio.base import exceptions as twilio_exceptions  # type: ignore[import-untyped]
from twilio.http.http_client import TwilioHttpClient  # type: ignore[import-untyped]
from twilio.rest import Client  # type: ignore[import-untyped]

from service.channels.base import Channel, ChannelError, OutgoingMessage, Receipt
from service.channels.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter
from service.core.sms import clean_for_sms, count_segments
from service.core.states import Channel as ChannelName
from service.logging import mask
from service.settings import Settings

log = structlog.get_logger("tend.sms")

DEFAULT_API_BASE = "https://api.twilio.com"
DEFAULT_TIMEOUT = 10.0  # seconds, for connecting and for each read, on every request
DEFAULT_RATE = 1.0  # messages a second: a US long code
JOURNAL_TTL = timedelta(days=2)  # far longer than any retry of a reminder (grace: minutes)
# How far before our clock's reading of an attempt Twilio's `date_created` of it may be.
CLOCK_SKEW = timedelta(seconds=30)
LOOKUP_LIMIT = 100  # messages to a participant read when looking for an attempt

# The library's exceptions: TwilioRestException always; TwilioServiceException (RFC 9457
# problem details) only in newer 9.x releases.
TwilioException: type[Exception] = twilio_exceptions.TwilioException
TwilioRestException: type[Exception] = twilio_exceptions.TwilioRestException
_service_exception: type[Exception] | None = getattr(
    twilio_exceptions, "TwilioServiceException", None
)
TWILIO_ERRORS: tuple[type[Exception], ...] = (TwilioRestException,) + (
    (_service_exception,) if _service_exception is not None else ()
)

# The library logs every request and response at info, query strings included (To=...).
_http_log = logging.getLogger("tend.sms.http")
_http_log.setLevel(logging.WARNING)

_MESSAGING_SERVICE = re.compile(r"^MG[0-9a-fA-F]{32}$")


# --- the journal of attempts -----------------------------------------------------------


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST of a delivery's message, written down before it was made.

    The body is kept as a digest and a length: enough to recognise the message in
    Twilio's list (where Twilio may have appended opt-out wording to it) without keeping
    the text itself. `at` is the wall clock, as Twilio's `date_created` is.
    """

    to: str
    digest: str
    length: int
    at: datetime
    sid: str | None = None

    @classmethod
    def of(cls, to: str, text: str, at: datetime) -> Attempt:
        return cls(to=to, digest=_digest(text), length=len(text), at=at)

    def matches(self, body: str) -> bool:
        return len(body) >= self.length and _digest(body[: self.length]) == self.digest

    def dumps(self) -> str:
        return json.dumps({**asdict(self), "at": self.at.isoformat()})

    @classmethod
    def loads(cls, text: str) -> Attempt:
        data = json.loads(text)
        return cls(**{**data, "at": datetime.fromisoformat(data["at"])})


class AttemptJournal:
    """Where attempts are written before their POST. A `durable` journal outlives the
    process that wrote it, so there a missing entry proves no POST was made."""

    durable = False

    def put(self, delivery_id: int, attempt: Attempt) -> None:
        raise NotImplementedError

    def get(self, delivery_id: int) -> Attempt | None:
        raise NotImplementedError

    def forget(self, delivery_id: int) -> None:
        raise NotImplementedError

    def claim(self, sid: str, delivery_id: int) -> bool:
        """Note that message `sid` is this delivery's; False when another delivery has it
        already (two reminders with the same text to the same number, say)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; the default holds none."""


class MemoryJournal(AttemptJournal):
    """In this process only: right for one process (`tend run` without Redis), where a
    crash loses the journal along with the worker, and `already_sent` then says None."""

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self.now = now or (lambda: datetime.now(UTC))
        self._entries: dict[int, Attempt] = {}
        self._claims: dict[str, int] = {}
        self._lock = threading.Lock()

    def put(self, delivery_id: int, attempt: Attempt) -> None:
        with self._lock:
            # Entries stay in the order they were written: the oldest go first.
            self._entries.pop(delivery_id, None)
            self._entries[delivery_id] = attempt
            cutoff = self.now() - JOURNAL_TTL
            while len(self._entries) > 1:
                key, oldest = next(iter(self._entries.items()))
                if oldest.at >= cutoff:
                    break
                del self._entries[key]

    def get(self, delivery_id: int) -> Attempt | None:
        with self._lock:
            return self._entries.get(delivery_id)

    def forget(self, delivery_id: int) -> None:
        with self._lock:
            self._entries.pop(delivery_id, None)

    def claim(self, sid: str, delivery_id: int) -> bool:
        with self._lock:
            owner = self._claims.setdefault(sid, delivery_id)
            if len(self._claims) > 100_000:  # old claims outlive any lookup that needs them
                for key in list(self._claims)[:50_000]:
                    del self._claims[key]
            return owner == delivery_id


class RedisJournal(AttemptJournal):
    """In Redis, shared by every worker process, each entry expiring after JOURNAL_TTL."""

    durable = True

    def __init__(self, client: redis.Redis, *, prefix: str = "tend:sms-attempt:") -> None:
        self.client = client
        self.prefix = prefix

    def put(self, delivery_id: int, attempt: Attempt) -> None:
        self.client.set(self.prefix + str(delivery_id), attempt.dumps(), ex=JOURNAL_TTL)

    def get(self, delivery_id: int) -> Attempt | None:
        value: Any = self.client.get(self.prefix + str(delivery_id))
        if value is None:
            return None
        return Attempt.loads(value.decode() if isinstance(value, bytes) else str(value))

    def forget(self, delivery_id: int) -> None:
        self.client.delete(self.prefix + str(delivery_id))

    def claim(self, sid: str, delivery_id: int) -> bool:
        key = f"{self.prefix}sid:{sid}"
        self.client.set(key, str(delivery_id), nx=True, ex=JOURNAL_TTL)
        owner: Any = self.client.get(key)
        owner = owner.decode() if isinstance(owner, bytes) else owner
        return bool(owner == str(delivery_id))


# --- errors in plain words -------------------------------------------------------------


def hide_number(number: str) -> str:
    """A phone number as errors and logs may show it: `+1********23`."""
    shown = mask(number)
    if shown != number or not number:
        return shown
    # Not E.164 (a typo, say), which `mask` leaves alone: keep the last two characters.
    return "•" * max(len(number) - 2, 1) + number[-2:] if len(number) > 3 else "•••"


def _safe(text: str, to: str) -> str:
    """Twilio's own wording, with the recipient's number (and any other) hidden."""
    if to:
        text = text.replace(to, hide_number(to))
    return mask(text)


_OPTED_OUT = 21610
_RATE_LIMITED = 20429
_TRANSIENT_CODES = {
    _RATE_LIMITED: "Twilio is limiting this account's request rate",
    21611: "the sender's queue at Twilio is full",
}
# What each permanent refusal means for the coach. {to}: the hidden number.
_PERMANENT: dict[int, str] = {
    21211: "{to} is not a valid phone number (Twilio 21211: invalid 'To' number)",
    21614: "the number {to} cannot receive SMS (Twilio 21614: not a mobile number)",
    21612: (
        "Twilio cannot reach {to} by SMS from this sender "
        "(Twilio 21612: the 'To' number is not reachable via SMS)"
    ),
    21606: (
        "the sender in TEND_TWILIO_FROM cannot send SMS to {to} "
        "(Twilio 21606: 'From' number not message-capable for this destination)"
    ),
    21408: (
        "the Twilio account may not send SMS to the country of {to}; enable it in Twilio's "
        "messaging geo permissions (Twilio 21408: region not enabled)"
    ),
    21617: (
        "the message is too long for SMS ({length} characters; Twilio takes at most 1600) "
        "(Twilio 21617: body too long)"
    ),
    20003: (
        "Twilio refused the credentials; check TEND_TWILIO_ACCOUNT_SID and "
        "TEND_TWILIO_AUTH_TOKEN (Twilio 20003: authentication failed)"
    ),
    20404: (
        "Twilio does not know the account or sender in the settings "
        "(Twilio 20404: resource not found)"
    ),
    21608: (
        "a Twilio trial account can only text verified numbers, and {to} is not one "
        "(Twilio 21608: unverified number)"
    ),
    21659: "TEND_TWILIO_FROM is not a Twilio number of this account (Twilio 21659)",
    21660: "TEND_TWILIO_FROM belongs to another Twilio account (Twilio 21660)",
    21602: "the message is empty (Twilio 21602: body required)",
    21604: "the participant has no phone number (Twilio 21604: 'To' required)",
}


@dataclass(frozen=True, slots=True)
class _Refusal:
    """A Twilio error answer, whichever exception class carried it."""

    status: int
    code: int | None
    text: str
    method: str


def _refusal(exc: Exception) -> _Refusal:
    status = int(getattr(exc, "status", 0) or 0)
    raw_code = getattr(exc, "code", None)
    code = int(raw_code) if isinstance(raw_code, int | str) and str(raw_code).isdigit() else None
    if _service_exception is not None and isinstance(exc, _service_exception):  # RFC 9457
        detail = getattr(exc, "detail", None)
        text = str(getattr(exc, "title", "")) + (f": {detail}" if detail else "")
    else:
        text = str(getattr(exc, "msg", "") or "")
        # The library prefixes Twilio's message with its own ("Unable to create record: ").
        text = text.split(": ", 1)[1] if text.startswith("Unable to ") and ": " in text else text
    return _Refusal(status, code, text, str(getattr(exc, "method", "") or "").upper())


def retry_after(headers: Mapping[str, str] | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    value = (headers or {}).get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def classify(
    refusal: _Refusal, *, to: str, length: int, headers: Mapping[str, str] | None, now: datetime
) -> ChannelError:
    """Turn a Twilio error answer into a ChannelError that says what to do next."""
    code, status = refusal.code, refusal.status
    shown = hide_number(to)
    said = _safe(refusal.text, to)
    if status == 429 or code == _RATE_LIMITED:
        wait = retry_after(headers, now)
        when = f" in {wait:.0f} s" if wait is not None else ""
        return ChannelError(
            f"Twilio is limiting the request rate; will retry{when} (Twilio 20429: too many "
            "requests)",
            permanent=False,
            code="twilio-20429",
            retry_after=wait,
        )
    if status >= 500:
        return ChannelError(
            f"Twilio answered HTTP {status}, a problem on Twilio's side; will retry, first "
            f"checking that the message did not go out (Twilio {code or status}: {said})",
            permanent=False,
            code=f"twilio-{code or status}",
            retry_after=retry_after(headers, now),
        )
    if code == _OPTED_OUT:
        return ChannelError(
            f"{shown} has opted out of SMS from this sender (replied STOP); no SMS go to "
            "them until they text START (Twilio 21610: unsubscribed recipient)",
            permanent=True,
            code="twilio-21610",
            opted_out=True,
        )
    if code in _TRANSIENT_CODES:
        return ChannelError(
            f"{_TRANSIENT_CODES[code]}; will retry (Twilio {code}: {said})",
            permanent=False,
            code=f"twilio-{code}",
            retry_after=retry_after(headers, now),
        )
    if code in _PERMANENT:
        return ChannelError(
            _PERMANENT[code].format(to=shown, length=length), permanent=True, code=f"twilio-{code}"
        )
    if status == 401:
        return ChannelError(_PERMANENT[20003], permanent=True, code="twilio-20003")
    # Any other 4xx: Twilio looked at this request and will not take it as it is.
    return ChannelError(
        f"Twilio refused the SMS to {shown} (Twilio {code or status}: {said or 'no reason given'})",
        permanent=True,
        code=f"twilio-{code or status}",
    )


# --- the channel -----------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TwilioSMSChannel(Channel):
    """Sends SMS with the twilio library. See the module docstring for what it adds."""

    name = ChannelName.SMS

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_: str,
        public_base: str,
        api_base: str = DEFAULT_API_BASE,
        timeout: float = DEFAULT_TIMEOUT,
        limiter: RateLimiter | None = None,
        journal: AttemptJournal | None = None,
        now: Callable[[], datetime] = _utcnow,
        owned: Iterable[Any] = (),
    ) -> None:
        self.from_ = from_
        self.messaging_service = bool(_MESSAGING_SERVICE.match(from_))
        self.status_callback = f"{public_base.rstrip('/')}/twilio/status"
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self.limiter = limiter or LocalRateLimiter(DEFAULT_RATE)
        self.journal = journal or MemoryJournal()
        # Wall clock, not Tend's (possibly simulated) clock: attempts are compared with
        # the times Twilio stamps on its messages.
        self.now = now
        self._owned = list(owned)
        self._local = threading.local()

        # A response hook keeps each thread's last response headers: the library's
        # exceptions drop them, and a 429's Retry-After is one of them. One timeout
        # (seconds) bounds connecting and each read; requests retries nothing by default,
        # so a POST is never silently repeated.
        self.http = TwilioHttpClient(
            timeout=timeout,
            logger=_http_log,
            request_hooks={"response": [self._remember_headers]},
        )
        self.client = Client(account_sid, auth_token, http_client=self.http)
        # Tend's settings are the whole configuration: no TWILIO_EDGE or TWILIO_REGION
        # from the environment rewriting the host (a regional host goes in the base).
        self.client.edge = None
        self.client.region = None
        # Every API 2010 call (Messages included) is built on this domain's base URL.
        self.client.api.base_url = self.api_base

    @classmethod
    def from_settings(
        cls, settings: Settings, *, rate: float = DEFAULT_RATE, timeout: float = DEFAULT_TIMEOUT
    ) -> TwilioSMSChannel:
        """The channel Tend runs with: with TEND_REDIS_URL set, the rate limit and the
        journal live in Redis and hold across worker processes; without, in the process."""
        sid, token, from_ = (
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_from,
        )
        if sid is None or token is None or from_ is None:
            raise ValueError("Twilio is not configured (TEND_TWILIO_ACCOUNT_SID, ...)")
        limiter: RateLimiter
        journal: AttemptJournal
        owned: list[Any] = []
        if settings.redis_url:
            client = redis.Redis.from_url(settings.redis_url, socket_timeout=timeout)
            owned.append(client)
            limiter = RedisRateLimiter(client, rate)
            journal = RedisJournal(client)
        else:
            limiter, journal = LocalRateLimiter(rate), MemoryJournal()
        return cls(
            account_sid=sid,
            auth_token=token.get_secret_value(),
            from_=from_,
            public_base=settings.public_base,
            api_base=str(settings.twilio_api_base),
            timeout=timeout,
            limiter=limiter,
            journal=journal,
            owned=owned,
        )

    # sending

    def send(self, message: OutgoingMessage) -> Receipt:
        text = clean_for_sms(message.body)
        segments = count_segments(text).count
        delivery_id = message.delivery_id
        if delivery_id is not None:
            earlier = self._recall(delivery_id)
            if earlier is not None:
                # An earlier attempt ended without a clear answer (a 5xx, a timeout, a
                # worker that stopped): if Twilio has it, it went out; do not send again.
                sid = earlier.sid or self._find(earlier, delivery_id)
                if sid is not None:
                    log.warning(
                        "an earlier attempt had reached Twilio; not sending again",
                        delivery=delivery_id,
                        provider_id=sid,
                    )
                    return Receipt(provider_id=sid, segments=segments)
                # Not in the list yet; but Twilio may still be working on that POST, and
                # stamp it at any moment until the end of its window: look again then.
                wait = (self._window(earlier)[1] - self.now()).total_seconds()
                if wait > 0:
                    raise ChannelError(
                        f"an earlier attempt is not in Twilio's list yet, but could still "
                        f"appear there for {wait:.0f} s; will look again then",
                        permanent=False,
                        code="twilio-lookup",
                        retry_after=wait,
                    )
        self.limiter.acquire(f"sms:{self.from_}")
        attempt = Attempt.of(message.to, text, self.now())
        if delivery_id is not None:
            # Written before the POST: without an entry, no POST was made (see already_sent).
            self._write(delivery_id, attempt)
        sender = {"messaging_service_sid" if self.messaging_service else "from_": self.from_}
        self._local.headers = None
        try:
            created = self.client.messages.create(
                to=message.to, body=text, status_callback=self.status_callback, **sender
            )
        except TWILIO_ERRORS as exc:
            refusal = _refusal(exc)
            error = classify(
                refusal,
                to=message.to,
                length=len(text),
                headers=self._local.headers,
                now=self.now(),
            )
            # A 4xx (429 included) means Twilio did not create the message: forget the
            # attempt. After a 5xx it may have (the answer failed, not the send), so the
            # entry stays and the retry first asks Twilio (`_find`) instead of repeating.
            if delivery_id is not None and refusal.status < 500:
                self._forget(delivery_id)
            raise error from None
        except requests.RequestException as exc:
            # Kept in the journal too: a read timeout may come after Twilio took the POST.
            raise self._unreachable(exc) from None
        except TwilioException as exc:  # anything else the library raises: unclear
            raise ChannelError(
                f"the twilio library failed ({type(exc).__name__}); will retry, first checking "
                "that the message did not go out",
                permanent=False,
                code="twilio-unknown",
            ) from None
        sid = str(created.sid)
        if delivery_id is not None:
            try:
                self.journal.claim(sid, delivery_id)
                self.journal.put(delivery_id, replace(attempt, sid=sid))
            except redis.RedisError:  # the entry without its SID: a lookup still finds it
                log.warning("could not note the SID of a sent SMS", delivery=delivery_id)
        return Receipt(provider_id=sid, segments=segments)

    def already_sent(self, delivery_id: int) -> bool | None:
        """Did this delivery's SMS go out before its worker stopped?

        The journal holds each attempt (number, text digest, time) from just before its
        POST. No entry: no POST was made (False), when the journal outlives processes
        (Redis); in memory alone a crash loses it (None). An entry with a SID: sent. An
        entry without: ask Twilio's message list for a message to that number, created
        since the attempt, with that text (True or False). When Twilio cannot be asked,
        None: the engine then fails the delivery rather than risk a duplicate.

        (The status-callback URL is no marker: Twilio does not return it with a message.)
        The engine asks only once a send's lease has run out (minutes), long after the
        attempt's window in Twilio's list has closed, so a message not listed then
        will not appear later.
        """
        try:
            attempt = self.journal.get(delivery_id)
        except redis.RedisError:
            return None
        if attempt is None:
            return False if self.journal.durable else None
        if attempt.sid is not None:
            return True
        try:
            sid = self._find(attempt, delivery_id)
        except ChannelError as exc:
            log.warning("cannot tell whether an SMS went out", delivery=delivery_id, error=str(exc))
            return None
        if sid is None:
            return False
        with contextlib.suppress(redis.RedisError):
            self.journal.put(delivery_id, replace(attempt, sid=sid))
        return True

    def provider_id(self, delivery_id: int) -> str | None:
        """The SID `already_sent` found or the send noted, from the journal."""
        try:
            attempt = self.journal.get(delivery_id)
        except redis.RedisError:
            return None
        return attempt.sid if attempt is not None else None

    def close(self) -> None:
        session = getattr(self.http, "session", None)
        if session is not None:
            session.close()
        self.limiter.close()
        self.journal.close()
        for resource in self._owned:
            resource.close()

    # helpers

    def _remember_headers(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._local.headers = response.headers

    def _find(self, attempt: Attempt, delivery_id: int) -> str | None:
        """The SID of the message `attempt` made, when Twilio lists one; raises a
        transient ChannelError when Twilio cannot be asked or its list cannot tell.

        Twilio lists a number's messages newest first, each with its body and
        `date_created`. The `DateSent` filter is not used: a message still queued at
        Twilio has no `date_sent` yet, and would be missed.
        """
        query: dict[str, Any] = {"to": attempt.to, "limit": LOOKUP_LIMIT, "page_size": 50}
        if not self.messaging_service:
            query["from_"] = self.from_
        try:
            listed = self.client.messages.list(**query)
        except TwilioException as exc:
            # A page that fails raises the base TwilioException, with the response in args.
            response = exc.args[1] if len(exc.args) > 1 else None
            status = getattr(exc, "status", None) or getattr(response, "status_code", "?")
            raise ChannelError(
                f"could not ask Twilio whether an earlier attempt went out (HTTP {status}); "
                "will retry",
                permanent=False,
                code="twilio-lookup",
            ) from None
        except requests.RequestException as exc:
            raise self._unreachable(exc) from None
        since, until = self._window(attempt)
        unreadable = False
        for found in listed:
            created = found.date_created
            if found.direction not in (None, "outbound-api") or created is None:
                continue
            if not since <= created <= until:
                continue
            if self.messaging_service and found.messaging_service_sid not in (None, self.from_):
                continue
            body = found.body or ""
            if not body:  # a Messaging Service that discards message bodies
                unreadable = True
            elif attempt.matches(body) and self.journal.claim(str(found.sid), delivery_id):
                # The same text to the same number from another delivery is not this one.
                return str(found.sid)
        if unreadable:
            raise ChannelError(
                "Twilio lists messages to this number without their text, so an earlier "
                "attempt cannot be recognised",
                permanent=False,
                code="twilio-lookup",
            )
        return None

    def _window(self, attempt: Attempt) -> tuple[datetime, datetime]:
        """When Twilio can have stamped the message of `attempt`: it stamps a message as
        it accepts the POST, between the attempt's start and the end of its timeout, give
        or take the two clocks' difference."""
        return (
            attempt.at - CLOCK_SKEW,
            attempt.at + timedelta(seconds=self.timeout) + CLOCK_SKEW,
        )

    def _unreachable(self, exc: requests.RequestException) -> ChannelError:
        if isinstance(exc, requests.Timeout):
            what = f"no answer within {self.timeout:g} s"
        elif isinstance(exc, requests.ConnectionError):
            what = "could not connect"
        else:
            what = type(exc).__name__
        return ChannelError(
            f"could not reach Twilio at {self.api_base}: {what}; will retry",
            permanent=False,
            code="twilio-network",
        )

    def _recall(self, delivery_id: int) -> Attempt | None:
        try:
            return self.journal.get(delivery_id)
        except redis.RedisError as exc:
            raise _journal_down(exc) from None

    def _write(self, delivery_id: int, attempt: Attempt) -> None:
        try:
            self.journal.put(delivery_id, attempt)
        except redis.RedisError as exc:
            raise _journal_down(exc) from None

    def _forget(self, delivery_id: int) -> None:
        # A failure is harmless: the retry looks the attempt up, and finds none.
        with contextlib.suppress(redis.RedisError):
            self.journal.forget(delivery_id)


def _journal_down(exc: Exception) -> ChannelError:
    return ChannelError(
        f"cannot note the SMS attempt in Redis ({type(exc).__name__}); not sending without "
        "it; will retry",
        permanent=False,
        code="journal",
    )
