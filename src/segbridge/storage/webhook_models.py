"""Tables of webhook listeners (migration 0009): one listener per flow whose source is a
webhook, the records its requests brought (kept until a run delivered them) and the last
payloads shown on the flow's page.

The listener's URL token is never stored: only its SHA-256 (``token_hash``), looked up by
equality on an indexed column, so a guess learns nothing from timing. The verification secret
(an HMAC secret, a Basic-auth password or a token) is encrypted by the vault, bound to the
account, the flow and the field ``webhook_secret``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from segbridge.core.clock import utcnow
from segbridge.storage.models import Base

ROW_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys


class WebhookListener(Base):
    """A flow's listener: where its URL leads, and what it has counted."""

    __tablename__ = "webhook_listeners"

    flow_id: Mapped[str] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"),
                                         primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    secret_ciphertext: Mapped[str | None] = mapped_column(Text, default=None)
    secret_key_id: Mapped[str | None] = mapped_column(String(40), default=None)
    received: Mapped[int] = mapped_column(BigInteger, default=0)
    verified: Mapped[int] = mapped_column(BigInteger, default=0)
    rejected: Mapped[int] = mapped_column(BigInteger, default=0)
    records: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookRecord(Base):
    """One record a request brought (an item of a batch body is a record of its own), kept
    until a run of the flow delivered it. Its ``id`` is its key: the run's position, so the
    record's messageId is the same in every run that sends it."""

    __tablename__ = "webhook_records"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    flow_id: Mapped[str] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"),
                                         index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    request_id: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class WebhookRecent(Base):
    """The last payloads a listener received, for the flow's page (a few per flow)."""

    __tablename__ = "webhook_recent"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    flow_id: Mapped[str] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"),
                                         index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    request_id: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
