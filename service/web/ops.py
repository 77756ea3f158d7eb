"""Operations: `/readyz`, `/metrics`, and a request id on every log line.

`/healthz` (in app.py) says the process answers; `/readyz` says it can work: the
database answers a query and the broker (Redis, when configured) a PING.

`/metrics` is Prometheus' text format. Reminders are sent by workers in other processes,
so what they did is read from the database at scrape time, where every process's work
is (deliveries by channel, kind and state; lateness of the last hour's sends; replies by
what they were understood as; the queue of what is due and not yet sent). What happens
in this process is counted here: webhook latency. dramatiq's own metrics come from each
worker's exporter (TEND_WORKER_METRICS_PORT).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any, cast

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.runtime import Runtime
from service.storage import deliveries as delivery_rows
from service.storage import replies as reply_rows
from service.storage.db import ping, reading

log = structlog.get_logger("tend.web")

router = APIRouter(tags=["operations"])

LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
WEBHOOK_ROUTES = frozenset({"/twilio/sms", "/twilio/status"})
WEBHOOK_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


@router.get("/readyz", tags=["operations"])
async def readyz(request: Request) -> JSONResponse:
    """Readiness: the database and the broker answer."""
    runtime = _runtime(request)
    checks = await run_in_threadpool(_checks, runtime)
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(checks, status_code=200 if ready else 503)


def _checks(runtime: Runtime) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        with reading(runtime.engine) as conn:
            ping(conn)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    url = runtime.settings.redis_url
    if url is None:
        checks["broker"] = "ok"  # the embedded broker lives in this process
    else:
        import redis

        try:
            client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
            client.ping()
            client.close()
            checks["broker"] = "ok"
        except Exception as exc:
            checks["broker"] = f"unreachable: {type(exc).__name__}"
    return checks


@router.get("/metrics", tags=["operations"])
def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class DatabaseCollector(Collector):
    """Figures read from the database at each scrape: the work of every process."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        now = self.runtime.clock.now()
        try:
            with reading(self.runtime.engine) as conn:
                states = delivery_rows.delivery_counts(conn)
                due = delivery_rows.queue_depth(conn, now=now)
                late: Sequence[Any] = delivery_rows.sent_since(conn, now - timedelta(hours=1))
                understood = reply_rows.reply_counts(conn)
        except Exception as exc:  # a scrape must not fail because the database did
            log.warning("metrics: the database could not be read", error=str(exc))
            return
        by_state = GaugeMetricFamily(
            "tend_deliveries",
            "Deliveries by channel, kind (reminder, nudge) and state (sent, failed, expired...).",
            labels=["channel", "kind", "state"],
        )
        for channel, kind, state, count in states:
            by_state.add_metric([channel, kind, state], count)
        yield by_state
        queue = GaugeMetricFamily(
            "tend_queue_depth",
            "Deliveries due and not yet sent (pending past due, claimed, sending).",
            labels=["channel"],
        )
        for channel, count in due:
            queue.add_metric([channel], count)
        yield queue
        yield _lateness(late)
        by_kind = GaugeMetricFamily(
            "tend_replies",
            "Replies stored, by channel (sms, link) and what they were understood as.",
            labels=["channel", "understood"],
        )
        for channel, what, count in understood:
            by_kind.add_metric([channel, what or "unhandled"], count)
        yield by_kind


def _lateness(rows: Sequence[Any]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "tend_send_lateness_seconds",
        "How long after its time each delivery sent in the last hour went out.",
        labels=["channel"],
    )
    per_channel: dict[str, list[float]] = {}
    for channel, sent_at, due_at in rows:
        delay = (sent_at - due_at).total_seconds()
        per_channel.setdefault(channel, []).append(max(delay, 0.0))
    for channel, delays in sorted(per_channel.items()):
        buckets = [(str(b), float(sum(1 for d in delays if d <= b))) for b in LATENESS_BUCKETS]
        buckets.append(("+Inf", float(len(delays))))
        family.add_metric([channel], buckets, sum_value=sum(delays))
    return family


def install(app: FastAPI, runtime: Runtime) -> None:
    """The metrics registry, and the middleware that times webhooks and gives every
    request an id (taken from X-Request-ID when a proxy sets one) on its log lines."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(DatabaseCollector(runtime))
    webhooks = Histogram(
        "tend_webhook_seconds",
        "Time to answer Twilio's webhooks, by route and status.",
        ["route", "status"],
        buckets=WEBHOOK_BUCKETS,
        registry=registry,
    )
    app.state.metrics = registry
    app.add_middleware(RequestContext, webhooks=webhooks)


class RequestContext:
    """Plain ASGI (no per-request task, as BaseHTTPMiddleware would make): binds a request
    id to the log context, returns it as X-Request-ID, and times `/twilio/` requests."""

    def __init__(self, app: ASGIApp, webhooks: Histogram) -> None:
        self.app = app
        self.webhooks = webhooks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                given = value.decode("latin-1")
        request_id = given if 0 < len(given) <= 64 and given.isprintable() else uuid.uuid4().hex
        path: str = scope.get("path", "")
        timed = path.startswith("/twilio/")
        if timed and path not in WEBHOOK_ROUTES:
            path = "other"  # a label per made-up path would grow without end
        began = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
            if timed:
                self.webhooks.labels(path, str(status)).observe(time.perf_counter() - began)
