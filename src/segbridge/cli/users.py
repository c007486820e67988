"""`segbridge users ...`: create users, API tokens and login links."""

from __future__ import annotations

import sys

import click

from segbridge.accounts import service as accounts
from segbridge.cli.context import handles_errors, principal_of, runtime_of
from segbridge.cli.output import emit_json, emit_table
from segbridge.core.errors import NotFound
from segbridge.runtime import login_url


@click.group("users")
def group() -> None:
    """Users of the account, their tokens and login links."""


@group.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Make the user an admin.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--no-password", is_flag=True, help="No password; sign in with a login link.")
@click.pass_context
@handles_errors
def create(ctx: click.Context, email: str, admin: bool, password_stdin: bool,
           no_password: bool) -> None:
    """Create a user in the acting user's account."""
    password: str | None = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif not no_password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, type=str)
    runtime = runtime_of(ctx)
    account_id = account_for_new_user(ctx)
    if account_id is None:
        admin = True  # the very first user administers the new account
    with runtime.db.session() as session:
        if account_id is None:
            account_id = accounts.create_account(session, "Default").id
        user = accounts.create_user(session, account_id, email, password, is_admin=admin)
    click.echo(f"Created user {user.email}{' (admin)' if admin else ''}.")


def account_for_new_user(ctx: click.Context) -> str | None:
    """The acting user's account; None on an empty database (no user yet)."""
    try:
        return principal_of(ctx).account_id
    except NotFound:
        if ctx.find_root().obj.get("as_email"):
            raise
        return None


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handles_errors
def list_users(ctx: click.Context, as_json: bool) -> None:
    """List the users of the account."""
    runtime = runtime_of(ctx)
    account_id = principal_of(ctx).account_id
    with runtime.db.session() as session:
        rows = [{"id": u.id, "email": u.email, "is_admin": u.is_admin}
                for u in accounts.list_users(session, account_id)]
    if as_json:
        emit_json(rows)
    else:
        emit_table(["ID", "EMAIL", "ADMIN"], [[r["id"], r["email"], r["is_admin"]] for r in rows])


@group.command("token")
@click.argument("email")
@click.option("--name", default="cli", help="A name to recognise the token by.")
@click.pass_context
@handles_errors
def token(ctx: click.Context, email: str, name: str) -> None:
    """Create an API token for a user; it is printed once."""
    runtime = runtime_of(ctx)
    with runtime.db.session() as session:
        user = accounts.find_user(session, email)
        value = accounts.issue_token(session, user, kind="api", name=name)
    click.echo(value)


@group.command("login-link")
@click.argument("email")
@click.pass_context
@handles_errors
def login_link(ctx: click.Context, email: str) -> None:
    """Create a one-time login link for a user (valid 24 hours)."""
    runtime = runtime_of(ctx)
    with runtime.db.session() as session:
        user = accounts.find_user(session, email)
        value = accounts.issue_token(session, user, kind="login", name="login link",
                                     ttl=accounts.LOGIN_LINK_TTL)
    click.echo(login_url(runtime, value))
