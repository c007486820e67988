"""The HTTP application's parts without a network: connection settings checked all at once,
secrets masked in every form, the records of a streamed answer, the page walk, and the
incremental window."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from segbridge.apps.base import ConnectionConfig
from segbridge.apps.http.body import (
    BadLine,
    PageFound,
    TooDeep,
    json_items,
    ndjson_items,
    prefix_of,
)
from segbridge.apps.http.connection import connection_problems, parse_connection
from segbridge.apps.http.masking import Masker
from segbridge.apps.http.pages import Page, Pager, PageRead
from segbridge.apps.http.since import open_window, parse_moment
from segbridge.apps.http.walks import Step, WalkNotes
from segbridge.core.secrets import MASK, Secret
from segbridge.exports.errors import ExportError

ORIGIN = ("https", "api.example.com", 443)


def problems(**values: str) -> dict[str, str]:
    return {p.field: p.message for p in connection_problems(values)}


def test_connection_settings_are_checked_all_at_once() -> None:
    found = problems(base_url="ftp://files.example.com", auth="api_key_header",
                     headers="Accept: application/json\nno colon here\nHost: evil",
                     test_request="FETCH everything")
    assert found == {
        "settings.base_url": "enter the API's base URL as an http:// or https:// URL, e.g. "
                             "https://api.example.com",
        "settings.api_key_name": "enter the name of the header that carries the key, e.g. "
                                 "X-API-Key",
        "settings.headers": "line 3: segbridge sets Host itself; remove the line",
        "settings.test_request": "write a method and a path, e.g. 'GET /' or 'GET /me' "
                                 "(methods: GET, HEAD, POST)",
    }
    assert [p.message for p in connection_problems(
        {"base_url": "https://a.example", "headers": "no colon"})] == [
        "line 1: write 'Name: value', e.g. Accept: application/json"]


def test_oauth_needs_its_token_url_and_client_id() -> None:
    assert problems(base_url="https://api.example.com", auth="oauth2") == {
        "settings.token_url": "enter the OAuth token URL, e.g. https://api.example.com",
        "settings.client_id": "enter the OAuth client id",
    }


def test_a_base_url_with_a_password_or_a_query_in_it_is_refused() -> None:
    assert problems(base_url="https://me:pw@api.example.com")["settings.base_url"].startswith(
        "remove the user and password from the URL")
    assert problems(base_url="https://api.example.com/v2?key=1")["settings.base_url"] \
        .startswith("remove the query string from the base URL")


def test_an_empty_secret_is_named_when_the_connection_is_used() -> None:
    connection = parse_connection(ConnectionConfig(
        {"base_url": "https://api.example.com/", "auth": "bearer"}, {}))
    assert connection.base_url == "https://api.example.com"
    with pytest.raises(ExportError, match="needs its Bearer token, which is empty: edit the "
                                          "connection and enter the Bearer token"):
        connection.secret("token")


def test_every_form_of_a_secret_is_masked() -> None:
    masker = Masker([Secret("s3cret/key+1")], key_param="api_key", username="me")
    text = ("https://x.example/a?api_key=anything&page=2 s3cret%2Fkey%2B1 s3cret/key+1 "
            "bWU6czNjcmV0L2tleSsx")
    assert masker.mask(text) == (f"https://x.example/a?api_key={MASK}&page=2 {MASK} {MASK} "
                                 f"{MASK}")


def chunks(text: bytes, size: int = 7) -> list[bytes]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def test_records_are_read_at_their_path_and_the_wanted_values_picked_up() -> None:
    body = (b'{"meta": {"next": "c2", "total": 3}, "data": {"items": [{"id": 1, '
            b'"tags": ["a"]}, {"id": 2.5, "deep": {"x": null}}, "text"]}, "after": 1}')
    found = PageFound()
    items = list(json_items(chunks(body), "$.data.items", ["meta.next"], found, 64))
    assert items == [{"id": 1, "tags": ["a"]}, {"id": 2.5, "deep": {"x": None}}, "text"]
    assert found.array_seen and found.values == {"meta.next": "c2"}
    assert found.top_keys == ["meta", "data", "after"]
    assert [prefix_of(p) for p in ("", "$", "$.a.b", "a.b")] == ["", "", "a.b", "a.b"]


def test_an_item_nested_too_deep_is_never_built() -> None:
    deep = b"[" + b'{"a": ' * 30 + b"1" + b"}" * 30 + b', {"id": 2}]'
    items = list(json_items(chunks(deep), "$", [], PageFound(), 10))
    assert isinstance(items[0], TooDeep) and items[1] == {"id": 2}


def walk(pager: Pager, reads: list[PageRead]) -> list[Page]:
    page: Page | None
    page, offset = pager.first(0, False)
    pages = []
    for read in reads:
        assert page is not None
        pages.append(page)
        offset += read.items
        page = pager.after(page, read, offset)
    assert page is None, "the walk goes on after the last read"
    return pages


def read(items: int, **values: Any) -> PageRead:
    return PageRead(items, values, values.pop("link", None), items)


def pager(**pagination: Any) -> Pager:
    return Pager("https://api.example.com/orders", {"status": "paid", "full": True},
                 pagination, ORIGIN, lambda text: text)


def test_page_numbers_and_offsets_count_up_and_stop_at_a_short_page() -> None:
    pages = walk(pager(type="page", start=0, size=2), [read(2), read(2), read(1)])
    assert [dict(p.params) for p in pages] == [
        {"status": "paid", "full": "true", "page": str(n), "per_page": "2"} for n in (0, 1, 2)]
    offsets = walk(pager(type="offset", param="skip", size=2, size_param="take"),
                   [read(2), read(2), read(0)])
    assert [p.params["skip"] for p in offsets] == ["0", "2", "4"]


def test_a_resumed_walk_starts_at_the_page_of_its_position() -> None:
    page, at = pager(type="page", size=10).first(25, counted_locally=False)
    assert (page.number, page.params["page"], at) == (3, "3", 20)
    again, at = pager(type="page", size=10, stop="empty").first(25, counted_locally=False)
    assert (again.number, at) == (1, 0)  # short pages may come anywhere: walk again
    windowed, at = pager(type="offset", size=10).first(25, counted_locally=True)
    assert (windowed.number, at) == (1, 0)  # records left out locally: positions differ


def test_a_cursor_walk_stops_when_no_cursor_comes_back() -> None:
    pages = walk(pager(type="cursor", cursor_path="next", cursor_param="after"),
                 [read(3, next="abc"), read(3, next=""), ])
    assert [p.params.get("after") for p in pages] == [None, "abc"]


def test_next_links_are_resolved_and_kept_on_the_origin() -> None:
    walker = pager(type="link")
    first, _ = walker.first(0, False)
    second = walker.after(first, read(5, link="/orders?page=2"), 5)
    assert second is not None and second.url == "https://api.example.com/orders?page=2"
    with pytest.raises(ExportError, match=r"names its next page at https://evil\.example:443"):
        walker.after(first, read(5, link="https://evil.example/orders?page=2"), 5)
    assert walker.after(first, read(5), 5) is None
    capped = pager(type="next_url", next_path="next", max_pages=1)
    assert capped.after(capped.first(0, False)[0], read(5, next="/x"), 5) is None


def test_the_window_starts_after_the_stored_cursor_and_ends_a_lag_ago() -> None:
    now = datetime(2026, 3, 1, 12, 0, 30, 500, tzinfo=UTC)
    since = {"field": "updated_at", "param": "since", "lag_seconds": 30,
             "until_param": "until"}
    window = open_window(since, None, {"field": "updated_at", "value": "2026-03-01T10:00:00Z"},
                         now)
    assert window.params() == {"since": "2026-03-01T10:00:00Z", "until": "2026-03-01T12:00:00Z"}
    assert window.cursor_after() == {"field": "updated_at", "value": "2026-03-01T12:00:00Z"}
    resumed = open_window(since, window.to_json(), None, datetime(2030, 1, 1, tzinfo=UTC))
    assert resumed == window
    other_field = open_window({**since, "field": "changed"}, None,
                              {"field": "updated_at", "value": "2026-03-01T10:00:00Z"}, now)
    assert other_field.last is None
    epoch = open_window({**since, "format": "epoch"}, None, None, now)
    assert epoch.params() == {"until": "1772366400"}


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-03-01T10:00:00Z", datetime(2026, 3, 1, 10, tzinfo=UTC)),
    ("2026-03-01T10:00:00", datetime(2026, 3, 1, 10, tzinfo=UTC)),
    (1772359200, datetime(2026, 3, 1, 10, tzinfo=UTC)),
    ("yesterday", None), (True, None), (None, None),
])
def test_moments_are_iso_texts_or_epoch_seconds(value: Any, expected: datetime | None) -> None:
    assert parse_moment(value) == expected


def test_walk_notes_keep_the_latest_pages_of_the_latest_walks() -> None:
    notes = WalkNotes(walks=2, pages=3)
    for number in range(1, 6):
        notes.note("a", Step(Page(number, "u"), (number - 1) * 10, (number - 1) * 10))
    assert notes.resume_at("a", 25) == Step(Page(3, "u"), 20, 20)
    assert notes.resume_at("a", 15) is None  # page 2 was let go: walk again
    notes.note("a", Step(Page(2, "u"), 10, 10))  # a walk again from the start adds nothing
    assert notes.resume_at("a", 49) == Step(Page(5, "u"), 40, 40)
    notes.note("b", Step(Page(1, "u"), 0, 0))
    notes.note("c", Step(Page(1, "u"), 0, 0))
    assert notes.resume_at("a", 49) is None and notes.resume_at("c", 3) is not None


def test_ndjson_lines_are_read_across_chunks_and_a_line_too_long_is_never_held() -> None:
    body = b'{"id": 1}\n\n{"id": 2, "note": "' + b"x" * 500 + b'"}\nnot json\n{"id": 3}'
    items = list(ndjson_items(chunks(body, 64), max_bytes=100))
    assert items[0] == {"id": 1} and items[3] == {"id": 3}
    assert isinstance(items[1], BadLine) and "longer than 100 bytes" in items[1].reason
    assert isinstance(items[2], BadLine) and items[2].text == "not json"
    assert len(items) == 4
