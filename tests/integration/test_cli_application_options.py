"""`segbridge connections create/update/test` take the chosen application's settings: a secret
from a file (``--<name>-file``) or standard input, the others as ``--<name>``; an option of
another application is refused and the accepted ones are named."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.integration.test_cli import run  # the CLI as a user runs it


def shop(tmp_path: Path) -> str:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    return f"sqlite:///{path}"


def test_help_names_each_setting_with_its_application(env: dict[str, str]) -> None:
    shown = run(env, "connections", "create", "--help").output
    for option in ("--write-key-file", "--region", "--endpoint", "--url", "--password-file"):
        assert option in shown
    assert "Database: Database URL" in shown and "Segment: Write key" in shown
    assert "--password " not in shown and "--write-key " not in shown


def test_a_database_connection_from_its_own_options(
    env: dict[str, str], tmp_path: Path,
) -> None:
    run(env, "users", "create", "ana@example.com", "--no-password")
    url = shop(tmp_path)
    made = run(env, "connections", "create", "--name", "Shop", "--application", "database",
               "--url", url, "--json", stdin="")
    assert made.exit_code == 0, made.output
    saved = json.loads(made.output)
    assert saved["test"]["ok"] is True
    assert saved["connection"]["settings"]["url"] == url

    edited = run(env, "connections", "update", str(saved["connection"]["id"]),
                 "--name", "Shop 2", "--json")
    assert edited.exit_code == 0, edited.output
    assert json.loads(edited.output)["connection"]["settings"]["url"] == url


def test_segment_options_are_refused_for_a_database_connection(
    env: dict[str, str], tmp_path: Path,
) -> None:
    run(env, "users", "create", "ana@example.com", "--no-password")
    refused = run(env, "connections", "create", "--name", "Shop", "--application", "database",
                  "--url", shop(tmp_path), "--region", "eu")
    assert refused.exit_code == 2
    assert "--region: not a setting of a Database connection; its settings: --url, " \
           "--password-file." in refused.output
    assert json.loads(run(env, "connections", "list", "--json").output) == []


def test_a_database_password_is_read_from_its_file(
    env: dict[str, str], tmp_path: Path,
) -> None:
    run(env, "users", "create", "ana@example.com", "--no-password")
    secret = tmp_path / "password.txt"
    secret.write_text("s3cret\n")
    tested = run(env, "connections", "test", "--application", "database",
                 "--url", shop(tmp_path), "--password-file", str(secret), "--json")
    assert "s3cret" not in tested.output
    assert json.loads(tested.output)["ok"] is True
