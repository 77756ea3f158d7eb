"""Plans in several languages (`message: {en: ..., es: ...}`), discreet wording, and
what `tend plans check` says of them: the loader and the renderer, without a database."""

from __future__ import annotations

from datetime import UTC, date

import pytest

from service.core.expand import expand, resolve_plan_variables
from service.core.language import Localized, LocalizedLines
from service.core.render import SAMPLE_PERSON
from tests.support.plans import HEADER, load, load_ok, practice, renderer

pytestmark = pytest.mark.unit

SPANISH = HEADER.replace(
    "    title: Screens off\n", "    title: {en: Screens off, es: Pantallas fuera}\n"
) + "".join(
    f"    {line}\n"
    for line in (
        'at: "21:30"',
        "message:",
        '  en: "Screens off, {{ participant.first_name }}."',
        '  es: "Apaga las pantallas, {{ participant.first_name }}."',
        "check_in:",
        "  kind: done",
        "  question: {en: Did you?, es: ¿Lo hiciste?}",
    )
)


def sms_for(
    plan_text: str, language: str | None = None, *, discreet: bool = False, **extra: str
) -> str:
    plan = load_ok(plan_text, templates=extra or None)
    made = renderer(extra or None)
    first = expand(plan, date(2026, 3, 2), UTC)[0]
    variables = resolve_plan_variables(plan, {})
    context = made.context(
        plan, first, SAMPLE_PERSON, variables, "https://t/c", language=language, discreet=discreet
    )
    return made.sms(first.variant, first.practice, context)


def test_a_text_per_language_is_the_plans_language_with_its_translations() -> None:
    plan = load_ok(SPANISH)
    practice_ = plan.practices[0]
    assert practice_.title == "Screens off"
    assert isinstance(practice_.title, Localized)
    assert practice_.title.in_language("es-MX") == "Pantallas fuera"
    assert practice_.check_in.question == "Did you?"
    assert sms_for(SPANISH) == "Screens off, Alex."
    assert sms_for(SPANISH, "es") == "Apaga las pantallas, Alex."
    assert sms_for(SPANISH, "es-MX") == "Apaga las pantallas, Alex."  # es-MX falls back to es
    assert sms_for(SPANISH, "fr") == "Screens off, Alex."  # no French: the plan's language


def test_the_plans_own_language_must_be_in_every_mapping() -> None:
    result = load(practice('at: "21:30"', "message: {es: Apaga las pantallas.}"))
    assert [d.message for d in result.errors] == [
        "give the English (en) text too: it is what participants in other languages get "
        "(the plan's `language:` is en)"
    ]


def test_a_plan_written_in_spanish_says_so() -> None:
    text = HEADER.replace("title: Sleep\n", "title: Sueño\nlanguage: es\n") + (
        '    at: "21:30"\n    message: {es: Apaga las pantallas., en: Screens off.}\n'
    )
    plan = load_ok(text)
    assert plan.language == "es"
    assert plan.practices[0].base.message == "Apaga las pantallas."


def test_a_key_that_is_not_a_language_is_an_error_at_the_key() -> None:
    result = load(practice('at: "21:30"', "message: {en: Screens off., spanish: Apaga.}"))
    assert [(d.line, d.message) for d in result.errors] == [
        (12, "'spanish' is not a language; write a language tag such as en, es or es-mx")
    ]


def test_each_missing_translation_is_warned_of_where_it_is() -> None:
    text = (
        HEADER.replace(
            "    title: Screens off\n", "    title: {en: Screens off, es: Pantallas fuera}\n"
        )
        + '    at: "21:30"\n    message: Screens off now.\n'
    )
    result = load(text)
    assert result.errors == []
    missing = "no Spanish (es) text: participants who read Spanish get the English one"
    assert [(d.line, d.message) for d in result.warnings] == [(2, missing), (12, missing)]


