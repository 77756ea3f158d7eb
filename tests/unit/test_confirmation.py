"""The confirmation SMS's facts (core/confirmation.py) and `tend plans check` refusing a
reworded confirmation that no longer says how to get help, stop or confirm."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from service.catalog import Catalog
from service.core import confirmation
from service.core.loader import load_plan
from service.core.render import LANGUAGE
from service.core.sms import count_segments

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PLAN = """
plan: nights
title: Nights
days: 7
practices:
  - id: lights
    category: sleep
    title: Lights low
    at: "22:00"
    channels: [sms]
    message: "Lights low."
    nudge: {after: 30m, message: "Still up?"}
  - id: letter
    category: journaling
    title: Letter
    at: "19:00"
    channels: [email]
    message: "Write."
  - id: walk
    category: movement
    title: Walk
    at: "07:00"
    channels: [sms, calendar]
    message: "Walk."
"""


def test_the_frequency_counts_each_texting_practice_and_its_nudge() -> None:
    renderer = Catalog(ROOT / "schedules", ROOT / "templates").renderer
    loaded = load_plan(PLAN, "nights.yaml", renderer)
    assert loaded.plan is not None, loaded.diagnostics
    assert confirmation.most_per_day([loaded.plan]) == 3  # lights + its nudge + walk
    assert confirmation.frequency(3) == "Up to 3 msgs/day"
    assert confirmation.frequency(1) == "Up to 1 msg/day"
    assert confirmation.frequency(0) == "Msg frequency varies"


def test_the_required_words_are_whole_words_in_capitals() -> None:
    assert confirmation.missing_words("welcome", "Reply HELP for help, STOP to opt out.") == []
    assert confirmation.missing_words("welcome", "Reply help, or stop.") == ["HELP", "STOP"]
    assert confirmation.missing_words("welcome", "HELPFUL STOPS") == ["HELP", "STOP"]
    assert confirmation.missing_words("join", "Reply HELP or STOP.") == ["YES"]


def test_plans_check_refuses_a_confirmation_without_help_stop_or_yes(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    schedules = tmp_path / "schedules"
    schedules.mkdir()
    assert Catalog(schedules, templates).check().diagnostics == []
    (templates / "consent" / "welcome.sms.j2").write_text(
        "{{ program }}: welcome! {{ frequency }}. Reply HELP for help.", encoding="utf-8"
    )
    (templates / "consent" / "join.sms.j2").write_text(
        "{{ program }}: text back to start. Reply HELP for help, STOP to opt out.",
        encoding="utf-8",
    )
    found = sorted(str(d) for d in Catalog(schedules, templates).check().diagnostics)
    assert found == [
        f"{templates}/consent/join.sms.j2:1:1: error: the confirmation must tell people how "
        "to confirm: it needs YES in capitals (as in 'Reply HELP for help, STOP to opt out'); "
        "carriers require it",
        f"{templates}/consent/welcome.sms.j2:1:1: error: the confirmation must tell people how "
        "to stop: it needs STOP in capitals (as in 'Reply HELP for help, STOP to opt out'); "
        "carriers require it",
    ]


def test_the_shipped_confirmations_fit_one_sms_segment() -> None:
    catalog = Catalog(ROOT / "schedules", ROOT / "templates")
    for name in confirmation.TEMPLATES:
        text = catalog.renderer.confirmation(name, confirmation.sample_context())
        assert len(text) <= 160, (name, len(text), text)
        assert text.isascii(), text  # GSM-7: no curly quotes, one segment of 160


def test_plans_check_refuses_a_translated_confirmation_without_stop(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    schedules = tmp_path / "schedules"
    schedules.mkdir()
    (templates / "consent" / "welcome.es.sms.j2").write_text(
        "{{ program }}: bienvenida. Responde AYUDA (HELP) para ayuda o BAJA para cancelar.",
        encoding="utf-8",
    )
    found = [str(d) for d in Catalog(schedules, templates).check().diagnostics]
    assert found == [
        f"{templates}/consent/welcome.es.sms.j2:1:1: error: the confirmation must tell people "
        "how to stop: it needs STOP in capitals (as in 'Reply HELP for help, STOP to opt out'); "
        "carriers require it",
    ]


def test_the_spanish_confirmations_keep_the_carriers_words_and_two_segments() -> None:
    catalog = Catalog(ROOT / "schedules", ROOT / "templates")
    for name in confirmation.TEMPLATES:
        context = {**confirmation.sample_context(), LANGUAGE: "es"}
        text = catalog.renderer.confirmation(name, context)
        assert "Hasta 3 mensajes al día" in text
        assert confirmation.missing_words(name, text) == []
        assert count_segments(text).count <= 3, text
