"""Settings, from the environment or a `.env` file. The only module that reads either."""

from __future__ import annotations

import re
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
