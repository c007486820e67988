"""`segbridge accounts ...`: accounts of this server, for the instance admin."""

from __future__ import annotations

import click

from segbridge.accounts import members
from segbridge.cli.context import handles_errors, principal_of, runtime_of
from segbridge.cli.output import emit_json, emit_table
from segbridge.core.errors import NotFound
from segbridge.runtime import login_url


@click.group("accounts")
def group() -> None:
    """Accounts of this segbridge server (the instance admin only)."""


@group.command("create")
@click.argument("name")
@click.option("--admin", "admin_email", required=True, metavar="EMAIL",
              help="The email of the account's first admin.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handles_errors
def create(ctx: click.Context, name: str, admin_email: str, as_json: bool) -> None:
    """Create an account and its first admin; prints a one-time login link for that admin."""
    runtime = runtime_of(ctx)
    try:
        principal = principal_of(ctx)
    except NotFound:
        if ctx.find_root().obj.get("as_email"):
            raise
        principal = None  # an empty database: this account's admin is the instance admin
    with runtime.db.session() as session:
        created = members.create_account_with_admin(session, principal, name, admin_email)
    link = login_url(runtime, created.login_token)
    if as_json:
        emit_json({"account": {"id": created.account.id, "name": created.account.name},
                   "admin": {"id": created.admin.id, "email": created.admin.email},
                   "login_url": link})
        return
    click.echo(f"Created account {created.account.name} ({created.account.id}) with admin "
               f"{created.admin.email}.")
    click.echo(f"One-time login link for {created.admin.email} (valid 24 hours, shown once): "
               f"{link}")


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handles_errors
def list_accounts(ctx: click.Context, as_json: bool) -> None:
    """List the accounts of this server."""
    with runtime_of(ctx).db.session() as session:
        rows = members.list_accounts(session, principal_of(ctx))
    if as_json:
        emit_json([{"id": a.id, "name": a.name, "users": a.users} for a in rows])
    else:
        emit_table(["ID", "NAME", "USERS"], [[a.id, a.name, a.users] for a in rows])
