"""The cluster governor's tables: one row per pool (its level and shared 429 state), one row
per request slot of a pool (who holds it, until when), one row per process that wants slots
of a pool (for fair shares), one row per rate limit of a pool (a token bucket). See
``cluster.py``.

Migration 0005 creates them on every database (SQLite too, where nothing uses them), so the
schema is one and the same whatever the database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from segbridge.storage.models import Base


class GovernorPool(Base):
    """A connection pool's level and its shared back-off state (a 429 anywhere drops
    ``current_limit`` to 1 and sets ``paused_until``; successes double it again)."""

    __tablename__ = "governor_pools"

    pool: Mapped[str] = mapped_column(String(100), primary_key=True)
    level: Mapped[int] = mapped_column(Integer)
    current_limit: Mapped[int] = mapped_column(Integer)
    pause_seconds: Mapped[float] = mapped_column(Float)  # the next pause without Retry-After
    paused_until: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime]


class GovernorSlot(Base):
    """One request slot of a pool: free (no holder), held, or held by a process that stopped
    renewing it (``expires_at`` passed: free to take)."""

    __tablename__ = "governor_slots"
    __table_args__ = (Index("ix_governor_slots_holder", "holder"),)

    pool: Mapped[str] = mapped_column(String(100), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(100), default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)


class GovernorWant(Base):
    """A process whose requests wait for slots of a pool, until ``wants_until`` unless it says
    so again: the slots are shared fairly among the processes that want some."""

    __tablename__ = "governor_wants"

    pool: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100), primary_key=True)
    wants_until: Mapped[datetime]


class GovernorBucket(Base):
    """A pool's rate limit of one kind (requests or events per second) as a token bucket:
    ``tokens`` (negative: reserved ahead) as of ``refilled_at``, refilled at ``rate`` up to one
    second's worth."""

    __tablename__ = "governor_buckets"

    pool: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)  # requests | events
    rate: Mapped[float] = mapped_column(Float)
    tokens: Mapped[float] = mapped_column(Float)
    refilled_at: Mapped[datetime]
