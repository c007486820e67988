"""The CLI over the same services: tables for people, --json for scripts, keys never shown."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from segbridge.cli.main import cli
from tests.support.receivers import Answers, status_receiver

KEY = "cliKeyAbcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def receiver() -> Iterator[tuple[str, Answers]]:
    with status_receiver() as running:
        yield running


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, input=stdin, obj={},
                              catch_exceptions=False)


def create(env: dict[str, str], url: str, name: str = "Prod") -> dict[str, object]:
    result = run(env, "connections", "create", "--name", name, "--endpoint", url, "--json",
                 stdin=KEY + "\n")
    assert result.exit_code == 0, result.output
    connection: dict[str, object] = json.loads(result.output)["connection"]
    return connection


def test_first_user_then_connections_end_to_end(
    env: dict[str, str], receiver: tuple[str, Answers], tmp_path: Path,
) -> None:
    made = run(env, "users", "create", "ana@example.com", "--password-stdin",
               stdin="a long password\n")
    assert made.exit_code == 0, made.output
    assert "(admin)" in made.output
    url, answers = receiver
    connection = create(env, url)
    assert connection["settings"] == {"region": "us", "endpoint": url, "has_write_key": True}
    assert answers.requests[0]["path"] == "/v1/identify"

    table = run(env, "connections", "list")
    assert "Prod" in table.output and "online" in table.output and "STATUS" in table.output
    shown = run(env, "connections", "show", str(connection["id"]), "--json")
    assert json.loads(shown.output)["settings"]["has_write_key"] is True

    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY + "\n")
    renamed = run(env, "connections", "update", str(connection["id"]), "--name", "Prod 2",
                  "--write-key-file", str(key_file), "--concurrency-level", "7")
    assert renamed.exit_code == 0, renamed.output
    assert "Saved connection 'Prod 2'" in renamed.output

    tested = run(env, "connections", "test", str(connection["id"]))
    assert tested.exit_code == 0 and "Test connection: ok" in tested.output
    deleted = run(env, "connections", "delete", str(connection["id"]))
    assert deleted.exit_code == 0
    assert json.loads(run(env, "connections", "list", "--json").output) == []


def test_errors_name_the_field_and_exit_1(
    env: dict[str, str], receiver: tuple[str, Answers],
) -> None:
    run(env, "users", "create", "ana@example.com", "--no-password")
    url, _ = receiver
    result = run(env, "connections", "create", "--name", "", "--endpoint", url,
                 "--concurrency-level", "26", stdin=KEY + "\n")
    assert result.exit_code == 1
    assert "name: enter a name" in result.output
    assert "concurrency_level: enter a number from 1 to 25" in result.output


def test_a_failing_test_is_printed_and_nothing_saved(
    env: dict[str, str], receiver: tuple[str, Answers],
) -> None:
    run(env, "users", "create", "ana@example.com", "--no-password")
    url, answers = receiver
    answers.tracking_status = 401
    result = run(env, "connections", "create", "--name", "Prod", "--endpoint", url,
                 stdin=KEY + "\n")
    assert result.exit_code == 1
    assert "Test connection: FAILED" in result.output
    assert "write key was rejected" in result.output
    assert json.loads(run(env, "connections", "list", "--json").output) == []


def test_applications_and_tokens(env: dict[str, str]) -> None:
    run(env, "users", "create", "ana@example.com", "--no-password")
    apps = json.loads(run(env, "applications", "list", "--json").output)
    assert apps[0]["key"] == "segment"
    token = run(env, "users", "token", "ana@example.com").output.strip()
    assert len(token) >= 40
    link = run(env, "users", "login-link", "ana@example.com").output.strip()
    assert link.startswith("http://127.0.0.1:8000/login?token=")
    users = json.loads(run(env, "users", "list", "--json").output)
    assert [u["email"] for u in users] == ["ana@example.com"]


def test_the_write_key_is_not_an_argument(env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["connections", "create", "--name", "x", "--write-key",
                                      KEY], env=env, obj={})
    assert result.exit_code == 2
    assert "No such option" in result.output
