"""The runtime: everything a process of Tend needs, built once from the settings."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from sqlalchemy import Engine

from service.catalog import Catalog
from service.channels.base import Channel
from service.channels.email import SMTPEmailChannel
from service.channels.outbox import OutboxChannel
from service.channels.sms import TwilioSMSChannel
from service.clock import Clock, SystemClock
from service.core.plan import Plan
from service.settings import Settings
from service.storage import app_state
from service.storage.db import ensure_current, make_engine, transaction

log = structlog.get_logger("tend.runtime")

DEV_SECRET_KEY = "dev_secret_key"


class PlanRegistry:
    """The plans in the schedules folder, reloaded when a file changes on disk.

    A file that stops checking cleanly keeps its last good version in memory (and says
    so in the log), so that a typo does not stop reminders already scheduled.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._lock = threading.Lock()
        self._stamps: dict[Path, tuple[int, int]] = {}
        self._plans: dict[str, Plan] = {}
        self._by_file: dict[Path, str] = {}

    def refresh(self) -> dict[str, Plan]:
        """Reload changed files; returns the plans by id."""
        with self._lock:
            folder = self.catalog.schedules_dir
            files = (
                sorted(p for p in folder.rglob("*.y*ml") if p.is_file()) if folder.is_dir() else []
            )
            seen = set()
            for path in files:
                seen.add(path)
                stat = path.stat()
                stamp = (stat.st_mtime_ns, stat.st_size)
                if self._stamps.get(path) == stamp:
                    continue
                self._stamps[path] = stamp
                loaded = self.catalog.load_file(path)
                if loaded.plan is None:
                    log.error(
                        "plan file has errors; keeping its last good version",
                        path=str(path),
                        errors=[str(d) for d in loaded.errors[:5]],
                    )
                    continue
                owner = self._plans.get(loaded.plan.id)
                if owner is not None and self._by_file.get(path) != loaded.plan.id:
                    log.error("plan id is used by two files", plan=loaded.plan.id, path=str(path))
                    continue
                self._plans[loaded.plan.id] = loaded.plan
                self._by_file[path] = loaded.plan.id
            for path in set(self._by_file) - seen:
                plan_id = self._by_file.pop(path)
                self._stamps.pop(path, None)
                log.warning("plan file removed; its enrollments are left as they are", plan=plan_id)
                self._plans.pop(plan_id, None)
            return dict(self._plans)

    def get(self, plan_id: str, content_hash: str | None = None) -> Plan | None:
        """The plan as last loaded; reloaded first when it is unknown, or when it is not
        the version `content_hash` names (an enrollment synced by another process)."""
        with self._lock:
            found = self._plans.get(plan_id)
        if found is None or (content_hash is not None and found.content_hash != content_hash):
            found = self.refresh().get(plan_id)
        return found

    def all(self) -> Mapping[str, Plan]:
        with self._lock:
            return dict(self._plans)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    catalog: Catalog
    plans: PlanRegistry
    clock: Clock
    channels: dict[str, Channel] = field(default_factory=dict)
    _secret: bytes | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        channels: Mapping[str, Channel] | None = None,
        engine: Engine | None = None,
        check_schema: bool = True,
    ) -> Runtime:
        engine = engine or make_engine(settings.database_url)
        if check_schema:
            ensure_current(engine)
        catalog = Catalog(settings.schedules_dir, settings.templates_dir)
        runtime = cls(
            settings=settings,
            engine=engine,
            catalog=catalog,
            plans=PlanRegistry(catalog),
            clock=clock or SystemClock(),
        )
        runtime.channels = dict(channels) if channels is not None else runtime.default_channels()
        runtime.plans.refresh()
        return runtime

    def default_channels(self) -> dict[str, Channel]:
        """Real channels where configured, the development outbox otherwise."""
        channels: dict[str, Channel] = {
            name: OutboxChannel(name, self.engine, self.clock.now) for name in ("sms", "email")
        }
        if self.settings.twilio_configured:
            channels["sms"] = TwilioSMSChannel.from_settings(
                self.settings, rate=self.settings.twilio_rate
            )
        if self.settings.smtp_configured:
            # The secret is read at the first send: in development it is kept in the
            # database, which need not be reachable while the runtime is built.
            channels["email"] = SMTPEmailChannel.from_settings(
                self.settings, self.clock.now, message_id_key=lambda: self.secret
            )
        return channels

    def describe_channels(self) -> dict[str, str]:
        return {name: type(channel).__name__ for name, channel in self.channels.items()}

    @property
    def secret(self) -> bytes:
        """The key that signs links: TEND_SECRET_KEY, or in development one made once and
        kept in the database, so links stay valid across restarts."""
        if self._secret is None:
            if self.settings.secret_key is not None:
                self._secret = self.settings.secret_key.get_secret_value().encode()
            else:
                with transaction(self.engine) as conn:
                    value = app_state.put_state_once(
                        conn, DEV_SECRET_KEY, secrets.token_urlsafe(32)
                    )
                self._secret = value.encode()
        return self._secret

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
        self.engine.dispose()
