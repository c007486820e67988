"""The cluster governor's SQL (``cluster.py``), on one connection of its own: each method is
one statement in a transaction of its own, run by the governor's one database thread.

The connection is autocommit with ``synchronous_commit = off``: what the governor writes only
matters while its processes live, so no commit waits for the disk; ``governor_slots`` and
``governor_wants`` are UNLOGGED (migration 0005) and the heartbeat's statement puts missing
slot rows back after a crash or a fail-over.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from sqlalchemy.engine import make_url

from segbridge.concurrency.governor import FIRST_PAUSE_SECONDS, MAX_PAUSE_SECONDS
from segbridge.concurrency.rates import RateLimit

log = logging.getLogger(__name__)
T = TypeVar("T")

SLOT_TTL_SECONDS = 5.0  # a slot not renewed this long is free again
WANT_TTL_SECONDS = 2.5  # a process counts as wanting slots this long after it last said so

_CONFIGURE = """
WITH pool AS (
    INSERT INTO governor_pools (pool, level, current_limit, pause_seconds, updated_at)
    VALUES (%(pool)s, %(level)s, %(level)s, %(first_pause)s, now())
    ON CONFLICT (pool) DO UPDATE SET level = EXCLUDED.level,
        current_limit = LEAST(governor_pools.current_limit, EXCLUDED.level), updated_at = now()
    RETURNING current_limit, pause_seconds, paused_until
), slots AS (
    INSERT INTO governor_slots (pool, slot)
    SELECT %(pool)s, n FROM generate_series(0, %(level)s - 1) AS n
    ON CONFLICT DO NOTHING
)
SELECT current_limit, pause_seconds,
       COALESCE(EXTRACT(EPOCH FROM (paused_until - now())), 0)::float8 FROM pool
"""
_TAKE = """
WITH pool AS (  -- share: the limit over the processes that want slots (this one included)
    SELECT current_limit, pause_seconds, paused_until, now() AS at,
           ceil(current_limit::float8 / (1 + (
               SELECT count(*) FROM governor_wants w
               WHERE w.pool = %(pool)s AND w.holder <> %(me)s AND w.wants_until > now())))::int
           AS share,
           (SELECT count(*) FROM governor_slots m
            WHERE m.pool = %(pool)s AND m.holder = %(me)s AND m.expires_at > now()) AS mine
    FROM governor_pools WHERE pool = %(pool)s
), wants AS (
    INSERT INTO governor_wants (pool, holder, wants_until)
    VALUES (%(pool)s, %(me)s, now() + make_interval(secs => %(want_ttl)s))
    ON CONFLICT (pool, holder) DO UPDATE SET wants_until = EXCLUDED.wants_until
), free AS (
    SELECT s.slot FROM governor_slots s, pool
    WHERE s.pool = %(pool)s AND s.slot < pool.current_limit AND pool.mine < pool.share
      AND (pool.paused_until IS NULL OR pool.paused_until <= pool.at)
      AND (s.holder IS NULL OR s.expires_at < pool.at)
    ORDER BY s.slot LIMIT 1 FOR UPDATE OF s SKIP LOCKED
), taken AS (
    UPDATE governor_slots s SET holder = %(me)s,
        expires_at = pool.at + make_interval(secs => %(ttl)s)
    FROM free, pool WHERE s.pool = %(pool)s AND s.slot = free.slot
    RETURNING s.slot
)
SELECT (SELECT slot FROM taken), current_limit, pause_seconds,
       COALESCE(EXTRACT(EPOCH FROM (paused_until - at)), 0)::float8, share FROM pool
"""
_RELEASE = """
UPDATE governor_slots SET holder = NULL, expires_at = NULL
WHERE pool = %(pool)s AND slot = %(slot)s AND holder = %(me)s
"""
_RELEASE_ALL = """
WITH unwanted AS (DELETE FROM governor_wants WHERE holder = %(me)s)
UPDATE governor_slots SET holder = NULL, expires_at = NULL WHERE holder = %(me)s
"""
_RATE_LIMITED = """
UPDATE governor_pools SET current_limit = 1,
    paused_until = GREATEST(COALESCE(paused_until, now()),
                            now() + make_interval(secs => COALESCE(%(retry_after)s,
                                                                   pause_seconds))),
    pause_seconds = LEAST(%(max_pause)s, pause_seconds * 2), updated_at = now()
