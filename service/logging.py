"""structlog set-up, called once at start: JSON lines in production, a readable console in
development, and phone numbers and email addresses masked in every line."""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import ExcInfo

# Tend stores phone numbers in E.164, so a '+' and at least eight digits, spaced or not;
# in a URL's query (a library logging its requests) the '+' is written %2B, and an
# email's '@' %40. A country code never starts with 0, so UTC offsets such as +0530 are
# left alone.
_PHONE = re.compile(r"(?<![\w+%])(?:\+|%2[Bb])[1-9][\d ().-]{6,}\d(?!\w)")
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*?(@|%40)([A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def mask(text: str) -> str:
    """`+14155550123` becomes `+1********23`; `rae@example.com` becomes `r***@example.com`."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***{m.group(2)}{m.group(3)}", text)
    return _PHONE.sub(_mask_phone, text)


def _mask_phone(match: re.Match[str]) -> str:
    raw = match.group(0)
    prefix = "+" if raw.startswith("+") else raw[:3]  # '+' or '%2B'
    digits = re.sub(r"\D", "", raw[len(prefix) :])
    if len(digits) < 8:
        return raw
    return f"{prefix}{digits[0]}{'*' * (len(digits) - 3)}{digits[-2:]}"


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_masked(v) for v in value)
    if value is None or isinstance(value, int | float):
        return value
    try:  # an exception or any other object is rendered as text: mask that text
        text = str(value)
    except Exception:
        return value
    masked = mask(text)
    return masked if masked != text else value


def mask_processor(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if key != "exc_info":  # left for the exception formatter, which masks
            event[key] = _masked(value)
    return event


def _masked_traceback(sio: TextIO, exc_info: ExcInfo) -> None:
    buffer = io.StringIO()
    structlog.dev.plain_traceback(buffer, exc_info)
    sio.write(mask(buffer.getvalue()))


def configure_logging(fmt: str = "console", level: str = "info") -> None:
    """Configure structlog, and route the standard library's logging through it too, so
    that every line (dramatiq's and uvicorn's included) has the same form and masking."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        tail: list[Any] = [structlog.processors.format_exc_info, mask_processor, renderer]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=_masked_traceback
        )
        tail = [mask_processor, renderer]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    # Chatty at info: migrations narrate their set-up, dramatiq each worker thread.
    # urllib3 (under the twilio client) logs every request line at debug.
    for name in ("alembic", "dramatiq", "urllib3"):
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
