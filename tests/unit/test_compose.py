"""compose.yaml is written for users and never run here (no Docker engine): this checks
what can be checked without one. Every Tend service is built from the Dockerfile and
runs a real `tend` command; every variable it sets is a real setting; the database and
the broker have healthchecks and volumes; workers can be scaled."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
from ruamel.yaml import YAML

from service.cli import main
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {f"TEND_{name.upper()}" for name in Settings.model_fields}
TEND_SERVICES = ("migrate", "publish", "web", "scheduler", "worker")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe").load((ROOT / "compose.yaml").read_text())
    return loaded


def resolve(args: list[str]) -> click.Command:
    """The click command `tend ARGS...` names; fails for one that does not exist."""
    command: click.Command = main
    context = click.Context(main)
    for word in args:
        if not isinstance(command, click.Group):
            break
        found = command.get_command(context, word)
        assert found is not None, f"`tend {' '.join(args)}`: no command '{word}'"
        command = found
    return command


def test_every_tend_service_runs_a_real_command_from_the_dockerfile(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(TEND_SERVICES) <= set(services)
    for name in TEND_SERVICES:
        service = services[name]
        assert service["build"] == ".", name
        assert (ROOT / "Dockerfile").is_file()
        command = service["command"]
        assert command[0] == "tend", name
        resolved = resolve(command[1:])
        assert not isinstance(resolved, click.Group), f"{name}: `{command}` is a group"
    assert [services[n]["command"][1:] for n in TEND_SERVICES] == [
        ["db", "upgrade"],
        ["plans", "push", "--keep-newer"],
        ["web"],
        ["scheduler"],
        ["worker"],
    ]


def test_every_variable_a_tend_service_sets_is_a_setting(compose: dict[str, Any]) -> None:
    for name in TEND_SERVICES:
        environment = compose["services"][name]["environment"]
        unknown = {key for key in environment if key not in SETTINGS}
        assert not unknown, f"{name} sets {sorted(unknown)}, which Tend does not read"
        # Variables taken from the user's environment are settings too.
        for value in environment.values():
            for used in re.findall(r"\$\{(TEND_[A-Z_]+)", str(value)):
                assert used in SETTINGS, f"{name}: ${{{used}}} is not a setting"


def test_production_needs_its_secrets_and_talks_to_postgres_and_redis(
    compose: dict[str, Any],
) -> None:
    environment = compose["services"]["web"]["environment"]
    assert environment["TEND_ENV"] == "production"
    assert environment["TEND_SECRET_KEY"].startswith("${TEND_SECRET_KEY:?")
    assert environment["TEND_ADMIN_TOKEN"].startswith("${TEND_ADMIN_TOKEN:?")
    assert environment["TEND_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert environment["TEND_REDIS_URL"] == "redis://redis:6379/0"
    assert environment["TEND_HTTP_HOST"] == "0.0.0.0"


def test_the_stores_are_healthy_before_anything_starts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for store in ("postgres", "redis"):
        assert services[store]["healthcheck"]["test"], store
        assert services[store]["volumes"], store
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "scheduler", "worker"):
        after = services[name]["depends_on"]
        assert after["migrate"]["condition"] == "service_completed_successfully", name
        assert after["redis"]["condition"] == "service_healthy", name
    assert set(compose["volumes"]) == {"pgdata", "redisdata"}


def test_workers_can_be_scaled(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker


def test_mailpit_is_there_for_trying_email(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    assert services["web"]["environment"]["TEND_SMTP_HOST"] == "${TEND_SMTP_HOST:-mailpit}"


def test_the_dockerfile_installs_the_package_and_runs_tend() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^RUN pip install \.$", text, re.M)
    assert 'CMD ["tend", "run"]' in text
    assert re.search(r"^USER (?!root)", text, re.M), "the image must not run as root"
