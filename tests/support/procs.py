"""Helpers for tests that run Tend's parts in other processes: a channel that appends
each send to a file, so that a process killed mid-send leaves a record of what it sent;
the time comes from the shared clock of tests/support/clock.py.

`python -m tests.support.procs worker ...` runs a worker on the Redis broker with both.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from pathlib import Path

from service.channels.base import Channel, OutgoingMessage, Receipt
from tests.support.clock import SharedClock


class FileRecordingChannel(Channel):
    """Appends one JSON line per message sent; `already_sent` reads the file back."""

    def __init__(self, name: str, path: Path, delay: float = 0.0) -> None:
        self.name = name
        self.path = path
        self.delay = delay

    def send(self, message: OutgoingMessage) -> Receipt:
        if self.delay:
            time.sleep(self.delay)  # the send takes a while, so kills land mid-batch
        line = json.dumps({"delivery": message.delivery_id, "to": message.to}) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())  # one write: a whole line or nothing
            os.fsync(fd)
        finally:
            os.close(fd)
        return Receipt(provider_id=f"file-{message.delivery_id}", segments=1)

    def already_sent(self, delivery_id: int) -> bool | None:
        return delivery_id in sent_ids(self.path)


def sent_ids(path: Path) -> list[int]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            out.append(int(json.loads(line)["delivery"]))
    return out


def run_worker(args: argparse.Namespace) -> None:
    import dramatiq

    from service.engine.tasks import declare, make_broker
    from service.runtime import Runtime
    from service.settings import load_settings

    settings = load_settings(
        database_url=args.db,
        redis_url=args.redis,
        schedules_dir=args.schedules,
        templates_dir=args.templates,
        secret_key="test-secret",
    )
    channel = FileRecordingChannel("sms", Path(args.record), args.delay)
    runtime = Runtime.build(
        settings, clock=SharedClock(Path(args.clock)), channels={"sms": channel, "email": channel}
    )
    broker = make_broker(args.redis, heartbeat_timeout=1000, maintenance_chance=1_000_000)
    declare(broker, runtime)
    worker = dramatiq.Worker(broker, worker_threads=args.threads, worker_timeout=100)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker.start()
    Path(args.ready).write_text("ready")
    stop.wait()
    worker.stop()
    broker.close()
    runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker")
    for name in ("db", "redis", "clock", "record", "schedules", "templates", "ready"):
        worker.add_argument(f"--{name}", required=True)
    worker.add_argument("--delay", type=float, default=0.0)
    worker.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    run_worker(args)


if __name__ == "__main__":
    main()
