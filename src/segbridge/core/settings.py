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
    # -- trust: where data may come from, what may be called, hostile input ------------------
    file_roots: str = Field(
        default="",
        description="directories (separated by ':') whose files file exports and SQLite "
                    "connections may read, besides the account's own uploads; the segbridge "
                    "home is never readable that way",
    )
    outbound_deny_private: bool = Field(
        default=False,
        description="refuse connection endpoints, database hosts and HTTP sources on "
                    "loopback, private, link-local and other non-public addresses (set it "
                    "for a multi-account install); segbridge's own local Segment stays allowed",
    )
    outbound_allow_hosts: str = Field(
        default="",
        description="host names or addresses (separated by ',') allowed even when "
                    "SEGBRIDGE_OUTBOUND_DENY_PRIVATE is set",
    )
    max_upload_mb: float = Field(default=1024, gt=0, description="largest upload (MB)")
    record_max_depth: int = Field(
        default=64, ge=2, le=200, description="deepest nesting of a record (JSON/NDJSON)")
    record_max_bytes: int = Field(
        default=1_048_576, ge=1024, description="largest record of a file export (bytes)")
    record_max_fields: int = Field(
        default=10_000, ge=10, description="most fields in one record (all levels)")
    run_lease_seconds: int = Field(
        default=20, ge=5, le=600,
        description="a running run's owner renews its lease this often and loses it after "
                    "twice this long without a heartbeat; a live server then takes it over "
                    "(checking every half lease: within 2.5 leases, 50 s by default)",
    )

    # -- scale-out (issue 15): the job queue, the cluster governor, operations --------------
    server_executes_runs: bool = Field(
        default=True,
        description="with PostgreSQL: whether `segbridge serve` also works the job queue "
                    "(false: it only enqueues; `segbridge worker` processes execute); with "
                    "SQLite runs always execute in the server process",
    )
    worker_concurrency: int = Field(
        default=4, ge=1, le=64, description="runs one `segbridge worker` executes at once")
    metrics_token: SecretStr | None = Field(
        default=None,
        description="bearer token for /metrics; without one /metrics answers loopback only",
    )
    smtp_host: str | None = Field(default=None, description="mail server for alerts")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = Field(default="segbridge@localhost", description="alerts' sender")
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    alert_interval_seconds: int = Field(
        default=900, ge=0,
        description="at most one alert per flow (or connection) and condition this often")

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
    def allowed_file_roots(self) -> tuple[Path, ...]:
        """The operator's file roots, absolute, symlinks resolved (empty entries skipped)."""
        return tuple(Path(part).expanduser().resolve()
                     for part in self.file_roots.split(":") if part.strip())

    @property
    def outbound_allowed_hosts(self) -> frozenset[str]:
        return frozenset(part.strip().lower().strip("[]")
                         for part in self.outbound_allow_hosts.split(",") if part.strip())

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
