"""Settings from the environment or a `.env` file (CONTRACT.md section 3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from service.settings import Settings, SettingsError, get_settings, load_settings


@pytest.fixture(autouse=True)
def _in_empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No `.env` file but the ones these tests write."""
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.env == "development"
    assert settings.database_url == "sqlite:///./tend.db"
    assert settings.redis_url is None
    assert settings.public_base == "http://127.0.0.1:8000"
    assert settings.schedules_dir == Path("./schedules")
    assert settings.templates_dir == Path("./templates")
    assert settings.twilio_account_sid is None
    assert settings.twilio_auth_token is None
    assert settings.twilio_from is None
    assert str(settings.twilio_api_base).rstrip("/") == "https://api.twilio.com"
    assert settings.smtp_host is None
    assert settings.smtp_starttls is True
    assert settings.secret_key is None
    assert settings.admin_token is None
    assert settings.http_host == "127.0.0.1"
    assert settings.http_port == 8000
    assert settings.grace_minutes == 15
    assert not settings.twilio_configured
    assert not settings.smtp_configured
    assert settings.development
    assert settings.effective_log_format == "console"


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEND_DATABASE_URL", "postgresql+psycopg://tend@db/tend")
    monkeypatch.setenv("TEND_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("TEND_PUBLIC_URL", "https://tend.example.org/")
    monkeypatch.setenv("TEND_SCHEDULES_DIR", "/srv/plans")
    monkeypatch.setenv("TEND_HTTP_PORT", "9000")
    monkeypatch.setenv("TEND_SMTP_HOST", "smtp.example.org")
    monkeypatch.setenv("TEND_SMTP_STARTTLS", "false")
    settings = load_settings()
    assert settings.database_url == "postgresql+psycopg://tend@db/tend"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.public_base == "https://tend.example.org"
    assert settings.schedules_dir == Path("/srv/plans")
    assert settings.http_port == 9000
    assert settings.smtp_configured
    assert settings.smtp_starttls is False


def test_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "TEND_HTTP_PORT=8123\nTEND_PUBLIC_URL=https://from-dotenv.example\n"
        "TEND_SECRET_KEY=from-the-file\n"
    )
    settings = load_settings()
    assert settings.http_port == 8123
    assert settings.public_base == "https://from-dotenv.example"
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == "from-the-file"


def test_environment_beats_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("TEND_HTTP_PORT=8123\n")
    monkeypatch.setenv("TEND_HTTP_PORT", "8124")
    assert load_settings().http_port == 8124


def test_blank_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEND_REDIS_URL", "")
    monkeypatch.setenv("TEND_TWILIO_ACCOUNT_SID", "  ")
    monkeypatch.setenv("TEND_SECRET_KEY", "")
    settings = load_settings()
    assert settings.redis_url is None
    assert settings.twilio_account_sid is None
    assert settings.secret_key is None


