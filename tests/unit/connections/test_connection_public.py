"""A connection's public form answers the JSON the API has always answered: the same keys in
the same order, the stored test result kept as it was stored, and ``has_<secret>`` flags."""

from __future__ import annotations

from segbridge.connections.views import ConnectionPublic

STORED_RESULT = {"endpoint": "https://api.segment.io/v1/batch", "status": 200,
                 "latency_ms": 41.5, "message_id": "m-1", "cause": None, "message": "ok",
                 "checks": [{"name": "dns", "outcome": "passed", "label": "DNS", "detail": ""}],
                 "debugger_hint": "open the Debugger"}
ANSWERED: dict[str, object] = {
    "id": "con_1",
    "name": "Prod",
    "application": "segment",
    "settings": {"region": "us", "endpoint": None, "has_write_key": True},
    "concurrency_level": None,
    "borrow_concurrency_from": "con_0",
    "effective_concurrency": {"level": 5, "borrowing": True, "lender_id": "con_0",
                              "lender_name": "Root", "note": "borrows from 'Root' (5)"},
    "requests_per_second": None,
    "events_per_second": None,
    "effective_rate_limit": {"requests_per_second": 50.0, "events_per_second": None,
                             "lender_id": "con_0"},
    "status": "online",
    "last_test": {"at": "2026-01-02T03:04:05Z", "ok": True, **STORED_RESULT},
    "used_by": {"borrowers": [{"id": "con_2", "name": "Leaf"}],
                "flows": [{"id": "flw_1", "name": "Orders"}]},
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": None,
}


def test_the_public_form_answers_the_same_json_in_the_same_order() -> None:
    answered = ConnectionPublic.model_validate(ANSWERED).as_json()
    assert answered == ANSWERED
    assert list(answered) == list(ANSWERED)
    last_test = answered["last_test"]
    assert isinstance(last_test, dict)
    assert list(last_test) == ["at", "ok", *STORED_RESULT]


def test_settings_keep_their_types_and_a_never_tested_connection_has_no_last_test() -> None:
    untested = ConnectionPublic.model_validate({**ANSWERED, "last_test": None})
    assert untested.last_test is None
    assert untested.settings == {"region": "us", "endpoint": None, "has_write_key": True}
    assert untested.as_json()["last_test"] is None


def test_the_form_reads_as_attributes() -> None:
    connection = ConnectionPublic.model_validate(ANSWERED)
    assert connection.effective_concurrency.lender_name == "Root"
    assert [b.name for b in connection.used_by.borrowers] == ["Leaf"]
    assert connection.last_test is not None and connection.last_test.ok is True