def test_a_syntax_error_in_a_translation_is_found_at_its_language() -> None:
    result = load(
        practice('at: "21:30"', "message:", "  en: Fine.", '  es: "Hola {{ participant.name "')
    )
    assert [(d.line, d.message.split(":")[0]) for d in result.errors] == [(14, "template syntax")]


def test_an_unknown_name_in_a_translation_is_found_by_the_sample_rendering() -> None:
    result = load(
        practice('at: "21:30"', "message:", "  en: Fine.", '  es: "Hola {{ participnt.name }}"')
    )
    assert len(result.errors) == 1
    assert "participnt" in result.errors[0].message
    assert "(es)" in result.errors[0].message


def test_rotate_lines_per_language_go_by_their_place() -> None:
    text = practice(
        'at: "21:30"',
        'message: {en: "Line: {{ item }}", es: "Frase: {{ item }}"}',
        "rotate:",
        "  en: [one, two]",
        "  es: [uno, dos]",
    )
    plan = load_ok(text)
    assert isinstance(plan.practices[0].base.rotate, LocalizedLines)
    occurrences = expand(plan, date(2026, 3, 2), UTC)[:2]
    made = renderer()
    said = []
    for occurrence in occurrences:
        context = made.context(plan, occurrence, SAMPLE_PERSON, {}, "", language="es")
        said.append(made.sms(occurrence.variant, occurrence.practice, context))
    assert said == ["Frase: uno", "Frase: dos"]


def test_rotate_translations_need_as_many_lines() -> None:
    text = practice('at: "21:30"', "rotate:", "  en: [one, two]", "  es: [uno]")
    result = load(text)
    assert [d.message for d in result.errors] == [
        "1 Spanish lines for 2 English ones: give as many, in the same order"
    ]


def test_template_files_per_language_and_a_warning_for_a_missing_one() -> None:
    text = practice('at: "21:30"', "template: sleep/wind-down", "channels: [sms]")
    spanish = {"sleep/wind-down.es.sms.j2": "Relájate, {{ participant.first_name }}."}
    assert sms_for(text, "es", **spanish) == "Relájate, Alex."
    assert sms_for(text, "en", **spanish).startswith("Wind down, Alex.")
    # The plan's own template has Spanish for SMS but not for email: said.
    both = practice('at: "21:30"', "template: sleep/wind-down", "channels: [sms, email]")
    result = load(both, templates=spanish)
    assert (
        "no Spanish version of template 'sleep/wind-down' for email "
        "(templates/sleep/wind-down.es.email.j2): participants who read Spanish get the "
        "English one"
    ) in [d.message for d in result.warnings]
    assert not [d for d in result.warnings if "for sms" in d.message]


def test_a_discreet_message_replaces_the_text_and_never_the_title() -> None:
    text = practice(
        'at: "21:30"',
        "message: Screens off before your trauma work.",
        "discreet_message: {en: Evening reminder. Reply DONE., es: Aviso de la noche. LISTO.}",
    )
    assert sms_for(text, discreet=True) == "Evening reminder. Reply DONE."
    assert sms_for(text, "es", discreet=True) == "Aviso de la noche. LISTO."


def test_without_a_discreet_message_the_neutral_template_names_the_time_of_day() -> None:
    neutral = {
        "discreet/default.sms.j2": "Time for {{ practice.title }}. {{ check_in.question or '' }}"
    }
    text = practice(
        'at: "21:30"', "message: Screens off.", "check_in: {kind: done, question: Trauma ok?}"
    )
    said = sms_for(text, discreet=True, **neutral)
    assert said.strip() == "Time for your evening practice."  # no question: it could tell


def test_a_variable_named_like_a_reply_keyword_is_warned_of() -> None:
    text = HEADER.replace('  bedtime: "22:30"\n', '  bedtime: "22:30"\n  later: "23:00"\n') + (
        '    at: "21:30"\n'
    )
    result = load(text)
    assert [(d.line, d.message) for d in result.warnings] == [
        (
            7,
            "'later' is also a word participants text to Tend (LATER ...), so they cannot "
            "set it by text; rename it",
        )
    ]
