"""Reading request bodies without trusting their size."""

from __future__ import annotations

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
