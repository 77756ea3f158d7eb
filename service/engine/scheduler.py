"""The scheduler loop: expire what is stale, claim what is due, enqueue ids; and, less
often, extend horizons, follow plan edits and finish ended enrollments."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from service.actions import data_rights, signups
from service.actions import inbound_sms as inbound
from service.engine import enrollment, invitations, summaries, windows
from service.runtime import Runtime
from service.storage import deliveries as delivery_rows
from service.storage.db import transaction

log = structlog.get_logger("tend.scheduler")

CLAIM_LEASE = timedelta(minutes=2)
BATCH = 500
FAN_OUT = 16  # a burst is split into at least this many messages, for parallel workers
MAX_CHUNK = 25  # and no message carries more ids than this
MAINTENANCE_EVERY = timedelta(seconds=30)
RETENTION_EVERY = timedelta(hours=1)  # clearing old texts (TEND_RETENTION_DAYS)


@dataclass(frozen=True, slots=True)
class Tick:
    expired: int
    claimed: int
    enqueued: int
    next_due: datetime | None = None


def chunks(ids: list[int]) -> list[list[int]]:
    """Split claimed ids into messages: one id each when few are due (lowest latency),
    up to MAX_CHUNK each in a burst (fewer broker round trips)."""
    size = max(1, min(MAX_CHUNK, -(-len(ids) // FAN_OUT)))
    return [ids[i : i + size] for i in range(0, len(ids), size)]


class Scheduler:
    def __init__(
        self,
        runtime: Runtime,
        enqueue: Callable[[list[int]], Any],
        *,
        batch: int = BATCH,
        lease: timedelta = CLAIM_LEASE,
        enqueue_weekly: Callable[[list[int]], Any] | None = None,
    ) -> None:
        """`enqueue` sends delivery ids to the workers; `enqueue_weekly` the ids of
        weekly messages (without it, the scheduler sends those itself)."""
        self.runtime = runtime
        self.enqueue = enqueue
        self.enqueue_weekly = enqueue_weekly
        self.batch = batch
        self.lease = lease
        self._last_maintenance: datetime | None = None
        self._last_retention: datetime | None = None
        self._aligned = False

    def tick(self) -> Tick:
        """One pass: expire, then claim and enqueue until nothing more is due."""
        grace = timedelta(minutes=self.runtime.settings.grace_minutes)
        now = self.runtime.clock.now()
        with transaction(self.runtime.engine) as conn:
            expired = delivery_rows.expire_stale(conn, now=now, grace=grace)
        if expired:
            log.warning("reminders expired unsent", count=expired)
        claimed = enqueued = 0
        broker_down = False
        while not broker_down:
            with transaction(self.runtime.engine) as conn:
                ids = delivery_rows.claim_due(conn, now=now, limit=self.batch, lease=self.lease)
            claimed += len(ids)
            for chunk in chunks(ids):
                try:
                    self.enqueue(chunk)
                except Exception:
                    # The claims' leases run out and the deliveries are claimed again.
                    log.exception("could not enqueue; the lease will recover it", count=len(ids))
                    broker_down = True
                    break
                enqueued += len(chunk)
            if len(ids) < self.batch:
                break
        with transaction(self.runtime.engine) as conn:
            upcoming = delivery_rows.next_due(conn)
        return Tick(expired, claimed, enqueued, upcoming)

    def maintain(self, force: bool = False) -> None:
        """Horizons, plan edits, finished enrollments, calendar invitations, closed
        check-in windows, weekly messages and texts whose handling failed, at most every
        30 seconds."""
        now = self.runtime.clock.now()
        if (
            not force
            and self._last_maintenance
            and now - self._last_maintenance < MAINTENANCE_EVERY
        ):
            return
        self._last_maintenance = now
        if not self._aligned:
            try:
                enrollment.align_check_in_kinds(self.runtime)
                self._aligned = True
            except Exception:
                log.exception("aligning check-in kinds failed; trying again later")
        # Independent chores: one failing does not stop the others. Invitations come
        # after plan edits and finished enrollments, so that they follow both.
        chores = (
            enrollment.sync_plans,
            enrollment.extend_horizons,
            enrollment.finish_ended,
            invitations.sync_invitations,
            windows.close_windows,
            self.weekly,
            inbound.handle_left_over,
            signups.forget_expired,
            self.retention,
        )
        for chore in chores:
            try:
                chore(self.runtime)
            except Exception:
                log.exception("maintenance failed; trying again later", chore=chore.__name__)

    def retention(self, _runtime: Runtime | None = None) -> None:
        """Clear the texts TEND_RETENTION_DAYS no longer keeps, at most once an hour."""
        now = self.runtime.clock.now()
        if self._last_retention and now - self._last_retention < RETENTION_EVERY:
            return
        self._last_retention = now
        data_rights.apply_retention(self.runtime)

    def weekly(self, _runtime: Runtime | None = None) -> None:
        """Make the weekly summaries and digests that fall due, and hand them over."""
        summaries.plan_weekly(self.runtime)
        ids = summaries.claim(self.runtime)
        if not ids:
            return
        if self.enqueue_weekly is None:
            for summary_id in ids:
                summaries.send(self.runtime, summary_id)
            return
        for chunk in chunks(ids):
            self.enqueue_weekly(chunk)  # an error leaves the claims to their lease

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Loop until `stop` is set; errors are logged and the loop goes on.

        Between passes it waits until the next delivery is due, or `interval` at most
        (new enrollments and expired leases are found by the next pass).
        """
        log.info("scheduler started")
        while not stop.is_set():
            wait = interval
            self.maintain()
            try:
                tick = self.tick()
                if tick.next_due is not None and tick.enqueued == tick.claimed:
                    clock = self.runtime.clock
                    until = clock.real_seconds(tick.next_due - clock.now())
                    wait = min(interval, max(until, 0.02))
            except Exception:
                log.exception("scheduler pass failed; trying again")
            stop.wait(wait)
        log.info("scheduler stopped")
