"""`segbridge connections list|show|create|update|test|delete`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from segbridge.cli.context import handles_errors, principal_of, runtime_of
from segbridge.cli.output import emit_json, emit_table, emit_test_result
from segbridge.connections.model import ConnectionDraft


@click.group("connections")
def group() -> None:
    """Connections of the account."""


def _settings_options(func: Any) -> Any:
    options = [
        click.option("--write-key-file", type=click.Path(dir_okay=False, allow_dash=True),
                     help="Read the write key from this file ('-' for standard input). "
                          "Without it: a hidden prompt, or standard input when piped."),
        click.option("--region", type=click.Choice(["us", "eu"]), default=None,
                     help="Segment region (advanced)."),
        click.option("--endpoint", default=None,
                     help="Custom Segment-compatible endpoint URL (advanced)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _read_write_key(path: str | None) -> str:
    if path == "-" or (path is None and not sys.stdin.isatty()):
        return sys.stdin.readline().strip()
    if path is not None:
        return Path(path).read_text().strip()
    return str(click.prompt("Write key (input hidden)", hide_input=True, type=str)).strip()


def _settings(write_key_file: str | None, region: str | None,
              endpoint: str | None) -> dict[str, str | None]:
    return {"write_key": _read_write_key(write_key_file), "region": region, "endpoint": endpoint}


def _row(c: dict[str, Any]) -> list[object]:
    last = c.get("last_test") or {}
    concurrency = c["effective_concurrency"]
    return [c["id"], c["name"], c["application"], c["status"], last.get("at", ""),
            concurrency["note"] if concurrency["borrowing"] else concurrency["level"]]


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handles_errors
def list_connections(ctx: click.Context, as_json: bool) -> None:
    """List the account's connections."""
    rows = runtime_of(ctx).connections.list_all(principal_of(ctx))
    if as_json:
        emit_json(rows)
    else:
        emit_table(["ID", "NAME", "APPLICATION", "STATUS", "LAST TEST", "CONCURRENCY"],
                   [_row(c) for c in rows])


@group.command("show")
@click.argument("connection_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handles_errors
def show(ctx: click.Context, connection_id: str, as_json: bool) -> None:
    """Show one connection (its write key is never shown)."""
    connection = runtime_of(ctx).connections.get(principal_of(ctx), connection_id)
    if as_json:
        emit_json(connection)
        return
    _describe(connection)


def _describe(c: dict[str, Any]) -> None:
    click.echo(f"{c['name']}  ({c['id']})")
    click.echo(f"  application:  {c['application']}")
    for key, value in c["settings"].items():
        click.echo(f"  {key}:  {value}")
    click.echo(f"  concurrency:  {c['effective_concurrency']['level']}  "
               f"{c['effective_concurrency']['note']}")
    click.echo(f"  status:       {c['status']}")
    if c.get("last_test"):
        click.echo(f"  last test:    {c['last_test']['at']}  {c['last_test'].get('message', '')}")


def _common_options(func: Any) -> Any:
    func = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)
    func = click.option("--borrow-from", default=None,
                        help="Borrow concurrency from this connection id.")(func)
    func = click.option("--concurrency-level", type=int, default=None,
                        help="1-25; default 25.")(func)
    return _settings_options(func)


@group.command("create")
@click.option("--name", required=True, help="A clear, distinguishable name.")
@click.option("--application", default="segment", show_default=True)
@_common_options
@click.pass_context
@handles_errors
def create(ctx: click.Context, name: str, application: str, write_key_file: str | None,
           region: str | None, endpoint: str | None, concurrency_level: int | None,
           borrow_from: str | None, as_json: bool) -> None:
    """Save a new connection: test it, then commit it."""
    draft = ConnectionDraft(name=name, application=application,
                            settings=_settings(write_key_file, region, endpoint),
                            concurrency_level=concurrency_level,
                            borrow_concurrency_from=borrow_from)
    connection, result = runtime_of(ctx).connections.create(principal_of(ctx), draft)
    _saved(connection, result.public(), as_json)


@group.command("update")
@click.argument("connection_id")
@click.option("--name", default=None, help="New name (default: unchanged).")
@_common_options
@click.pass_context
@handles_errors
def update(ctx: click.Context, connection_id: str, name: str | None, write_key_file: str | None,
           region: str | None, endpoint: str | None, concurrency_level: int | None,
           borrow_from: str | None, as_json: bool) -> None:
    """Save an edit; the write key must be entered again."""
    service = runtime_of(ctx).connections
    principal = principal_of(ctx)
    current = service.get(principal, connection_id)
    settings = _settings(write_key_file, region or current["settings"].get("region"),
                         endpoint if endpoint is not None else current["settings"].get("endpoint"))
    draft = ConnectionDraft(
        name=name or current["name"], application=current["application"], settings=settings,
        concurrency_level=concurrency_level if concurrency_level is not None
        else current["concurrency_level"],
        borrow_concurrency_from=borrow_from if borrow_from is not None
        else current["borrow_concurrency_from"])
    connection, result = service.update(principal, connection_id, draft)
    _saved(connection, result.public(), as_json)


def _saved(connection: dict[str, Any], result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json({"connection": connection, "test": result})
        return
    emit_test_result(result)
    click.echo(f"Saved connection '{connection['name']}' ({connection['id']}).")


@group.command("test")
@click.argument("connection_id", required=False)
@click.option("--application", default="segment", show_default=True,
              help="With no CONNECTION_ID: test an unsaved configuration.")
@_settings_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handles_errors
def test(ctx: click.Context, connection_id: str | None, application: str,
         write_key_file: str | None, region: str | None, endpoint: str | None,
         as_json: bool) -> None:
    """Test a saved connection, or an unsaved configuration."""
    service = runtime_of(ctx).connections
    principal = principal_of(ctx)
    if connection_id:
        result = service.test_saved(principal, connection_id)
    else:
        draft = ConnectionDraft(name="", application=application,
                                settings=_settings(write_key_file, region, endpoint))
        result = service.test_draft(principal, draft)
    if as_json:
        emit_json(result.public())
    else:
        emit_test_result(result.public())
    if not result.ok:
        sys.exit(1)


@group.command("delete")
@click.argument("connection_id")
@click.pass_context
@handles_errors
def delete(ctx: click.Context, connection_id: str) -> None:
    """Delete a connection that nothing uses."""
    runtime_of(ctx).connections.delete(principal_of(ctx), connection_id)
    click.echo(f"Deleted connection {connection_id}.")
