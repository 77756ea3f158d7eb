"""Logging: phone numbers and email addresses masked in every line, JSON or console."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from service.logging import configure_logging, mask

PHONE = "+14155550123"
UK_PHONE = "+44 7700 900123"


@pytest.fixture
def configured(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """configure_logging, undone afterwards; yields a function returning what was logged."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    saved = structlog.get_config()

    def setup(fmt: str) -> None:
        capsys.readouterr()
        configure_logging(fmt, "debug")

    yield setup
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()
    structlog.configure(**saved)


def _json_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        (PHONE, "+1********23"),
        (UK_PHONE, "+4*********23"),
        ("+1 (415) 555-0123", "+1********23"),
        ("to:+14155550123.", "to:+1********23."),
        ("rae@example.com", "r***@example.com"),
        ("first.last+tag@mail.example.org", "f***@mail.example.org"),
        ("call +14155550123 or mail rae@example.com", "call +1********23 or mail r***@example.com"),
        # A library logging a request URL: the '+' and the '@' are percent-encoded.
        ("GET /Messages.json?To=%2B14155550123&x=1", "GET /Messages.json?To=%2B1********23&x=1"),
        ("?to=%2b14155550123", "?to=%2b1********23"),
        ("?email=rae%40example.com", "?email=r***%40example.com"),
    ],
)
def test_mask(raw: str, masked: str) -> None:
    assert mask(raw) == masked


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-02T21:30:00+05:00",
        "2026-03-02T21:30:00.123456+05:30",
        "2026-03-02 21:30:00 -03:00",
        "offset +0530 2026-03-02",
        "UTC+05:45",
        "[02/Mar/2026:21:30:00 +0000] GET /healthz 200",
        "id 12345678, +1234 retries",
        "version 1.2.3 build 20260302",
        "plan sleep-hygiene week 1 of 8",
    ],
)
def test_mask_leaves_times_offsets_and_numbers_alone(text: str) -> None:
    assert mask(text) == text


def test_json_lines_mask_structlog_events(
    configured: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    configured("json")
    structlog.get_logger("tend.test").info(
        f"sent to {PHONE}",
        to=UK_PHONE,
        email="rae@example.com",
        nested={"phones": [PHONE, ("x", PHONE)]},
        at="2026-03-02T21:30:00+05:00",
        count=14155550123,
    )
    [line] = _json_lines(capsys)
    assert line["event"] == "sent to +1********23"
    assert line["to"] == "+4*********23"
    assert line["email"] == "r***@example.com"
    assert line["nested"] == {"phones": ["+1********23", ["x", "+1********23"]]}
    assert line["at"] == "2026-03-02T21:30:00+05:00"
    assert line["count"] == 14155550123
    assert line["level"] == "info"
    assert line["logger"] == "tend.test"
    assert line["timestamp"].endswith("Z")


def test_json_lines_mask_the_standard_library(
    configured: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    configured("json")
    logging.getLogger("dramatiq.worker").warning(
        "delivery to %s failed at %s", PHONE, "2026-03-02T21:30:00-05:00"
    )
    [line] = _json_lines(capsys)
    assert line["event"] == "delivery to +1********23 failed at 2026-03-02T21:30:00-05:00"
    assert line["logger"] == "dramatiq.worker"
    assert line["level"] == "warning"


def test_json_lines_mask_exceptions(configured: Any, capsys: pytest.CaptureFixture[str]) -> None:
    configured("json")
    error = ValueError(f"Twilio refused {PHONE} for rae@example.com")
    log = structlog.get_logger("tend.test")
    log.warning("send failed", error=error)
    try:
        raise error
    except ValueError:
        log.exception("send failed again")
        logging.getLogger("std").exception("and in the standard library")
    output = capsys.readouterr().err
    assert PHONE not in output
    assert "rae@example.com" not in output
    lines = [json.loads(line) for line in output.splitlines()]
    assert lines[0]["error"] == "Twilio refused +1********23 for r***@example.com"
    assert "ValueError: Twilio refused +1********23" in lines[1]["exception"]
    assert "ValueError: Twilio refused +1********23" in lines[2]["exception"]


def test_console_lines_are_masked_too(configured: Any, capsys: pytest.CaptureFixture[str]) -> None:
    configured("console")
    log = structlog.get_logger("tend.test")
    log.info(f"sms to {PHONE}", to=UK_PHONE, at="2026-03-02T21:30:00+05:00")
    logging.getLogger("uvicorn").info("request from %s", "rae@example.com")
    try:
        raise RuntimeError(f"no route to {PHONE}")
    except RuntimeError:
        log.exception("failed")
    output = capsys.readouterr().err
    assert PHONE not in output
    assert "7700 900123" not in output
    assert "rae@example.com" not in output
    assert "sms to +1********23" in output
    assert "r***@example.com" in output
    assert "2026-03-02T21:30:00+05:00" in output
    assert "RuntimeError: no route to +1********23" in output


def test_level_filters(configured: Any, capsys: pytest.CaptureFixture[str]) -> None:
    configured("json")
    configure_logging("json", "warning")
    structlog.get_logger("tend.level").info("quiet")
    logging.getLogger("std.level").info("quiet too")
    structlog.get_logger("tend.level").warning("loud")
    assert [line["event"] for line in _json_lines(capsys)] == ["loud"]
