"""HTTP exports against a real API on loopback: every kind of pagination and its stop rules,
authentication each way (the API checks it), OAuth 2 tokens fetched again, faults (429 with
Retry-After, 500s, a slow page, broken JSON), next links elsewhere, resumed reads, an
incremental window with a lag, and a large answer read in flat memory."""

from __future__ import annotations

import dataclasses
import socket
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from segbridge.apps.base import ResumeState
from segbridge.core.access import AccessPolicy
from segbridge.core.errors import NotAllowedHere
from segbridge.exports.contracts import SourceRecord
from segbridge.exports.errors import ExportError, ExportUnavailable
from tests.integration.apps.http.conftest import connection, ids, open_export, read
from tests.integration.apps.http.shop_api import (
    API_KEY,
    Fault,
    ShopState,
    shop_api,
    shop_api_process,
)

ALL = list(range(1, 24))
PAGINATIONS: dict[str, tuple[dict[str, Any], int]] = {  # export, requests made
    "page": ({"path": "/pages", "records": "data.items",
              "pagination": {"type": "page", "size": 10}}, 3),
    "offset": ({"path": "/offset", "records": "results",
                "pagination": {"type": "offset", "size": 10}}, 3),
    "cursor": ({"path": "/cursor", "records": "items",
                "pagination": {"type": "cursor", "cursor_path": "meta.next_cursor",
                               "cursor_param": "cursor"}}, 6),
    "link": ({"path": "/link", "pagination": {"type": "link"}}, 5),
    "next_url": ({"path": "/next", "records": "$.records",
                  "pagination": {"type": "next_url", "next_path": "links.next"}}, 8),
    "ndjson": ({"path": "/ndjson", "format": "ndjson"}, 1),
}


@pytest.fixture
def shop() -> Iterator[tuple[str, ShopState]]:
    with shop_api() as served:
        yield served


@pytest.mark.parametrize("kind", list(PAGINATIONS))
def test_each_pagination_reads_every_record_once(shop: tuple[str, ShopState],
                                                 kind: str) -> None:
    url, state = shop
    export, requests = PAGINATIONS[kind]
    records = read(export, connection(url))
    assert ids(records) == ALL
    assert [r.position for r in records] == list(range(23))
    assert len(state.requests) == requests


def test_a_page_number_walk_sends_its_parameters_and_stops_at_a_short_page(
    shop: tuple[str, ShopState],
) -> None:
    url, state = shop
    export = {"path": "/pages", "records": "data.items", "query": {"status": "paid"},
              "pagination": {"type": "page", "param": "page", "start": 1, "size": 10,
                             "size_param": "per_page"}}
    records = read(export, connection(url))
    assert [query for _, query in state.requests] == [
        {"status": "paid", "page": str(n), "per_page": "10"} for n in (1, 2, 3)]
    assert records[12].ref == "page 2, item 3"


def test_stop_rules_an_empty_page_and_max_pages(shop: tuple[str, ShopState]) -> None:
    url, state = shop
    until_empty = {"path": "/pages", "records": "data.items",
                   "pagination": {"type": "page", "size": 10, "stop": "empty"}}
    assert ids(read(until_empty, connection(url))) == ALL
    assert len(state.requests) == 4  # the fourth page is empty
    state.requests.clear()
    two_pages = {"path": "/offset", "records": "results",
                 "pagination": {"type": "offset", "size": 10, "max_pages": 2}}
    assert ids(read(two_pages, connection(url))) == ALL[:20]
    assert [query["offset"] for _, query in state.requests] == ["0", "10"]


@pytest.mark.parametrize("auth", ["none", "basic", "bearer", "api_key_header",
                                  "api_key_query", "oauth2"])
def test_each_authentication_is_accepted_by_the_api(auth: str) -> None:
    with shop_api(auth=auth) as (url, _state):
        export = PAGINATIONS["page"][0]
        assert ids(read(export, connection(url, auth))) == ALL


def test_wrong_credentials_fail_with_401_and_show_no_key() -> None:
    with shop_api(auth="api_key_query") as (url, _state):
        config = connection(url, "api_key_query")
        wrong = type(config)(config.values, {"api_key": type(config.secrets["api_key"])(
            "wrong-key-" + API_KEY)})
        with pytest.raises(ExportError) as failed:
            read(PAGINATIONS["page"][0], wrong)
    assert failed.value.cause == "http_401"
    assert "Check the connection's authentication" in failed.value.message
    assert API_KEY not in failed.value.message and "api_key" not in failed.value.message


