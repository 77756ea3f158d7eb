"""The development outbox as a page: messages kept, shown newest first, guarded."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from service.channels.base import OutgoingMessage
from service.channels.outbox import OutboxChannel
from service.clock import ManualClock
from service.web.app import create_app
from tests.support.engine import Folders, published_runtime, settings_for

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def test_the_outbox_page_shows_messages_to_the_admin_only(db_url: str, folders: Folders) -> None:
    clock = ManualClock(NOW)
    runtime = published_runtime(settings_for(db_url, folders, admin_token="s3cret"), clock=clock)
    try:
        sms = runtime.channels["sms"]
        assert isinstance(sms, OutboxChannel)
        sms.send(OutgoingMessage(None, "sms", "+14155550123", "Screens off <now>, Rae."))
        runtime.channels["email"].send(
            OutgoingMessage(None, "email", "rae@example.com", "Body", subject="Wind down")
        )
        client = TestClient(create_app(runtime))
        assert client.get("/outbox").status_code == 404
        assert client.get("/outbox", headers={"Authorization": "Bearer wrong"}).status_code == 404
        page = client.get("/outbox", headers={"Authorization": "Bearer s3cret"})
        assert page.status_code == 200
        text = page.text
        assert "SMS and email are not configured" in text
        assert text.index("Wind down") < text.index("Screens off")  # newest first
        assert "Screens off &lt;now&gt;, Rae." in text  # escaped
        assert "sms to +14155550123" in text
    finally:
        runtime.close()


def test_without_an_admin_token_only_this_machine_may_look(db_url: str, folders: Folders) -> None:
    runtime = published_runtime(settings_for(db_url, folders), clock=ManualClock(NOW))
    try:
        client = TestClient(create_app(runtime))  # its requests come from "testclient"
        assert client.get("/outbox").status_code == 404
    finally:
        runtime.close()


def test_an_invitation_in_the_outbox_is_shown_by_the_command_and_the_page(
    db_url: str, folders: Folders
) -> None:
    from click.testing import CliRunner

    from service import cli

    runtime = published_runtime(settings_for(db_url, folders, admin_token="s3cret"),
                            clock=ManualClock(NOW))  # fmt: skip
    ics = b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    try:
        runtime.channels["email"].send(
            OutgoingMessage(
                None,
                "email",
                "rae@example.com",
                "Your practices",
                subject="Calendar: Evening",
                calendar=ics,
                calendar_method="REQUEST",
            )
        )
        page = TestClient(create_app(runtime)).get(
            "/outbox", headers={"Authorization": "Bearer s3cret"}
        )
        assert "calendar invitation" in page.text
        assert "METHOD:REQUEST" in page.text
        env = {
            "TEND_DATABASE_URL": runtime.settings.database_url,
            "TEND_SCHEDULES_DIR": str(folders.schedules),
            "TEND_TEMPLATES_DIR": str(folders.templates),
        }
        out = CliRunner().invoke(cli.main, ["outbox"], env=env)
        assert "[calendar invitation: METHOD:REQUEST, 1 event]" in out.stdout
    finally:
        runtime.close()
