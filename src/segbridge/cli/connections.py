"""`segbridge connections list|show|create|update|test|delete`."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from segbridge.apps.base import Application, SettingSpec
from segbridge.apps.registry import default_registry
from segbridge.cli.context import handles_errors, principal_of, runtime_of
from segbridge.cli.output import emit_json, emit_table, emit_test_result
from segbridge.connections.model import ConnectionDraft
from segbridge.connections.views import ConnectionPublic, SettingValue

APPLICATIONS = default_registry()  # the built-in applications: their settings make the options


@click.group("connections")
def group() -> None:
    """Connections of the account."""


def _settings_options(func: Any) -> Any:
    """One option per setting of the applications a connection can be made to: a secret
    setting is read from a file (``--<name>-file``, '-' for standard input), never given as
    a value; any other is ``--<name>``. Which of them a command accepts depends on the chosen
    application (``_settings``)."""
    for option in reversed([_setting_option(name, specs)
                            for name, specs in _setting_specs().items()]):
        func = option(func)
    return func


def _setting_specs() -> dict[str, list[tuple[Application, SettingSpec]]]:
    """Each setting name, with the applications that declare it, in registry order."""
    found: dict[str, list[tuple[Application, SettingSpec]]] = {}
    for application in APPLICATIONS.all():
        for spec in application.settings:
            found.setdefault(spec.name, []).append((application, spec))
    return found


def _setting_option(name: str, specs: list[tuple[Application, SettingSpec]]) -> Any:
    flag = name.replace("_", "-")
    owners = "; ".join(f"{app.name}: {spec.label}" for app, spec in specs)
    spec = specs[0][1]
    if spec.secret:
        return click.option(
            f"--{flag}-file", f"{name}_file", type=click.Path(dir_okay=False, allow_dash=True),
            default=None, help=f"{owners}. Read it from this file ('-' for standard input)"
            + (". Without it: a hidden prompt, or standard input when piped."
               if spec.required else "."))
    choices = [value for value, _label in spec.choices]
    kind = click.Choice(choices) if choices and len(specs) == 1 else None
    return click.option(f"--{flag}", name, type=kind, default=None,
                        help=f"{owners}" + (" (advanced)." if spec.advanced else "."))


def _option_of(spec: SettingSpec) -> str:
    flag = spec.name.replace("_", "-")
    return f"--{flag}-file" if spec.secret else f"--{flag}"


def _settings(application_key: str, given: dict[str, str | None],
              current: Mapping[str, SettingValue] | None = None) -> dict[str, str | None]:
    """The chosen application's settings from the options (an edit keeps the current plain
    values it does not change; secrets are entered again on every save)."""
    application = APPLICATIONS.get(application_key)
    if application is None:  # the service names the known applications
        return {}
    _refuse_foreign_options(application, given)
    settings: dict[str, str | None] = {}
    for spec in application.settings:
        if spec.secret:
            settings[spec.name] = _read_secret(spec, given.get(f"{spec.name}_file"))
        else:
            settings[spec.name] = _plain_value(spec, given, current)
    return settings


def _plain_value(spec: SettingSpec, given: dict[str, str | None],
                 current: Mapping[str, SettingValue] | None) -> str | None:
    """The option's value; without it, the current value of an edited connection."""
    value = given.get(spec.name)
    if value is not None or current is None:
        return value
    kept = current.get(spec.name)
    return kept if isinstance(kept, str) else None


def _refuse_foreign_options(application: Application, given: dict[str, str | None]) -> None:
    own = {f"{spec.name}_file" if spec.secret else spec.name for spec in application.settings}
    foreign = [key for key, value in given.items() if value is not None and key not in own]
    if foreign:
        flags = ", ".join(_flag_of(key) for key in foreign)
        accepted = ", ".join(_option_of(spec) for spec in application.settings) or "none"
        raise click.UsageError(f"{flags}: not a setting of a {application.name} connection; "
                               f"its settings: {accepted}.")


def _flag_of(key: str) -> str:
    return "--" + key.replace("_", "-")


def _read_secret(spec: SettingSpec, path: str | None) -> str | None:
    """From the file, else (a required secret) standard input when piped or a hidden prompt."""
    if path == "-" or (path is None and spec.required and not sys.stdin.isatty()):
        return sys.stdin.readline().strip()
    if path is not None:
        return Path(path).read_text().strip()
    if not spec.required:
        return None
    return str(click.prompt(f"{spec.label} (input hidden)", hide_input=True, type=str)).strip()


def _row(c: ConnectionPublic) -> list[object]:
    tested_at = c.last_test.at if c.last_test else ""
    concurrency = c.effective_concurrency
    return [c.id, c.name, c.application, c.status, tested_at,
            concurrency.note if concurrency.borrowing else concurrency.level]


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handles_errors
def list_connections(ctx: click.Context, as_json: bool) -> None:
    """List the account's connections."""
    rows = runtime_of(ctx).connections.list_all(principal_of(ctx))
    if as_json:
        emit_json([c.as_json() for c in rows])
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
        emit_json(connection.as_json())
        return
    _describe(connection)


