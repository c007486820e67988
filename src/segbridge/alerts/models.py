"""Tables of the alerts (migration 0007): an account's settings, the last notification per
subject and condition (the throttle), and the last connection status alerts have seen."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from segbridge.core.clock import utcnow
from segbridge.storage.models import Base


class AlertSettingsRow(Base):
    """One account's alert settings. The webhook URL (a Slack webhook URL is a credential)
    is stored encrypted by the vault, bound to the account and the field."""

    __tablename__ = "alert_settings"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    email_recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    webhook_ciphertext: Mapped[str | None] = mapped_column(Text, default=None)
    webhook_key_id: Mapped[str | None] = mapped_column(String(40), default=None)
    run_failed: Mapped[bool] = mapped_column(Boolean, default=True)
    run_errors_over_count: Mapped[int | None] = mapped_column(Integer, default=None)
    run_errors_over_share: Mapped[float | None] = mapped_column(Float, default=None)
    connection_offline: Mapped[bool] = mapped_column(Boolean, default=True)
    connection_online: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(200), default=None)


class AlertSent(Base):
    """When the last notification about a subject (a flow, a connection) for a condition went
    out. Claimed by a conditional insert or update before sending: one sender per interval."""

    __tablename__ = "alerts_sent"

    subject_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    condition: Mapped[str] = mapped_column(String(30), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40), index=True)
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertConnectionState(Base):
    """The status of a connection as alerts last saw it: a change is noticed once, by the
    process whose conditional update moved it."""

    __tablename__ = "alert_connection_states"

    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
