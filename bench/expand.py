"""Expanding 1,000 enrollments of the shipped plans, with no database.

Baseline: a loop in the same run that converts the very same local dates and times to
UTC with zoneinfo and does nothing else. The figure is expansion's rate in occurrences
per second as a ratio of the baseline's conversions per second. Target: at least 0.5.

    python -m bench.expand [--enrollments N] [--repeat N]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from bench.report import write_section
from service.catalog import Catalog
from service.core.expand import expand, resolve_plan_variables
from service.settings import load_settings

ZONES = [
    "America/New_York",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Sao_Paulo",
    "Africa/Johannesburg",
    "Asia/Tokyo",
]
TARGET = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enrollments", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    settings = load_settings()
    result = Catalog(settings.schedules_dir, settings.templates_dir).check()
    if result.errors or not result.plans:
        raise SystemExit("the shipped plans do not check cleanly; run `tend plans check`")
    plans = sorted(result.plans.values(), key=lambda p: p.id)
    rng = random.Random(20261127)
    enrollments = [
        (
            rng.choice(plans),
            date(2026, 1, 1) + timedelta(days=rng.randrange(365)),
            ZoneInfo(rng.choice(ZONES)),
        )
        for _ in range(args.enrollments)
    ]

    # The baseline converts exactly the wall-clock times that expansion converts.
    instants = []
    for plan, start, zone in enrollments:
        variables = resolve_plan_variables(plan)
        items = []
        for occurrence in expand(plan, start, zone):
            hour, minute = divmod(occurrence.variant.at.resolve(variables), 60)
            day = occurrence.date
            items.append((day.year, day.month, day.day, hour, minute))
        instants.append((zone, items))
    count = sum(len(items) for _, items in instants)

    def run_expand() -> int:
        total = 0
        for plan, start, zone in enrollments:
            total += len(expand(plan, start, zone))
        return total

    def run_baseline() -> int:
        total = 0
        for zone, items in instants:
            for year, month, day, hour, minute in items:
                datetime(year, month, day, hour, minute, tzinfo=zone).astimezone(UTC)
                total += 1
        return total

    # Interleaved rounds, best of each: both sides see the same machine.
    expand_best = baseline_best = float("inf")
    for _ in range(args.repeat):
        expand_best = min(expand_best, _best(run_expand, 1, count))
        baseline_best = min(baseline_best, _best(run_baseline, 1, count))
    expand_rate = count / expand_best
    baseline_rate = count / baseline_best
    ratio = expand_rate / baseline_rate
    verdict = "meets" if ratio >= TARGET else "MISSES"
    body = f"""## Plan expansion

`python -m bench.expand`: {args.enrollments:,} enrollments of the shipped plans
({", ".join(p.id for p in plans)}), random start dates in 2026 and {len(ZONES)} zones,
{count:,} occurrences; best of {args.repeat} interleaved runs of each.

| | rate | ratio to baseline |
|---|---:|---:|
| baseline: the same local times converted with zoneinfo | {baseline_rate:,.0f} /s | 1.00 |
| `expand()` | {expand_rate:,.0f} occurrences/s | **{ratio:.2f}** |

Target: at least {TARGET} of the baseline; this run {verdict} it."""
    print(body)
    if not args.no_write:
        write_section("expand", body)


def _best(func: Callable[[], int], repeat: int, expected: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        produced = func()
        elapsed = time.perf_counter() - began
        if produced != expected:
            raise SystemExit(f"expected {expected} items, got {produced}")
        best = min(best, elapsed)
    return best


if __name__ == "__main__":
    main()
