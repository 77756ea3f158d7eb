"""The long-running processes: all-in-one (`tend run`), web, scheduler and worker.

Each stops cleanly on SIGTERM or Ctrl-C: the scheduler finishes its pass, workers finish
the message in hand (dramatiq requeues the rest), and connections are closed.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

import dramatiq
import structlog
import uvicorn

from service.channels.outbox import OutboxChannel
from service.engine.scheduler import Scheduler
from service.engine.tasks import declare, make_broker, weekly_sender
from service.runtime import Runtime
from service.web.app import create_app

log = structlog.get_logger("tend")


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _server(runtime: Runtime) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(runtime),
        host=runtime.settings.http_host,
        port=runtime.settings.http_port,
        log_config=None,  # our logging set-up handles uvicorn's loggers
        access_log=False,
    )
    return uvicorn.Server(config)


def run_all(runtime: Runtime, worker_threads: int = 4) -> None:
    """HTTP app, scheduler and workers in one process; the broker is embedded unless
    TEND_REDIS_URL is set."""
    broker = make_broker(runtime.settings.redis_url)
    actor = declare(broker, runtime)
    worker = dramatiq.Worker(broker, worker_threads=worker_threads, worker_timeout=100)
    worker.start()
    stop = threading.Event()
    scheduler = Scheduler(runtime, actor.send, enqueue_weekly=weekly_sender(broker))
    thread = threading.Thread(target=scheduler.run, args=(stop,), name="scheduler", daemon=True)
    thread.start()
    broker_kind = "redis" if runtime.settings.redis_url else "embedded"
    log.info(
        "tend is running",
        url=runtime.settings.public_base,
        broker=broker_kind,
        plans=sorted(runtime.plans.all()),
        channels=runtime.describe_channels(),
    )
    for name, channel in runtime.channels.items():
        if isinstance(channel, OutboxChannel):
            log.info(f"{name} messages go to the development outbox: see `tend outbox`")
    # uvicorn handles SIGTERM and Ctrl-C while it runs, then hands the signal on to the
    # handler that was there before it: ours, which lets the shutdown below finish.
    _stop_on_signals(stop)
    try:
        _server(runtime).run()
    finally:
        stop.set()
        thread.join(timeout=30)
        worker.stop(timeout=30_000)
        broker.close()
        runtime.close()
        log.info("tend stopped")


def run_web(runtime: Runtime) -> None:
    _stop_on_signals(threading.Event())
    try:
        _server(runtime).run()
    finally:
        runtime.close()


def run_scheduler(runtime: Runtime) -> None:
    broker = make_broker(runtime.settings.redis_url)
    actor = declare(broker, runtime)
    stop = threading.Event()
    _stop_on_signals(stop)
    try:
        Scheduler(runtime, actor.send, enqueue_weekly=weekly_sender(broker)).run(stop)
    finally:
        broker.close()
        runtime.close()


def run_worker(runtime: Runtime, threads: int = 8) -> None:
    broker = make_broker(runtime.settings.redis_url)
    port = runtime.settings.worker_metrics_port
    if port is not None:
        # dramatiq's own metrics (messages, errors, durations), on this worker's exporter.
        os.environ.setdefault("dramatiq_prom_host", "0.0.0.0")
        os.environ["dramatiq_prom_port"] = str(port)  # noqa: SIM112 - dramatiq reads this name
        from dramatiq.middleware.prometheus import Prometheus

        broker.add_middleware(Prometheus())
    declare(broker, runtime)
    worker = dramatiq.Worker(broker, worker_threads=threads)
    stop = threading.Event()
    _stop_on_signals(stop)
    worker.start()
    log.info("worker started", threads=threads)
    try:
        stop.wait()
    finally:
        worker.stop(timeout=30_000)
        broker.close()
        runtime.close()
        log.info("worker stopped")
