"""The scheduler loop: expire what is stale, claim what is due, enqueue ids; and, less
often, extend horizons, follow plan edits and finish ended enrollments."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from service.engine import enrollment
from service.engine.runtime import Runtime
from service.storage import repo
from service.storage.db import transaction

log = structlog.get_logger("tend.scheduler")

CLAIM_LEASE = timedelta(minutes=2)
BATCH = 500
MAINTENANCE_EVERY = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class Tick:
    expired: int
    claimed: int
    enqueued: int


class Scheduler:
    def __init__(
        self,
        runtime: Runtime,
        enqueue: Callable[[int], Any],
        *,
        batch: int = BATCH,
        lease: timedelta = CLAIM_LEASE,
    ) -> None:
        self.runtime = runtime
        self.enqueue = enqueue
        self.batch = batch
        self.lease = lease
        self._last_maintenance: datetime | None = None

    def tick(self) -> Tick:
        """One pass: expire, then claim and enqueue until nothing more is due."""
        grace = timedelta(minutes=self.runtime.settings.grace_minutes)
        now = self.runtime.clock.now()
        with transaction(self.runtime.engine) as conn:
            expired = repo.expire_stale(conn, now=now, grace=grace)
        if expired:
            log.warning("reminders expired unsent", count=expired)
        claimed = enqueued = 0
        while True:
            with transaction(self.runtime.engine) as conn:
                ids = repo.claim_due(conn, now=now, limit=self.batch, lease=self.lease)
            claimed += len(ids)
            for delivery_id in ids:
                try:
                    self.enqueue(delivery_id)
                except Exception:
                    # The claim's lease runs out and the delivery is claimed again.
                    log.exception(
                        "could not enqueue; the lease will recover it", delivery=delivery_id
                    )
                    break
                enqueued += 1
            if len(ids) < self.batch:
                break
        return Tick(expired, claimed, enqueued)

    def maintain(self, force: bool = False) -> None:
        """Horizons, plan edits and finished enrollments, at most every 30 seconds."""
        now = self.runtime.clock.now()
        if (
            not force
            and self._last_maintenance
            and now - self._last_maintenance < MAINTENANCE_EVERY
        ):
            return
        self._last_maintenance = now
        enrollment.sync_plans(self.runtime)
        while enrollment.extend_horizons(self.runtime) > 0:
            pass
        enrollment.finish_ended(self.runtime)

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Loop until `stop` is set; errors are logged and the loop goes on."""
        log.info("scheduler started")
        while not stop.is_set():
            try:
                self.maintain()
                self.tick()
            except Exception:
                log.exception("scheduler pass failed; trying again")
            stop.wait(interval)
        log.info("scheduler stopped")
