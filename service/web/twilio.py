"""Twilio's webhooks: `POST /twilio/sms` (a participant's text) and `POST /twilio/status`
(delivery reports for sent messages).

Every request must carry a valid `X-Twilio-Signature`, computed by Twilio over the URL
it called (built here from TEND_PUBLIC_URL, so that a proxy in front changes nothing)
and every form parameter, repeated ones included; anything else gets 403. A report for
a message Tend does not know still gets 200, or Twilio would keep retrying it.

An inbound text is answered with TwiML: one `<Message>` when there is something to say,
an empty `<Response/>` when there is not (an unknown sender's STOP, anything from
someone who opted out). The work is in `service.actions.inbound_sms`.
"""

from __future__ import annotations

import hmac
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator, add_port  # type: ignore[import-untyped]
from twilio.twiml.messaging_response import MessagingResponse  # type: ignore[import-untyped]

from service.actions.inbound_sms import handle_sms
from service.core.states import DeliveryState
from service.runtime import Runtime
from service.storage import deliveries as delivery_rows
from service.storage.db import transaction
from service.web.forms import TooLarge, has_control, read_capped, without_control

router = APIRouter(tags=["twilio"])

MAX_BODY = 64 * 1024  # Twilio's forms are a few hundred bytes

# Twilio's SIDs are two letters and 32 hex digits. Any id of letters, digits, '_' and '-'
# that fits the column is let through; anything else is refused before it reaches the
# database.
_SID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_SENDER = 64  # an E.164 number, a short code, or a channel address such as whatsapp:+1...
# Twilio's MessageStatus, as delivery states. queued, accepted and sending say nothing
# new: the delivery is `sent` once Twilio took it.
STATUS = {
    "sent": DeliveryState.SENT,
    "delivered": DeliveryState.DELIVERED,
    "undelivered": DeliveryState.FAILED,
    "failed": DeliveryState.FAILED,
}


class _Form(dict[str, list[str]]):
    """Form parameters with every value of a repeated key, as the validator wants them."""

    def getall(self, name: str) -> list[str]:
        return self[name]


async def signed_form(request: Request, runtime: Runtime) -> _Form | None:
    """The request's form when Twilio signed it, or None."""
    token = runtime.settings.twilio_auth_token
    signature = request.headers.get("x-twilio-signature")
    if token is None or not signature:
        return None
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        return None
    try:
        body = await read_capped(request, MAX_BODY)
    except TooLarge:
        return None
    form = _Form()
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return None
    for key, value in pairs:
        form.setdefault(key, []).append(value)
    url = f"{runtime.settings.public_base}{request.url.path}"
    if request.url.query:
        url += f"?{request.url.query}"
    validator = RequestValidator(token.get_secret_value())
    # The twilio library also accepts the URL without its port, or with :443 added, for
    # proxies that change it. A port in TEND_PUBLIC_URL is what Twilio calls: only that.
    candidates = [url] if urlsplit(url).port else [url, add_port(urlsplit(url))]
    valid = any(
        hmac.compare_digest(
            validator.compute_signature(candidate, form).encode(), signature.encode()
        )
        for candidate in candidates
    )
    return form if valid else None


def _sid(form: _Form) -> str | None:
    """The message's SID: MessageSid, or SmsSid as older requests name it."""
    return _first(form, "MessageSid") or _first(form, "SmsSid")


@router.post("/twilio/sms", include_in_schema=False)
async def inbound_sms(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    form = await signed_form(request, runtime)
    if form is None:
        return Response(status_code=403)
    sid = _sid(form)
    sender = _first(form, "From")
    if not sid or not sender:
        return Response("MessageSid and From are required\n", status_code=400)
    if not _SID.fullmatch(sid):
        return Response("MessageSid is not a message SID\n", status_code=400)
    if len(sender) > MAX_SENDER or has_control(sender):
        return Response("From is not an address a text can come from\n", status_code=400)
    body = without_control(_first(form, "Body") or "")
    answer = await run_in_threadpool(handle_sms, runtime, sid=sid, sender=sender, body=body)
    return twiml(answer)


def twiml(answer: str | None) -> Response:
    """A TwiML document answering with `answer`, or with nothing."""
    response = MessagingResponse()
    if answer:
        response.message(answer)
    return Response(str(response), media_type="application/xml")


@router.post("/twilio/status", include_in_schema=False)
async def status_callback(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    form = await signed_form(request, runtime)
    if form is None:
        return Response(status_code=403)
    sid = _sid(form)
    state = STATUS.get((_first(form, "MessageStatus") or "").lower())
    # A report on a SID Tend cannot have made names no delivery: answered like any
    # other (Twilio retries a failed callback), and left alone.
    if sid and state and _SID.fullmatch(sid):
        error = _first(form, "ErrorCode")
        await run_in_threadpool(_record_status, runtime, sid, state, error)
    return Response(status_code=200)


def _record_status(runtime: Runtime, sid: str, state: DeliveryState, error: str | None) -> None:
    with transaction(runtime.engine) as conn:
        delivery_rows.record_provider_status(
            conn,
            sid,
            state,
            error=f"Twilio error {error}" if error else None,
            now=runtime.clock.now(),
        )


def _first(form: dict[str, list[str]], name: str) -> str | None:
    values: Any = form.get(name)
    return values[0] if values else None
