"""The dashboard in a real browser: Debian's chromium driven by Playwright, against Tend
served by uvicorn on a free port, on SQLite with a seeded cohort and a manual clock.

No browser is downloaded: Playwright launches the `chromium` found on PATH (`make test`
installs Debian's package when it is missing and it runs as root). Without it, or
without the playwright package, these tests skip with the reason; under
TEND_REQUIRE_SERVICES=1 (CI) they fail instead, as the other service tests do.

Screenshots go to the test's own tmp folder and to `test-artifacts/dashboard/` at the
repository's root (ignored by git), one per page.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn

from service.clock import ManualClock
from service.runtime import Runtime
from service.web.app import create_app
from tests.support import dashboard_seed
from tests.support.engine import published_runtime, settings_for, sqlite_url
from tests.support.services import free_port, unavailable, wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
TOKEN = "coach-token-for-tests"
START_TIMEOUT = 30.0


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        unavailable(
            "Debian's chromium is not installed (apt-get install chromium; `make test` "
            "installs it when run as root)"
        )
    assert found is not None
    return found


@dataclass
class Served:
    """Tend on a port, and what the tests need to know of it."""

    base: str
    runtime: Runtime
    clock: ManualClock
    cohort: dashboard_seed.Cohort


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The app, seeded, served by uvicorn in a thread of this process (so that the
    manual clock is the one the app reads)."""
    root = tmp_path_factory.mktemp("dashboard-browser")
    folders = dashboard_seed.make_folders(root)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    clock = ManualClock(dashboard_seed.BEGIN)
    settings = settings_for(sqlite_url(root), folders, public_url=base, admin_token=TOKEN)
    runtime = published_runtime(settings, clock=clock)  # SMS and email to the outbox
    cohort = dashboard_seed.seed(runtime, clock)
    config = uvicorn.Config(
        create_app(runtime),
        host="127.0.0.1",
        port=port,
        loop="asyncio",
        http="h11",
        log_config=None,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="tend-dashboard", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), START_TIMEOUT, "uvicorn")
        if not thread.is_alive():
            pytest.fail("the dashboard's server did not start")
        yield Served(base, runtime, clock, cohort)
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)
        runtime.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[dev]')")
        raise
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies, so logged out) at a laptop's width; a test
    resizes it to look at a phone's width."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, locale="en-GB")
    context.set_default_timeout(15_000)
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


@pytest.fixture
def shoot(page: Page, tmp_path: Path) -> Any:
    """`shoot(name)`: a full-page screenshot in the tmp folder and test-artifacts/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        target = tmp_path / "screenshots" / f"{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target), full_page=True)
        shutil.copyfile(target, ARTIFACTS / target.name)
        return target

    return take
