"""No floods: at most one notification per subject (a flow, a connection) and condition per
interval, across every process.

``claim`` moves the subject's ``alerts_sent`` row forward only if its last notification is
older than the interval (a conditional UPDATE), or inserts it if there is none (INSERT ... ON
CONFLICT DO NOTHING). Exactly one of two concurrent claimers gets a row count of 1: on
PostgreSQL the second UPDATE waits for the first's row lock and re-checks its condition, the
second INSERT waits for the first's commit and then does nothing; SQLite serialises writers.
A claim is taken before sending, so a failed delivery is not retried within the interval
(a mail server that is down does not turn into a flood when it comes back).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from segbridge.alerts.models import AlertSent
from segbridge.storage.models import Base


def claim(session: Session, account_id: str, subject_id: str, condition: str,
          now: datetime, interval_seconds: float) -> bool:
    """True if this caller may notify about ``subject_id``/``condition`` now (and has
    recorded that it does); False if another notification went out within the interval."""
    cutoff = now - timedelta(seconds=interval_seconds)
    moved = session.execute(
        update(AlertSent)
        .where(AlertSent.subject_id == subject_id, AlertSent.condition == condition,
               AlertSent.sent_at <= cutoff)
        .values(sent_at=now, account_id=account_id)
        .execution_options(synchronize_session=False))
    if getattr(moved, "rowcount", 0) == 1:
        return True
    return _insert_first(session, account_id, subject_id, condition, now)


def _insert_first(session: Session, account_id: str, subject_id: str, condition: str,
                  now: datetime) -> bool:
    return insert_if_absent(session, AlertSent, {
        "subject_id": subject_id, "condition": condition, "account_id": account_id,
        "sent_at": now}, ["subject_id", "condition"])


def insert_if_absent(session: Session, model: type[Base], values: dict[str, Any],
                     keys: list[str]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True if this caller inserted the row."""
    first_key = getattr(model, keys[0])
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        inserted = session.execute(
            pg_insert(model).values(**values).on_conflict_do_nothing(index_elements=keys)
            .returning(first_key))
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        inserted = session.execute(
            sqlite_insert(model).values(**values).on_conflict_do_nothing(index_elements=keys)
            .returning(first_key))
    return inserted.first() is not None  # a row count is not reliable through the ORM