WHERE pool = %(pool)s
"""
_CLIMB = """
UPDATE governor_pools SET current_limit = LEAST(level, current_limit * 2),
    pause_seconds = %(first_pause)s, updated_at = now()
WHERE pool = %(pool)s AND current_limit = %(seen)s
  AND (paused_until IS NULL OR paused_until <= now())
RETURNING current_limit, pause_seconds,
          COALESCE(EXTRACT(EPOCH FROM (paused_until - now())), 0)::float8
"""
_RENEW = """
WITH renewed AS (
    UPDATE governor_slots SET expires_at = now() + make_interval(secs => %(ttl)s)
    WHERE holder = %(me)s
), restored AS (  -- governor_slots is UNLOGGED: empty after a crash or a fail-over
    INSERT INTO governor_slots (pool, slot)
    SELECT p.pool, n FROM governor_pools p, generate_series(0, p.level - 1) AS n
    WHERE p.pool = ANY(%(pools)s::text[])
    ON CONFLICT DO NOTHING
), wants AS (  -- the pools where requests of this process wait for a slot
    INSERT INTO governor_wants (pool, holder, wants_until)
    SELECT w, %(me)s, now() + make_interval(secs => %(want_ttl)s)
    FROM unnest(%(wanting)s::text[]) AS w
    ON CONFLICT (pool, holder) DO UPDATE SET wants_until = EXCLUDED.wants_until
)
SELECT pool, current_limit, pause_seconds,
       COALESCE(EXTRACT(EPOCH FROM (paused_until - now())), 0)::float8,
       ceil(current_limit::float8 / (1 + (
           SELECT count(*) FROM governor_wants w
           WHERE w.pool = p.pool AND w.holder <> %(me)s AND w.wants_until > now())))::int
FROM governor_pools p WHERE pool = ANY(%(pools)s::text[])
"""


_CONFIGURE_RATE = """
WITH gone AS (
    DELETE FROM governor_buckets
    WHERE pool = %(pool)s AND NOT (kind = ANY(%(kinds)s::text[]))
)
INSERT INTO governor_buckets (pool, kind, rate, tokens, refilled_at)
SELECT %(pool)s, kind, rate, rate, now()
FROM unnest(%(kinds)s::text[], %(rates)s::float8[]) AS limits(kind, rate)
ON CONFLICT (pool, kind) DO UPDATE SET rate = EXCLUDED.rate,
    tokens = LEAST(EXCLUDED.rate, governor_buckets.tokens)
"""
_TAKE_TOKENS = """
UPDATE governor_buckets SET
    tokens = LEAST(rate, tokens + rate * EXTRACT(EPOCH FROM (now() - refilled_at))::float8)
             - CASE kind WHEN 'requests' THEN %(requests)s ELSE %(events)s END,
    refilled_at = now()
WHERE pool = %(pool)s
RETURNING tokens, rate
"""


@dataclass(frozen=True)
class Shared:
    """A pool's state as the database has it: the limit of the moment, the next pause without
    Retry-After, how long the pause in force still lasts (0: none), and the slots this process
    may hold while others want some too (the limit over the processes that want slots)."""

    current: int
    pause_seconds: float
    pause_left: float
    share: int | None = None  # this process's fair share of the slots (None: not known)


@dataclass(frozen=True)
class Taken:
    slot: int | None
    shared: Shared | None  # None: the pool has no row (never configured)


def conninfo(database_url: str) -> str:
    """A libpq connection string from segbridge's SQLAlchemy URL (postgresql+psycopg://...)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


