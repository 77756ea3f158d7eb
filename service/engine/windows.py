"""Closing check-in windows: an occurrence whose window closed with no check-in becomes
missed, or excused when nothing was asked or no reminder reached the participant (see
`storage.checkins.close_windows`). A maintenance chore of the scheduler."""

from __future__ import annotations

import structlog

from service.runtime import Runtime
from service.storage import checkins
from service.storage.db import transaction

log = structlog.get_logger("tend.windows")

BATCH = 5000  # occurrences per transaction
MAX_BATCHES = 20  # per pass; the next pass goes on


def close_windows(runtime: Runtime) -> dict[str, int]:
    """Close every window that has closed by now; returns how many became what."""
    now = runtime.clock.now()
    total = {"missed": 0, "excused": 0}
    for _ in range(MAX_BATCHES):
        with transaction(runtime.engine) as conn:
            counts = checkins.close_windows(conn, now=now, limit=BATCH)
        for result, count in counts.items():
            total[result] += count
        if sum(counts.values()) < BATCH:
            break
    if any(total.values()):
        log.info("check-in windows closed", **total)
    return total
