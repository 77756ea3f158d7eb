"""Email through SMTP, with the standard library's smtplib.

One connection per message. Reminders are sparse (a few per participant a day), so a
kept-open connection would mostly sit idle until the server drops it, and every send
would then start by finding out that it is dead. A connection per send also shares no
state between the worker's threads and never reuses a connection that an error left in
an unknown state. It costs a handshake per message, which is nothing at this volume.

What the engine needs from a channel is whether trying again could help: SMTP says so in
its reply codes. 4xx replies (421, 450, 451, 452, ...) are temporary and retried; 5xx
replies (550, 553, 554, ...) are permanent. A connection that is refused, times out or
drops is retried too.

A retried delivery keeps its Message-ID, which is derived from the delivery id. When a
server did take a message but the answer was lost on the way back (the one case where
SMTP cannot tell the sender), the retry carries the same Message-ID, which many mailbox
providers use to drop the duplicate. `already_sent` answers None: SMTP cannot tell.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
import smtplib
import ssl
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from service.channels.base import Channel, ChannelError, OutgoingMessage, Receipt
from service.core.states import Channel as ChannelName
from service.core.tokens import sign, verify
from service.logging import mask
from service.settings import Settings

DEFAULT_TIMEOUT = 20.0  # seconds, for the connection and for each command's reply
IMPLICIT_TLS_PORT = 465
PROVIDER_ID_LENGTH = 64  # deliveries.provider_id is a String(64)
ONE_CLICK = "List-Unsubscribe=One-Click"
FOOTER_TEXT = "Stop these reminder emails:"
FOOTER_HTML = (
    '<p style="margin:16px 0 0; font-family:Helvetica, Arial, sans-serif; font-size:13px;'
    ' line-height:1.5; color:#6b6b6b;"><a href="{url}" style="color:#6b6b6b;">'
    "Stop these reminder emails</a></p>\n"
)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


class _Policy(EmailPolicy):
    """The default policy, except that List-Unsubscribe is never folded.

    The default policy folds a header line longer than 78 characters, and a URL has no
    space to fold at, so it turns the URL into RFC 2047 encoded words, which no mail
    client reads as a URL. Unfolded, the line stays far below SMTP's 998 characters.
    """

    _unfolded = frozenset({"list-unsubscribe"})

    def fold(self, name: str, value: str) -> str:
        if name.lower() in self._unfolded and str(value).isascii():
            return f"{name}: {value}{self.linesep}"
        return str(super().fold(name, value))

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() in self._unfolded and str(value).isascii():
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


POLICY = _Policy()

UNSUBSCRIBE_PURPOSE = "unsubscribe"


def unsubscribe_link(public_base: str, secret: bytes, participant_id: str) -> str:
    """The participant's List-Unsubscribe link: `{public_base}/unsubscribe/{token}`.

    The token names the participant and is signed; it does not expire, because a
    reminder may be read (and unsubscribed from) long after it was sent. It lives here,
    below both the engine (which puts it in each email) and the web app (which serves
    it), so that neither has to import the other.
    """
    return f"{public_base}/unsubscribe/{sign(secret, UNSUBSCRIBE_PURPOSE, participant_id)}"


def read_unsubscribe_token(secret: bytes, token: str) -> str | None:
    """The participant id of a valid unsubscribe token, or None."""
    return verify(secret, UNSUBSCRIBE_PURPOSE, token)


def message_id(delivery_id: int | None, domain: str, key: bytes | None = None) -> str:
    """`<tend.d{delivery_id}@domain>`: the same for every attempt at one delivery.

    With `key` (the installation's secret), a short keyed hash is added, so that two
    installations sending from one domain, or a database started afresh, never reuse a
    Message-ID for a different message: Gmail, for one, hides a message whose Message-ID
    the mailbox already holds. Without a delivery id, a random one.
    """
    if delivery_id is None:
        return make_msgid("tend", domain=domain)
    if key is None:
        return f"<tend.d{delivery_id}@{domain}>"
    tag = hmac.new(key, f"message-id\x1f{delivery_id}".encode(), hashlib.sha256).hexdigest()
    return f"<tend.d{delivery_id}.{tag[:12]}@{domain}>"


def with_footer(text: str, html_body: str | None, url: str) -> tuple[str, str | None]:
    """Both parts with a plain unsubscribe link at the bottom, for people (mail clients
    show List-Unsubscribe their own way, or not at all). A part that already holds the
    link, because its template put it there, is left as it is."""
    if url not in text:
        text = f"{text.rstrip()}\n\n{FOOTER_TEXT} {url}\n"
    if html_body is not None:
        escaped = html.escape(url, quote=True)
        if url not in html_body and escaped not in html_body:
            footer = FOOTER_HTML.format(url=escaped)
            ends = list(_BODY_END.finditer(html_body))
            if ends:
                at = ends[-1].start()
                html_body = html_body[:at] + footer + html_body[at:]
            else:
                html_body = f"{html_body.rstrip()}\n{footer}"
    return text, html_body


INVITATION_FILENAME = "invite.ics"


def add_invitation(mail: EmailMessage, calendar: bytes, method: str) -> None:
    """Make `mail` (text, or text and HTML) an iMIP invitation (RFC 6047) in the shape
    Outlook and Gmail take:

        multipart/mixed
          multipart/alternative
            text/plain
            text/html                                  (when there is one)
            text/calendar; method=REQUEST; charset=UTF-8
          application/ics; name=invite.ics             (attachment: the same object)

    Calendar clients act on the text/calendar part (its `method` must match the
    object's METHOD); the attachment is for clients that show only attachments.
    """
    method = method.upper()
    text = calendar.decode("utf-8")
    if mail.get_content_type() != "multipart/alternative":
        mail.make_alternative()
    mail.add_alternative(text, subtype="calendar", charset="utf-8", params={"method": method})
    mail.add_attachment(
        calendar,
        maintype="application",
        subtype="ics",
        filename=INVITATION_FILENAME,
        params={"name": INVITATION_FILENAME},
    )


class _BodyTracking(smtplib.SMTP):
    """Notes when the message body, with its final ".", has gone to the server: after
    that, a lost answer means the message may have been accepted."""

    body_sent = False

    def send(self, s: Any) -> None:  # bytes, or str for commands
        super().send(s)
        if isinstance(s, bytes | bytearray) and s.endswith(b"\r\n.\r\n"):
            self.body_sent = True


class _TrackingSMTP(_BodyTracking):
    pass


class _TrackingSMTPSSL(_BodyTracking, smtplib.SMTP_SSL):
    pass


class SMTPEmailChannel(Channel):
    """Sends email through one SMTP server: STARTTLS (or implicit TLS on port 465) and a
    login when configured, a timeout on every operation."""

    name = ChannelName.EMAIL

    def __init__(
        self,
        *,
        host: str,
        sender: str,
        now: Callable[[], datetime],
        port: int = 587,
        user: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        implicit_tls: bool | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
        message_id_key: bytes | Callable[[], bytes] | None = None,
        local_hostname: str | None = None,
    ) -> None:
        address = parseaddr(sender)[1]
        if "@" not in address:
            raise ValueError(
                f"TEND_EMAIL_FROM must hold an email address, such as "
                f"'Tend <tend@example.org>' (got {sender!r})"
            )
        if (user is None) != (password is None):
            raise ValueError("set both TEND_SMTP_USER and TEND_SMTP_PASSWORD, or neither")
        self.host = host
        self.port = port
        self.sender = sender
        self.envelope_from = address
        self.domain = address.rpartition("@")[2]
        self.now = now
        self.user = user
        self.password = password
        self.implicit_tls = port == IMPLICIT_TLS_PORT if implicit_tls is None else implicit_tls
        self.starttls = starttls and not self.implicit_tls
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.message_id_key = message_id_key
        self.local_hostname = local_hostname

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        now: Callable[[], datetime],
        *,
        message_id_key: bytes | Callable[[], bytes] | None = None,
    ) -> SMTPEmailChannel:
        """The channel TEND_SMTP_* and TEND_EMAIL_FROM describe. `message_id_key` may be
        given as a function, read at the first send: the runtime's secret, in development,
        comes from the database, which need not be reachable while the runtime is built."""
        if settings.smtp_host is None:
            raise ValueError("TEND_SMTP_HOST is not set")
        password = settings.smtp_password
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            user=settings.smtp_user,
            password=password.get_secret_value() if password is not None else None,
            starttls=settings.smtp_starttls,
            sender=settings.email_from,
            now=now,
            message_id_key=message_id_key,
        )

    # -- the message ------------------------------------------------------------------

    def build(self, message: OutgoingMessage) -> EmailMessage:
        """The email for `message`: multipart/alternative (text and HTML) with From, To,
        Subject, Date, Message-ID and, given an unsubscribe link, List-Unsubscribe.
        Raises ChannelError (permanent) for an address or subject that cannot be used."""
        to = message.to.strip()
        if "@" not in parseaddr(to)[1] or any(c in to for c in "\r\n"):
            raise ChannelError(
                f"'{mask(to)}' is not an email address; nothing was sent",
                permanent=True,
                code="address",
            )
        text, html_body = message.body, message.html
        url = message.unsubscribe_url
        if url is not None:
            text, html_body = with_footer(text, html_body, url)
        mail = EmailMessage(policy=POLICY)
        try:
            mail["From"] = self.sender
            mail["To"] = to
            mail["Subject"] = " ".join((message.subject or "").split())
            mail["Date"] = format_datetime(self.now())
            key = self.message_id_key
            key = key() if callable(key) else key
            mail["Message-ID"] = message_id(message.delivery_id, self.domain, key)
            if url is not None:
                mail["List-Unsubscribe"] = f"<{url}>"
                if url.startswith("https://"):
                    # RFC 8058 one-click is defined for an HTTPS link only.
                    mail["List-Unsubscribe-Post"] = ONE_CLICK
            mail.set_content(text)
            if html_body is not None:
                mail.add_alternative(html_body, subtype="html")
            if message.calendar is not None:
                add_invitation(mail, message.calendar, message.calendar_method or "REQUEST")
        except (ValueError, TypeError) as exc:
            raise ChannelError(
                f"the email could not be built: {mask(str(exc))}", permanent=True
            ) from exc
        return mail

    # -- sending ----------------------------------------------------------------------

    def send(self, message: OutgoingMessage) -> Receipt:
        mail = self.build(message)
        smtp: smtplib.SMTP | None = None
        try:
            smtp = self._open()
            smtp.send_message(mail, from_addr=self.envelope_from, to_addrs=[message.to.strip()])
        except (smtplib.SMTPException, OSError) as exc:
            body_sent = getattr(smtp, "body_sent", False)
            if smtp is not None:
                smtp.close()
            if body_sent and not isinstance(exc, smtplib.SMTPResponseException):
                # The whole message reached the server and then its answer was lost: it
                # may well have been accepted. Retrying would likely send it twice.
                raise ChannelError(
                    f"the mail server {self.host}:{self.port} took the message but its "
                    f"answer was lost ({type(exc).__name__}); it may have been delivered",
                    permanent=False,
                    code="smtp-no-answer",
                    uncertain=True,
                ) from exc
            raise self._error(exc, message.to.strip()) from exc
        # The server has taken the message: a failing QUIT must not turn it into an error
        # (the engine would retry, and the person would get it twice).
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
        msgid = str(mail["Message-ID"]).strip("<>")
        return Receipt(provider_id=msgid[:PROVIDER_ID_LENGTH])

    def already_sent(self, delivery_id: int) -> bool | None:
        """SMTP keeps no record a sender could ask: None."""
        return None

    def _context(self) -> ssl.SSLContext:
        return self.ssl_context or ssl.create_default_context()

    def _open(self) -> smtplib.SMTP:
        """Connected, greeted, encrypted and logged in as configured. The timeout holds
        for the connection and for every reply after it (smtplib sets it on the socket)."""
        smtp: smtplib.SMTP
        if self.implicit_tls:
            smtp = _TrackingSMTPSSL(
                self.host,
                self.port,
                local_hostname=self.local_hostname,
                timeout=self.timeout,
                context=self._context(),
            )
        else:
            smtp = _TrackingSMTP(
                self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout
            )
        try:
            # Unlike ehlo(), this raises on a refusal, with the server's code.
            smtp.ehlo_or_helo_if_needed()
            if self.starttls:
                smtp.starttls(context=self._context())
                smtp.ehlo_or_helo_if_needed()  # again: STARTTLS forgets what EHLO said
            if self.user is not None and self.password is not None:
                smtp.login(self.user, self.password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _error(self, exc: OSError, recipient: str) -> ChannelError:
        """The engine's view of what went wrong: permanent or not, in plain words."""
        server = f"the mail server {self.host}:{self.port}"
        who = mask(recipient)
        waited = exc.__context__
        if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(waited, TimeoutError):
            exc = waited  # smtplib reports a reply that never came as a disconnect
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            code, answer = next(iter(exc.recipients.values()), (0, b""))
            verb = "deferred" if 400 <= code < 500 else "refused"
            return _by_code(code, f"{server} {verb} the address {who} ({_reply(code, answer)})")
        if isinstance(exc, smtplib.SMTPSenderRefused):
            sender = _reply(exc.smtp_code, exc.smtp_error)
            text = f"{server} refused the sender {self.envelope_from} ({sender})"
            if exc.smtp_code >= 500:
                text += "; check TEND_EMAIL_FROM"
            return _by_code(exc.smtp_code, text)
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            text = f"{server} did not accept the login ({_reply(exc.smtp_code, exc.smtp_error)})"
            if exc.smtp_code >= 500:
                text += "; check TEND_SMTP_USER and TEND_SMTP_PASSWORD"
            return _by_code(exc.smtp_code, text)
        if isinstance(exc, smtplib.SMTPDataError):
            verb = "deferred" if 400 <= exc.smtp_code < 500 else "refused"
            reply = _reply(exc.smtp_code, exc.smtp_error)
            return _by_code(exc.smtp_code, f"{server} {verb} the message to {who} ({reply})")
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return ChannelError(
                f"{server} closed the connection ({mask(str(exc)) or 'no reason given'})",
                permanent=False,
                code="disconnected",
            )
        if isinstance(exc, smtplib.SMTPResponseException):  # connect, HELO, STARTTLS, ...
            return _by_code(
                exc.smtp_code, f"{server} answered {_reply(exc.smtp_code, exc.smtp_error)}"
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            hint = "; check TEND_SMTP_STARTTLS, TEND_SMTP_PORT and TEND_SMTP_USER"
            return ChannelError(
                f"{server} does not support what Tend asked of it: {mask(str(exc))}{hint}",
                permanent=True,
                code="unsupported",
            )
        if isinstance(exc, smtplib.SMTPException):
            return ChannelError(f"{server}: {mask(str(exc))}", permanent=True, code="smtp")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return ChannelError(
                f"{server}'s TLS certificate could not be verified ({exc.verify_message})",
                permanent=True,
                code="tls-certificate",
            )
        if isinstance(exc, ssl.SSLError):
            return ChannelError(
                f"TLS with {server} failed ({exc.reason or exc}); port 465 expects implicit "
                "TLS, port 587 STARTTLS (TEND_SMTP_STARTTLS)",
                permanent=False,
                code="tls",
            )
        if isinstance(exc, TimeoutError):
            return ChannelError(
                f"{server} did not answer within {self.timeout:g} s",
                permanent=False,
                code="timeout",
            )
        if isinstance(exc, ConnectionRefusedError):
            return ChannelError(
                f"could not connect to {server}: connection refused",
                permanent=False,
                code="connection-refused",
            )
        return ChannelError(
            f"could not reach {server}: {exc.strerror or exc}", permanent=False, code="network"
        )


def _reply(code: int, text: bytes | str) -> str:
    """An SMTP reply as one masked line: `550 5.1.1 r***@example.com: no such user`."""
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return mask(f"{code} {' '.join(words.split())}".strip())


def _by_code(code: int, text: str) -> ChannelError:
    """4xx: try again later; 5xx: never. Anything else is unexpected, and retried."""
    return ChannelError(text, permanent=500 <= code < 600, code=str(code))
