"""The segbridge command line: serve, applications, connections, keys, users, accounts,
sandbox.

Commands act on the local database as a user (``--as EMAIL``, default the first admin).
Write keys are read from a hidden prompt, ``--write-key-file`` or standard input, never
from an argument.
"""

from __future__ import annotations

import os

import click

from segbridge.apps.public import application_public
from segbridge.cli import accounts, connections, flows, keys, users, worker
from segbridge.cli import tokens as cli_tokens
from segbridge.cli.context import handles_errors, runtime_of
from segbridge.cli.output import emit_json, emit_table
from segbridge.core.settings import load_settings
from segbridge.runtime import build_runtime


@click.group()
@click.option("--as", "as_email", default=None, metavar="EMAIL",
              help="Act as this user (default: the first admin).")
@click.version_option(package_name="segbridge")
@click.pass_context
def cli(ctx: click.Context, as_email: str | None) -> None:
    """segbridge: get business data into Segment."""
    ctx.ensure_object(dict)
    ctx.obj["as_email"] = as_email


@cli.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default 8000).")
@handles_errors
def serve(host: str | None, port: int | None) -> None:
    """Run the server: REST API, web pages and the local Segment at /sandbox."""
    from segbridge.server import serve as run

    overrides: dict[str, object] = {}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    settings = load_settings(**overrides)
    run(build_runtime(settings), settings.host, settings.port)


@cli.group()
def applications() -> None:
    """The Application list."""


@applications.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handles_errors
def applications_list(ctx: click.Context, as_json: bool) -> None:
    """List the applications a connection can be made to."""
    apps = [application_public(a).model_dump() for a in runtime_of(ctx).registry.all()]
    if as_json:
        emit_json(apps)
        return
    emit_table(["KEY", "NAME", "CAN", "SETTINGS"], [
        [a["key"], a["name"], ",".join(a["capabilities"]),
         ", ".join(s["name"] + (" (secret)" if s["secret"] else "") for s in a["settings"])]
        for a in apps])


cli.add_command(connections.group)
cli.add_command(keys.group)
cli.add_command(users.group)
cli.add_command(cli_tokens.group)
cli.add_command(accounts.group)
cli.add_command(flows.integrations)
cli.add_command(flows.flows)
cli.add_command(flows.runs)
cli.add_command(worker.command)


def _add_sandbox() -> None:
    from segbridge.sandbox import sandbox_command

    cli.add_command(sandbox_command, name="sandbox")


_add_sandbox()


def main() -> None:
    # everything a segbridge process creates (database, uploads, local Segment state, slot
    # locks, key ring) is for its owner only; see core/files.py for the explicit modes
    os.umask(0o077)
    cli(obj={})