def new_holder_id() -> str:
    """Who holds a slot: the machine, the process, and a nonce (a pid is reused)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


class SlotStore:
    """The governor's SQL, on one connection of its own. Used from one thread only."""

    def __init__(self, url: str, holder: str) -> None:
        self._conninfo = conninfo(url)
        self.holder = holder
        self._connection: psycopg.Connection[Any] | None = None
        self._unreleased: list[tuple[str, int]] = []  # releases the database did not get

    def configure(self, pool: str, level: int) -> Shared:
        row = self._one(_CONFIGURE, {"pool": pool, "level": level,
                                     "first_pause": FIRST_PAUSE_SECONDS})
        assert row is not None
        return Shared(*row)

    def take(self, pool: str) -> Taken:
        row = self._one(_TAKE, {"pool": pool, "me": self.holder, "ttl": SLOT_TTL_SECONDS,
                                "want_ttl": WANT_TTL_SECONDS})
        if row is None:
            return Taken(None, None)
        return Taken(row[0], Shared(*row[1:]))

    def release(self, pool: str, slot: int) -> None:
        try:
            self._execute(_RELEASE, {"pool": pool, "slot": slot, "me": self.holder})
        except psycopg.Error:
            log.warning("governor: slot %s of %s not given back yet; retrying with the next "
                        "heartbeat", slot, pool, exc_info=True)
            self._unreleased.append((pool, slot))

    def rate_limited(self, pool: str, retry_after: float | None) -> None:
        self._execute(_RATE_LIMITED, {"pool": pool, "retry_after": retry_after,
                                      "max_pause": MAX_PAUSE_SECONDS})

    def climb(self, pool: str, seen: int) -> Shared | None:
        row = self._one(_CLIMB, {"pool": pool, "seen": seen, "first_pause": FIRST_PAUSE_SECONDS})
        return None if row is None else Shared(*row)

    def renew(self, pools: list[str], wanting: list[str]) -> dict[str, Shared]:
        """Retry the releases that failed, renew every slot held and the wish for more slots
        of the ``wanting`` pools; the pools' states."""
        while self._unreleased:
            pool, slot = self._unreleased[0]
            self._execute(_RELEASE, {"pool": pool, "slot": slot, "me": self.holder})
            self._unreleased.pop(0)
        rows = self._all(_RENEW, {"me": self.holder, "ttl": SLOT_TTL_SECONDS, "pools": pools,
                                  "wanting": wanting, "want_ttl": WANT_TTL_SECONDS})
        return {row[0]: Shared(*row[1:]) for row in rows}

    def configure_rate(self, pool: str, limit: RateLimit) -> None:
        rates = limit.rates()
        self._execute(_CONFIGURE_RATE, {"pool": pool, "kinds": list(rates),
                                        "rates": list(rates.values())})

    def take_tokens(self, pool: str, requests: int, events: int) -> float:
        """Reserve from the pool's buckets (into debt if need be); the seconds to wait."""
        rows = self._all(_TAKE_TOKENS, {"pool": pool, "requests": float(requests),
                                        "events": float(events)})
        return max((max(0.0, -tokens / rate) for tokens, rate in rows), default=0.0)

    def release_all(self) -> None:
        self._unreleased.clear()
        self._execute(_RELEASE_ALL, {"me": self.holder})

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _one(self, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        return self._run(sql, params, lambda cursor: cursor.fetchone())

    def _all(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return self._run(sql, params, lambda cursor: cursor.fetchall())

    def _execute(self, sql: str, params: dict[str, Any]) -> None:
        self._run(sql, params, lambda _cursor: None)

    def _run(self, sql: str, params: dict[str, Any],
             fetch: Callable[[psycopg.Cursor[Any]], T]) -> T:
        """One statement, in a transaction of its own; a broken connection is opened anew on
        the next call."""
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self._conninfo, autocommit=True)
            # what the governor writes only matters while its processes live: no commit
            # waits for the disk (after a crash, slots expire and pools start afresh)
            self._connection.execute("SET synchronous_commit = off")
        try:
            with self._connection.cursor() as cursor:
                cursor.execute(sql, params, prepare=True)
                return fetch(cursor)
        except psycopg.OperationalError:
            self.close()
            raise


