"""The `tend` command (also `python -m service`)."""

from __future__ import annotations

import json
import shutil
import sys
import zoneinfo
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import click

from service import __version__
from service.catalog import Catalog, PlanNotFound
from service.core import validate
from service.core.plan import Plan, PlanDocument
from service.core.preview import as_ics, as_json, as_table, build_preview, utc_text
from service.core.timeexpr import VariableError
from service.logging import configure_logging
from service.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from service.actions.plans import SyncLine
    from service.runtime import Runtime

# The plan commands load fast; the rest import the engine, the database and the web
# stack (a second of imports) only when they run: see `_engine()`.

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


def _load_plan(plans_catalog: Catalog, ref: str) -> Plan:
    """The plan at `ref` (a path or an id), or fail with what stops it loading."""
    try:
        loaded = plans_catalog.load(ref)
    except PlanNotFound as exc:
        fail(str(exc))
    if loaded.plan is None:
        for diagnostic in loaded.errors:
            click.echo(str(diagnostic), err=True)
        fail("the plan has errors; fix them first (tend plans check)", 1)
    return loaded.plan


@contextmanager
def reported() -> Iterator[None]:
    """An action's refusal (service.actions.errors) ends the command with its message."""
    from service.actions.errors import ActionError

    try:
        yield
    except ActionError as exc:
        fail(str(exc))


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
    """Check, preview, publish and describe practice plans."""


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
    try:
        zone = zoneinfo.ZoneInfo(validate.zone(tz_text))
    except validate.Invalid as exc:
        fail(str(exc))
    overrides = parse_vars(var_pairs)
    plans_catalog = catalog()
    loaded = _load_plan(plans_catalog, plan)
    check_in_url = f"{settings().public_base}/check-in/preview"
    try:
        preview = build_preview(
            loaded, start, zone, overrides, plans_catalog.renderer, check_in_url
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


# --- the database, participants and enrollments --------------------------------------


def runtime(*, migrate: bool = False, serving: bool = False) -> Runtime:
    """The runtime for this command; `migrate` brings the database up to date first.
    Short commands log warnings only; the long-running ones log at TEND_LOG_LEVEL."""
    from sqlalchemy.exc import SQLAlchemyError

    from service.runtime import Runtime
    from service.storage.db import DatabaseError, make_engine, upgrade

    current = settings()
    level = current.log_level if serving or current.log_level == "debug" else "warning"
    configure_logging(current.effective_log_format, level)
    try:
        engine = make_engine(current.database_url)
        if migrate:
            upgrade(engine)
        built = Runtime.build(current, engine=engine)
    except DatabaseError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        fail(f"the database at {_safe_url(current.database_url)} cannot be used: {exc}")
    click.get_current_context().call_on_close(built.close)
    return built


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.group()
def db() -> None:
    """The database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database to the newest schema."""
    from sqlalchemy.exc import SQLAlchemyError

    from service.storage.db import DatabaseError, current_revision, make_engine, upgrade

    current = settings()
    configure_logging(current.effective_log_format, "warning")
    try:
        engine = make_engine(current.database_url)
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    except (DatabaseError, SQLAlchemyError) as exc:
        fail(f"cannot upgrade {_safe_url(current.database_url)}: {exc}")
    if before == after:
        click.echo(f"database is up to date (revision {after})")
    else:
        click.echo(f"database upgraded from {before or 'empty'} to {after}")


@main.group()
def participants() -> None:
    """Add, change and list participants; print their calendar feed URL."""


# `--language default` and `--quiet default`: follow the deployment's (None).
DEFAULT_WORD = "default"


def _or_default(text: str | None) -> str | None:
    """The option's text, or None for `default` (the deployment's)."""
    return None if text is None or text.strip().casefold() == DEFAULT_WORD else text


def _own_settings(person: Any, current: Settings) -> str:
    """A participant's own settings in words: "texts in es; discreet; quiet hours
    22:00-07:00" (what they follow when they set none, in brackets)."""
    language = person.language or f"{DEFAULT_WORD} ({current.default_language})"
    quiet = person.quiet_hours or f"{DEFAULT_WORD} ({current.quiet_hours or 'none'})"
    discreet = "discreet" if person.discreet else "not discreet"
    return f"texts in {language}; {discreet}; quiet hours {quiet}"


LANGUAGE_HELP = (
    "The language of their texts, a tag such as es or es-MX (default: the deployment's)."
)
QUIET_HELP = "Their quiet hours, local: 22:00-07:00; off for none (default: the deployment's)."


@participants.command("add")
@click.option("--name", required=True, help="Full name; the first word greets them.")
@click.option("--phone", help="Mobile number in E.164, such as +14155550123.")
@click.option("--email", help="Email address.")
@click.option("--tz", "tz_text", required=True, help="IANA time zone, e.g. Europe/London.")
@click.option("--var", "var_pairs", multiple=True, help="Variable for every plan, NAME=VALUE.")
@click.option("--cohort", help="Put them in this cohort (by name; made when there is none).")
@click.option("--language", "language_tag", metavar="TAG", help=LANGUAGE_HELP)
@click.option("--discreet", is_flag=True, help="Texts that never name the practice.")
@click.option("--quiet", "quiet_text", metavar="SPAN|off", help=QUIET_HELP)
def participants_add(
    name: str,
    phone: str | None,
    email: str | None,
    tz_text: str,
    var_pairs: tuple[str, ...],
    cohort: str | None,
    language_tag: str | None,
    discreet: bool,
    quiet_text: str | None,
) -> None:
    """Add a participant; prints the new participant's id."""
    from service.actions import participants as people

    rt = runtime()
    with reported():
        participant = people.create(
            rt,
            name=name,
            timezone=tz_text,
            phone=phone,
            email=email,
            variables=parse_vars(var_pairs),
            cohort=cohort,
            language=_or_default(language_tag),
            discreet=discreet,
            quiet_hours=_or_default(quiet_text),
        )
    click.echo(f"added {participant.name} ({participant.timezone})")
    if language_tag is not None or discreet or quiet_text is not None:
        click.echo(_own_settings(participant, rt.settings))
    click.echo(participant.id)


@participants.command("set")
@click.argument("participant_id")
@click.option("--name", help="A new full name.")
@click.option("--phone", help="A new mobile number in E.164, such as +14155550123.")
@click.option("--no-phone", is_flag=True, help="Remove their number.")
@click.option("--email", help="A new email address.")
@click.option("--no-email", is_flag=True, help="Remove their email address.")
@click.option("--tz", "--timezone", "tz_text", help="A new IANA time zone, e.g. Europe/London.")
@click.option("--var", "var_pairs", multiple=True,
              help="Set one of their times, NAME=HH:MM (NAME= to clear it); the others "
                   "stay as they are.")  # fmt: skip
@click.option("--language", "language_tag", metavar="TAG|default", help=LANGUAGE_HELP)
@click.option("--discreet/--no-discreet", default=None,
              help="Texts that never name the practice, or texts that do.")  # fmt: skip
@click.option("--quiet", "quiet_text", metavar="SPAN|off|default", help=QUIET_HELP)
def participants_set(
    participant_id: str,
    name: str | None,
    phone: str | None,
    no_phone: bool,
    email: str | None,
    no_email: bool,
    tz_text: str | None,
    var_pairs: tuple[str, ...],
    language_tag: str | None,
    discreet: bool | None,
    quiet_text: str | None,
) -> None:
    """Change a participant's details or settings: only the options given change. A new
    time zone or new variables move their reminders still ahead."""
    from service.actions import participants as people

    if phone is not None and no_phone:
        fail("give --phone or --no-phone, not both")
    if email is not None and no_email:
        fail("give --email or --no-email, not both")
    given: dict[str, Any] = {"name": name, "phone": phone, "email": email,
                             "timezone": tz_text, "discreet": discreet}  # fmt: skip
    changes = {key: value for key, value in given.items() if value is not None}
    if no_phone:
        changes["phone"] = None
    if no_email:
        changes["email"] = None
    rt = runtime()
    if var_pairs:
        from service.actions.access import visible_participant
        from service.storage.db import reading

        given_vars = dict(pair.partition("=")[::2] for pair in var_pairs)
        if any(not name.strip() for name in given_vars) or any("=" not in p for p in var_pairs):
            fail("--var takes NAME=VALUE, such as wake=06:30 (NAME= clears it)")
        with reported(), reading(rt.engine) as conn:
            current = visible_participant(conn, None, participant_id).variables
        merged = {**current, **{k.strip(): v.strip() for k, v in given_vars.items()}}
        changes["variables"] = {k: v for k, v in merged.items() if v}
    if language_tag is not None:
        changes["language"] = _or_default(language_tag)
    if quiet_text is not None:
        changes["quiet_hours"] = _or_default(quiet_text)
    with reported():
        after = people.update(rt, participant_id, changes)
    click.echo(f"{after.name} ({after.timezone}): {_own_settings(after, rt.settings)}")


@participants.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--cohort", help="Put them in this cohort (by name; made when there is none).")
@click.option("--plan", "plan_id", help="Enroll them in this plan (its id); needs --start.")
@click.option("--start", "start_text", help="The enrollments' start: YYYY-MM-DD or today.")
@click.option("--dry-run", is_flag=True, help="Check everything and say what would be done.")
def participants_import(
    file: Path,
    cohort: str | None,
    plan_id: str | None,
    start_text: str | None,
    dry_run: bool,
) -> None:
    """Add the people of a CSV file: a header row with name and timezone (phone, email,
    language optional; other columns are variables). All or nothing: every problem is
    printed as FILE:LINE: error: column COLUMN: MESSAGE and nothing is imported (exit 1)."""
    from service.actions import imports
    from service.core.csvimport import MAX_BYTES

    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    rt = runtime()
    with reported():
        try:
            result = imports.import_csv(
                rt,
                data,
                filename=file.name,
                cohort=cohort,
                plan=plan_id,
                start=imports.parse_start(start_text),
                dry_run=dry_run,
            )
        except imports.ImportRejected as rejected:
            for problem in rejected.errors:
                click.echo(problem.text(str(file)))
            count = len(rejected.errors)
            click.echo(f"{file}: {count} problem{'s' if count != 1 else ''}; nothing was imported",
                       err=True)  # fmt: skip
            sys.exit(1)
    for skipped in result.skipped:
        click.echo(f"{file}:{skipped.line}: skipped: {skipped.message}", err=True)
    click.echo(result.summary)


@participants.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def participants_list(fmt: str) -> None:
    """Every participant, with their SMS state, language, discreet texts, quiet hours
    (default: the deployment's) and enrollments."""
    from service.storage import enrollments as enrollment_rows
    from service.storage import participants as participant_rows
    from service.storage.db import transaction

    rt = runtime()
    now = rt.clock.now()
    with transaction(rt.engine) as conn:
        people = participant_rows.list_participants(conn)
        enrolled = {
            p.id: enrollment_rows.list_enrollments(conn, participant_id=p.id) for p in people
        }
    if fmt == "json":
        rows = [
            {
                "id": p.id,
                "name": p.name,
                "phone": p.phone,
                "email": p.email,
                "timezone": p.timezone,
                "sms": p.sms_status(now),
                "enrollments": [e.id for e in enrolled[p.id]],
                "language": p.language,
                "discreet": p.discreet,
                "quiet_hours": p.quiet_hours,
            }
            for p in people
        ]
        click.echo(json.dumps({"participants": rows}, indent=2))
        return
    table = [
        (
            p.id,
            p.name,
            p.timezone,
            p.sms_status(now),
            p.language or DEFAULT_WORD,
            "yes" if p.discreet else "no",
            p.quiet_hours or DEFAULT_WORD,
            ", ".join(f"{e.plan_id} ({e.status})" for e in enrolled[p.id]) or "-",
        )
        for p in people
    ]
    headers = ("id", "name", "zone", "sms", "language", "discreet", "quiet", "plans")
    click.echo(format_table(headers, table))


@participants.command("feed-url")
@click.argument("participant_id")
@click.option("--rotate", is_flag=True, help="Revoke the old URL and print a new one.")
def participants_feed_url(participant_id: str, rotate: bool) -> None:
    """Print the participant's calendar subscription URL."""
    from service.actions import participants as people

    rt = runtime()
    with reported():
        feed = people.rotate_feed(rt, participant_id) if rotate else people.feed(rt, participant_id)
    if rotate:
        click.echo("the old feed URL no longer works", err=True)
    click.echo(f"subscribe in a calendar app with {feed.webcal}", err=True)
    click.echo(feed.url)


@participants.command("export")
@click.argument("participant_id")
def participants_export(participant_id: str) -> None:
    """Print everything Tend holds about the participant, as one JSON object."""
    from service.actions import data_rights

    rt = runtime()
    with reported():
        document = data_rights.export(rt, participant_id)
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


@participants.command("erase")
@click.argument("participant_id")
def participants_erase(participant_id: str) -> None:
    """Remove the participant's personal data everywhere (an opt-out is kept as a keyed
    digest of the number only); prints what went."""
    from service.actions import data_rights

    rt = runtime()
    with reported():
        erased = data_rights.erase(rt, participant_id)
    click.echo(erased.text)


@main.command("enroll")
@click.argument("participant_id")
@click.argument("plan_ref", metavar="PLAN")
@click.option("--start", "start_text", required=True, help="YYYY-MM-DD or today.")
@click.option("--var", "var_pairs", multiple=True, help="Variable override, NAME=VALUE.")
def enroll_command(
    participant_id: str, plan_ref: str, start_text: str, var_pairs: tuple[str, ...]
) -> None:
    """Enroll a participant in a plan (an id or a path); prints the enrollment id."""
    from service.actions import enrollments as enrolling
    from service.storage import occurrences as occurrence_rows
    from service.storage import participants as participant_rows
    from service.storage.db import reading

    rt = runtime()
    overrides = parse_vars(var_pairs)
    start: date | Literal["today"] = "today" if start_text == "today" else parse_date(start_text)
    looks_like_a_file = plan_ref.endswith((".yaml", ".yml")) or "/" in plan_ref
    plan_id = _plan_id_of_file(rt, plan_ref) if looks_like_a_file else plan_ref
    with reported():
        plan = enrolling.running_plan(rt, plan_id)
        enrollment = enrolling.enroll(rt, participant_id, plan, start, overrides)
    with reading(rt.engine) as conn:
        participant = participant_rows.get_participant(conn, enrollment.participant_id)
        upcoming = occurrence_rows.upcoming(conn, enrollment.id, limit=1)
    began = enrollment.start_date.isoformat()
    if upcoming:
        first = upcoming[0]
        local = first["instant"].astimezone(zoneinfo.ZoneInfo(participant.timezone))
        click.echo(
            f"enrolled {participant.name} in {plan.title} from {began}; "
            f"first reminder {first['practice_id']} at {local:%Y-%m-%d %H:%M %Z}"
        )
    else:
        click.echo(f"enrolled {participant.name} in {plan.title} from {began}")
    click.echo(enrollment.id)


def _plan_id_of_file(rt: Runtime, path: str) -> str:
    """The id of the plan in the file at `path`, which must be published: enrollments
    follow the plans Tend runs."""
    loaded = _load_plan(rt.catalog, path)
    if rt.plans.get(loaded.id) is None:
        fail(f"plan '{loaded.id}' is not published; publish it first: tend plans push {path}")
    return loaded.id


@main.group()
def enrollments() -> None:
    """List, pause, resume and cancel enrollments."""


@enrollments.command("list")
@click.option("--participant", "participant_id", help="Only this participant's.")
@click.option("--plan", "plan_id", help="Only this plan's.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def enrollments_list(participant_id: str | None, plan_id: str | None, fmt: str) -> None:
    """Every enrollment, with its status and the next reminder."""
    from service.storage import enrollments as enrollment_rows
    from service.storage import occurrences as occurrence_rows
    from service.storage import participants as participant_rows
    from service.storage.db import transaction

    rt = runtime()
    with transaction(rt.engine) as conn:
        found = enrollment_rows.list_enrollments(
            conn, participant_id=participant_id, plan_id=plan_id
        )
        names = {p.id: p for p in participant_rows.list_participants(conn)}
        nexts = {e.id: occurrence_rows.upcoming(conn, e.id, limit=1) for e in found}
    rows = []
    for e in found:
        person = names[e.participant_id]
        upcoming = nexts[e.id]
        following = (
            upcoming[0]["instant"].astimezone(zoneinfo.ZoneInfo(person.timezone))
            if upcoming
            else None
        )
        rows.append((e, person, following, upcoming[0]["practice_id"] if upcoming else None))
    if fmt == "json":
        data = [
            {
                "id": e.id,
                "participant": e.participant_id,
                "plan": e.plan_id,
                "start": e.start_date.isoformat(),
                "status": e.status,
                "next": following.isoformat() if following else None,
                "next_practice": practice,
            }
            for e, _, following, practice in rows
        ]
        click.echo(json.dumps({"enrollments": data}, indent=2))
        return
    table = [
        (
            e.id,
            person.name,
            e.plan_id,
            e.start_date.isoformat(),
            e.status,
            f"{following:%Y-%m-%d %H:%M} {practice}" if following else "-",
        )
        for e, person, following, practice in rows
    ]
    click.echo(format_table(("id", "participant", "plan", "start", "status", "next"), table))


def _change_status(enrollment_id: str, action: str) -> None:
    from service.actions import enrollments as enrolling

    act, done, already = {
        "pause": (enrolling.pause, "paused", "was paused already"),
        "resume": (enrolling.resume, "resumed", "was active already"),
        "cancel": (enrolling.cancel, "cancelled", "was cancelled already"),
    }[action]
    rt = runtime()
    with reported():
        change = act(rt, enrollment_id)
    click.echo(f"{done} {enrollment_id}" if change.changed else f"{enrollment_id} {already}")


@enrollments.command("pause")
@click.argument("enrollment_id")
def enrollments_pause(enrollment_id: str) -> None:
    """Stop reminders until resumed."""
    _change_status(enrollment_id, "pause")


@enrollments.command("resume")
@click.argument("enrollment_id")
def enrollments_resume(enrollment_id: str) -> None:
    """Start reminders again (those still ahead)."""
    _change_status(enrollment_id, "resume")


@enrollments.command("cancel")
@click.argument("enrollment_id")
def enrollments_cancel(enrollment_id: str) -> None:
    """End the enrollment; nothing more is sent."""
    _change_status(enrollment_id, "cancel")


@plans.command("push")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--note", help="A few words on what changed, kept with each new version.")
@click.option("--dry-run", is_flag=True, help="Check and say what would change; store nothing.")
@click.option(
    "--keep-newer",
    is_flag=True,
    help="Leave a plan whose file holds an older version's text: it was published since "
    "(from the dashboard, say). For deploys that push on every start.",
)
def plans_push(paths: tuple[Path, ...], note: str | None, dry_run: bool, keep_newer: bool) -> None:
    """Publish plan files (default: the schedules folder) as new versions; live
    enrollments move forward to them."""
    from service.actions import plans as publishing

    rt = runtime()
    result = publishing.push(
        rt,
        list(paths) or None,
        by=_cli_user(),
        note=note,
        dry_run=dry_run,
        keep_newer=keep_newer,
    )
    for diagnostic in sorted(result.diagnostics, key=lambda d: (d.path, d.line, d.column)):
        click.echo(str(diagnostic))
    for published in result.published:
        effect = published.effect
        if not published.created:
            line = f"{published.plan.id}: unchanged (version {published.version})"
        elif dry_run:
            line = f"{published.plan.id}: would be version {published.version}"
        else:
            line = f"{published.plan.id}: version {published.version}"
        if effect.enrollments or effect.refused:
            line += f"; {effect.summary()}"
        click.echo(line)
        if dry_run:  # before publishing, every change; after, the errors alone
            _echo_sync_lines(published.lines)
        else:
            for refused in (sync for sync in published.lines if sync.error):
                click.echo(f"    {refused.enrollment_id} cannot follow: {refused.error}")
    for path, why in result.skipped:
        click.echo(f"{path}: left as published: {why}")
    if dry_run:
        click.echo("dry run: nothing was published", err=True)
    sys.exit(1 if result.errors else 0)


@plans.command("versions")
@click.argument("plan_id", metavar="PLAN")
def plans_versions(plan_id: str) -> None:
    """The published versions of a plan: number, time, who, content hash."""
    from service.actions import plans as publishing

    rt = runtime()
    with reported():
        found = publishing.versions(rt, plan_id)
    rows = [
        (v.version, utc_text(v.published_at), v.published_by, v.content_hash[:12], v.note or "")
        for v in found
    ]
    click.echo(format_table(["version", "published", "by", "content hash", "note"], rows))


def _echo_sync_lines(lines: Sequence[SyncLine]) -> None:
    """Each enrollment a plan's version changes, and each occurrence it changes."""
    for line in lines:
        outcome = (
            f"cannot follow the change: {line.error}" if line.error else line.changes.summary()
        )
        click.echo(f"{line.plan_id}  {line.enrollment_id}  ({line.participant_id}): {outcome}")
        for planned in line.changes.added:
            click.echo(f"    + {planned.key} at {utc_text(planned.instant)}")
        for stored, planned in line.changes.moved:
            when = (
                f"{utc_text(stored.instant)} -> {utc_text(planned.instant)}"
                if stored.instant != planned.instant
                else f"at {utc_text(planned.instant)}, text or details changed"
            )
            click.echo(f"    ~ {planned.key} {when}")
        for stored in line.changes.cancelled:
            click.echo(f"    - {stored.key} at {utc_text(stored.instant)}")


def _cli_user() -> str:
    """Who publishes from this command line: the login name, as the audit trail says."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a container)
        return "cli"


@plans.command("sync")
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
def plans_sync(dry_run: bool) -> None:
    """Bring enrollments up to the newest published version of their plan (publishing
    does this at once; the scheduler catches up any left behind)."""
    from service.engine import enrollment as enrollment_service

    rt = runtime()
    lines = enrollment_service.sync_plans(rt, dry_run=dry_run)
    if not lines:
        click.echo("every enrollment matches its plan")
        return
    _echo_sync_lines(lines)
    if dry_run:
        click.echo("dry run: nothing was changed", err=True)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(headers), *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    if not rows:
        lines.append("(none)")
    return "\n".join(lines)


# --- processes -----------------------------------------------------------------------


# --- cohorts ---------------------------------------------------------------------------


@main.group()
def cohorts() -> None:
    """Named groups of participants: add, list, fill, enroll all at once, change."""


def _start(text: str) -> date | Literal["today"]:
    return "today" if text == "today" else parse_date(text)


def _cohort_lines(rt: Runtime, cohort: Any) -> None:
    """A cohort's plan, keyword and sign-up link, one per line (those it has)."""
    if cohort.plan_id:
        click.echo(f"people who join are enrolled in {cohort.plan_id}")
    if cohort.keyword:
        click.echo(f"join by texting: JOIN {cohort.keyword}")
    if cohort.signup_token:
        click.echo(f"sign-up page: {rt.settings.public_base}/join/{cohort.signup_token}")


@cohorts.command("add")
@click.argument("name")
@click.option("--plan", help="The plan people who join are enrolled in.")
@click.option("--keyword", help="People join by texting JOIN KEYWORD (needs --plan).")
@click.option("--signup", is_flag=True, help="Give it a sign-up page (needs --plan).")
@click.option("--coach", "coach_id", help="The coach who owns it (a coach id).")
def cohorts_add(
    name: str, plan: str | None, keyword: str | None, signup: bool, coach_id: str | None
) -> None:
    """Add a cohort; prints its sign-up URL (with --signup), then its id."""
    from service.actions import cohorts as groups

    rt = runtime()
    with reported():
        made = groups.create(
            rt, name=name, plan=plan, keyword=keyword, signup=signup, coach=coach_id
        )
    click.echo(f"added cohort {made.name}")
    _cohort_lines(rt, made)
    click.echo(made.id)


@cohorts.command("list")
def cohorts_list() -> None:
    """Every cohort, with how many people it has."""
    from service.actions import cohorts as groups

    rt = runtime()
    found = groups.cohorts(rt)
    if not found:
        click.echo("No cohorts yet.")
        return
    rows = [
        (
            c.id,
            c.name,
            c.members,
            c.plan_id or "-",
            f"JOIN {c.keyword}" if c.keyword else "-",
            f"{rt.settings.public_base}/join/{c.signup_token}" if c.signup_token else "-",
            c.coach_id or "-",
        )
        for c in found
    ]
    click.echo(format_table(("id", "name", "people", "plan", "keyword", "sign-up", "coach"), rows))


@cohorts.command("members")
@click.argument("cohort_ref", metavar="COHORT")
@click.argument("participant_ids", metavar="PARTICIPANT...", nargs=-1, required=True)
def cohorts_members(cohort_ref: str, participant_ids: tuple[str, ...]) -> None:
    """Put participants in the cohort (out of any other)."""
    from service.actions import cohorts as groups

    rt = runtime()
    with reported():
        cohort = groups.find(rt, cohort_ref)
        groups.add_members(rt, cohort.id, participant_ids)
        after = groups.get(rt, cohort.id)
    click.echo(f"{len(set(participant_ids))} put in {after.name}; it has {after.members} now")


@cohorts.command("enroll")
@click.argument("cohort_ref", metavar="COHORT")
@click.argument("plan")
@click.option("--start", "start_text", required=True,
              help="YYYY-MM-DD for all, or today: each person's own today.")  # fmt: skip
def cohorts_enroll(cohort_ref: str, plan: str, start_text: str) -> None:
    """Enroll everyone in the cohort in a plan at once (all or nobody); prints the
    summary, then one enrollment id a line."""
    from service.actions import cohorts as groups

    rt = runtime()
    start = _start(start_text)
    with reported():
        cohort = groups.find(rt, cohort_ref)
        done = groups.enroll(rt, cohort.id, plan, start)
    click.echo(f"{cohort.name}: {done.summary}")
    for enrollment_id in done.enrolled:
        click.echo(enrollment_id)


@cohorts.command("set")
@click.argument("cohort_ref", metavar="COHORT")
@click.option("--name", help="A new name.")
@click.option("--plan", help="The plan people who join are enrolled in.")
@click.option("--no-plan", is_flag=True, help="No plan (nobody can join then).")
@click.option("--keyword", help="People join by texting JOIN KEYWORD.")
@click.option("--no-keyword", is_flag=True, help="No joining by text.")
@click.option("--signup/--no-signup", default=None,
              help="A sign-up page (a new address each time), or none.")  # fmt: skip
def cohorts_set(
    cohort_ref: str,
    name: str | None,
    plan: str | None,
    no_plan: bool,
    keyword: str | None,
    no_keyword: bool,
    signup: bool | None,
) -> None:
    """Change a cohort's name, plan, join keyword or sign-up page."""
    from service.actions import cohorts as groups

    if plan is not None and no_plan:
        fail("give --plan or --no-plan, not both")
    if keyword is not None and no_keyword:
        fail("give --keyword or --no-keyword, not both")
    changes: dict[str, Any] = {"name": name, "signup": signup}
    if plan is not None or no_plan:
        changes["plan"] = plan
    if keyword is not None or no_keyword:
        changes["keyword"] = keyword
    rt = runtime()
    with reported():
        cohort = groups.find(rt, cohort_ref)
        after = groups.change(rt, cohort.id, **changes)
    click.echo(f"cohort {after.name} ({after.members} people)")
    _cohort_lines(rt, after)


# --- coach accounts and the audit log ---------------------------------------------------


@main.group()
def coaches() -> None:
    """Coach and admin accounts: add, list, disable, links and API tokens."""


@coaches.command("add")
@click.option("--email", required=True, help="Their email: what they sign in with.")
@click.option("--name", required=True, help="Their name, as the dashboard shows it.")
@click.option("--role", type=click.Choice(["coach", "admin"]), default="coach", show_default=True)
def coaches_add(email: str, name: str, role: str) -> None:
    """Add an account; prints the one-time link to set its password, then its id."""
    from service.actions import coaches as accounts

    rt = runtime()
    with reported():
        made = accounts.add(rt, accounts.operator(), email=email, name=name, role=role)
    click.echo(f"added {made.coach.name} <{made.coach.email}> ({made.coach.role})")
    click.echo(f"set a password within {accounts.LINK_LIFETIME.days * 24} hours: {made.link}")
    click.echo(made.coach.id)


@coaches.command("link")
@click.argument("email")
def coaches_link(email: str) -> None:
    """A new one-time link to set the account's password (earlier links stop working)."""
    from service.actions import coaches as accounts

    rt = runtime()
    with reported():
        click.echo(accounts.new_link(rt, accounts.operator(), email))


@coaches.command("token")
@click.argument("email")
@click.option("--name", "label", default="API token", show_default=True, help="A label.")
def coaches_token(email: str, label: str) -> None:
    """A new API token for the account, printed once as the last line (kept hashed)."""
    from service.actions import coaches as accounts

    rt = runtime()
    with reported():
        made = accounts.create_token(rt, accounts.operator(), email, label)
    click.echo(f"token {made.token.id} ({made.token.label}); it is shown only now:")
    click.echo(made.secret)


@coaches.command("tokens")
@click.argument("email")
def coaches_tokens(email: str) -> None:
    """The account's API tokens (never the tokens themselves)."""
    from service.actions import coaches as accounts

    rt = runtime()
    with reported():
        found = accounts.tokens(rt, accounts.operator(), email)
    rows = [
        (
            t.id,
            t.label,
            utc_text(t.created_at),
            utc_text(t.last_used_at) if t.last_used_at else "-",
            f"revoked {utc_text(t.revoked_at)}" if t.revoked_at else "live",
        )
        for t in found
    ]
    click.echo(format_table(("id", "label", "created", "last used", "state"), rows))


@coaches.command("revoke")
@click.argument("email")
@click.argument("token_id")
def coaches_revoke(email: str, token_id: str) -> None:
    """Revoke one of the account's API tokens."""
    from service.actions import coaches as accounts

    rt = runtime()
    with reported():
        accounts.revoke_token(rt, accounts.operator(), email, token_id)
    click.echo(f"revoked {token_id}")


@coaches.command("list")
def coaches_list() -> None:
    """Every account: id, email, name, role, state."""
    from service.actions import coaches as accounts

    rows = [
        (
            c.id,
            c.email,
            c.name,
            c.role,
            "disabled" if c.disabled else ("active" if c.password_hash else "invited"),
        )
        for c in accounts.accounts(runtime())
    ]
    click.echo(format_table(("id", "email", "name", "role", "state"), rows))


@coaches.command("disable")
@click.argument("email")
def coaches_disable(email: str) -> None:
    """The account can no longer sign in or use its tokens; its sessions end."""
    from service.actions import coaches as accounts

    rt = runtime()
    with reported():
        coach = accounts.disable(rt, accounts.operator(), email)
    click.echo(f"disabled {coach.email}")


@main.command("audit")
@click.option("--coach", "coach_email", help="Only what this account did (its email).")
@click.option("--since", "since_text", help="From this date (YYYY-MM-DD, UTC) on.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 100_000))
def audit_command(coach_email: str | None, since_text: str | None, limit: int) -> None:
    """The audit log, newest first: every coach and admin action and every sign-in."""
    from service.actions import coaches as accounts

    since = (
        datetime.combine(parse_date(since_text), datetime.min.time(), UTC) if since_text else None
    )
    rt = runtime()
    with reported():
        found = accounts.audit(rt, coach_email=coach_email, since=since, limit=limit)
    rows = [
        (
            utc_text(e.at),
            f"{e.actor_name} ({e.actor})",
            e.address or "-",
            e.action,
            f"{e.target_kind} {e.target_id}" if e.target_id else "-",
            e.detail or "",
        )
        for e in found
    ]
    click.echo(format_table(("at", "who", "from", "what", "on", "detail"), rows))


@main.command("report")
@click.option("--participant", "participant_id", help="Only this participant's enrollments.")
@click.option("--plan", "plan_id", help="Only enrollments in this plan.")
@click.option("--cohort", "cohort_ref", help="Only the members of this cohort (id or name).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
def report_command(
    participant_id: str | None, plan_id: str | None, cohort_ref: str | None, fmt: str
) -> None:
    """Adherence: per enrollment and practice, what was done, skipped and missed."""
    from service import report
    from service.actions import cohorts as groups
    from service.storage.db import NotFound

    rt = runtime()
    cohort_id = None
    if cohort_ref is not None:
        with reported():
            cohort_id = groups.find(rt, cohort_ref).id
    try:
        found = report.build(rt, participant_id=participant_id, plan_id=plan_id,
                             cohort_id=cohort_id)  # fmt: skip
    except NotFound as exc:
        fail(str(exc))
    if fmt == "json":
        click.echo(json.dumps(found.as_json(), indent=2, ensure_ascii=False))
    elif fmt == "csv":
        click.echo(report.to_csv(found), nl=False)
    elif not found.entries:
        click.echo("No enrollments yet.")
    else:
        headers, rows = report.table_rows(found)
        click.echo(format_table(headers, rows))


@main.command("demo")
@click.option("--days", default=14, show_default=True, type=click.IntRange(1, 56),
              help="Simulated days.")  # fmt: skip
@click.option("--out", "out", default="tend-demo", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="The folder for its database and reports; replaced each run.")  # fmt: skip
@click.option("--seed", default=7, show_default=True, help="The same seed, the same run.")
def demo_command(days: int, out: Path, seed: int) -> None:
    """A self-contained walk-through on simulated time: no network, nothing sent."""
    from service import demo

    def bar(length: int) -> Any:
        return click.progressbar(
            length=length,
            label=f"Simulating {days} days",
            file=sys.stderr,
            width=30,
            item_show_func=lambda moment: f"{moment:%a %d %b %H:%M} UTC" if moment else None,
        )

    click.echo(f"Enrolling {len(demo.PEOPLE)} participants from {demo.START:%a %d %b %Y}:")
    for person in demo.PEOPLE:
        click.echo(f"  {person.name:<14} {person.timezone:<18} {', '.join(person.plans)}"
                   f"  ({person.described})")  # fmt: skip
    try:
        result = demo.run(out, days=days, seed=seed, progressbar=bar)
    except (demo.DemoError, SettingsError) as exc:
        fail(str(exc))
    sent = ", ".join(f"{count} {channel}" for channel, count in result.sent.items())
    checked = ", ".join(f"{count} {kind}" for kind, count in result.check_ins.items())
    click.echo(f"\n{days} simulated days: {sent or 'nothing'} in the outbox; "
               f"{result.replies} replies ({result.answers} answered); "
               f"check-ins: {checked or 'none'}.")  # fmt: skip
    click.echo(result.cohort)
    if result.own_say:
        click.echo("Participants' own say, by text:")
        for line in result.own_say:
            click.echo(f"  {line}")
    click.echo("")
    headers, rows = report_rows(result.report)
    click.echo(format_table(headers, rows))
    click.echo(f"\nHTML report with charts: {result.html}")
    click.echo(f"Explore it: TEND_DATABASE_URL=sqlite:///{result.database} tend outbox")


def report_rows(found: Any) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    from service import report

    return report.table_rows(found)


@main.command("run")
@click.option("--workers", default=4, show_default=True, help="Worker threads.")
def run_command(workers: int) -> None:
    """Everything in one process: HTTP app, scheduler and workers."""
    from service import processes
    from service.actions import plans as publishing

    rt = runtime(migrate=True, serving=True)
    publishing.publish_at_start(rt)
    processes.run_all(rt, worker_threads=workers)


@main.command("web")
def web_command() -> None:
    """The HTTP app alone."""
    from service import processes

    processes.run_web(runtime(serving=True))


@main.command("scheduler")
def scheduler_command() -> None:
    """The scheduler alone (needs TEND_REDIS_URL)."""
    from service import processes

    rt = runtime(serving=True)
    if rt.settings.redis_url is None:
        fail("tend scheduler needs TEND_REDIS_URL; for one process with everything, use tend run")
    processes.run_scheduler(rt)


@main.command("worker")
@click.option("--threads", default=8, show_default=True, help="Worker threads.")
def worker_command(threads: int) -> None:
    """A worker alone (needs TEND_REDIS_URL)."""
    from service import processes

    rt = runtime(serving=True)
    if rt.settings.redis_url is None:
        fail("tend worker needs TEND_REDIS_URL; for one process with everything, use tend run")
    processes.run_worker(rt, threads=threads)


@main.command("outbox")
@click.option("--limit", default=20, show_default=True, help="How many, newest first.")
def outbox_command(limit: int) -> None:
    """The development outbox: messages kept instead of sent."""
    from service.storage import outbox as outbox_rows
    from service.storage.db import transaction

    rt = runtime()
    with transaction(rt.engine) as conn:
        items = outbox_rows.outbox_list(conn, limit=limit)
    if not items:
        click.echo("the outbox is empty")
    for item in items:
        when = f"{item['created_at']:%Y-%m-%d %H:%M:%S}Z"
        click.echo(f"#{item['id']} {when} {item['channel']} to {item['recipient']}")
        if item["subject"]:
            click.echo(f"  Subject: {item['subject']}")
        for line in item["body"].splitlines() or [""]:
            click.echo(f"  {line}")
        if item.get("calendar"):
            click.echo(f"  [calendar invitation: {invitation_summary(item['calendar'])}]")


def invitation_summary(text: str) -> str:
    """`METHOD:REQUEST, 3 events` from an invitation's iCalendar text."""
    lines = text.splitlines()
    method = next((line.split(":", 1)[1] for line in lines if line.startswith("METHOD:")), "?")
    events = sum(1 for line in lines if line.strip() == "BEGIN:VEVENT")
    return f"METHOD:{method.strip()}, {events} event{'s' if events != 1 else ''}"
