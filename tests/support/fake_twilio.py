"""A fake of Twilio's Messages API (API 2010) on a free loopback port, served from a thread.

The real twilio library talks to it as it would to api.twilio.com. It answers as Twilio
does, as far as Tend uses it:

- `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (form: To, From or
  MessagingServiceSid, Body, StatusCallback) creates a message: 201 with the Message
  resource (`sid` "SM" + 32 hex, `status` queued, or accepted through a Messaging
  Service, `num_segments`, RFC 2822 dates, `date_sent` null until sent);
- `GET .../Messages.json` lists messages, newest first, filtered by To, From and
  DateSent (`DateSent=`, `DateSent<=`, `DateSent>=`: on, on or before, on or after),
  paged with PageSize and Page; `GET .../Messages/{Sid}.json` fetches one;
- HTTP basic auth with the account SID and auth token, else 401 with error 20003;
- Twilio's error bodies: `{"code", "message", "more_info", "status"}`.

Tests program faults for the next requests: a Twilio error code, 429 with Retry-After,
500 or 503, or an answer that never comes in time (a timeout), each optionally after
accepting the message, as when Twilio took the POST but its answer was lost.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from service.core.sms import count_segments

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-auth-token-" + "0" * 16
API_VERSION = "2010-04-01"
MORE_INFO = "https://www.twilio.com/docs/errors/{code}"

# Twilio's HTTP status and message for the error codes the fake can answer with. The
# messages are Twilio's, full phone numbers included: the channel must hide them.
ERRORS: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource {path} was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    20503: (503, "Service Unavailable"),
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21408: (
        400,
        "Permission to send an SMS has not been enabled for the region indicated by the "
        "'To' number: {to}.",
    ),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21606: (
        400,
        "The 'From' phone number provided ({from_}) is not a valid message-capable Twilio "
        "phone number for this destination.",
    ),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21611: (400, "This 'From' number has exceeded the maximum number of queued messages"),
    21612: (
        400,
        "The 'To' phone number: {to}, is not currently reachable using the 'From' phone "
        "number: {from_} via SMS.",
    ),
    21614: (400, "'To' number {to} is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}
_E164 = re.compile(r"^\+[1-9]\d{7,14}$")
_LIST = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages\.json$")
_ONE = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages/([^/]+)\.json$")


def rfc2822(moment: datetime) -> str:
    """Twilio's date format: `Tue, 03 Mar 2026 02:30:00 +0000`."""
    return format_datetime(moment.astimezone(UTC))


def error_body(code: int, status: int | None = None, message: str | None = None) -> dict[str, Any]:
    known_status, template = ERRORS.get(code, (400, "Error {code}"))
    body: dict[str, Any] = {
        "code": code,
        "message": message if message is not None else template,
        "more_info": MORE_INFO.format(code=code),
        "status": status or known_status,
    }
    if code == 20003:
        body["detail"] = "Your AccountSid or AuthToken was incorrect."
    return body


@dataclass
class Fault:
    """How the fake answers one coming request (of `method`, or any when None).

    `code`: a Twilio error code, answered with its real body; without one, `status`
    with a body that is not JSON (a proxy's 502, say). `delay`: answer only after this many seconds
    (longer than the client's timeout: a timeout). `accept`: create the message first,
    so that Twilio has it although the client hears an error or nothing.
    """

    status: int = 500
    code: int | None = None
    message: str | None = None
    retry_after: str | None = None
    delay: float = 0.0
    accept: bool = False
    method: str | None = "POST"
    problem: bool = False  # answer as RFC 9457 problem details (Twilio's newer APIs)


@dataclass(frozen=True)
class Request:
    """A request as the fake saw it: `params` holds the query (GET) or the form (POST)."""

    method: str
    path: str
    params: dict[str, str]
    authorized: bool


@dataclass
class Message:
    """A message the fake holds: `form` is what the client POSTed (None when a test
    added the message), since Twilio's resource does not return StatusCallback."""

    resource: dict[str, Any]
    form: dict[str, str] | None = None

    @property
    def sid(self) -> str:
        return str(self.resource["sid"])

    @property
    def status_callback(self) -> str | None:
        return (self.form or {}).get("StatusCallback")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out has gone by the time a delayed answer is written.
        pass


class FakeTwilio:
    """The fake. `start()` (or `with`) serves it; `url` is what the client's base URL
    becomes. `now` is the clock stamped on messages."""

    def __init__(
        self,
        *,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.now = now or (lambda: datetime.now(UTC))
        # Seconds between creating a POSTed message and answering: a worker killed in
        # that gap leaves a message Twilio has and the worker never heard of.
        self.latency = 0.0
        self.messages: list[Message] = []
        self.requests: list[Request] = []
        self.refused_numbers: dict[str, int] = {}
        self._faults: list[Fault] = []
        self._changed = threading.Condition()
        self._release = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # running

    def start(self) -> FakeTwilio:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},  # how soon close() takes effect
            name="fake-twilio",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._release.set()  # answer anything held back by a delay now
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # programming it

    def fail_next(self, fault: Fault, times: int = 1) -> None:
        with self._changed:
            self._faults.extend([fault] * times)

    def error(
        self,
        code: int,
        *,
        message: str | None = None,
        problem: bool = False,
        times: int = 1,
        method: str | None = "POST",
    ) -> None:
        """The next request(s) answer Twilio error `code` with its status and body."""
        status = ERRORS.get(code, (400, ""))[0]
        fault = Fault(status=status, code=code, message=message, method=method, problem=problem)
        self.fail_next(fault, times)

    def rate_limit(self, *, retry_after: str | None = "3", times: int = 1) -> None:
        self.fail_next(Fault(status=429, code=20429, retry_after=retry_after), times)

    def server_error(
        self,
        status: int = 500,
        *,
        accept: bool = False,
        times: int = 1,
        method: str | None = "POST",
    ) -> None:
        code = 20503 if status == 503 else 20500
        self.fail_next(Fault(status=status, code=code, accept=accept, method=method), times)

    def hang(self, seconds: float = 30.0, *, accept: bool = False, times: int = 1) -> None:
        """Answer only after `seconds` (or at close): longer than the client waits."""
        self.fail_next(Fault(status=201, delay=seconds, accept=accept), times)

    def refuse_number(self, to: str, code: int) -> None:
        """Every message to `to` is refused with `code` (a landline: 21614, say)."""
        self.refused_numbers[to] = code

    def add_message(
        self,
        to: str,
        body: str,
        *,
        from_: str | None = "+15005550006",
        created: datetime | None = None,
        sent: datetime | None = None,
        messaging_service_sid: str | None = None,
        direction: str = "outbound-api",
    ) -> Message:
        """A message as if sent earlier (by someone else, or an older reminder)."""
        message = Message(
            self._resource(to, from_, messaging_service_sid, body, created or self.now(), direction)
        )
        if sent is not None:
            message.resource.update(status="sent", date_sent=rfc2822(sent))
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()
        return message

    def mark_sent(self, at: datetime | None = None) -> None:
        """Every queued message goes out: status sent, with its date_sent."""
        with self._changed:
            for message in self.messages:
                if message.resource["date_sent"] is None:
                    message.resource.update(status="sent", date_sent=rfc2822(at or self.now()))

    # looking at it

    def accepted(self) -> list[Message]:
        """The messages created through the API, oldest first."""
        with self._changed:
            return [m for m in self.messages if m.form is not None]

    def seen(self, method: str | None = None) -> list[Request]:
        with self._changed:
            return [r for r in self.requests if method is None or r.method == method]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[Request]:
        """Wait until the fake has seen `count` requests; return them."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"the fake saw {len(self.requests)} requests, not {count}")
            return list(self.requests)

    # answering (called from the handler's thread)

    def _record(self, request: Request) -> Fault | None:
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()
            if not request.authorized:
                return None
            for index, fault in enumerate(self._faults):
                if fault.method is None or fault.method == request.method:
                    return self._faults.pop(index)
            return None

    def _resource(
        self,
        to: str,
        from_: str | None,
        service: str | None,
        body: str,
        created: datetime,
        direction: str = "outbound-api",
    ) -> dict[str, Any]:
        sid = "SM" + secrets.token_hex(16)
        stamp = rfc2822(created)
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": stamp,
            "date_sent": None,
            "date_updated": stamp,
            "direction": direction,
            "error_code": None,
            "error_message": None,
            # Through a Messaging Service, Twilio picks the sender (and counts the
            # segments) after answering: `from` is null and `num_segments` "0" at first.
            "from": from_,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": "0" if service and not from_ else str(count_segments(body).count),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service and not from_ else "queued",
            "subresource_uris": {
                "media": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}/Media.json"
            },
            "to": to,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json",
        }

    def _create(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Validate a POSTed message as Twilio does; create it or answer the error."""
        to, body = form.get("To", ""), form.get("Body", "")
        from_, service = form.get("From"), form.get("MessagingServiceSid")
        values = {"to": to, "from_": from_ or service or ""}
        refusal: int | None = None
        if not to:
            refusal = 21604
        elif not (from_ or service):
            refusal = 21603
        elif not body:
            refusal = 21602
        elif to in self.refused_numbers:
            refusal = self.refused_numbers[to]
        elif not _E164.match(to):
            refusal = 21211
        elif len(body) > 1600:
            refusal = 21617
        if refusal is not None:
            status, template = ERRORS.get(refusal, (400, "Error {code}"))
            return status, error_body(refusal, status, template.format(code=refusal, **values))
        message = Message(self._resource(to, from_, service, body, self.now()), dict(form))
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()
        return 201, message.resource

    def _list(self, params: dict[str, str], path: str) -> dict[str, Any]:
        with self._changed:
            found = [m.resource for m in self.messages if _matches(m.resource, params)]
        # Newest first: by date_sent, messages not yet sent (no date_sent) ahead.
        found.sort(
            key=lambda r: (r["date_sent"] is None, _parse(r["date_sent"] or r["date_created"])),
            reverse=True,
        )
        size = min(int(params.get("PageSize", "50")), 1000)
        page = int(params.get("Page", "0"))
        chunk = found[page * size : (page + 1) * size]
        base = {k: v for k, v in params.items() if k not in ("Page", "PageToken")}

        def uri(number: int) -> str:
            token = {"PageToken": f"PA{number}"} if number else {}
            return f"{path}?{urlencode({**base, 'Page': number, **token})}"

        more = (page + 1) * size < len(found)
        return {
            "messages": chunk,
            "page": page,
            "page_size": size,
            "start": page * size,
            "end": page * size + max(len(chunk) - 1, 0),
            "uri": uri(page),
            "first_page_uri": uri(0),
            "next_page_uri": uri(page + 1) if more else None,
            "previous_page_uri": uri(page - 1) if page else None,
        }

    def _fetch(self, sid: str) -> dict[str, Any] | None:
        with self._changed:
            return next((m.resource for m in self.messages if m.sid == sid), None)


