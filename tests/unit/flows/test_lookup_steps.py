"""Lookup steps without a database: the bounded LRU + TTL cache, batches of distinct keys,
what ``on_missing`` does, and retries of a lookup that cannot connect.

``Table`` is a small in-memory application side of the ``Lookup`` contract (a dict of rows);
the real databases are in tests/integration/flows/test_lookup_flows.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from segbridge.apps.base import LookupKey, LookupRow
from segbridge.core.errors import FailedStep, FatalError, RetriableError
from segbridge.exports.contracts import SourceRecord
from segbridge.runs.lookups import MISSING, KeyCache, LookupStep, LookupSteps, Missed
from segbridge.runs.producer import RecordStep, Refusal


class Table:
    """Rows by key; counts the calls and keys it is asked for; can fail its next calls."""

    def __init__(self, rows: Mapping[LookupKey, LookupRow], batch_size: int = 100) -> None:
        self.rows = rows
        self.batch_size = batch_size
        self.calls: list[list[LookupKey]] = []
        self.failures: list[Exception] = []
        self.closed = False

    def find_many(self, keys: Sequence[LookupKey]) -> Mapping[LookupKey, LookupRow | None]:
        self.calls.append(list(keys))
        if self.failures:
            raise self.failures.pop(0)
        return {key: self.rows.get(key) for key in keys}

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


CUSTOMERS = {(f"c{i}",): {"id": f"c{i}", "plan": "pro" if i % 2 else "free"}
             for i in range(100)}


def step(table: Table, on_missing: str = "leave_empty", **cache: Any) -> LookupStep:
    sleeps: list[float] = []
    return LookupStep(name="customer", params=(("customer_id",),), lookup=table,
                      on_missing=on_missing, cache=KeyCache(**{"size": 1000,
                                                               "ttl_seconds": 60, **cache}),
                      sleep=sleeps.append)


def records(ids: Sequence[str | None]) -> list[SourceRecord]:
    return [SourceRecord(position, f"line {position + 2}", {"customer_id": one, "n": position})
            for position, one in enumerate(ids)]


def run_through(steps: LookupSteps, rows: list[SourceRecord]) -> list[dict[str, Any] | Missed]:
    out: list[dict[str, Any] | Missed] = []
    for record in steps.batched(iter(rows)):
        assert record.data is not None
        missed = steps.enrich(record.data)
        out.append(record.data if missed is None else missed)
    return out


# ---- the cache ---------------------------------------------------------------------------------

def test_the_cache_forgets_the_least_recently_used_key_first() -> None:
    cache = KeyCache(2, 60)
    cache.put(("a",), {"v": 1})
    cache.put(("b",), {"v": 2})
    assert cache.get(("a",)) == {"v": 1}  # a is now the most recently used
    cache.put(("c",), None)  # "nothing found" is an answer too
    assert cache.get(("b",)) is MISSING
    assert (cache.get(("a",)), cache.get(("c",)), len(cache)) == ({"v": 1}, None, 2)


def test_answers_expire_after_their_time_to_live() -> None:
    clock = Clock()
    cache = KeyCache(10, 30, clock=clock)
    cache.put(("a",), {"v": 1})
    clock.now += 29.9
    assert cache.get(("a",)) == {"v": 1}
    clock.now += 0.2
    assert cache.get(("a",)) is MISSING and len(cache) == 0


def test_a_time_to_live_of_zero_keeps_nothing() -> None:
    cache = KeyCache(10, 0)
    cache.put(("a",), {"v": 1})
    assert cache.get(("a",)) is MISSING


# ---- batches -----------------------------------------------------------------------------------

def test_each_distinct_key_is_asked_once_per_run_in_batches() -> None:
    table = Table(CUSTOMERS, batch_size=30)
    lookups = LookupSteps([step(table)], batch_records=250)
    ids = [f"c{i % 100}" for i in range(1000)]
    out = run_through(lookups, records(ids))
    assert [data["customer"]["id"] for data in out if isinstance(data, dict)] == ids
    assert sorted(key for call in table.calls for key in call) == sorted(CUSTOMERS)
    assert [len(call) for call in table.calls] == [30, 30, 30, 10]  # the first batch only
    stats = lookups.stats()["customer"]
    assert (stats.asked, stats.calls, stats.hits) == (100, 4, 300)  # 3 later batches: hits


def test_a_cache_smaller_than_a_batch_still_asks_each_key_once_in_it() -> None:
    table = Table(CUSTOMERS)
    lookups = LookupSteps([step(table, size=5)], batch_records=1000)
    run_through(lookups, records([f"c{i % 50}" for i in range(1000)]))
    assert sum(len(call) for call in table.calls) == 50


def test_a_later_lookup_may_take_its_key_from_an_earlier_ones_answer() -> None:
    plans = Table({("pro",): {"price": 49}, ("free",): {"price": 0}})
    second = LookupStep(name="price", params=(("customer", "plan"),), lookup=plans)
    lookups = LookupSteps([step(Table(CUSTOMERS)), second])
    out = run_through(lookups, records(["c1", "c2"]))
    assert [(d["customer"]["plan"], d["price"]) for d in out if isinstance(d, dict)] == [
        ("pro", {"price": 49}), ("free", {"price": 0})]
    assert plans.calls == [[("pro",), ("free",)]]


# ---- no result ---------------------------------------------------------------------------------

def test_leave_empty_puts_none_under_the_name() -> None:
    out = run_through(LookupSteps([step(Table(CUSTOMERS))]), records(["c1", "nobody", None]))
    assert [d["customer"] if isinstance(d, dict) else d for d in out] == [
        {"id": "c1", "plan": "pro"}, None, None]


def test_fail_record_says_which_key_found_nothing() -> None:
    table = Table(CUSTOMERS)
    out = run_through(LookupSteps([step(table, "fail_record")]),
                      records(["c1", "nobody", ""]))
    assert out[1:] == [
        Missed("the lookup 'customer' found nothing for customer_id = 'nobody'", "customer_id"),
        Missed("the lookup 'customer' has no key: the record has no value in customer_id",
               "customer_id")]
    assert table.calls == [[("c1",), ("nobody",)]]  # an empty value is never asked


def test_ignore_record_ignores_it() -> None:
    out = run_through(LookupSteps([step(Table(CUSTOMERS), "ignore_record")]),
                      records(["nobody"]))
    assert out == [Missed(None)]


def test_the_record_step_turns_a_miss_into_a_record_error_or_an_ignored_record() -> None:
    for on_missing, expected in (("fail_record", Refusal(
            FailedStep.LOOKUP, "the lookup 'customer' found nothing for customer_id = 'x'",
            None, "customer_id")), ("ignore_record", False), ("leave_empty", True)):
        lookups = LookupSteps([step(Table(CUSTOMERS), on_missing)])
        record = records(["x"])[0]
        lookups.prepare([record])
        assert record.data is not None
        assert RecordStep([], None, lookups).looked_up(record.data) == expected, on_missing


# ---- failures ----------------------------------------------------------------------------------

def test_a_lookup_that_cannot_connect_is_tried_again() -> None:
    table = Table(CUSTOMERS)
    table.failures = [RetriableError("refused", cause="refused")] * 2
    one = step(table)
    run_through(LookupSteps([one]), records(["c1"]))
    assert len(table.calls) == 3 and one.stats.calls == 3


def test_a_lookup_that_keeps_failing_fails_with_its_name_and_the_reason() -> None:
    table = Table(CUSTOMERS)
    table.failures = [RetriableError("The database at db:5432 refused the connection.",
                                     cause="refused")] * 10
    with pytest.raises(RetriableError) as failed:
        run_through(LookupSteps([step(table)]), records(["c1"]))
    assert failed.value.message == ("The lookup 'customer' failed (tried 5 times): The "
                                    "database at db:5432 refused the connection.")


def test_a_wrong_query_fails_at_once() -> None:
    table = Table(CUSTOMERS)
    table.failures = [FatalError("The lookup's query failed: no such table.", cause="query")]
    with pytest.raises(FatalError) as failed:
        run_through(LookupSteps([step(table)]), records(["c1"]))
    assert len(table.calls) == 1
    assert failed.value.message == ("The lookup 'customer' failed: The lookup's query failed: "
                                    "no such table.")


# ---- lanes -------------------------------------------------------------------------------------

def test_a_lane_looks_up_only_its_own_blocks_and_passes_the_others_on_in_order() -> None:
    from segbridge.runs.producer import Lane

    lane = Lane(index=1, count=3, block_records=10, start=5)
    table = Table(CUSTOMERS)
    lookups = LookupSteps([step(table)], batch_records=4)
    rows = records([f"c{i}" for i in range(60)])
    out = list(lookups.batched(iter(rows), lane.owns))
    assert [r.position for r in out] == list(range(60))  # every record, in order
    asked = sorted(int(key[0][1:]) for call in table.calls for key in call)
    assert asked == [*range(15, 25), *range(45, 55)]  # blocks 1 and 4 from position 5
    assert all(len(call) <= 4 for call in table.calls)


def test_a_lane_spec_never_shows_the_lookups_secrets() -> None:
    from segbridge.apps.base import ConnectionConfig, LookupRequest
    from segbridge.core.access import AccessPolicy
    from segbridge.core.secrets import Secret
    from segbridge.runs.lanes import LaneLookup, LaneSpec, _policy, _policy_json

    policy = AccessPolicy(file_roots=(), protected=(), own_database=("db", 5432, "sb"))
    request = LookupRequest(lookup={"name": "customer"}, params=("id",),
                            connection=ConnectionConfig({"url": "postgresql://u@h/d"},
                                                        {"password": Secret("pw-123456")}),
                            policy=policy, field="steps.0.lookup")
    spec = LaneSpec(count=2, block_records=10, export={}, imports=[],
                    lookups=[LaneLookup.of("database", request)])
    assert "pw-123456" not in repr(spec) and "pw-123456" not in repr(spec.lookups[0])
    assert b"pw-123456" in spec.to_json(0)  # only down the lane's own stdin
    assert _policy(_policy_json(policy)) == policy
