"""The tests' one clock for other processes (in-process tests use service.clock's
ManualClock): every process of a test shares it, kept in a small file as an anchor (a
moment on the clock and the real time it was set) and a rate, so that time can run `rate`
times faster than real time, stand still (rate 0, or `set`), or jump when the test
rewrites the file.

Readers re-read the file only when it changed (its inode changes on every write, as
writes replace it), so `now()` stays cheap under load.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path


class SharedClock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._key: tuple[int, int] | None = None
        self._anchor = (0.0, 0.0, 1.0)  # clock seconds, real seconds, rate

    # writing (the test)

    def start(self, at: datetime, rate: float = 1.0) -> None:
        """From now on the clock reads `at`, moving `rate` clock seconds a real second."""
        if at.tzinfo is None:
            raise ValueError("SharedClock needs an aware datetime")
        if rate < 0:
            raise ValueError("rate must be zero or more")
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"at": at.timestamp(), "real": time.time(), "rate": rate}))
        os.replace(tmp, self.path)

    def set(self, moment: datetime) -> None:
        """The clock stands still at `moment` until it is set or started again."""
        self.start(moment, rate=0.0)

    def jump(self, delta: timedelta) -> datetime:
        """Move the clock by `delta` (forward or back) at once; the rate stays."""
        target = self.now() + delta
        self.start(target, self.rate)
        return target

    def set_rate(self, rate: float) -> None:
        self.start(self.now(), rate)

    # reading (every process)

    def _read(self) -> tuple[float, float, float]:
        stat = os.stat(self.path)
        key = (stat.st_ino, stat.st_mtime_ns)
        with self._lock:
            if key != self._key:
                data = json.loads(self.path.read_text())
                self._anchor = (float(data["at"]), float(data["real"]), float(data["rate"]))
                self._key = key
            return self._anchor

    @property
    def rate(self) -> float:
        return self._read()[2]

    def now(self) -> datetime:
        at, real, rate = self._read()
        return datetime.fromtimestamp(at + (time.time() - real) * rate, UTC)

    def real_seconds(self, span: timedelta) -> float:
        """A span of clock time in real seconds; when the clock stands still, a wait
        takes as long as the span says (nothing else would end it)."""
        rate = self.rate
        return span.total_seconds() / rate if rate > 0 else span.total_seconds()
