"""The runtime: everything a process of Tend needs, built once from the settings."""

from __future__ import annotations

import dataclasses
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog
from sqlalchemy import Engine

from service.catalog import Catalog, load_version, version_renderer
from service.channels.base import Channel
from service.channels.email import SMTPEmailChannel
from service.channels.outbox import OutboxChannel
from service.channels.sms import TwilioSMSChannel
from service.clock import Clock, SystemClock
from service.core.plan import Plan
from service.core.render import Renderer
from service.settings import Settings
from service.storage import app_state, plan_versions
from service.storage.db import ensure_current, make_engine, reading, transaction

log = structlog.get_logger("tend.runtime")

DEV_SECRET_KEY = "dev_secret_key"


class PlanRegistry:
    """The published plans, read from the database (the one truth every process reads).

    It holds the newest version of each plan, and the older versions that enrollments
    still follow, once read: a version never changes, so what was read stays true.
    `refresh` looks for versions published since it last looked (one indexed query
    when there are none), here or by any other process.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.RLock()
        self._seen = -1  # the last version id read; -1: nothing read yet
        self._latest: dict[str, Plan] = {}
        self._versions: dict[tuple[str, str], Plan] = {}  # (plan id, content hash)
        self._unknown: set[tuple[str, str]] = set()  # hashes no version has
        self._renderers: dict[str, Renderer] = {}  # by content hash
        self._templates: dict[str, dict[str, str]] = {}

    def refresh(self) -> dict[str, Plan]:
        """Read what was published since the last look; returns the newest plans by id."""
        with self._lock:
            with reading(self.engine) as conn:
                last = plan_versions.last_id(conn)
                if last == self._seen:
                    return dict(self._latest)
                published = plan_versions.latest_versions(conn, after_id=max(self._seen, 0))
            for row in published:
                plan = self._read(row)
                if plan is not None:
                    self._latest[plan.id] = plan
            self._seen = last
            self._unknown.clear()
            return dict(self._latest)

    def published(self, row: plan_versions.PlanVersion, plan: Plan) -> None:
        """A version this process has just published (read back without a query)."""
        with self._lock:
            self._remember(row, plan)
            current = self._latest.get(plan.id)
            if current is None or current.version <= plan.version:
                self._latest[plan.id] = plan
            self._unknown.clear()

    def get(self, plan_id: str, content_hash: str | None = None) -> Plan | None:
        """The newest version of the plan; with `content_hash`, the version with that
        content when one was published (what an enrollment was last planned from), else
        the newest. None: no version of the plan was ever published."""
        with self._lock:
            if self._seen < 0:
                self.refresh()
            if content_hash is not None:
                key = (plan_id, content_hash)
                found = self._versions.get(key)
                if found is not None:
                    return found
                if key not in self._unknown:
                    with reading(self.engine) as conn:
                        row = plan_versions.find_by_hash(conn, plan_id, content_hash)
                    if row is not None and (plan := self._read(row)) is not None:
                        return plan
                    self._unknown.add(key)
            found = self._latest.get(plan_id)
            return found if found is not None else self.refresh().get(plan_id)

    def all(self) -> Mapping[str, Plan]:
        """The newest version of every plan, as last read."""
        with self._lock:
            if self._seen < 0:
                self.refresh()
            return dict(self._latest)

    def renderer(self, plan: Plan) -> Renderer:
        """What renders the plan's messages: the templates published with it."""
        with self._lock:
            found = self._renderers.get(plan.content_hash)
            if found is None:
                raise LookupError(f"plan {plan.id} (version {plan.version}) was not published")
            return found

    def templates(self, plan: Plan) -> dict[str, str]:
        """The template texts published with the plan, by file name."""
        with self._lock:
            return dict(self._templates.get(plan.content_hash, {}))

    def _read(self, row: plan_versions.PlanVersion) -> Plan | None:
        known = self._versions.get((row.plan_id, row.content_hash))
        if known is not None:  # the same text published again (a rollback): not read twice
            plan = dataclasses.replace(known, version=row.version)
            if row.version > known.version:
                self._remember(row, plan)
            return plan
        loaded = load_version(row.plan_id, row.version, row.yaml, row.templates, row.content_hash)
        if loaded.plan is None:
            log.error(
                "a published plan version no longer checks; it is not run",
                plan=row.plan_id,
                version=row.version,
                errors=[str(d) for d in loaded.errors[:5]],
            )
            return None
        self._remember(row, loaded.plan)
        return loaded.plan

    def _remember(self, row: plan_versions.PlanVersion, plan: Plan) -> None:
        """Keep the version (for its hash, the newest version with that content)."""
        self._versions[(plan.id, plan.content_hash)] = plan
        self._renderers.setdefault(plan.content_hash, version_renderer(row.templates))
        self._templates.setdefault(plan.content_hash, dict(row.templates))


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
            plans=PlanRegistry(engine),
            clock=clock or SystemClock(),
        )
        runtime.channels = dict(channels) if channels is not None else runtime.default_channels()
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
