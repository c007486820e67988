"""The deleted keys' SQL on SQLite and PostgreSQL: the keys of the snapshot a run did not see
(sent, or only seen), read in key order page by page; a key whose call failed kept; the others
leave the snapshot (and their identity) when the run's rows are merged; a seen-only row leaves
its entry as it was; a failed run's end changes nothing."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import text

from segbridge.runs.diff_store import DiffStore
from tests.integration.flows.test_diff_store import make_flow_and_runs, store  # noqa: F401
from tests.support.snapshots import versions_sent

pytestmark = pytest.mark.sql


def about(key: int) -> bytes:
    return orjson.dumps({"key": str(key), "userId": f"u{key}", "anonymousId": None})


def first_run(store: DiffStore, snapshot: int, keys: range) -> None:  # noqa: F811
    store.claim(snapshot, "run1", 0)
    store.stage_seen([(snapshot, key, key, 100 + key, about(key)) for key in keys])
    assert store.find_gone(snapshot) == 0
    store.promote([snapshot], "run1", watched={snapshot})


def test_the_keys_a_run_did_not_see_are_read_in_pages_and_leave_the_snapshot(
        store: DiffStore) -> None:  # noqa: F811
    make_flow_and_runs(store.db, "run1", "run2")
    snapshot = store.snapshot_id("flw", "Orders")
    first_run(store, snapshot, range(-5, 20))

    store.claim(snapshot, "run2", 0)
    store.stage_seen([(snapshot, 0, 1, 999, about(1))])  # sent again (changed)
    store.stage_seen([(snapshot, 1 + key, key, 0, None)  # seen only: unchanged or an error
                      for key in range(2, 15)])
    assert store.find_gone(snapshot) == 11  # -5..0 and 15..19
    assert store.find_gone(snapshot) == 11  # (worked out again: the same)

    pages, after = [], None
    while page := store.gone_page(snapshot, after, 4):
        pages.append(page)
        after = page[-1][0]
    assert [len(page) for page in pages] == [4, 4, 3]
    gone = [row for page in pages for row in page]
    assert [key for key, _version, _about in gone] == [-5, -4, -3, -2, -1, 0, 15, 16, 17,
                                                       18, 19]
    assert gone[0] == (-5, 95, about(-5))
    store.keep(snapshot, [16])  # its call failed: it stays

    store.promote([snapshot], "run2", watched={snapshot})

    assert store.size(snapshot) == 25 - 10
    assert versions_sent(store, snapshot, [1, 2, 16, 15, 0]) == {1: 999, 2: 102, 16: 116}
    with store.db.engine.connect() as connection:
        kept = {key: value for key, value in connection.execute(text(
            "SELECT key_hash, about FROM diff_keys WHERE snapshot_id = :s"), {"s": snapshot})}
    assert sorted(kept) == sorted([*range(1, 15), 16])
    assert orjson.loads(kept[1])["userId"] == "u1"


def test_a_failed_run_leaves_the_snapshot_and_a_reset_forgets_the_identities(
        store: DiffStore) -> None:  # noqa: F811
    make_flow_and_runs(store.db, "run1", "run2", "run3")
    snapshot = store.snapshot_id("flw", "Orders")
    first_run(store, snapshot, range(10))
    store.claim(snapshot, "run2", 0)
    assert store.find_gone(snapshot) == 10  # (it failed while sending: no promote)

    store.claim(snapshot, "run3", 0)  # the next run sees key 3 only
    store.stage_seen([(snapshot, 0, 3, 0, None)])
    assert store.find_gone(snapshot) == 9
    assert store.size(snapshot) == 10

    assert store.reset("flw", "Orders") == 10
    assert store.gone_page(snapshot, None, 100) == []
    with store.db.engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM diff_keys")) == 0
