"""Plans and templates on disk: reading plan files and folders, finding a plan by id.

This is the I/O around the pure loader in `service.core.loader`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from service.core.conversation import ANSWERS, sample_answer_context
from service.core.diagnostics import Diagnostic, line_column
from service.core.digest import sample_digest_context
from service.core.loader import LoadResult, load_plan
from service.core.plan import Plan
from service.core.render import DIGEST_TEMPLATE, Renderer, RenderError, template_file

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
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return LoadResult(None, [_not_utf8(shown, data, exc)])
        # Universal newlines, as open() in text mode reads them.
        return load_plan(_newlines(text), shown, self.renderer)

    def check(self, paths: Iterable[Path] | None = None) -> CheckResult:
        """Load every plan file under `paths` (default: the schedules folder)."""
        result = CheckResult()
        owners: dict[str, str] = {}
        targets = list(paths) if paths is not None else [self.schedules_dir]
        for path in _plan_files(targets, result):
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
        """Render Tend's own texts (answers to replies, the coach digest) with sample
        values: a broken one is found by `tend plans check`, not by a participant."""
        found = []
        renderer = self.renderer
        for name in ANSWERS:
            try:
                renderer.answer(name, sample_answer_context(name))
            except RenderError as exc:
                found.append(self._template_error(template_file(f"replies/{name}", "sms"), exc))
        try:
            renderer.digest_email(sample_digest_context())
        except RenderError as exc:
            found.append(self._template_error(template_file(DIGEST_TEMPLATE, "email"), exc))
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
        for candidate in _plan_files([self.schedules_dir], CheckResult()):
            loaded_id = _declared_id(candidate)
            if loaded_id == ref:
                return candidate
        raise PlanNotFound(f"no plan with id '{ref}' in {self.schedules_dir}")

    def load(self, ref: str) -> LoadResult:
        return self.load_file(self.find(ref))


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


def _plan_files(targets: Iterable[Path], result: CheckResult) -> Iterator[Path]:
    for target in targets:
        if target.is_dir():
            yield from sorted(
                p for p in target.rglob("*") if p.suffix in PLAN_SUFFIXES and p.is_file()
            )
        elif target.is_file():
            yield target
        else:
            result.diagnostics.append(_whole_file(str(target), "no such file or folder"))


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
