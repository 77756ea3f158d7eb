"""`@pytest.mark.alone`: a test that runs with no other test at the same time (a plugin of
tests/conftest.py). Under pytest-xdist the other workers wait at their next test's start
until it is done; it waits for their current tests to end. For tests whose outcome
depends on having the machine's CPU: the day of load runs its clock over a thousand
times faster than real time, so a process starved for one real second is late on it by
more than a quarter of an hour.

A lock with a writer's priority, of two flock(2)ed files in a folder the controller makes
for the run: every test passes the turnstile, then holds the room shared; a test marked
`alone` holds the turnstile (so that no new test comes in) and the room exclusively.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_KEY = "tend_alone_lock_dir"
_dir_key = pytest.StashKey[str]()
_files_key = pytest.StashKey[tuple[int, int]]()


def pytest_configure(config: pytest.Config) -> None:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is None:  # the controller, or a run in one process
        if getattr(config.option, "numprocesses", None):
            config.stash[_dir_key] = tempfile.mkdtemp(prefix="tend-tests-lock-")
        return
    folder = workerinput.get(_KEY)
    if folder:
        turnstile = os.open(Path(folder) / "turnstile", os.O_RDWR | os.O_CREAT, 0o600)
        room = os.open(Path(folder) / "room", os.O_RDWR | os.O_CREAT, 0o600)
        config.stash[_files_key] = (turnstile, room)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    folder = node.config.stash.get(_dir_key, None)
    if folder:
        node.workerinput[_KEY] = folder


def pytest_unconfigure(config: pytest.Config) -> None:
    files = config.stash.get(_files_key, None)
    if files:
        for fd in files:
            os.close(fd)
    folder = config.stash.get(_dir_key, None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    files = item.config.stash.get(_files_key, None)
    if files is None:
        yield
        return
    turnstile, room = files
    fcntl.flock(turnstile, fcntl.LOCK_EX)
    if item.get_closest_marker("alone"):
        fcntl.flock(room, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(room, fcntl.LOCK_UN)
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        return
    try:
        fcntl.flock(room, fcntl.LOCK_SH)
    finally:
        fcntl.flock(turnstile, fcntl.LOCK_UN)
    try:
        yield
    finally:
        fcntl.flock(room, fcntl.LOCK_UN)
