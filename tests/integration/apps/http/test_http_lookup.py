"""HTTP lookups against a real API on loopback: one request per key with the record's values
in the path (URL-encoded), the query or the body; 404 is "nothing found"; many keys asked at
once up to the connection's concurrency level; 429 waited as Retry-After says; 5xx retried,
then a retriable error naming the masked URL; the access policy checked before any request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from segbridge.apps.base import ConnectionConfig, LookupRequest
from segbridge.apps.http.lookup import (
    CONCURRENCY_KEY,
    MAX_ATTEMPTS,
    HttpLookup,
    fill_body,
    fill_text,
    lookup_problems,
    result_at,
)
from segbridge.core.access import AccessPolicy
from segbridge.core.errors import FatalError, NotAllowedHere, RetriableError
from tests.integration.apps.http.conftest import OPEN_POLICY, connection
from tests.integration.apps.http.shop_api import API_KEY, Fault, ShopState, shop_api

ODD_ID = "Zoë & co?#1 50%"  # every character a URL gives a meaning to


@pytest.fixture
def api() -> Iterator[tuple[str, ShopState]]:
    with shop_api(records=0) as (url, state):
        for n in range(1, 31):
            state.customers[f"c{n}"] = {"id": f"c{n}", "plan": "pro" if n % 2 else "free",
                                        "email": f"u{n}@example.com"}
        state.customers[ODD_ID] = {"id": ODD_ID, "plan": "team"}
        yield url, state


def opened(config: ConnectionConfig, request: dict[str, Any], *, params: tuple[str, ...] =
           ("id",), result: str = "data", concurrency: int = 4,
           policy: AccessPolicy = OPEN_POLICY, **lookup: Any) -> HttpLookup:
    section = {"name": "customer", "connection": "CRM API", "request": request,
               "result": result, CONCURRENCY_KEY: concurrency, **lookup}
    return HttpLookup(LookupRequest(section, params, config, policy, "steps.0.lookup"),
                      sleep=lambda _seconds: None)


def customer_paths(state: ShopState) -> list[str]:
    return [path for path in state.paths() if path.startswith("/customers")]


def test_each_key_is_asked_in_the_path_and_404_is_nothing_found(
        api: tuple[str, ShopState]) -> None:
    url, state = api
    lookup = opened(connection(url), {"path": "/customers/{id}"})
    try:
        found = lookup.find_many([("c1",), ("c2",), ("nobody",), (ODD_ID,)])
    finally:
        lookup.close()
    assert found == {("c1",): state.customers["c1"], ("c2",): state.customers["c2"],
                     ("nobody",): None, (ODD_ID,): state.customers[ODD_ID]}
    asked = customer_paths(state)
    assert len(asked) == 4  # the odd id found as itself: encoded in the path, one segment
    assert {"/customers/c1", "/customers/c2", "/customers/nobody"} < set(asked)


def test_values_go_in_the_query_and_the_body(api: tuple[str, ShopState]) -> None:
    url, state = api
    by_query = opened(connection(url), {"path": "/customers/{id}",
                                        "query": {"expand": "{plan}", "v": 2}},
                      params=("id", "plan"))
    by_body = opened(connection(url), {"method": "POST", "path": "/customers/find",
                                       "body": {"email": "{email}"}},
                     params=("email",), result="results")
    try:
        assert by_query.find_many([("c3", "a&b=c")]) == {("c3", "a&b=c"): state.customers["c3"]}
        assert by_body.find_many([("u4@example.com",), ("none@example.com",)]) == {
            ("u4@example.com",): state.customers["c4"], ("none@example.com",): None}
    finally:
        by_query.close()
        by_body.close()
    assert ("/customers/c3", {"expand": "a&b=c", "v": "2"}) in state.requests


def test_keys_are_asked_at_once_up_to_the_connection_s_concurrency(
        api: tuple[str, ShopState]) -> None:
    url, state = api
    state.customer_delay = 0.1
    lookup = opened(connection(url), {"path": "/customers/{id}"}, concurrency=3)
    keys = [(f"c{n}",) for n in range(1, 21)]
    started = time.monotonic()
    try:
        found = lookup.find_many(keys)
    finally:
        lookup.close()
    took = time.monotonic() - started
    assert all(found[key] == state.customers[key[0]] for key in keys)
    assert state.peak_in_flight == 3
    assert took < 20 * 0.1 / 2, took  # at once, not one after another (2 s)


def test_a_429_is_waited_for_and_the_key_asked_again(api: tuple[str, ShopState]) -> None:
    url, state = api
    state.faults["/customers/c5"] = [Fault(429, {"Retry-After": "2"})]
    waits: list[float] = []
    lookup = opened(connection(url), {"path": "/customers/{id}"})
    lookup._sleep = waits.append
    try:
        assert lookup.find_many([("c5",)]) == {("c5",): state.customers["c5"]}
    finally:
        lookup.close()
    assert waits == [2.0]
    assert customer_paths(state) == ["/customers/c5", "/customers/c5"]


def test_a_failing_api_is_retriable_masked_and_answered_keys_are_not_asked_again(
        api: tuple[str, ShopState]) -> None:
    url, state = api
    state.auth = "api_key_query"
    state.faults["/customers/c7"] = [Fault(500)] * MAX_ATTEMPTS
    lookup = opened(connection(url, "api_key_query"), {"path": "/customers/{id}"})
    keys = [("c6",), ("c7",), ("c8",)]
    try:
        with pytest.raises(RetriableError) as failed:
            lookup.find_many(keys)
        assert "/customers/c7" in failed.value.message
        assert API_KEY not in failed.value.message
        asked = customer_paths(state)
        assert asked.count("/customers/c7") == MAX_ATTEMPTS
        # the engine asks for the batch again: only the key that failed goes out again
        assert lookup.find_many(keys) == {key: state.customers[key[0]] for key in keys}
    finally:
        lookup.close()
    again = customer_paths(state)[len(asked):]
    assert again == ["/customers/c7"]


def test_refused_credentials_are_a_fatal_error_without_the_secret(
        api: tuple[str, ShopState]) -> None:
    url, state = api
    state.auth = "api_key_header"
    wrong = connection(url, "api_key_header")
    wrong = ConnectionConfig(wrong.values, {"api_key": type(wrong.secrets["api_key"])(
        "wrong-key-XYZ")})
    lookup = opened(wrong, {"path": "/customers/{id}"})
    try:
        with pytest.raises(FatalError) as failed:
            lookup.find_many([("c1",)])
    finally:
        lookup.close()
    assert failed.value.cause == "http_401"
    assert "wrong-key-XYZ" not in failed.value.message


def test_the_policy_refuses_a_private_api_before_any_request(
        api: tuple[str, ShopState]) -> None:
    url, state = api
    closed = AccessPolicy(file_roots=(), protected=(), deny_private=True)
    with pytest.raises(NotAllowedHere) as refused:
        opened(connection(url), {"path": "/customers/{id}"}, policy=closed)
    assert refused.value.details == {"field": "steps.0.lookup.connection"}
    assert customer_paths(state) == []


def test_an_answer_without_an_object_at_result_says_where_to_look(
        api: tuple[str, ShopState]) -> None:
    url, _state = api
    lookup = opened(connection(url), {"path": "/customers/{id}"}, result="data.plan")
    try:
        with pytest.raises(FatalError, match=r"holds a str at data\.plan, not an object"):
            lookup.find_many([("c1",)])
    finally:
        lookup.close()


def test_placeholders_are_filled_and_encoded() -> None:
    values = {"id": "../admin", "n": 7, "flag": True}
    assert fill_text("/customers/{id}", values, in_path=True) == "/customers/..%2Fadmin"
    assert fill_text("/c/{id}", {"id": ".."}, in_path=True) == "/c/%2E%2E"
    assert fill_text("{n}-{flag}", values) == "7-true"
    assert fill_body({"ids": ["{n}"], "note": "n={n}"}, values) == {"ids": [7], "note": "n=7"}
    assert result_at({"data": [{"a": 1}, {"a": 2}]}, "$.data") == {"a": 1}
    assert result_at({"data": []}, "data") is None
    assert result_at({"a": 1}, "$") == {"a": 1}


def test_a_step_s_request_must_fit_its_params() -> None:
    field = "steps.1.lookup"
    problems = lookup_problems({"request": {"path": "/c/{id}", "query": {"r": "{region}"}},
                                "params": {"id": "customer_id", "plan": "plan"},
                                "query": "select 1"}, field)
    assert [(p.field, p.message) for p in problems] == [
        ("steps.1.lookup.query", "an HTTP API lookup sends a request, it has no query; write "
                                 "request: {path: '/customers/{id}'} instead"),
        ("steps.1.lookup.params", "the request has no {plan}; use it in the path, the query "
                                  "or the body, or remove it"),
        ("steps.1.lookup.request", "{region} has no value; add region: <a record field> to "
                                   "params")]
    assert [p.field for p in lookup_problems(
        {"request": {"path": "/c", "body": {"a": 1}}, "params": {}}, field)] == [
        "steps.1.lookup.request.body"]


def test_an_api_that_cannot_be_reached_is_retriable_and_its_key_masked() -> None:
    from tests.support.servers import unused_port

    config = connection(f"http://127.0.0.1:{unused_port()}", "api_key_query")
    lookup = opened(config, {"path": "/customers/{id}"})
    try:
        with pytest.raises(RetriableError) as failed:
            lookup.find_many([("c1",)])
    finally:
        lookup.close()
    assert failed.value.cause == "refused"
    assert API_KEY not in failed.value.message
    assert "/customers/c1" in failed.value.message