def test_an_oauth_token_revoked_mid_run_is_fetched_again() -> None:
    with shop_api(auth="oauth2") as (url, state):
        records = open_export(PAGINATIONS["page"][0], connection(url, "oauth2")).export.records()
        first = [next(records) for _ in range(10)]
        state.valid_tokens.clear()  # the API forgets the token: the next page answers 401
        rest = list(records)
    assert ids(first + rest) == ALL
    assert state.tokens_issued == 2


def test_an_oauth_token_is_fetched_again_before_it_expires() -> None:
    with shop_api(auth="oauth2") as (url, state):
        state.token_lifetime = 2  # used for 1 s: half its life, at most 30 s less
        records = open_export(PAGINATIONS["page"][0], connection(url, "oauth2")).export.records()
        first = [next(records) for _ in range(10)]
        time.sleep(1.2)
        rest = list(records)
    assert ids(first + rest) == ALL
    assert state.tokens_issued == 2
    assert state.paths().count("/pages") == 3  # no page answered 401 first


def test_429_with_retry_after_is_waited_for_then_the_page_is_asked_again(
    shop: tuple[str, ShopState],
) -> None:
    url, state = shop
    state.faults["/pages"] = [Fault(), Fault(429, {"Retry-After": "1"})]
    started = time.monotonic()
    records = read(PAGINATIONS["page"][0], connection(url))
    assert ids(records) == ALL
    assert time.monotonic() - started >= 1.0
    assert [query["page"] for _, query in state.requests] == ["1", "2", "2", "3"]


def test_server_errors_and_a_slow_page_are_tried_again(shop: tuple[str, ShopState]) -> None:
    url, state = shop
    state.faults["/cursor"] = [Fault(), Fault(500), Fault(503), Fault(delay=2.0)]
    export = {**PAGINATIONS["cursor"][0], "timeout_seconds": 0.5}
    assert ids(read(export, connection(url))) == ALL
    assert [query.get("cursor") for _, query in state.requests][:5] == \
        [None, "4", "4", "4", "4"]


def test_a_page_that_keeps_failing_fails_the_export_naming_its_url_masked() -> None:
    with shop_api(auth="api_key_query") as (url, state):
        state.faults["/pages"] = [Fault()] + [Fault(500)] * 3
        export = {**PAGINATIONS["page"][0], "max_attempts": 3}
        records = open_export(export, connection(url, "api_key_query")).export.records()
        given = [next(records) for _ in range(10)]
        with pytest.raises(ExportUnavailable) as failed:
            next(records)
    message = failed.value.message
    assert failed.value.cause == "server_error" and ids(given) == ALL[:10]
    assert f"Page 2 of the export ({url}/pages?page=2&per_page=10) failed 3 times" in message
    assert "The API had a server error (500)" in message
    assert API_KEY not in message and "api_key" not in message


def test_a_malformed_page_fails_with_a_clear_error(shop: tuple[str, ShopState]) -> None:
    url, state = shop
    state.faults["/pages"] = [Fault(body=b'{"data": {"items": [{"id": 1}, {"id": ')]
    with pytest.raises(ExportError) as failed:
        read(PAGINATIONS["page"][0], connection(url))
    assert failed.value.cause == "malformed_page"
    assert f"The answer of {url}/pages?page=1&per_page=10 is not valid JSON" in \
        failed.value.message


def test_records_at_a_path_that_is_not_there_say_what_is(shop: tuple[str, ShopState]) -> None:
    url, _state = shop
    with pytest.raises(ExportError) as failed:
        read({"path": "/pages", "records": "data.rows"}, connection(url))
    assert failed.value.cause == "records_path"
    assert "has no array at data.rows. Its top-level keys are: data." in failed.value.message


def test_a_next_link_to_another_host_stops_the_export(shop: tuple[str, ShopState]) -> None:
    url, state = shop
    port = url.rsplit(":", 1)[1]
    state.other_host = f"http://localhost:{port}"  # the same server, another origin
    export = {"path": "/elsewhere", "records": "records",
              "pagination": {"type": "next_url", "next_path": "links.next"}}
    records = open_export(export, connection(url, "bearer")).export.records()
    assert ids([next(records), next(records)]) == [1, 2]
    with pytest.raises(ExportError) as failed:
        next(records)
    assert failed.value.cause == "next_url_elsewhere"
    assert f"at http://localhost:{port}, not on the connection's base URL" in \
        failed.value.message
    assert "/steal" not in state.paths()


def test_the_outbound_policy_refuses_a_private_api() -> None:
    with shop_api() as (url, state):
        policy = AccessPolicy(file_roots=(), protected=(), deny_private=True)
        with pytest.raises(NotAllowedHere, match=r"127\.0\.0\.1 is a loopback address"):
            read(PAGINATIONS["page"][0], connection(url), policy=policy)
    assert state.requests == []


