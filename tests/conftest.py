"""The whole suite's configuration: the shared fixtures (tests/support, loaded as plugins),
a marker per folder, and no TEND_* variable from the developer's shell.

The folders, and the marker each one's tests get (`pytest -m unit` runs only those):

- tests/unit/        `unit`         pure and fast: no database, no network, no subprocess
- tests/integration/ `integration`  a database, the app through TestClient, channels against fakes
- tests/hostile/     `hostile`      bad input and attacks
- tests/reliability/ `reliability`  Tend's processes under faults and load
- tests/browser/     `browser`      the dashboard in chromium through Playwright
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from service.actions import coaches

pytest_plugins = [
    "tests.support.plans",
    "tests.support.services",
    "tests.support.engine",
    "tests.support.reliability_report",
    "tests.support.alone",
]

TESTS = Path(__file__).resolve().parent
FOLDER_MARKERS = ("unit", "integration", "hostile", "reliability", "browser")

# Under pytest-xdist (`make test` runs `pytest -n 4 --dist loadgroup`), the tests of each of
# these run on one worker, as one unit: they share a costly module-scoped fixture (a
# served dashboard and its browser, the day of load, the demo's run, a seeded cohort).
SHARED_WORKER = (
    "tests/browser/",
    "tests/reliability/test_load.py",
    "tests/integration/test_demo.py",
    "tests/integration/test_dashboard.py",
)
# ...and the longest start first, so that the rest fills in around them.
FIRST = (
    "reliability/",
    "browser/",
    "integration/test_demo.py",
    "integration/test_concurrency.py",
)


def _where(item: pytest.Item) -> str:
    try:
        return item.path.resolve().relative_to(TESTS).as_posix()
    except ValueError:
        return ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test gets its folder's marker; in an xdist worker (each collects, and all
    must come to the same order), the longest tests go first."""
    for item in items:
        folder = _where(item).split("/")[0]
        if folder in FOLDER_MARKERS:
            item.add_marker(folder)
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: not _where(item).startswith(FIRST))  # stable


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup`, with SHARED_WORKER's groups given by path. (xdist 3.8's own
    grouping by `xdist_group` marks does nothing under pytest 9.2, which no longer lets
    it rename a test's node id: pytest-dev/pytest-xdist#1386.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.rfind("@") > nodeid.rfind("]"):  # an `xdist_group` mark, once it works
                return nodeid.rsplit("@", 1)[-1]
            for shared in SHARED_WORKER:
                if nodeid.startswith(shared):
                    return shared
            return nodeid

    return Scheduling(config, log)


# argon2id as production has it costs about a tenth of a second a hash on this kind of
# machine, and the account tests hash hundreds of times: they get the same algorithm at
# its smallest cost. tests/unit/test_password_cost.py checks production's own parameters.
_CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
_CHEAP_DUMMY = _CHEAP_HASHER.hash("a password nobody has")


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coaches, "_HASHER", _CHEAP_HASHER)
    monkeypatch.setattr(coaches, "_DUMMY_HASH", _CHEAP_DUMMY)


@pytest.fixture(autouse=True)
def _no_tend_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TEND_* variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("TEND_"):
            monkeypatch.delenv(name)
