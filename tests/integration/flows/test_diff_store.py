"""The snapshot store's SQL on SQLite and PostgreSQL: staged rows merged with the last one of a
key winning, a resumed run dropping what it staged past its checkpoint, a new run dropping a
failed run's rows, a canceled run's rows dropped, comparisons in bulk, reset."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from segbridge.runs.diff_store import COMPARE_KEYS, DiffStore
from segbridge.storage.db import Database
from tests.support.snapshots import versions_sent

pytestmark = pytest.mark.sql


@pytest.fixture
def store(database_url: str) -> Iterator[DiffStore]:
    db = Database(database_url)
    with db.engine.begin() as connection:
        for statement in (
            "INSERT INTO accounts (id, name, created_at) VALUES ('acc', 'A', :now)",
            "INSERT INTO integrations (id, account_id, name, name_key, created_at) "
            "VALUES ('int', 'acc', 'I', 'i', :now)",
        ):
            connection.execute(text(statement), {"now": "2026-11-30 00:00:00"})
    yield DiffStore(db)
    db.dispose()


def make_flow_and_runs(db: Database, *run_ids: str) -> None:
    from segbridge.storage.models import Flow, Run

    with db.session() as session:
        session.add(Flow(id="flw", account_id="acc", integration_id="int", name="F",
                         name_key="f", definition={}))
        session.flush()
        for run_id in run_ids:
            session.add(Run(id=run_id, account_id="acc", flow_id="flw", status="running",
                            trigger="manual", definition={}, counts={}))


def test_the_last_staged_row_of_a_key_wins_and_a_resume_drops_what_follows_its_checkpoint(
        store: DiffStore) -> None:
    make_flow_and_runs(store.db, "run1")
    snapshot = store.snapshot_id("flw", "Orders")
    assert store.snapshot_id("flw", "Orders") == snapshot  # made once
    store.claim(snapshot, "run1", 0)
    store.stage([(snapshot, position, position % 5, 100 + position)
                 for position in range(10)])  # keys 0-4 twice: positions 5-9 win

    store.claim(snapshot, "run1", 8)  # resumed at 8: positions 8 and 9 will be done again
    store.promote([snapshot], "run1")

    assert versions_sent(store, snapshot, list(range(6))) == {0: 105, 1: 106, 2: 107, 3: 103,
                                                              4: 104}
    assert store.size(snapshot) == 5
    store.promote([snapshot], "run1")  # nothing staged any more: a second merge changes nothing
    assert versions_sent(store, snapshot, [0])[0] == 105


def test_a_new_run_drops_a_failed_runs_rows_and_a_canceled_run_its_own(
        store: DiffStore) -> None:
    make_flow_and_runs(store.db, "failed", "next", "canceled")
    snapshot = store.snapshot_id("flw", "Orders")
    store.claim(snapshot, "failed", 0)
    store.stage([(snapshot, 0, 1, 11)])

    store.claim(snapshot, "next", 0)  # a new run: the failed run's rows go
    store.stage([(snapshot, 0, 2, 22)])
    store.promote([snapshot], "failed")  # (not the staging run any more: nothing happens)
    assert store.size(snapshot) == 0
    store.promote([snapshot], "next")
    assert versions_sent(store, snapshot, [1, 2]) == {2: 22}

    store.claim(snapshot, "canceled", 0)
    store.stage([(snapshot, 0, 3, 33)])
    store.discard([snapshot], "canceled")
    store.claim(snapshot, "canceled", 0)  # (claimed again: nothing of its own is left)
    store.promote([snapshot], "canceled")
    assert versions_sent(store, snapshot, [1, 2, 3]) == {2: 22}


def test_comparisons_go_in_parts_and_a_reset_forgets_every_key(store: DiffStore) -> None:
    make_flow_and_runs(store.db, "run1")
    snapshot = store.snapshot_id("flw", "Orders")
    keys = [(-1) ** k * k * 2**40 for k in range(COMPARE_KEYS * 2 + 7)]  # signed 64-bit
    store.claim(snapshot, "run1", 0)
    store.stage([(snapshot, p, key, key // 3) for p, key in enumerate(keys)])
    store.promote([snapshot], "run1")

    found = versions_sent(store, snapshot, [*keys, 12345])
    versions = [key // 3 + (p % 2) for p, key in enumerate(keys)]  # every other one changed
    differences = store.compare(snapshot, [12345, *keys], [7, *versions])

    assert found == {key: key // 3 for key in keys}
    assert differences == {0: None, **{p + 1: key // 3 for p, key in enumerate(keys) if p % 2}}
    assert store.reset("flw", "Orders") == len(keys)
    assert versions_sent(store, snapshot, keys) == {}
    assert store.reset("flw", "Other") == 0
