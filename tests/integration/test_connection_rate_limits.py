"""A connection's rate limit over the API and the CLI: blank (none), or a number above 0; a
bad value is refused with its field named and nothing changes; a borrower shows its lender's
limit; the audit names the field that changed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Server
from tests.integration.test_cli import KEY, create, run
from tests.integration.test_connections_api import problems, update_body
from tests.support.receivers import Answers, status_receiver


@pytest.fixture
def receiver() -> Iterator[tuple[str, Answers]]:
    with status_receiver() as running:
        yield running


@pytest.mark.parametrize(("value", "expected"), [
    pytest.param(0, "above 0", id="zero"),
    pytest.param(-5, "above 0", id="negative"),
    pytest.param(1e12, "at most", id="too many"),
    pytest.param("fast", "number", id="text"),
])
def test_a_bad_rate_is_refused_naming_the_field_and_nothing_is_saved(
    server: Server, source: dict[str, Any], value: object, expected: str,
) -> None:
    connection = server.new_connection("Paced", source["write_key"], events_per_second=500)
    response = server.api.put(f"/api/v1/connections/{connection['id']}", json=update_body(
        connection, settings=server.segment_settings(source["write_key"]),
        events_per_second=value, requests_per_second=value))
    assert response.status_code == 422
    found = problems(response)
    assert expected in found["events_per_second"]
    assert expected in found["requests_per_second"]
    kept = server.api.get(f"/api/v1/connections/{connection['id']}").json()
    assert kept["events_per_second"] == 500.0 and kept["requests_per_second"] is None


def test_a_rate_is_saved_shown_and_audited(server: Server, source: dict[str, Any]) -> None:
    connection = server.new_connection("Paced", source["write_key"])
    assert connection["effective_rate_limit"] == {
        "requests_per_second": None, "events_per_second": None, "lender_id": None}
    response = server.api.put(f"/api/v1/connections/{connection['id']}", json=update_body(
        connection, settings=server.segment_settings(source["write_key"]),
        requests_per_second=0.5, events_per_second=1000))
    assert response.status_code == 200, response.text
    saved = response.json()
    assert (saved["requests_per_second"], saved["events_per_second"]) == (0.5, 1000.0)
    assert saved["effective_rate_limit"]["requests_per_second"] == 0.5
    audit = server.api.get(f"/api/v1/connections/{connection['id']}/audit").json()
    assert audit[0]["fields"] == ["events_per_second", "requests_per_second",
                                  "settings.write_key"]


def test_a_borrower_s_own_rate_is_ignored_while_it_borrows(
    server: Server, source: dict[str, Any],
) -> None:
    lender = server.new_connection("Lender", source["write_key"], requests_per_second=20)
    borrower = server.new_connection("Borrower", source["write_key"],
                                     borrow_concurrency_from=lender["id"],
                                     requests_per_second=999)
    assert borrower["effective_rate_limit"] == {
        "requests_per_second": 20.0, "events_per_second": None, "lender_id": lender["id"]}


def test_the_cli_sets_shows_and_removes_a_rate(
    env: dict[str, str], receiver: tuple[str, Answers], tmp_path: Path,
) -> None:
    made = run(env, "users", "create", "ana@example.com", "--password-stdin",
               stdin="a long password\n")
    assert made.exit_code == 0, made.output
    url, _answers = receiver
    connection = create(env, url)
    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY + "\n")
    paced = run(env, "connections", "update", str(connection["id"]), "--write-key-file",
                str(key_file), "--events-per-second", "750", "--requests-per-second", "2.5")
    assert paced.exit_code == 0, paced.output
    shown = run(env, "connections", "show", str(connection["id"]))
    assert "rate limit:   2.5 requests/s, 750 events/s" in shown.output

    unchanged = run(env, "connections", "update", str(connection["id"]), "--write-key-file",
                    str(key_file), "--requests-per-second", "none")
    assert unchanged.exit_code == 0, unchanged.output
    after = json.loads(run(env, "connections", "show", str(connection["id"]), "--json").output)
    assert (after["requests_per_second"], after["events_per_second"]) == (None, 750.0)

    wrong = run(env, "connections", "update", str(connection["id"]), "--write-key-file",
                str(key_file), "--events-per-second", "lots")
    assert wrong.exit_code != 0
    assert "'lots' is not a number" in wrong.output