def test_a_dns_answer_that_changes_after_the_check_is_refused_at_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: the policy's check sees a public address, the connection would go to
    127.0.0.1. The export refuses at connect time; the API receives nothing."""
    real = socket.getaddrinfo
    answers = iter(["93.184.215.14"])

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "shop.rebind.test":
            host = next(answers, "127.0.0.1")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with shop_api() as (url, state):
        rebound = url.replace("127.0.0.1", "shop.rebind.test")
        policy = AccessPolicy(file_roots=(), protected=(), deny_private=True)
        with pytest.raises(NotAllowedHere, match=r"shop\.rebind\.test \(127\.0\.0\.1\) is a "
                                                 "loopback address"):
            read({"path": "/pages"}, connection(rebound), policy=policy)
    assert state.requests == []


@pytest.mark.parametrize("kind", ["page", "offset", "cursor", "next_url"])
def test_a_resumed_read_gives_the_same_records_from_its_position(
    shop: tuple[str, ShopState], kind: str,
) -> None:
    url, state = shop
    export = PAGINATIONS[kind][0]
    everything = read(export, connection(url))
    state.requests.clear()
    resumed = read(export, connection(url), start=15)
    assert [(r.position, r.ref, r.data) for r in resumed] == \
        [(r.position, r.ref, r.data) for r in everything[15:]]
    if kind in ("page", "offset"):  # the page holding position 15 is asked for directly
        assert [query[PAGINATIONS[kind][0]["pagination"].get("param", kind)]
                for _, query in state.requests] == (["2", "3"] if kind == "page"
                                                    else ["10", "20"])


def test_an_incremental_export_reads_what_changed_less_the_lag() -> None:
    now = time.time()
    with shop_api(records=0) as (url, state):
        state.add(10)  # January 2026
        state.add(3, datetime.fromtimestamp(now, UTC) - timedelta(minutes=10))
        state.add(2, datetime.fromtimestamp(now, UTC) - timedelta(seconds=5))
        export = {"path": "/offset", "records": "results",
                  "pagination": {"type": "offset", "size": 4},
                  "since": {"field": "updated_at", "param": "updated_since",
                            "lag_seconds": 60}}
        first = open_export(export, connection(url))
        assert ids(list(first.export.records())) == list(range(1, 14))  # not the last two
        assert "updated_since" not in state.requests[0][1]
        assert first.cursor_after is not None and first.bounds is not None
        resumed = open_export(export, connection(url),
                              resume=ResumeState(saved_bounds=first.bounds))
        state.add(1, datetime.now(UTC) - timedelta(seconds=2))  # after the window: not
        assert ids(list(resumed.export.records(11))) == [12, 13]  # the same window
        state.requests.clear()
        later = {**export, "since": {**export["since"], "lag_seconds": 0}}
        second = open_export(later, connection(url),
                             resume=ResumeState(saved_cursor=first.cursor_after))
        assert ids(list(second.export.records())) == [14, 15, 16]
        assert state.requests[0][1]["updated_since"] == first.cursor_after["value"]


def test_a_preview_reads_without_the_window(shop: tuple[str, ShopState]) -> None:
    url, _state = shop
    export = {**PAGINATIONS["link"][0],
              "since": {"field": "updated_at", "param": "updated_since"}}
    opened = open_export(export, connection(url), preview=True,
                         resume=ResumeState(saved_cursor={"field": "updated_at",
                                                          "value": "2030-01-01T00:00:00Z"}))
    assert opened.cursor_after is None and ids(list(opened.export.records())) == ALL


def test_items_that_are_not_records_become_record_errors(shop: tuple[str, ShopState]) -> None:
    url, state = shop
    state.faults["/pages"] = [Fault(body=b'{"data": {"items": [{"id": 1}, 7, [1, 2], '
                                         b'{"id": 2}]}}')]
    records = read({"path": "/pages", "records": "data.items"}, connection(url))
    assert ids(records) == [1, "page 1, item 2: a record is a JSON object; this item is a "
                               "number", "page 1, item 3: a record is a JSON object; this "
                                         "item is an array", 2]
    assert [r.position for r in records] == [0, 1, 2, 3]


def test_a_large_answer_is_read_in_flat_memory() -> None:
    """The API runs in a process of its own, so only the export's memory is measured."""
    count = 60_000  # about 12 MB of JSON in one answer
    with shop_api_process() as url:
        assert len(read({"path": "/big", "records": "data"}, connection(url))) == 1000  # warm
        export = {"path": "/big", "records": "data", "query": {"count": count}}
        records = open_export(export, connection(url)).export.records()
        tracemalloc.start()
        try:
            seen = sum(1 for _ in records)
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert seen == count
    assert peak < 3_000_000, f"peak {peak:,} bytes for an answer of about 12 MB"


