"""A real SMTP server for tests: aiosmtpd on a free loopback port, in a thread.

It records what it receives, can be told to answer the next MAIL, RCPT or DATA with a
given reply (451, 550, ...), checks logins, offers STARTTLS or implicit TLS with a
throwaway self-signed certificate, and can be stopped and started again on the same
port, so that a client meets a refused connection.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from service.channels.base import OutgoingMessage
from tests.support.services import free_port, unavailable


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    authenticated_as: str | None
    tls: bool

    @property
    def message(self) -> EmailMessage:
        """Parsed, with the wire's CRLF line ends as Python's newlines."""
        parsed = message_from_bytes(self.data.replace(b"\r\n", b"\n"), policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Handler:
    """aiosmtpd's handler hooks: record, or answer the next command as told."""

    received: list[Received] = field(default_factory=list)
    refused: list[Received] = field(default_factory=list)
    scripted: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer_next(self, command: str, reply: str) -> None:
        with self.lock:
            self.scripted.setdefault(command.upper(), []).append(reply)

    def _scripted(self, command: str) -> str | None:
        with self.lock:
            replies = self.scripted.get(command)
            return replies.pop(0) if replies else None

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self._scripted("MAIL")
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self._scripted("RCPT")
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Called once the whole message is in: a refused one is kept in `refused`."""
        login = session.auth_data.login.decode() if session.authenticated else None
        got = Received(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=bytes(envelope.content),
            authenticated_as=login,
            tls=server.transport.get_extra_info("ssl_object") is not None,
        )
        reply = self._scripted("DATA")
        with self.lock:
            (self.received if reply is None else self.refused).append(got)
        return reply or "250 2.0.0 Ok: queued"


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client that trusts this certificate, and checks it as it would any other."""
        return ssl.create_default_context(cafile=str(self.cert))


def self_signed_certificate(folder: Path) -> Certificate:
    """A certificate for 127.0.0.1 and localhost, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        unavailable("the openssl command is not installed (Debian: apt-get install openssl)")
    assert openssl is not None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return Certificate(cert, key)


class SMTPServer:
    """aiosmtpd's threaded Controller with a recording handler. `start()` returns once
    the server answers (the Controller connects to it before returning)."""

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        certificate: Certificate | None = None,
        implicit_tls: bool = False,
    ) -> None:
        self.handler = Handler()
        self.port = free_port()
        self.users = dict(users or {})
        self.logins: list[str] = []
        options: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port}
        if self.users:
            options["authenticator"] = self._authenticate
            options["auth_require_tls"] = certificate is not None
        if certificate is not None and implicit_tls:
            options["ssl_context"] = certificate.server_context()
        elif certificate is not None:
            options["tls_context"] = certificate.server_context()
        self.options = options
        self.controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    @property
    def refused(self) -> list[Received]:
        """Messages whose DATA was answered with a scripted refusal."""
        with self.handler.lock:
            return list(self.handler.refused)

    def answer_next(self, command: str, reply: str) -> None:
        """The next `command` (MAIL, RCPT or DATA) gets `reply` instead of 250."""
        self.handler.answer_next(command, reply)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append(f"{mechanism}:{login}")
        ok = self.users.get(login) == password
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def start(self) -> None:
        """Listen (again) on the same port; a stopped Controller cannot restart, as its
        event loop is closed, so each start makes a new one."""
        assert self.controller is None, "already running"
        controller = Controller(self.handler, server_hostname="mx.test", **self.options)
        controller.start()
        self.controller = controller

    def stop(self) -> None:
        """Stop listening: connections to the port are refused until `start()`."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@contextlib.contextmanager
def smtp_server(**options: Any) -> Iterator[SMTPServer]:
    server = SMTPServer(**options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True, slots=True)
class _WithUnsubscribe(OutgoingMessage):
    unsubscribe_url: str | None = None


def outgoing(
    delivery_id: int | None,
    to: str,
    body: str,
    subject: str | None = None,
    html: str | None = None,
    unsubscribe_url: str | None = None,
) -> OutgoingMessage:
    """An email OutgoingMessage with an unsubscribe link, whether or not OutgoingMessage
    has the `unsubscribe_url` field yet (it is added when the email channel is wired in)."""
    values: dict[str, Any] = {
        "delivery_id": delivery_id, "channel": "email", "to": to, "body": body,
        "subject": subject, "html": html, "unsubscribe_url": unsubscribe_url,
    }  # fmt: skip
    names = {f.name for f in dataclasses.fields(OutgoingMessage)}
    if "unsubscribe_url" in names:
        return OutgoingMessage(**values)
    return _WithUnsubscribe(**values)
