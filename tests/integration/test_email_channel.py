"""The SMTP email channel against a real SMTP server (aiosmtpd on loopback): what arrives,
STARTTLS, implicit TLS and login, and how each kind of failure reaches the engine."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from service.channels.base import ChannelError
from service.channels.email import (
    ONE_CLICK,
    SMTPEmailChannel,
    message_id,
    read_unsubscribe_token,
    unsubscribe_link,
)
from service.clock import ManualClock
from service.settings import load_settings
from tests.support.fake_smtp import (
    Certificate,
    SMTPServer,
    outgoing,
    self_signed_certificate,
    smtp_server,
)
from tests.support.services import free_port

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SECRET = b"test-secret"
URL = unsubscribe_link("https://tend.test", SECRET, "p_k3m9x2q7hv4d")
TEXT = "Hi Rae,\n\nIt's time for Wind down.\n\nYou can stop them from the link at the bottom."
HTML = "<!DOCTYPE html>\n<html><body><p>Hi Rae,</p><p>It's time for Wind down.</p></body></html>"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def server() -> Iterator[SMTPServer]:
    with smtp_server() as running:
        yield running


def channel(port: int, **options: Any) -> SMTPEmailChannel:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "sender": "Tend Reminders <tend@tend.test>",
        "now": ManualClock(NOW).now,
        "starttls": False,
        "timeout": 5.0,
        "local_hostname": "worker.test",
    }
    values.update(options)
    return SMTPEmailChannel(**values)


def reminder(delivery_id: int | None = 41, to: str = "rae@example.com", **fields: Any) -> Any:
    values: dict[str, Any] = {
        "body": TEXT, "subject": "Wind down: a small step toward rest", "html": HTML,
        "unsubscribe_url": URL,
    }  # fmt: skip
    values.update(fields)
    return outgoing(delivery_id, to, **values)


# --- what arrives ----------------------------------------------------------------------


def test_a_reminder_arrives_with_its_headers(server: SMTPServer) -> None:
    settings = load_settings(
        smtp_host="127.0.0.1",
        smtp_port=server.port,
        smtp_starttls=False,
        email_from="Tend Reminders <tend@tend.test>",
    )
    sender = SMTPEmailChannel.from_settings(settings, ManualClock(NOW).now, message_id_key=SECRET)

    receipt = sender.send(reminder())

    [got] = server.received
    assert got.mail_from == "tend@tend.test"
    assert got.rcpt_tos == ["rae@example.com"]
    mail = got.message
    assert mail["From"] == "Tend Reminders <tend@tend.test>"
    assert mail["To"] == "rae@example.com"
    assert mail["Subject"] == "Wind down: a small step toward rest"
    assert mail["Date"] == "Mon, 02 Mar 2026 12:00:00 +0000"
    assert mail["Date"].datetime == NOW
    assert mail["Message-ID"] == message_id(41, "tend.test", SECRET)
    assert mail["Message-ID"].startswith("<tend.d41.")
    assert mail["Message-ID"].endswith("@tend.test>")
    assert receipt.provider_id == mail["Message-ID"].strip("<>")
    assert mail["List-Unsubscribe"] == f"<{URL}>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # On the wire as one plain line: a URL folded into RFC 2047 words would be unusable.
    assert f"\r\nList-Unsubscribe: <{URL}>\r\n".encode() in got.data
    # The link names the participant, signed.
    token = URL.rpartition("/unsubscribe/")[2]
    assert read_unsubscribe_token(SECRET, token) == "p_k3m9x2q7hv4d"


def test_the_message_is_text_and_html_with_a_link_at_the_bottom(server: SMTPServer) -> None:
    channel(server.port).send(reminder())

    mail = server.received[0].message
    assert mail.get_content_type() == "multipart/alternative"
    parts = list(mail.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    text, html = (p.get_content() for p in parts)
    assert text.startswith("Hi Rae,\n\nIt's time for Wind down.")
    assert text.rstrip().endswith(f"Stop these reminder emails: {URL}")
    assert html.count(URL) == 1
    assert html.index(URL) < html.index("</body>")
    assert html.index("It's time for Wind down.") < html.index(URL)


def test_a_link_the_template_already_shows_is_not_added_again(server: SMTPServer) -> None:
    text = f"{TEXT}\n\nUnsubscribe: {URL}"
    html = HTML.replace("</body>", f'<a href="{URL}">Unsubscribe</a></body>')
    channel(server.port).send(reminder(body=text, html=html))

    parts = list(server.received[0].message.iter_parts())
    assert [p.get_content().count(URL) for p in parts] == [1, 1]
    assert "Stop these reminder emails" not in parts[0].get_content()


def test_non_ascii_subject_and_body_arrive_intact(server: SMTPServer) -> None:
    subject = "Rückenübung — ein ruhiger Moment für dich ☀ (süß, naïve, 水)"
    text = "Grüße, Zoë!\n\nAtme ruhig. Ça va? — 深呼吸 🌙"
    html = "<html><body><p>Grüße, Zoë!</p><p>Ça va? — 深呼吸 🌙</p></body></html>"
    channel(server.port).send(reminder(subject=subject, body=text, html=html))

    got = server.received[0]
    assert got.data.isascii()  # encoded for any server, 8BITMIME or not
    mail = got.message
    assert mail["Subject"] == subject
    plain, rich = (p.get_content() for p in mail.iter_parts())
    assert plain.startswith(text)
    assert "<p>Ça va? — 深呼吸 🌙</p>" in rich


def test_without_a_link_there_is_no_list_unsubscribe(server: SMTPServer) -> None:
    channel(server.port).send(reminder(unsubscribe_url=None, html=None))

    mail = server.received[0].message
    assert mail["List-Unsubscribe"] is None
    assert mail["List-Unsubscribe-Post"] is None
    assert mail.get_content_type() == "text/plain"  # no HTML given: a single part
    assert mail.get_content().rstrip() == TEXT


def test_one_click_is_offered_only_for_an_https_link() -> None:
    mail = channel(1).build(reminder(unsubscribe_url="http://127.0.0.1:8000/unsubscribe/x.y"))
    assert mail["List-Unsubscribe"] == "<http://127.0.0.1:8000/unsubscribe/x.y>"
    assert mail["List-Unsubscribe-Post"] is None  # RFC 8058 asks for HTTPS
    assert channel(1).build(reminder())["List-Unsubscribe-Post"] == ONE_CLICK


def test_the_message_id_stays_the_same_across_retries(server: SMTPServer) -> None:
    sender = channel(server.port, message_id_key=SECRET)
    server.answer_next("DATA", "451 4.3.0 Try again later")
    with pytest.raises(ChannelError) as first:
        sender.send(reminder(41))
    assert not first.value.permanent

    # The retry, from another worker's channel (same installation, its key read when
    # needed, as the runtime gives it), a minute later.
    channel(server.port, message_id_key=lambda: SECRET, now=lambda: NOW.replace(minute=1)).send(
        reminder(41)
    )
    channel(server.port, message_id_key=SECRET).send(reminder(42))

    [refused] = server.refused
    retried, other = (r.message["Message-ID"] for r in server.received)
    assert refused.message["Message-ID"] == retried
    assert refused.message["Date"] != server.received[0].message["Date"]  # a new attempt
    assert other != retried
    # Another installation (another secret) never reuses it for its delivery 41.
    assert message_id(41, "tend.test", b"another-secret") != retried
    assert message_id(41, "tend.test") == "<tend.d41@tend.test>"


# --- TLS and login ---------------------------------------------------------------------


def test_starttls_and_login(certificate: Certificate) -> None:
    with smtp_server(users={"coach": "s3cret"}, certificate=certificate) as server:
        sender = channel(
            server.port,
            starttls=True,
            ssl_context=certificate.client_context(),
            user="coach",
            password="s3cret",
        )
        sender.send(reminder())

    [got] = server.received
    assert got.tls
    assert got.authenticated_as == "coach"
    assert got.message["To"] == "rae@example.com"


def test_implicit_tls(certificate: Certificate) -> None:
    with smtp_server(certificate=certificate, implicit_tls=True) as server:
        channel(server.port, implicit_tls=True, ssl_context=certificate.client_context()).send(
            reminder()
        )
    assert server.received[0].tls
    # Port 465 means implicit TLS unless told otherwise; STARTTLS is then not used.
    assert channel(465, starttls=True).implicit_tls
    assert not channel(465, starttls=True).starttls
    assert not channel(587, starttls=True).implicit_tls


def test_a_wrong_password_is_permanent_and_says_what_to_check(certificate: Certificate) -> None:
    with smtp_server(users={"coach": "s3cret"}, certificate=certificate) as server:
        sender = channel(
            server.port,
            starttls=True,
            ssl_context=certificate.client_context(),
            user="coach",
            password="wrong",
        )
        with pytest.raises(ChannelError) as caught:
            sender.send(reminder())
    error = caught.value
    assert error.permanent
    assert error.code == "535"
    assert "TEND_SMTP_USER and TEND_SMTP_PASSWORD" in str(error)
    assert "wrong" not in str(error)
    assert server.received == []


def test_an_untrusted_certificate_is_permanent(certificate: Certificate) -> None:
    with smtp_server(certificate=certificate) as server, pytest.raises(ChannelError) as caught:
        channel(server.port, starttls=True).send(reminder())  # the system's CAs only
    assert caught.value.permanent
    assert caught.value.code == "tls-certificate"
    assert "certificate" in str(caught.value)
    assert server.received == []


def test_starttls_asked_of_a_server_without_it_is_permanent(server: SMTPServer) -> None:
    with pytest.raises(ChannelError) as caught:
        channel(server.port, starttls=True).send(reminder())
    assert caught.value.permanent
    assert "TEND_SMTP_STARTTLS" in str(caught.value)
    assert server.received == []


# --- failures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "reply", "permanent", "says"),
    [
        ("RCPT", "451 4.7.1 Greylisted, try again later", False, "deferred the address"),
        ("RCPT", "452 4.2.2 Mailbox full", False, "deferred the address"),
        ("RCPT", "550 5.1.1 <rae@example.com>: no such user", True, "refused the address"),
        ("RCPT", "553 5.1.3 Bad recipient address syntax", True, "refused the address"),
        ("DATA", "451 4.3.0 Local error in processing", False, "deferred the message"),
        ("DATA", "554 5.7.1 Message rejected as spam", True, "refused the message"),
        ("MAIL", "421 4.7.0 Too many connections, try later", False, "refused the sender"),
        ("MAIL", "553 5.7.1 Sender address rejected", True, "check TEND_EMAIL_FROM"),
    ],
)
def test_4xx_is_retried_and_5xx_is_permanent(
    server: SMTPServer, command: str, reply: str, permanent: bool, says: str
) -> None:
    server.answer_next(command, reply)
    with pytest.raises(ChannelError) as caught:
        channel(server.port).send(reminder())
    error = caught.value
    assert error.permanent is permanent
    assert error.code == reply[:3]
    assert says in str(error)
    assert reply.split(" ", 2)[2].replace("<rae@example.com>", "<r***@example.com>") in str(error)
    assert "rae@example.com" not in str(error)  # addresses are masked
    if command == "RCPT":
        assert "r***@example.com" in str(error)
    assert server.received == []

    channel(server.port).send(reminder())  # the next attempt goes through
    assert len(server.received) == 1


def test_a_refused_connection_is_retried(server: SMTPServer) -> None:
    server.stop()
    with pytest.raises(ChannelError) as caught:
        channel(server.port).send(reminder())
    assert not caught.value.permanent
    assert caught.value.code == "connection-refused"
    assert f"127.0.0.1:{server.port}" in str(caught.value)

    server.start()
    channel(server.port).send(reminder())
    assert len(server.received) == 1


def test_a_server_that_does_not_answer_times_out_and_is_retried() -> None:
    # Connections are accepted (by the kernel's backlog) but nothing ever greets them.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ChannelError) as caught:
            channel(port, timeout=0.3).send(reminder())
        elapsed = time.monotonic() - started
    assert not caught.value.permanent
    assert caught.value.code == "timeout"
    assert "did not answer within 0.3 s" in str(caught.value)
    assert elapsed < 3


def test_an_unusable_address_is_permanent_and_nothing_is_sent(server: SMTPServer) -> None:
    for address in ("", "rae.example.com", "rae@example.com\r\nBcc: x@example.com"):
        with pytest.raises(ChannelError) as caught:
            channel(server.port).send(reminder(to=address))
        assert caught.value.permanent
    assert server.received == []


def test_settings_that_cannot_work_are_refused_at_start() -> None:
    with pytest.raises(ValueError, match="TEND_EMAIL_FROM"):
        channel(free_port(), sender="Tend")
    with pytest.raises(ValueError, match="TEND_SMTP_PASSWORD"):
        channel(free_port(), user="coach")


def test_smtp_cannot_tell_whether_a_delivery_went_out() -> None:
    assert channel(free_port()).already_sent(41) is None


def test_an_answer_lost_after_the_message_was_taken_is_uncertain_not_retried() -> None:
    import asyncio
    from datetime import UTC, datetime

    from service.channels.base import OutgoingMessage

    with smtp_server() as server:
        accept = server.handler.handle_DATA

        async def late(*args: Any) -> Any:
            answer = await accept(*args)
            await asyncio.sleep(1.0)  # the server took it; its 250 comes after the timeout
            return answer

        server.handler.handle_DATA = late  # type: ignore[method-assign]
        channel = SMTPEmailChannel(host="127.0.0.1", port=server.port, sender="t@tend.test",
                                   now=lambda: datetime.now(UTC), starttls=False,
                                   timeout=0.3)  # fmt: skip
        with pytest.raises(ChannelError) as raised:
            channel.send(OutgoingMessage(7, "email", "rae@example.com", "hi", "Subject"))
        assert len(server.received) == 1
        assert raised.value.uncertain
        assert channel.already_sent(7) is None  # so the engine fails it, never sends twice
