"""Every process writes the same bytes for the same calendar. Invitations are compared
by a hash of their content across schedulers; a calendar with two zones (a group
session's and the participant's) once listed its VTIMEZONEs in the order of a Python
set, which differs between processes (string hashing is seeded per process), so two
schedulers each saw "a new version" and sent the invitation again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import hashlib
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from service.catalog import Catalog
from service.core.invitation import REQUEST, invitation_hash, series
from service.core.preview import as_ics, build_preview

catalog = Catalog(Path("schedules"), Path("templates"))
plan = catalog.load("rhythmic-movement").plan
assert any(p.zone for p in plan.practices), "the shipped plan has a group session"
zone = ZoneInfo("America/New_York")
items = series(plan, date(2026, 3, 2), zone, {}, not_before=datetime(2026, 3, 1, tzinfo=UTC))
print(invitation_hash(plan, "e_x", "Rae", "rae@example.com", "tend@example.com", items, REQUEST))
preview = build_preview(plan, date(2026, 3, 2), zone, {}, catalog.renderer, "https://t/c")
stamp = datetime(2026, 3, 1, tzinfo=UTC)
print(hashlib.sha256(as_ics(preview, catalog.renderer, "https://t/c", stamp)).hexdigest())
"""


def _hashes(seed: str) -> list[str]:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
        check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_an_invitation_and_a_calendar_are_the_same_bytes_in_every_process() -> None:
    runs = [_hashes(seed) for seed in ("1", "2", "3", "4")]
    assert all(len(run) == 2 for run in runs)
    assert runs[1:] == runs[:-1], runs