def test_secrets_are_not_shown() -> None:
    settings = load_settings(
        twilio_account_sid="AC123",
        twilio_auth_token="twilio-token-value",
        twilio_from="+14155550123",
        smtp_password="smtp-password-value",
        secret_key="secret-key-value",
        admin_token="admin-token-value",
    )
    for secret in (
        settings.twilio_auth_token,
        settings.smtp_password,
        settings.secret_key,
        settings.admin_token,
    ):
        assert isinstance(secret, SecretStr)
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    for value in (
        "twilio-token-value",
        "smtp-password-value",
        "secret-key-value",
        "admin-token-value",
    ):
        assert value not in shown
    assert settings.twilio_configured
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "admin-token-value"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("TEND_HTTP_PORT", "abc", "TEND_HTTP_PORT: Input should be a valid integer"),
        ("TEND_HTTP_PORT", "0", "TEND_HTTP_PORT: Input should be greater than or equal to 1"),
        ("TEND_HTTP_PORT", "70000", "TEND_HTTP_PORT: Input should be less than or equal to 65535"),
        ("TEND_SMTP_PORT", "x", "TEND_SMTP_PORT:"),
        ("TEND_ENV", "prod", "TEND_ENV: Input should be 'development' or 'production'"),
        ("TEND_DATABASE_URL", "mysql://x", "TEND_DATABASE_URL: 'mysql' is not supported"),
        (
            "TEND_DATABASE_URL",
            "tend.db",
            "TEND_DATABASE_URL: expected a URL such as sqlite:///./tend.db",
        ),
        ("TEND_REDIS_URL", "localhost:6379", "TEND_REDIS_URL: expected a URL such as redis://"),
        ("TEND_PUBLIC_URL", "nope", "TEND_PUBLIC_URL: Input should be a valid URL"),
        ("TEND_GRACE_MINUTES", "0", "TEND_GRACE_MINUTES:"),
        ("TEND_LOG_LEVEL", "loud", "TEND_LOG_LEVEL:"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith("invalid settings:\n  ")
    assert expected in message
    assert f"(got {value!r})" in message


def test_every_bad_value_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEND_HTTP_PORT", "abc")
    monkeypatch.setenv("TEND_ENV", "prod")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    lines = str(raised.value).splitlines()
    assert lines[0] == "invalid settings:"
    assert sorted(line.strip().split(":")[0] for line in lines[1:]) == [
        "TEND_ENV",
        "TEND_HTTP_PORT",
    ]


@pytest.mark.parametrize(
    "given",
    [
        {"TEND_TWILIO_ACCOUNT_SID": "AC123"},
        {"TEND_TWILIO_AUTH_TOKEN": "t"},
        {"TEND_TWILIO_ACCOUNT_SID": "AC123", "TEND_TWILIO_FROM": "+14155550123"},
    ],
)
def test_partial_twilio_settings_are_rejected(
    monkeypatch: pytest.MonkeyPatch, given: dict[str, str]
) -> None:
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(
        SettingsError, match="set all of TEND_TWILIO_ACCOUNT_SID, TEND_TWILIO_AUTH_TOKEN"
    ):
        load_settings()


def test_complete_twilio_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEND_TWILIO_ACCOUNT_SID", "AC123")
    monkeypatch.setenv("TEND_TWILIO_AUTH_TOKEN", "t")
    monkeypatch.setenv("TEND_TWILIO_FROM", "+14155550123")
    monkeypatch.setenv("TEND_TWILIO_API_BASE", "http://127.0.0.1:9999")
    settings = load_settings()
    assert settings.twilio_configured
    assert str(settings.twilio_api_base).rstrip("/") == "http://127.0.0.1:9999"


def test_production_needs_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEND_ENV", "production")
    with pytest.raises(
        SettingsError, match="production needs TEND_SECRET_KEY and TEND_ADMIN_TOKEN"
    ):
        load_settings()
    monkeypatch.setenv("TEND_ADMIN_TOKEN", "a")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "production needs TEND_SECRET_KEY" in str(raised.value)
    assert "TEND_ADMIN_TOKEN" not in str(raised.value)
    monkeypatch.setenv("TEND_SECRET_KEY", "s")
    settings = load_settings()
    assert not settings.development
    assert settings.effective_log_format == "json"


def test_log_format_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEND_LOG_FORMAT", "json")
    assert load_settings().effective_log_format == "json"


def test_get_settings_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    try:
        first = get_settings()
        monkeypatch.setenv("TEND_HTTP_PORT", "9001")
        assert get_settings() is first
        get_settings.cache_clear()
        assert get_settings().http_port == 9001
    finally:
        get_settings.cache_clear()


def test_settings_class_reads_only_tend_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PORT", "1")
    monkeypatch.setenv("DATABASE_URL", "mysql://x")
    assert Settings().http_port == 8000


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("TEND_DATABASE_URL", "mysql://tend:hunter2@db/tend", "mysql://tend:***@db/tend"),
        ("TEND_REDIS_URL", "http://:hunter2@cache:6379", "http://:***@cache:6379"),
    ],
)
def test_passwords_in_bad_urls_are_not_echoed(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, shown: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "hunter2" not in str(raised.value)
    assert f"(got {shown!r})" in str(raised.value)
