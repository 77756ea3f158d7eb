"""The plans in schedules/ and the templates in templates/ that ship with Tend.

These folders are written separately from the tests; this checks them as they stand.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
import pytest
from click.testing import CliRunner
from jinja2.sandbox import SandboxedEnvironment

from service.catalog import Catalog
from service.cli import main
from service.core.preview import as_ics, as_json, build_preview
from service.core.render import EMAIL_BLOCKS
from tests.support.plans import REPO

SCHEDULES = REPO / "schedules"
TEMPLATES = REPO / "templates"
PLAN_FILES = sorted(p for p in SCHEDULES.rglob("*") if p.suffix in (".yaml", ".yml"))
TEMPLATE_FILES = sorted(TEMPLATES.rglob("*.j2"))


def test_tend_plans_check_passes_on_every_shipped_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    assert PLAN_FILES, "schedules/ has no plans"
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("TEND_SCHEDULES_DIR", str(SCHEDULES))
    monkeypatch.setenv("TEND_TEMPLATES_DIR", str(TEMPLATES))
    result = CliRunner().invoke(main, ["plans", "check"], catch_exceptions=False)
    errors = [line for line in result.stdout.splitlines() if ": error: " in line]
    assert errors == []
    assert result.exit_code == 0
    assert f"checked {len(PLAN_FILES)} plan file" in result.stderr


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_every_template_compiles(path: Path) -> None:
    environment = SandboxedEnvironment(loader=jinja2.FileSystemLoader(str(TEMPLATES)))
    name = path.relative_to(TEMPLATES).as_posix()
    template = environment.get_template(name)
    if name.endswith(".email.j2"):
        assert set(EMAIL_BLOCKS) <= set(template.blocks), f"{name} lacks an email block"


@pytest.mark.parametrize("path", PLAN_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("zone", ["America/New_York", "Pacific/Chatham"])
def test_every_shipped_plan_previews(path: Path, zone: str) -> None:
    catalog = Catalog(SCHEDULES, TEMPLATES)
    loaded = catalog.load_file(path)
    assert loaded.plan is not None, "\n".join(str(d) for d in loaded.errors)
    # a start a few days before spring forward in New York
    preview = build_preview(
        loaded.plan, date(2026, 3, 5), ZoneInfo(zone), {}, catalog.renderer, "https://t.example/c"
    )
    data = as_json(preview)
    assert data["occurrences"], "the plan has no reminders"
    assert all(o["text"].strip() for o in data["occurrences"])
    ics = as_ics(preview, catalog.renderer, "https://t.example/c", datetime(2026, 3, 1, tzinfo=UTC))
    assert ics.startswith(b"BEGIN:VCALENDAR")
