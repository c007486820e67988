"""SQLAlchemy models. Services use them through repositories; no secret is stored in clear."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from segbridge.core.clock import utcnow


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default="manage")  # admin | manage | monitor
    is_instance_admin: Mapped[bool] = mapped_column(Boolean, default=False)  # creates accounts
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def is_admin(self) -> bool:
        """An admin (owner) of the user's account."""
        return self.role == "admin"


class ApiToken(Base):
    """An API token; only its SHA-256 is stored (tokens are 256 random bits)."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="api")  # api | login | session
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    used_at: Mapped[datetime | None] = mapped_column(default=None)  # a login link's redemption
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginFailures(Base):
    """Failed sign-ins per key (``email:<email>`` or ``address:<ip>``), for throttling."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(default=utcnow)
    blocked_until: Mapped[datetime | None] = mapped_column(default=None)


class Connection(Base):
    __tablename__ = "connections"
    __table_args__ = (UniqueConstraint("account_id", "name_key", name="uq_connection_name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    name_key: Mapped[str] = mapped_column(String(100))
    application: Mapped[str] = mapped_column(String(40))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    concurrency_level: Mapped[int | None] = mapped_column(Integer, default=None)
    borrow_concurrency_from: Mapped[str | None] = mapped_column(
        ForeignKey("connections.id"), default=None
    )
    # the connection's rate limit (a lender's applies to its borrowers too); None: no limit
    requests_per_second: Mapped[float | None] = mapped_column(Float, default=None)
    events_per_second: Mapped[float | None] = mapped_column(Float, default=None)
    status: Mapped[str] = mapped_column(String(10), default="online")
    last_test_at: Mapped[datetime | None] = mapped_column(default=None)
    last_test_ok: Mapped[bool | None] = mapped_column(Boolean, default=None)
    last_test: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConnectionSecret(Base):
    """One encrypted secret field of a connection (``v1.<key id>.<nonce+ciphertext>``)."""

    __tablename__ = "connection_secrets"

    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    field: Mapped[str] = mapped_column(String(60), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(16), index=True)


class VaultKey(Base):
    """Every master key id this database has used, so a wrong or missing key is recognised."""

    __tablename__ = "vault_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(default=None)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_account_at", "account_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(300))
    action: Mapped[str] = mapped_column(String(40))
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(40))
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Integration(Base):
    """A named group of flows, with the connections registered to it."""

    __tablename__ = "integrations"
    __table_args__ = (UniqueConstraint("account_id", "name_key", name="uq_integration_name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    name_key: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IntegrationConnection(Base):
    __tablename__ = "integration_connections"

    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True)
    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)


class Flow(Base):
    """A flow: one export, optional steps, one or more imports (``definition``, validated)."""

    __tablename__ = "flows"
    __table_args__ = (UniqueConstraint("account_id", "name_key", name="uq_flow_name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id"))
    name: Mapped[str] = mapped_column(String(100))
    name_key: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    schedule_cron: Mapped[str | None] = mapped_column(String(100), default=None)
    schedule_timezone: Mapped[str | None] = mapped_column(String(64), default=None)
    next_run_at: Mapped[datetime | None] = mapped_column(default=None)
    cursor: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    active_run_id: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class FlowConnection(Base):
    """Which connections a flow uses (so deleting a connection in use is refused)."""

    __tablename__ = "flow_connections"

    flow_id: Mapped[str] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"),
                                         primary_key=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id"), primary_key=True)


class Run(Base):
    """One execution of a flow: a state machine with counts, a checkpoint and timings."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_flow_started", "flow_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40), index=True)
    flow_id: Mapped[str] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(30), index=True)
    trigger: Mapped[str] = mapped_column(String(20), default="manual")
    fresh_message_ids: Mapped[bool] = mapped_column(Boolean, default=False)
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    checkpoint: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[float | None] = mapped_column(Float, default=None)  # share of input read
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    export_bounds: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    owner: Mapped[str | None] = mapped_column(String(200), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class RecordErrorRow(Base):
    """A record that failed, kept with its data, step, reason and source position (the row;
    ``core.errors.RecordError`` is the exception a failing record raises)."""

    __tablename__ = "record_errors"
    __table_args__ = (
        Index("ix_record_errors_flow_status", "flow_id", "status"),
        Index("ix_record_errors_run_position", "run_id", "position"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40))
    flow_id: Mapped[str] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    import_name: Mapped[str | None] = mapped_column(String(100), default=None)
    position: Mapped[int] = mapped_column(Integer)
    ref: Mapped[str] = mapped_column(String(200))
    step: Mapped[str] = mapped_column(String(20))
    field: Mapped[str | None] = mapped_column(String(200), default=None)
    reason: Mapped[str] = mapped_column(Text)
    http_status: Mapped[int | None] = mapped_column(Integer, default=None)
    retriable: Mapped[bool] = mapped_column(Boolean, default=False)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    raw: Mapped[str | None] = mapped_column(Text, default=None)
    status: Mapped[str] = mapped_column(String(20), default="open")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)


class Upload(Base):
    """A file uploaded for a file export, stored under ``<home>/uploads``."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40), index=True)
    filename: Mapped[str] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