def test_a_page_cut_mid_way_is_asked_again_and_no_record_is_given_twice(
    shop: tuple[str, ShopState],
) -> None:
    url, state = shop
    state.faults["/pages"] = [Fault(cut_after=4)]
    records = read(PAGINATIONS["page"][0], connection(url))
    assert ids(records) == ALL
    assert [r.position for r in records] == list(range(23))
    assert [query["page"] for _, query in state.requests] == ["1", "1", "2", "3"]


def test_a_post_sends_its_body_and_the_connection_its_extra_headers(
    shop: tuple[str, ShopState],
) -> None:
    url, state = shop
    config = connection(url, headers="Accept: application/json\nX-Shop-Region: eu-west")
    export = {"method": "POST", "path": "/search", "records": "hits",
              "body": {"ids": [3, 5, 8]}}
    assert ids(read(export, config)) == [3, 5, 8]
    assert state.headers[0]["x-shop-region"] == "eu-west"
    assert state.headers[0]["content-type"] == "application/json"


def test_requests_per_second_spaces_the_pages(shop: tuple[str, ShopState]) -> None:
    url, _state = shop
    export = {**PAGINATIONS["cursor"][0], "requests_per_second": 10}  # 6 pages
    started = time.monotonic()
    limited = dataclasses.replace(connection(url), requests_per_second=50.0)  # the connection's
    assert ids(read(export, limited)) == ALL
    assert time.monotonic() - started >= 0.45  # the slower rate (10/s): 5 waits of 0.1 s


def test_a_resumed_run_continues_at_the_page_it_failed_on(shop: tuple[str, ShopState]) -> None:
    """A cursor walk: the page cannot be computed, the first run noted it."""
    url, state = shop
    export = {**PAGINATIONS["cursor"][0], "max_attempts": 2}
    state.faults["/cursor"] = [Fault(), Fault(), Fault(500), Fault(500)]
    first = open_export(export, connection(url))
    given: list[SourceRecord] = []
    with pytest.raises(ExportUnavailable, match="Page 3 of the export"):
        given.extend(first.export.records())
    assert ids(given) == ALL[:8]
    state.requests.clear()
    resumed = open_export(export, connection(url), resume=ResumeState(saved_bounds=first.bounds))
    assert ids(list(resumed.export.records(8))) == ALL[8:]
    assert [query.get("cursor") for _, query in state.requests][:2] == ["8", "12"]


def test_a_resumed_run_whose_noted_cursor_expired_walks_again(
    shop: tuple[str, ShopState],
) -> None:
    url, state = shop
    export = PAGINATIONS["cursor"][0]
    first = open_export(export, connection(url))
    records = first.export.records()
    assert ids([next(records) for _ in range(10)]) == ALL[:10]
    records.close()
    state.requests.clear()
    state.faults["/cursor"] = [Fault(400)]  # the noted cursor is refused now
    resumed = open_export(export, connection(url), resume=ResumeState(saved_bounds=first.bounds))
    assert ids(list(resumed.export.records(10))) == ALL[10:]
    assert [query.get("cursor") for _, query in state.requests][:3] == ["8", None, "4"]


def test_a_resumed_run_elsewhere_walks_again_to_its_position(
    shop: tuple[str, ShopState],
) -> None:
    """Another process has no notes of the walk: the same records, from the first page."""
    url, state = shop
    export = PAGINATIONS["next_url"][0]
    resumed = open_export(export, connection(url),
                          resume=ResumeState(saved_bounds={"walk": "another-process"}))
    assert ids(list(resumed.export.records(20))) == ALL[20:]
    assert len(state.requests) == 8


def test_segbridge_s_own_server_is_never_read(shop: tuple[str, ShopState]) -> None:
    """Whatever the policy allows otherwise: here the API stands in for segbridge's own port."""
    url, state = shop
    port = int(url.rsplit(":", 1)[1])
    policy = AccessPolicy(file_roots=(), protected=(), own_ports=frozenset({port}),
                          own_hosts=frozenset({"127.0.0.1"}))
    with pytest.raises(NotAllowedHere, match=f"http://localhost:{port} is this segbridge "
                                             "server itself"):
        read({"path": "/pages"}, connection(url.replace("127.0.0.1", "localhost")),
             policy=policy)
    assert state.requests == []