def _describe(c: ConnectionPublic) -> None:
    click.echo(f"{c.name}  ({c.id})")
    click.echo(f"  application:  {c.application}")
    for key, value in c.settings.items():
        click.echo(f"  {key}:  {value}")
    click.echo(f"  concurrency:  {c.effective_concurrency.level}  "
               f"{c.effective_concurrency.note}")
    click.echo(f"  rate limit:   {_rate_limit_text(c)}")
    click.echo(f"  status:       {c.status}")
    if c.last_test:
        message = c.last_test.as_json().get("message", "")
        click.echo(f"  last test:    {c.last_test.at}  {message}")


def _rate_limit_text(c: ConnectionPublic) -> str:
    limit = c.effective_rate_limit
    parts = [f"{rate:g} {what}/s" for rate, what in ((limit.requests_per_second, "requests"),
                                                      (limit.events_per_second, "events"))
             if rate is not None]
    text = ", ".join(parts) or "none"
    return f"{text} (its lender's)" if limit.lender_id else text


def _common_options(func: Any) -> Any:
    func = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)
    func = click.option("--borrow-from", default=None,
                        help="Borrow concurrency from this connection id.")(func)
    func = click.option("--concurrency-level", type=int, default=None,
                        help="1-25; default 25.")(func)
    for flag, what in (("--requests-per-second", "requests"), ("--events-per-second", "events")):
        func = click.option(flag, type=str, default=None, metavar="NUMBER|none", help=(
            f"Rate limit in {what} per second, across every worker; 'none' removes it "
            "(default: no limit; on update: unchanged)."))(func)
    return _settings_options(func)


NO_LIMIT = ("none", "off")


def _rate(given: str | None, current: float | None = None) -> float | None:
    """The rate to save: the one given (a number; 'none': no limit), else the current one."""
    if given is None:
        return current
    if given.strip().lower() in NO_LIMIT:
        return None
    try:
        return float(given)
    except ValueError:
        raise click.BadParameter(f"{given!r} is not a number; give e.g. 500, or 'none' for "
                                 "no limit") from None


@group.command("create")
@click.option("--name", required=True, help="A clear, distinguishable name.")
@click.option("--application", default="segment", show_default=True)
@_common_options
@click.pass_context
@handles_errors
def create(ctx: click.Context, /, name: str, application: str, concurrency_level: int | None,
           borrow_from: str | None, requests_per_second: str | None,
           events_per_second: str | None, as_json: bool, **given: str | None) -> None:
    """Save a new connection: test it, then commit it."""
    draft = ConnectionDraft(name=name, application=application,
                            settings=_settings(application, given),
                            concurrency_level=concurrency_level,
                            borrow_concurrency_from=borrow_from,
                            requests_per_second=_rate(requests_per_second),
                            events_per_second=_rate(events_per_second))
    connection, result = runtime_of(ctx).connections.create(principal_of(ctx), draft)
    _saved(connection, result.public(), as_json)


@group.command("update")
@click.argument("connection_id")
@click.option("--name", default=None, help="New name (default: unchanged).")
@_common_options
@click.pass_context
@handles_errors
def update(ctx: click.Context, /, connection_id: str, name: str | None,
           concurrency_level: int | None, borrow_from: str | None,
           requests_per_second: str | None, events_per_second: str | None,
           as_json: bool, **given: str | None) -> None:
    """Save an edit; its secrets (e.g. the write key) must be entered again."""
    service = runtime_of(ctx).connections
    principal = principal_of(ctx)
    current = service.get(principal, connection_id)
    settings = _settings(current.application, given, current.settings)
    draft = ConnectionDraft(
        name=name or current.name, application=current.application, settings=settings,
        concurrency_level=concurrency_level if concurrency_level is not None
        else current.concurrency_level,
        borrow_concurrency_from=borrow_from if borrow_from is not None
        else current.borrow_concurrency_from,
        requests_per_second=_rate(requests_per_second, current.requests_per_second),
        events_per_second=_rate(events_per_second, current.events_per_second))
    connection, result = service.update(principal, connection_id, draft)
    _saved(connection, result.public(), as_json)


def _saved(connection: ConnectionPublic, result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json({"connection": connection.as_json(), "test": result})
        return
    emit_test_result(result)
    click.echo(f"Saved connection '{connection.name}' ({connection.id}).")


@group.command("test")
@click.argument("connection_id", required=False)
@click.option("--application", default="segment", show_default=True,
              help="With no CONNECTION_ID: test an unsaved configuration.")
@_settings_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handles_errors
def test(ctx: click.Context, /, connection_id: str | None, application: str, as_json: bool,
         **given: str | None) -> None:
    """Test a saved connection, or an unsaved configuration."""
    service = runtime_of(ctx).connections
    principal = principal_of(ctx)
    if connection_id:
        result = service.test_saved(principal, connection_id)
    else:
        draft = ConnectionDraft(name="", application=application,
                                settings=_settings(application, given))
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
