"""The `tend` command (also `python -m service`)."""

from __future__ import annotations

import json
import shutil
import sys
import zoneinfo
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from service import __version__
from service.catalog import Catalog, PlanNotFound
from service.core.diagnostics import did_you_mean
from service.core.plan import PlanDocument
from service.core.preview import as_ics, as_json, as_table, build_preview
from service.core.timeexpr import VariableError
from service.settings import Settings, SettingsError, load_settings

SCHEMA_ID = "https://tend.example/schemas/plan-v1.json"


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"tend: {message}", err=True)
    sys.exit(code)


def settings() -> Settings:
    context = click.get_current_context()
    cached = context.find_object(Settings)
    if cached is not None:
        return cached
    try:
        loaded = load_settings()
    except SettingsError as exc:
        fail(str(exc))
    context.obj = loaded
    return loaded


def catalog() -> Catalog:
    current = settings()
    return Catalog(current.schedules_dir, current.templates_dir)


def parse_zone(text: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        hint = did_you_mean(text, zoneinfo.available_timezones())
        fail(f"unknown time zone '{text}'{hint}; use an IANA name such as America/New_York")


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"'{text}' is not a date; write YYYY-MM-DD, such as 2026-03-02")


def parse_vars(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip():
            fail(f"--var takes NAME=VALUE, such as wake=06:30, not '{pair}'")
        out[name.strip()] = value.strip()
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tend")
def main() -> None:
    """Tend turns practice plans into reminders people act on."""


# --- plans -------------------------------------------------------------------------


@main.group()
def plans() -> None:
    """Check, preview and describe practice plans."""


@plans.command("check")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def plans_check(paths: tuple[Path, ...]) -> None:
    """Validate plan files or folders of them (default: the schedules folder)."""
    result = catalog().check(list(paths) or None)
    for diagnostic in sorted(result.diagnostics, key=lambda d: (d.path, d.line, d.column)):
        click.echo(str(diagnostic))
    errors = len(result.errors)
    warnings = len(result.diagnostics) - errors
    click.echo(
        f"checked {result.files} plan file{'s' if result.files != 1 else ''}: "
        f"{errors} error{'s' if errors != 1 else ''}, "
        f"{warnings} warning{'s' if warnings != 1 else ''}",
        err=True,
    )
    sys.exit(1 if errors else 0)


@plans.command("preview")
@click.argument("plan")
@click.option("--start", "start_text", required=True, help="Start date, YYYY-MM-DD.")
@click.option("--tz", "tz_text", required=True, help="IANA time zone, e.g. America/New_York.")
@click.option("--var", "var_pairs", multiple=True, help="Variable override, NAME=VALUE.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "ics"]),
    default="table",
    show_default=True,
)
def plans_preview(
    plan: str, start_text: str, tz_text: str, var_pairs: tuple[str, ...], fmt: str
) -> None:
    """Expand a plan (a path or an id) for a sample participant, without any database."""
    start = parse_date(start_text)
    zone = parse_zone(tz_text)
    overrides = parse_vars(var_pairs)
    plans_catalog = catalog()
    try:
        loaded = plans_catalog.load(plan)
    except PlanNotFound as exc:
        fail(str(exc))
    if loaded.plan is None:
        for diagnostic in loaded.errors:
            click.echo(str(diagnostic), err=True)
        fail("the plan has errors; fix them first (tend plans check)", 1)
    check_in_url = f"{settings().public_base}/check-in/preview"
    try:
        preview = build_preview(
            loaded.plan, start, zone, overrides, plans_catalog.renderer, check_in_url
        )
    except VariableError as exc:
        fail(str(exc))
    if fmt == "json":
        click.echo(json.dumps(as_json(preview), indent=2, ensure_ascii=False))
    elif fmt == "ics":
        stamp = datetime.now(UTC).replace(microsecond=0)
        sys.stdout.buffer.write(as_ics(preview, plans_catalog.renderer, check_in_url, stamp))
        sys.stdout.flush()
    else:
        width = shutil.get_terminal_size((100, 24)).columns
        click.echo(as_table(preview, width), nl=False)


@plans.command("schema")
def plans_schema() -> None:
    """Print the JSON Schema of the plan format (for editors)."""
    click.echo(json.dumps(plan_schema(), indent=2))


def plan_schema() -> dict[str, Any]:
    schema = PlanDocument.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }
