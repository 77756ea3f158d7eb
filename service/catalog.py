"""Plans and templates on disk: reading plan files and folders, finding a plan by id.

This is the I/O around the pure loader in `service.core.loader`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import threading
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import jinja2.meta

from service.core import confirmation
from service.core.conversation import ANSWERS, sample_answer_context
from service.core.diagnostics import Diagnostic, line_column
from service.core.digest import sample_digest_context
from service.core.loader import LoadResult, load_plan
from service.core.plan import Plan
from service.core.render import (
    DIGEST_TEMPLATE,
    DISCREET_DEFAULT,
    DISCREET_NUDGE,
    LANGUAGE,
    Renderer,
    RenderError,
    template_file,
)

PLAN_SUFFIXES = (".yaml", ".yml")


class PlanNotFound(LookupError):
    """No plan file or plan id by that name."""


@dataclass(slots=True)
class CheckResult:
    """Everything `tend plans check` found in some files."""

    plans: dict[str, Plan] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: int = 0

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


class Catalog:
    """The schedules and templates folders."""

    def __init__(self, schedules_dir: Path, templates_dir: Path) -> None:
        self.schedules_dir = schedules_dir
        self.templates_dir = templates_dir
        self.renderer = Renderer(jinja2.FileSystemLoader(str(templates_dir), encoding="utf-8"))

    @functools.cached_property
    def templates_digest(self) -> str:
        """A digest of every template file's name and text, as they were when first
        asked: what is rendered from them changes when it does (feeds' ETags use it).
        The same files give the same digest in every process."""
        digest = hashlib.sha256()
        root = self.templates_dir
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        for path in files:
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        return digest.hexdigest()[:16]

    def load_file(self, path: Path, shown: str | None = None) -> LoadResult:
        shown = shown if shown is not None else str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            return LoadResult(None, [_whole_file(shown, f"cannot read the file: {exc.strerror}")])
        return self.load_bytes(data, shown)

    def load_bytes(self, data: bytes, shown: str) -> LoadResult:
        """Check a plan's text as a file holds it (UTF-8, any newlines)."""
        text = plan_text(data, shown)
        if isinstance(text, Diagnostic):
            return LoadResult(None, [text])
        return load_plan(text, shown, self.renderer)

    def compile_version(self, text: str, shown: str) -> tuple[LoadResult, Bundle | None]:
        """Check a plan's text for publishing: with the plan, the text of every template
        file it uses now (and those they include), and the content hash of the two.
        The templates are read through a fresh renderer, so that what was read is what
        is kept."""
        recorder = _RecordingLoader(self.templates_dir)
        loaded = load_plan(text, shown, Renderer(recorder))
        if loaded.plan is None:
            return loaded, None
        templates = recorder.closure()
        bundle = Bundle(text, templates, version_hash(text, templates))
        return loaded, bundle

    def check(self, paths: Iterable[Path] | None = None) -> CheckResult:
        """Load every plan file under `paths` (default: the schedules folder)."""
        result = CheckResult()
        owners: dict[str, str] = {}
        targets = list(paths) if paths is not None else [self.schedules_dir]
        for path in plan_files(targets, result.diagnostics):
            result.files += 1
            loaded = self.load_file(path)
            result.diagnostics.extend(loaded.diagnostics)
            plan_id = loaded.declared_id
            if plan_id is not None and plan_id in owners:
                line, column = loaded.id_position
                result.diagnostics.append(
                    Diagnostic(
                        str(path),
                        line,
                        column,
                        "error",
                        f"plan id '{plan_id}' is already used by {owners[plan_id]}",
                    )
                )
                continue
            if plan_id is not None:
                owners[plan_id] = str(path)
            if loaded.plan is not None:
                result.plans[loaded.plan.id] = loaded.plan
        if paths is None:
            result.diagnostics.extend(self.check_own_templates())
        return result

    def check_own_templates(self) -> list[Diagnostic]:
        """Render Tend's own texts (answers to replies, the coach digest, the
        confirmation) with sample values, in every language they are translated into: a
        broken one is found by `tend plans check`, not by a participant."""
        found = []
        renderer = self.renderer
        languages = (None, *sorted(renderer.languages()))
        for language in languages:
            for name in ANSWERS:
                context = {**sample_answer_context(name), LANGUAGE: language}
                try:
                    renderer.answer(name, context)
                except RenderError as exc:
                    where = template_file(f"replies/{name}", "sms", language)
                    found.append(self._template_error(where, exc))
        try:
            renderer.digest_email(sample_digest_context())
        except RenderError as exc:
            found.append(self._template_error(template_file(DIGEST_TEMPLATE, "email"), exc))
        for language in languages:
            for name in confirmation.TEMPLATES:
                where = template_file(f"consent/{name}", "sms", language)
                context = {**confirmation.sample_context(), LANGUAGE: language}
                try:
                    text = renderer.confirmation(name, context)
                except RenderError as exc:
                    found.append(self._template_error(where, exc))
                    continue
                lacking = confirmation.missing_words(name, text)
                if lacking:
                    shown = renderer.translated(f"consent/{name}", "sms", language)
                    found.append(_whole_file(
                        str(self.templates_dir / template_file(shown, "sms")),
                        f"the confirmation must tell people how to {_how(lacking)}: it needs "
                        f"{' and '.join(lacking)} in capitals (as in 'Reply HELP for help, "
                        "STOP to opt out'); carriers require it",
                    ))  # fmt: skip
        for name in (DISCREET_DEFAULT, DISCREET_NUDGE):
            if not renderer.has_template(name, "sms"):
                found.append(_whole_file(
                    str(self.templates_dir / template_file(name, "sms")),
                    "missing: participants who asked for discreet texts get this wording "
                    "when a practice has no discreet_message",
                ))  # fmt: skip
        return found

    def _template_error(self, name: str, exc: RenderError) -> Diagnostic:
        return _whole_file(str(self.templates_dir / name), str(exc))

    def find(self, ref: str) -> Path:
        """A plan's file, from a path or a plan id."""
        path = Path(ref)
        if path.suffix in PLAN_SUFFIXES or "/" in ref or path.is_file():
            if not path.is_file():
                raise PlanNotFound(f"no plan file at {ref}")
            return path
        for candidate in plan_files([self.schedules_dir], []):
            loaded_id = _declared_id(candidate)
            if loaded_id == ref:
                return candidate
        raise PlanNotFound(f"no plan with id '{ref}' in {self.schedules_dir}")

    def load(self, ref: str) -> LoadResult:
        return self.load_file(self.find(ref))


@dataclass(frozen=True, slots=True)
class Bundle:
    """A plan as it is published: its text and its templates' texts, and their hash."""

    text: str
    templates: dict[str, str]
    content_hash: str


def version_hash(text: str, templates: Mapping[str, str]) -> str:
    """The content hash of a published version: its text and its templates' texts."""
    digest = hashlib.sha256(text.encode())
    for name in sorted(templates):
        digest.update(b"\0" + name.encode() + b"\0" + templates[name].encode())
    return digest.hexdigest()


def load_version(
    plan_id: str, version: int, text: str, templates: Mapping[str, str], content_hash: str
) -> LoadResult:
    """A published version as a plan: checked again (against its own templates, not the
    folder's), with its hash and number."""
    loaded = load_plan(
        text, f"{plan_id} version {version}", Renderer(jinja2.DictLoader(dict(templates)))
    )
    if loaded.plan is not None:
        plan = dataclasses.replace(loaded.plan, content_hash=content_hash, version=version)
        loaded = dataclasses.replace(loaded, plan=plan)
    return loaded


def version_renderer(templates: Mapping[str, str]) -> Renderer:
    return Renderer(jinja2.DictLoader(dict(templates)))


def plan_text(data: bytes, shown: str) -> str | Diagnostic:
    """A plan file's bytes as text (universal newlines, as open() in text mode reads
    them), or the error that says why they are not."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _not_utf8(shown, data, exc)
    return _newlines(text)


class _RecordingLoader(jinja2.FileSystemLoader):
    """Reads templates from a folder and keeps the text of each one it read."""

    def __init__(self, folder: Path) -> None:
        super().__init__(str(folder), encoding="utf-8")
        self.read: dict[str, str] = {}
        self._lock = threading.Lock()

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, typing.Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        with self._lock:
            self.read[template] = source
        return source, filename, uptodate

    def closure(self) -> dict[str, str]:
        """The templates read, and every template they name that exists (an include
        inside an `if` that the sample rendering did not take, say)."""
        found = dict(self.read)
        todo = list(found)
        env = jinja2.Environment(loader=self)
        while todo:
            name = todo.pop()
            try:
                names = jinja2.meta.find_referenced_templates(env.parse(found[name]))
            except jinja2.TemplateSyntaxError:
                continue
            for other in names:
                if other is None or other in found:
                    continue
                try:
                    found[other] = super().get_source(env, other)[0]
                except jinja2.TemplateNotFound:
                    continue
                todo.append(other)
        return dict(sorted(found.items()))


def _whole_file(path: str, message: str) -> Diagnostic:
    return Diagnostic(path, 1, 1, "error", message)


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _not_utf8(path: str, data: bytes, exc: UnicodeDecodeError) -> Diagnostic:
    """The first byte that is not UTF-8, at its line and column (in characters)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _whole_file(path, "the file is UTF-16 text; save it as UTF-8")
    before = _newlines(data[: exc.start].decode("utf-8"))
    line, column = line_column(before, len(before))
    byte = data[exc.start]
    return Diagnostic(
        path,
        line,
        column,
        "error",
        f"not UTF-8 text: byte 0x{byte:02x} here ({exc.reason}); save the file as UTF-8",
    )


def plan_files(targets: Iterable[Path], diagnostics: list[Diagnostic]) -> Iterator[Path]:
    """The plan files in `targets` (files, or folders searched through); a target that
    does not exist is reported in `diagnostics`."""
    for target in targets:
        if target.is_dir():
            yield from sorted(
                p for p in target.rglob("*") if p.suffix in PLAN_SUFFIXES and p.is_file()
            )
        elif target.is_file():
            yield target
        else:
            diagnostics.append(_whole_file(str(target), "no such file or folder"))


def _declared_id(path: Path) -> str | None:
    """The `plan:` id of a file, read cheaply without checking the whole plan."""
    try:
        with path.open(encoding="utf-8-sig") as handle:  # -sig: a BOM is not part of `plan:`
            for line in handle:
                if line.startswith("plan:"):
                    value = line.partition(":")[2].split("#", 1)[0].strip().strip("'\"")
                    return value or None
    except (OSError, UnicodeDecodeError):
        return None
    return None


def _how(words: list[str]) -> str:
    doing = {"HELP": "get help", "STOP": "stop", "YES": "confirm"}
    return " and ".join(doing[w] for w in words)