def _parse(stamp: str) -> datetime:
    return parsedate_to_datetime(stamp)


def _bound(value: str) -> tuple[datetime, bool]:
    """A DateSent value: the moment, and whether it was a date without a time."""
    value = value.removeprefix("=")  # `DateSent>==...`, should a client write it so
    if len(value) == 10:
        return datetime.combine(date.fromisoformat(value), time(), UTC), True
    return datetime.fromisoformat(value.replace("Z", "+00:00")), False


def _matches(resource: dict[str, Any], params: dict[str, str]) -> bool:
    """Twilio's filters: `DateSent>=2026-03-02` arrives as key `DateSent>` (the query
    splits at its first `=`), and means on or after that date; `DateSent<` on or before."""
    if "To" in params and resource["to"] != params["To"]:
        return False
    if "From" in params and resource["from"] != params["From"]:
        return False
    filters = {k: v for k, v in params.items() if k in ("DateSent", "DateSent<", "DateSent>")}
    if not filters:
        return True
    if resource["date_sent"] is None:  # a message not sent yet has no DateSent to match
        return False
    sent = _parse(resource["date_sent"])
    for key, value in filters.items():
        moment, whole_day = _bound(value)
        left: Any = sent.date() if whole_day else sent
        right: Any = moment.date() if whole_day else moment
        if key == "DateSent":
            ok = sent.date() == moment.date()
        elif key == "DateSent<":
            ok = left <= right
        else:
            ok = left >= right
        if not ok:
            return False
    return True


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTwilio
    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle keep-alive connection is closed after this

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        params = _single(parse_qs(parts.query, keep_blank_values=True))
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8")
            params = _single(parse_qs(raw, keep_blank_values=True))
        account = next(
            (m.group(1) for m in (_LIST.match(parts.path), _ONE.match(parts.path)) if m), None
        )
        authorized = self._authorized() and account in (None, fake.account_sid)
        fault = fake._record(Request(method, parts.path, params, authorized))
        if not authorized:
            self._json(401, error_body(20003), {"WWW-Authenticate": 'Basic realm="Twilio API"'})
            return
        if fault is not None:
            self._answer_fault(fault, method, params, parts.path)
            return
        self._answer(method, params, parts.path)

    def _answer(self, method: str, params: dict[str, str], path: str) -> None:
        fake = self.fake
        if _LIST.match(path) and method == "POST":
            created = fake._create(params)
            if fake.latency:
                fake._release.wait(fake.latency)
            self._json(*created)
        elif _LIST.match(path) and method == "GET":
            self._json(200, fake._list(params, path))
        elif (one := _ONE.match(path)) and method == "GET":
            found = fake._fetch(one.group(2))
            if found is None:
                self._json(
                    404, error_body(20404, 404, f"The requested resource {path} was not found")
                )
            else:
                self._json(200, found)
        else:
            self._json(404, error_body(20404, 404, f"The requested resource {path} was not found"))

    def _answer_fault(self, fault: Fault, method: str, params: dict[str, str], path: str) -> None:
        fake = self.fake
        created: tuple[int, dict[str, Any]] | None = None
        if fault.accept and method == "POST" and _LIST.match(path):
            created = fake._create(params)
        if fault.delay:
            fake._release.wait(fault.delay)
        if fault.code is None and fault.status < 400:  # a slow but good answer
            if created is not None:
                self._json(*created)
            else:
                self._answer(method, params, path)
            return
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        if fault.code is None:
            self._json(fault.status, b"<html><body>Bad gateway</body></html>", headers)
            return
        values = {"to": params.get("To", ""), "from_": params.get("From", ""), "path": path}
        _, template = ERRORS.get(fault.code, (fault.status, "Error {code}"))
        message = fault.message or template.format(code=fault.code, **values)
        if fault.problem:
            problem = {
                "type": MORE_INFO.format(code=fault.code),
                "title": message,
                "status": fault.status,
                "code": fault.code,
                "detail": f"{message} (request to {path})",
            }
            self._json(fault.status, problem, headers)
            return
        self._json(fault.status, error_body(fault.code, fault.status, message), headers)

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (user, password) == (self.fake.account_sid, self.fake.auth_token)

    def _json(
        self, status: int, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
    ) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        kind = "text/html" if isinstance(body, bytes) else "application/json; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("Twilio-Request-Id", "RQ" + secrets.token_hex(16))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)


def _single(values: dict[str, list[str]]) -> dict[str, str]:
    return {key: items[-1] for key, items in values.items()}
