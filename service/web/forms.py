"""Reading request bodies without trusting their size."""

from __future__ import annotations

import re

from fastapi import Request


class TooLarge(Exception):
    """The body is longer than the route accepts."""


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, read only up to `limit` bytes; TooLarge beyond that (a Content-Length
    that says so is refused before anything is read)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


# NUL and the other control characters but tab and line breaks: no database stores NUL
# in text, and nobody types the others.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def without_control(text: str) -> str:
    """`text` without NUL and the other control characters (tab and line breaks stay)."""
    return _CONTROL.sub("", text)
