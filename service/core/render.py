"""Message text: Jinja2 in a sandbox, undefined names are errors.

The sandbox (`service.core.sandbox`) makes templates safe and bounded; this module is what
Tend renders with it: the names a template may use, the strict undefined that names a
missing one and suggests a near miss, where templates are found, and RenderError.

A practice's reminder comes from its inline `message`, or from template files named
`<template>.<channel>.j2` under the templates folder. A practice with neither uses the
category's defaults, `default/<category>.<channel>.j2`; those defaults also wrap an
inline message for email and calendar, where it arrives as `{{ message }}`.

An email template defines three blocks: `subject`, `text` and `html`. The html block is
always autoescaped and the others never are, whatever the template says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2

from service.core import language as languages
from service.core.diagnostics import did_you_mean, one_of
from service.core.expand import Occurrence
from service.core.language import LocalizedLines, local
from service.core.plan import Plan, Practice, Variant
from service.core.sandbox import compiled, environment, render_block, short
from service.core.timeexpr import format_clock

TEMPLATE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)*$"
_TEMPLATE_NAME = re.compile(TEMPLATE_NAME_PATTERN)
EMAIL_BLOCKS = ("subject", "text", "html")
SUMMARY_TEMPLATE = "summaries/weekly"  # the weekly summary: weekly.sms.j2, weekly.email.j2
DIGEST_TEMPLATE = "digest/coach"  # the coach's weekly digest: coach.email.j2
DISCREET_FOLDER = "discreet"  # neutral wordings: discreet/<category> or discreet/default
DISCREET_DEFAULT = "discreet/default"
DISCREET_NUDGE = "discreet/nudge"
SAMPLE_NAME = "Alex"
# Hidden entries of a message's context (templates do not see names starting with _):
# the participant's language, and whether their texts are discreet.
LANGUAGE = "_language"
DISCREET = "_discreet"


class RenderError(Exception):
    """A message that cannot be rendered: a template missing, broken, or naming the unknown."""


class InlineSyntaxError(RenderError):
    """A plan's inline text (a translation) that does not compile: `tend plans check`
    reports it where it is written, so a rendering of it need not report it again."""


@dataclass(frozen=True, slots=True)
class Person:
    """What templates may know of a participant."""

    name: str

    @property
    def first_name(self) -> str:
        parts = self.name.split()
        return parts[0] if parts else self.name


SAMPLE_PERSON = Person(SAMPLE_NAME)


@dataclass(frozen=True, slots=True)
class EmailContent:
    subject: str
    text: str
    html: str


def template_file(name: str, channel: str, language: str | None = None) -> str:
    """`name.channel.j2`, or `name.<language>.channel.j2` for a translation."""
    return f"{name}.{language}.{channel}.j2" if language else f"{name}.{channel}.j2"


def template_language(filename: str) -> str | None:
    """The language of a template file's name (`x/y.es.sms.j2` -> "es"), or None."""
    parts = filename.rsplit("/", 1)[-1].split(".")
    return parts[1] if len(parts) == 4 and parts[-1] == "j2" else None


def default_template(category: str) -> str:
    return f"default/{category}"


def valid_template_name(name: str) -> bool:
    return bool(_TEMPLATE_NAME.match(name))


