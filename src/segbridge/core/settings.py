"""One settings object, read from ``SEGBRIDGE_*`` environment variables and validated at start.

Every problem is reported at once, as one ConfigurationError listing them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from segbridge.core.errors import ConfigurationError


class Settings(BaseSettings):
    """segbridge's configuration; every field can be set as ``SEGBRIDGE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="SEGBRIDGE_", extra="forbid", frozen=True)

    home: Path = Field(default=Path.home() / ".segbridge", description="data directory")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite in the data directory"
    )
    master_key: SecretStr | None = Field(
        default=None, description="base64 of a 32-byte AES-256 key (overrides the key file)"
    )
    master_key_file: Path | None = Field(
        default=None, description="key ring file; default: <home>/master.key"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str | None = Field(default=None, description="URL users open; for login links")
    retest_interval_seconds: int = Field(default=3600, ge=5, le=7 * 24 * 3600)
    http_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    sandbox_enabled: bool = True
    sandbox_unknown_key_mode: Literal["segment", "strict"] = "segment"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    run_lanes: int | None = Field(
        default=None, ge=0, le=8,
        description="producer processes per run of a large file; default one per core, "
                    "0 or 1 to map in the run's own process",
    )
    run_lanes_min_file_mb: float = Field(
        default=32, ge=0, description="files from this size (MB) are run in lanes",
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("use a sqlite:/// or postgresql+psycopg:// URL")
        return value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'segbridge.sqlite3'}"

    @property
    def resolved_master_key_file(self) -> Path:
        return self.master_key_file or self.home / "master.key"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


def load_settings(**overrides: object) -> Settings:
    """Read and validate settings; raise one ConfigurationError naming every problem."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors()]
        raise ConfigurationError(
            "segbridge cannot start; fix these settings:\n"
            + "\n".join(f"  - {p}" for p in problems),
            details=problems,
        ) from None


def _describe(error: object) -> str:
    assert isinstance(error, dict)
    location = ".".join(str(part) for part in error.get("loc", ()))
    name = f"SEGBRIDGE_{location.upper()}" if location else "settings"
    return f"{name}: {error.get('msg', 'invalid')}"
