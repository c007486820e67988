"""Sign-in throttling: growing delays per email and per source address.

Counters live in the ``login_failures`` table, so every server process sees the same ones.
A sign-in counts against two keys, ``email:<email>`` and ``address:<ip>``:

- after ``free_failures`` failures (5 for an email, 20 for an address, which several people
  may share) a key is blocked for 1 s, then 2 s, 4 s ... at most 15 minutes;
- a blocked key refuses every attempt, even one with the right password, without counting it
  (hammering does not lengthen the block);
- a key whose last failure is older than ``RESET_AFTER`` starts again from zero;
- the email's attempt is counted *before* the password is checked, under a row lock, so
  parallel guesses cannot all slip through before the first failure is written; a successful
  sign-in clears the email's counter. The address counts only failures and is not cleared by a
  success (one good password must not reset a sprayer's count).

Unknown emails are counted exactly like known ones, so a block tells nothing either.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segbridge.core.errors import TooManyAttempts
from segbridge.storage.models import LoginFailures

FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 15 * 60.0
RESET_AFTER = timedelta(hours=24)
_MAX_KEY_LENGTH = 300


@dataclass(frozen=True)
class Rule:
    """How many failures a kind of key may have before delays start."""

    kind: str  # email | address
    free_failures: int


EMAIL = Rule("email", 5)
ADDRESS = Rule("address", 20)


@dataclass(frozen=True)
class AttemptKeys:
    """The two counters one sign-in attempt touches."""

    email: str
    address: str


def keys_for(email: str, address: str | None) -> AttemptKeys:
    return AttemptKeys(_key(EMAIL, email.strip().lower()), _key(ADDRESS, address or "unknown"))


def delay_after(failures: int, rule: Rule) -> float:
    """Seconds blocked after the ``failures``-th failure: 0 while free, then 1, 2, 4 ... 900."""
    over = failures - rule.free_failures
    if over < 0:
        return 0.0
    return min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2.0 ** min(over, 30))


def begin_attempt(session: Session, keys: AttemptKeys, now: datetime) -> None:
    """Refuse the attempt if either key is blocked; else count it against the email."""
    address = session.get(LoginFailures, keys.address)
    if address is not None:
        _refuse_if_blocked(address, now)
    email = _locked_row(session, keys.email, now)
    _refuse_if_blocked(email, now)
    _count_failure(email, EMAIL, now)


def succeeded(session: Session, keys: AttemptKeys) -> None:
    session.execute(delete(LoginFailures).where(LoginFailures.key == keys.email))


def failed(session: Session, keys: AttemptKeys, now: datetime) -> None:
    """Count a wrong password against the source address (the email was counted already)."""
    _count_failure(_locked_row(session, keys.address, now), ADDRESS, now)


def forget_stale(session: Session, now: datetime) -> None:
    """Drop counters nobody has failed on for ``RESET_AFTER`` (they would start over anyway)."""
    session.execute(delete(LoginFailures)
                    .where(LoginFailures.last_failure_at < now - RESET_AFTER))


def _key(rule: Rule, value: str) -> str:
    key = f"{rule.kind}:{value}"
    if len(key) > _MAX_KEY_LENGTH:  # a pasted novel as the email: keep the key bounded
        key = f"{rule.kind}:sha256:{hashlib.sha256(value.encode()).hexdigest()}"
    return key


def _locked_row(session: Session, key: str, now: datetime) -> LoginFailures:
    """The key's row, created if missing, locked until the transaction ends."""
    _insert_if_missing(session, key, now)
    row = session.get(LoginFailures, key, with_for_update=True, populate_existing=True)
    assert row is not None
    return row


def _insert_if_missing(session: Session, key: str, now: datetime) -> None:
    values = {"key": key, "failures": 0, "last_failure_at": now, "blocked_until": None}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(postgresql.insert(LoginFailures).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(LoginFailures).values(values).on_conflict_do_nothing())
    elif session.get(LoginFailures, key) is None:
        try:
            with session.begin_nested():
                session.add(LoginFailures(**values))
        except IntegrityError:
            pass  # another process created it meanwhile


def _refuse_if_blocked(row: LoginFailures, now: datetime) -> None:
    if row.blocked_until is None:
        return
    remaining = (_aware(row.blocked_until) - now).total_seconds()
    if remaining > 0:
        seconds = max(1, math.ceil(remaining))
        raise TooManyAttempts(
            f"Too many attempts; try again in {seconds} second{'' if seconds == 1 else 's'}.",
            retry_after=seconds)


def _count_failure(row: LoginFailures, rule: Rule, now: datetime) -> None:
    if now - _aware(row.last_failure_at) > RESET_AFTER:
        row.failures = 0
    row.failures += 1
    row.last_failure_at = now
    delay = delay_after(row.failures, rule)
    row.blocked_until = now + timedelta(seconds=delay) if delay else None


def _aware(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