class Names(dict[str, Any]):
    """A mapping in a template's context that knows its own name, for clear errors."""

    __slots__ = ("label",)

    def __init__(self, label: str, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.label = label


class _StrictUndefined(jinja2.StrictUndefined):
    """StrictUndefined whose message names the variable and suggests a near miss."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        name = short(self._undefined_name)
        owner = self._undefined_obj
        if owner is jinja2.utils.missing:
            return f"'{name}' is not defined"
        if isinstance(owner, Names):
            hint = did_you_mean(name, owner)
            return f"'{owner.label}' has no '{name}'{hint}; it has {one_of(owner) or 'nothing'}"
        return f"{jinja2.utils.object_type_repr(owner)} has no attribute '{name}'"


class Renderer:
    """Renders reminders; templates come from the loader it is given (none: inline only)."""

    def __init__(self, templates: jinja2.BaseLoader | None = None) -> None:
        templates = templates or jinja2.DictLoader({})
        self._text = environment(templates, autoescape=False, undefined=_StrictUndefined)
        self._html = environment(templates, autoescape=True, undefined=_StrictUndefined)
        self._inline: dict[str, jinja2.Template] = {}
        self._loader = templates
        self._exists: dict[tuple[str, str], bool] = {}  # has_template's answers
        self._languages: frozenset[str] | None = None

    def languages(self) -> frozenset[str]:
        """The languages some template is translated into (from the files' names)."""
        if self._languages is None:
            try:
                names = self._loader.list_templates()
            except TypeError:  # a loader that cannot list
                names = []
            found = {template_language(name) for name in names}
            self._languages = frozenset(lang for lang in found if lang)
        return self._languages

    # -- compiling -------------------------------------------------------------

    def compile_inline(self, source: str) -> jinja2.Template:
        """Compile inline text (cached); raises jinja2.TemplateSyntaxError."""
        template = self._inline.get(source)
        if template is None:
            template = compiled(lambda: self._text.from_string(source))
            self._inline[source] = template
        return template

    def template(self, name: str, channel: str, *, html: bool = False) -> jinja2.Template:
        """Load a template file; raises jinja2.TemplateNotFound or TemplateSyntaxError."""
        env = self._html if html else self._text
        return compiled(lambda: env.get_template(template_file(name, channel)))

    def has_template(self, name: str, channel: str) -> bool:
        known = self._exists.get((name, channel))
        if known is not None:
            return known
        try:
            self.template(name, channel)
        except jinja2.TemplateNotFound:
            found = False
        except jinja2.TemplateSyntaxError:
            found = True  # it exists; rendering it reports the error
        else:
            found = True
        self._exists[(name, channel)] = found
        return found

    # -- context ---------------------------------------------------------------

    def context(
        self,
        plan: Plan,
        occurrence: Occurrence,
        person: Person,
        variables: Mapping[str, int],
        check_in_url: str,
        *,
        language: str | None = None,
        discreet: bool = False,
    ) -> dict[str, Any]:
        """What a reminder's text may use. For `language`, translated texts where the plan
        has them; for a `discreet` participant, the practice's title is a neutral name
        ("your evening practice") and the plan's title is Tend's."""
        practice = occurrence.practice
        variant = occurrence.variant
        title = local(practice.title, language) or practice.title
        plan_title = local(plan.title, language) or plan.title
        if discreet:
            title = languages.discreet_title(occurrence.local.hour, language)
            plan_title = "Tend"
        item = occurrence.item
        if isinstance(variant.rotate, LocalizedLines):
            item = variant.rotate.line(item, language)
        return {
            LANGUAGE: language,
            DISCREET: discreet,
            "participant": Names(
                "participant", {"name": person.name, "first_name": person.first_name}
            ),
            "vars": Names("vars", {name: format_clock(value) for name, value in variables.items()}),
            "practice": Names(
                "practice",
                {
                    "id": practice.id,
                    "title": title,
                    "category": practice.category,
                    "duration_minutes": variant.duration_minutes,
                    # Group sessions (None when unset): the zone that fixes the instant
                    # for everyone, where it happens and its link. The time itself is
                    # `occurrence.local`, on the participant's own clock.
                    "timezone": practice.timezone,
                    "location": practice.location,
                    "url": practice.url,
                },
            ),
            "occurrence": Names(
                "occurrence",
                {"key": occurrence.key, "week": occurrence.week, "local": occurrence.local},
            ),
            "plan": Names("plan", {"id": plan.id, "title": plan_title}),
            "item": item,
            "check_in_url": check_in_url,
            "check_in": Names(
                "check_in",
                {
                    "kind": practice.check_in.kind,
                    # A discreet text asks no question that could tell what it is about.
                    "question": None if discreet else local(practice.check_in.question, language),
                    "scale": practice.check_in.scale,
                    "unit": practice.check_in.unit,
                },
            ),
        }

    # -- rendering -------------------------------------------------------------

    def sms(self, variant: Variant, practice: Practice, context: Mapping[str, Any]) -> str:
        """The SMS text of a reminder, in the context's language; for a discreet
        participant, the practice's `discreet_message` or the neutral wording."""
        language = context.get(LANGUAGE)
        if context.get(DISCREET):
            if practice.discreet_message is not None:
                return self._inline_text(practice.discreet_message, context)
            name = self.discreet_template(practice.category, "sms")
            return self._file(name, "sms", context, language)
        if variant.message is not None:
            return self._inline_text(variant.message, context)
        name = variant.template or default_template(practice.category)
        return self._file(name, "sms", context, language)

    def discreet_template(self, category: str, channel: str) -> str:
        """discreet/<category> when there is one, else discreet/default."""
        own = f"{DISCREET_FOLDER}/{category}"
        return own if self.has_template(own, channel) else DISCREET_DEFAULT

    def _inline_text(self, text: str, context: Mapping[str, Any]) -> str:
        chosen = local(text, context.get(LANGUAGE)) or text
        try:
            template = self.compile_inline(chosen)
        except jinja2.TemplateSyntaxError as exc:  # a translation's, found when checked
            raise InlineSyntaxError(f"template syntax: {exc.message}") from exc
        return self._run(template, context)

    def email(
        self, variant: Variant, practice: Practice, context: Mapping[str, Any]
    ) -> EmailContent:
        return self._email(*self._wrapped(variant, practice, context, "email"))

    def calendar(self, variant: Variant, practice: Practice, context: Mapping[str, Any]) -> str:
        """The description of a calendar event."""
        name, context = self._wrapped(variant, practice, context, "calendar")
        return self._file(name, "calendar", context, context.get(LANGUAGE))

    def text(self, variant: Variant, practice: Practice, context: Mapping[str, Any]) -> str:
        """The reminder's text as a person reads it: the SMS when there is one."""
        if variant.message is not None or "sms" in practice.channels or context.get(DISCREET):
            return self.sms(variant, practice, context)
        if "email" in practice.channels:
            return self.email(variant, practice, context).text
        return self.calendar(variant, practice, context)

    def nudge(self, practice: Practice, context: Mapping[str, Any]) -> str:
        if practice.nudge is None:
            raise RenderError(f"practice '{practice.id}' has no nudge")
        if context.get(DISCREET):
            return self._file(DISCREET_NUDGE, "sms", context, context.get(LANGUAGE))
        return self._inline_text(practice.nudge.message, context)

    def answer(self, name: str, context: Mapping[str, Any]) -> str:
        """An SMS answer to a reply, from templates/replies/<name>[.<lang>].sms.j2."""
        return self._file(f"replies/{name}", "sms", context, context.get(LANGUAGE))

    def confirmation(self, name: str, context: Mapping[str, Any]) -> str:
        """The confirmation SMS (`core.confirmation`), from templates/consent/<name>.sms.j2."""
        return self._file(f"consent/{name}", "sms", context, context.get(LANGUAGE))

    def occurrence_text(
        self,
        plan: Plan,
        occurrence: Occurrence,
        person: Person,
        variables: Mapping[str, int],
        check_in_url: str,
    ) -> str:
        context = self.context(plan, occurrence, person, variables, check_in_url)
        return self.text(occurrence.variant, occurrence.practice, context)

    def summary_sms(self, context: Mapping[str, Any]) -> str:
        """The weekly summary as an SMS; `context` as `service.core.summary.summary_context`."""
        return self._file(SUMMARY_TEMPLATE, "sms", context, context.get(LANGUAGE))

    def summary_email(self, context: Mapping[str, Any]) -> EmailContent:
        """The weekly summary as an email; `context` as `service.core.summary.summary_context`."""
        return self._email(SUMMARY_TEMPLATE, context)  # in the context's language

    def digest_email(self, context: Mapping[str, Any]) -> EmailContent:
        """The coach's weekly digest; `context` as `service.core.digest.digest_context`."""
        return self._email(DIGEST_TEMPLATE, context)

    # -- internals -------------------------------------------------------------

    def _wrapped(
        self, variant: Variant, practice: Practice, context: Mapping[str, Any], channel: str
    ) -> tuple[str, Mapping[str, Any]]:
        """The template for email and calendar, with `message` set for the defaults. A
        discreet participant's is the neutral one, with their `discreet_message`."""
        if context.get(DISCREET):
            message = None
            if practice.discreet_message is not None:
                message = self._inline_text(practice.discreet_message, context)
            return self.discreet_template(practice.category, channel), {
                **context,
                "message": message,
            }
        if variant.template is not None:
            return variant.template, {**context, "message": None}
        message = None
        if variant.message is not None:
            message = self._inline_text(variant.message, context)
        return default_template(practice.category), {**context, "message": message}

    def _email(self, name: str, context: Mapping[str, Any]) -> EmailContent:
        """An email from the subject, text and html blocks of the template `name`, in
        the context's language."""
        name = self.translated(name, "email", context.get(LANGUAGE))
        parts = {block: self._block(name, block, context) for block in EMAIL_BLOCKS}
        return EmailContent(**parts)

    def translated(self, name: str, channel: str, language: str | None) -> str:
        """The name of `name`'s translation into `language` when there is one (es-MX
        before es), else `name` itself."""
        for candidate in languages.candidates(language):
            if self.has_template(f"{name}.{candidate}", channel):
                return f"{name}.{candidate}"
        return name

    def _file(
        self, name: str, channel: str, context: Mapping[str, Any], language: str | None = None
    ) -> str:
        name = self.translated(name, channel, language)
        try:
            template = self.template(name, channel)
        except jinja2.TemplateNotFound as exc:
            raise RenderError(f"template {template_file(name, channel)} does not exist") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(f"template {template_file(name, channel)}: {exc}") from exc
        return self._run(template, context)

    def _block(self, name: str, block: str, context: Mapping[str, Any]) -> str:
        try:
            template = self.template(name, "email", html=block == "html")
        except jinja2.TemplateNotFound as exc:
            raise RenderError(f"template {template_file(name, 'email')} does not exist") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(f"template {template_file(name, 'email')}: {exc}") from exc
        if block not in template.blocks:
            raise RenderError(
                f"template {template_file(name, 'email')} has no '{block}' block; "
                "an email template defines subject, text and html"
            )
        try:
            out = render_block(template, block, context)
        except Exception as exc:  # template code may raise anything: 1/0, 1 + 'a'
            raise RenderError(_describe(exc, context)) from exc
        return out.strip() if block != "html" else out.strip() + "\n"

    @staticmethod
    def _run(template: jinja2.Template, context: Mapping[str, Any]) -> str:
        try:
            return template.render(context).strip()  # the sandbox's render: with a budget
        except Exception as exc:  # template code may raise anything: 1/0, 1 + 'a'
            raise RenderError(_describe(exc, context)) from exc


MAX_MESSAGE = 1000  # characters of an error message (a template may name a long value)


def _describe(exc: Exception, context: Mapping[str, Any] | None = None) -> str:
    message = _describe_fully(exc, context or {})
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


# A top-level name the text uses and its context lacks, as _StrictUndefined says it.
_NOT_DEFINED = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)' is not defined")


def _describe_fully(exc: Exception, context: Mapping[str, Any]) -> str:
    if isinstance(exc, jinja2.UndefinedError):
        message = exc.message or "a name is not defined"
        missing = _NOT_DEFINED.fullmatch(message)
        if missing and context:
            # A typo in a top-level name (participnt) gets a near miss, as attributes do.
            names = [name for name in context if not name.startswith("_")]
            hint = did_you_mean(missing.group(1), names)
            message += hint or f"; the text can use {one_of(names)}"
        return f"unknown name in the text: {message}"
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"not allowed in a message: {exc.message}"
    if isinstance(exc, jinja2.TemplateNotFound):
        return f"template {exc.name} does not exist"
    if isinstance(exc, jinja2.TemplateError):
        return exc.message or type(exc).__name__
    return f"the text fails when rendered: {type(exc).__name__}: {exc}"
