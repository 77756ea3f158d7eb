"""Settings, from the environment or a `.env` file. The only module that reads either."""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "production"]


class SettingsError(Exception):
    """Settings that cannot be used; the message names each variable and what is wrong."""


class Settings(BaseSettings):
    """Every `TEND_*` variable; see CONTRACT.md section 3 and docs/operations.md."""

    model_config = SettingsConfigDict(
        env_prefix="TEND_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    env: Environment = Field(
        "development", description="development or production; production requires secrets."
    )
    database_url: str = "sqlite:///./tend.db"
    redis_url: str | None = None
    public_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8000")
    schedules_dir: Path = Path("./schedules")
    templates_dir: Path = Path("./templates")

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    twilio_api_base: AnyHttpUrl = AnyHttpUrl("https://api.twilio.com")
    twilio_rate: Annotated[float, Field(gt=0, le=1000)] = Field(
        1.0,
        description="SMS a second per sender: 1 for a long code, more for a short code.",
    )

    smtp_host: str | None = None
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 587
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    email_from: str = "Tend <tend@localhost>"

    secret_key: SecretStr | None = None
    admin_token: SecretStr | None = None

    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Field(ge=1, le=65535)] = 8000

    grace_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = Field(
        15, description="How late a reminder may still go out before it expires."
    )
    log_format: Literal["console", "json"] | None = Field(
        None, description="Default: json in production, console in development."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    worker_metrics_port: Annotated[int, Field(ge=1, le=65535)] | None = Field(
        None, description="Where each worker serves dramatiq's Prometheus metrics; unset: off."
    )

    coach_email: str | None = Field(
        None, description="Where the weekly coach digest goes; several addresses with commas."
    )
    digest_day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = Field(
        "mon", description="The day the coach digest goes out."
    )
    digest_at: str = Field("08:00", description="The local time (HH:MM) it goes out.")
    digest_timezone: str = Field("UTC", description="The zone of digest_day and digest_at.")
    retention_days: Annotated[int, Field(ge=1)] | None = Field(
        None,
        description="Days after an enrollment ends before its message and reply texts are "
        "cleared (states and counts are kept); unset: keep everything.",
    )
    quiet_hours: str | None = Field(
        None,
        description="Participants' quiet hours when they set none of their own, local to "
        "each (22:00-07:00); unset or off: none.",
    )
    default_language: str = Field(
        "en", description="The language of texts to participants who have none (a BCP 47 tag)."
    )

    @field_validator("coach_email", mode="before")
    @classmethod
    def _coach_email(cls, value: object) -> object:
        if not isinstance(value, str) or not value.strip():
            return None
        addresses = [a.strip() for a in value.split(",") if a.strip()]
        for address in addresses:
            local, at, domain = address.rpartition("@")
            if not at or not local or "." not in domain or " " in address:
                raise ValueError(f"'{address}' is not an email address")
        return ", ".join(addresses)

    @field_validator("digest_at")
    @classmethod
    def _digest_at(cls, value: str) -> str:
        hours, sep, minutes = value.strip().partition(":")
        if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
            raise ValueError("expected a time such as 08:00")
        if not (0 <= int(hours) <= 23 and 0 <= int(minutes) <= 59):
            raise ValueError("expected a time such as 08:00")
        return f"{int(hours):02d}:{minutes}"

    @field_validator("digest_timezone")
    @classmethod
    def _digest_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"'{value}' is not an IANA time zone, such as Europe/London") from exc
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str | None) -> str | None:
        from service.core import quiet

        if value is None:
            return None
        try:
            found = quiet.parse_quiet(value)
        except quiet.Unreadable as exc:
            raise ValueError(str(exc)) from None
        return found.text if found is not None else None  # stored as HH:MM-HH:MM

    @field_validator("default_language", mode="before")
    @classmethod
    def _default_language(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return "en"
        if not isinstance(value, str):
            return value
        from service.core import language  # here: Babel is not needed to read settings

        try:
            return language.tag(value)
        except language.NotATag as exc:
            raise ValueError(str(exc)) from None

    @property
    def coach_addresses(self) -> list[str]:
        return [a.strip() for a in self.coach_email.split(",")] if self.coach_email else []

    @field_validator(
        "redis_url",
        "twilio_account_sid",
        "twilio_from",
        "smtp_host",
        "smtp_user",
        "secret_key",
        "admin_token",
        "twilio_auth_token",
        "smtp_password",
        "retention_days",
        "quiet_hours",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        scheme = value.partition("://")[0]
        if not value.strip() or "://" not in value:
            raise ValueError("expected a URL such as sqlite:///./tend.db")
        if scheme.split("+")[0] not in {"sqlite", "postgresql"}:
            raise ValueError(f"'{scheme}' is not supported; use sqlite or postgresql+psycopg")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a URL such as redis://127.0.0.1:6379/0")
        return value

    @model_validator(mode="after")
    def _complete(self) -> Settings:
        twilio = [self.twilio_account_sid, self.twilio_auth_token, self.twilio_from]
        if any(twilio) and not all(twilio):
            raise ValueError(
                "set all of TEND_TWILIO_ACCOUNT_SID, TEND_TWILIO_AUTH_TOKEN and "
                "TEND_TWILIO_FROM, or none of them (none: SMS go to the development outbox)"
            )
        if self.env == "production":
            missing = [
                f"TEND_{name.upper()}"
                for name in ("secret_key", "admin_token")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(f"production needs {' and '.join(missing)}")
        return self

    @property
    def development(self) -> bool:
        return self.env == "development"

    @property
    def twilio_configured(self) -> bool:
        return self.twilio_account_sid is not None

    @property
    def smtp_configured(self) -> bool:
        return self.smtp_host is not None

    @property
    def unconfigured_channels(self) -> list[str]:
        """The channels that would go to the development outbox: "SMS", "email"."""
        configured = (("SMS", self.twilio_configured), ("email", self.smtp_configured))
        return [name for name, ready in configured if not ready]

    @property
    def public_base(self) -> str:
        return str(self.public_url).rstrip("/")

    @property
    def effective_log_format(self) -> str:
        return self.log_format or ("json" if self.env == "production" else "console")


def load_settings(**overrides: object) -> Settings:
    """Read the settings; raises SettingsError with one line per bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = "TEND_" + "_".join(str(p) for p in error["loc"]).upper() if error["loc"] else ""
            message = error["msg"].removeprefix("Value error, ")
            given = error.get("input")
            shown = f" (got {_redacted(given)!r})" if isinstance(given, str) and name else ""
            lines.append(f"{name + ': ' if name else ''}{message}{shown}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None


def _redacted(value: str) -> str:
    """A URL as it may be shown in an error: `scheme://user:***@host`."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^/:@]*):[^/@]*@", r"\1:***@", value, flags=re.I)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
