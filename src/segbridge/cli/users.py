"""`segbridge users ...`: the account's users (invite with a role, list, change a role,
disable, enable, remove), API tokens and login links."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click
from sqlalchemy.orm import Session

from segbridge.accounts import credentials, members
from segbridge.accounts.members import UserPublic
from segbridge.accounts.roles import ROLES
from segbridge.accounts.service import Principal
from segbridge.cli.context import handles_errors, principal_of, runtime_of
from segbridge.cli.output import emit_json, emit_table
from segbridge.core.errors import NotFound
from segbridge.runtime import login_url


@click.group("users")
def group() -> None:
    """Users of the account, their roles, tokens and login links."""


@group.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), default=None,
              help="What the user may do (default manage).")
@click.option("--admin", is_flag=True, help="Make the user an admin (same as --role admin).")
@click.option("--account", "account_id", default=None, metavar="ID",
              help="Create the user in this account (the instance admin only).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--no-password", is_flag=True,
              help="No password; print a one-time login link to hand over instead.")
@click.pass_context
@handles_errors
def create(ctx: click.Context, email: str, role: str | None, admin: bool,
           account_id: str | None, password_stdin: bool, no_password: bool) -> None:
    """Create (invite) a user of the acting user's account, with a role."""
    if admin and role not in (None, "admin"):
        raise click.UsageError("--admin and --role disagree; give one of them.")
    chosen = "admin" if admin else (role or "manage")
    password: str | None = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif not no_password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, type=str)
    runtime = runtime_of(ctx)
    if _empty(ctx):
        with runtime.db.session() as session:
            first = members.first_user(session, email, password)
        click.echo(f"Created user {first.email} (admin), the instance admin.")
        return
    principal = principal_of(ctx)
    with runtime.db.session() as session:
        invitation = members.invite(session, principal, email, chosen, account_id=account_id,
                                    password=password)
    click.echo(f"Created user {invitation.user.email} ({invitation.user.role}).")
    if invitation.login_token:
        click.echo(f"One-time login link (valid 24 hours, shown once): "
                   f"{login_url(runtime, invitation.login_token)}")


def _empty(ctx: click.Context) -> bool:
    """No user yet (and none named with --as): the first user administers a new account."""
    try:
        principal_of(ctx)
    except NotFound:
        if ctx.find_root().obj.get("as_email"):
            raise
        return True
    return False


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handles_errors
def list_users(ctx: click.Context, as_json: bool) -> None:
    """List the users of the account (admins only)."""
    runtime = runtime_of(ctx)
    with runtime.db.session() as session:
        users = members.list_members(session, principal_of(ctx))
    rows = [{"id": u.id, "email": u.email, "role": u.role, "is_admin": u.role == "admin",
             "disabled": u.disabled} for u in users]
    if as_json:
        emit_json(rows)
    else:
        emit_table(["ID", "EMAIL", "ROLE", "STATUS"],
                   [[r["id"], r["email"], r["role"], "disabled" if r["disabled"] else "active"]
                    for r in rows])


@group.command("role")
@click.argument("email")
@click.argument("role", type=click.Choice(ROLES))
@click.pass_context
@handles_errors
def change_role(ctx: click.Context, email: str, role: str) -> None:
    """Change a user's role (the last admin of the account keeps theirs)."""
    user = _act_on_member(
        ctx, email, lambda session, principal, member: members.change_role(
            session, principal, member, role))
    click.echo(f"{user.email} is now {user.role}.")


@group.command("disable")
@click.argument("email")
@click.pass_context
@handles_errors
def disable(ctx: click.Context, email: str) -> None:
    """Disable a user: their sessions and tokens stop working at once."""
    user = _act_on_member(ctx, email, members.disable)
    click.echo(f"Disabled {user.email}.")


@group.command("enable")
@click.argument("email")
@click.pass_context
@handles_errors
def enable(ctx: click.Context, email: str) -> None:
    """Enable a disabled user again."""
    user = _act_on_member(ctx, email, members.enable)
    click.echo(f"Enabled {user.email}.")


@group.command("remove")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
@handles_errors
def remove(ctx: click.Context, email: str, yes: bool) -> None:
    """Remove a user and every token of theirs."""
    if not yes:
        click.confirm(f"Remove {email} and every token of theirs?", abort=True)
    principal = principal_of(ctx)
    with runtime_of(ctx).db.session() as session:
        members.remove(session, principal, members.member_by_email(session, principal, email))
    click.echo(f"Removed {email}.")


@group.command("token")
@click.argument("email")
@click.option("--name", default="cli", help="A name to recognise the token by.")
@click.option("--expires-in-days", type=click.IntRange(1, credentials.MAX_EXPIRES_IN_DAYS),
              default=None, help="Days until the token stops working (default: never).")
@click.pass_context
@handles_errors
def token(ctx: click.Context, email: str, name: str, expires_in_days: int | None) -> None:
    """Create an API token for a user (one's own; admins: any user's of the account).

    The token alone is printed on standard output, this once; a note goes to standard error.
    """
    with runtime_of(ctx).db.session() as session:
        created = credentials.create_api_token(session, principal_of(ctx), name,
                                               expires_in_days, user_email=email)
    expiry = f"expires {created.expires_at[:16]}" if created.expires_at else "never expires"
    click.echo(f"Created the API token '{created.name}' ({created.id}) for {created.user_email};"
               f" it {expiry}. It is shown only now:", err=True)
    click.echo(created.token)


@group.command("password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
@handles_errors
def password(ctx: click.Context, email: str, password_stdin: bool) -> None:
    """Set a user's password (one's own; admins: any user's of the account).

    No current password is asked: the CLI runs on the server. The user's browser sessions end;
    API tokens stay valid.
    """
    if password_stdin:
        value = sys.stdin.readline().rstrip("\n")
    else:
        value = click.prompt("New password", hide_input=True, confirmation_prompt=True, type=str)
    with runtime_of(ctx).db.session() as session:
        user = credentials.reset_password(session, principal_of(ctx), email, value)
    click.echo(f"Set the password of {user}; their browser sessions ended.")


@group.command("login-link")
@click.argument("email")
@click.pass_context
@handles_errors
def login_link(ctx: click.Context, email: str) -> None:
    """Create a one-time login link for a user (valid 24 hours)."""
    runtime = runtime_of(ctx)
    with runtime.db.session() as session:
        value = members.issue_for_member(session, principal_of(ctx), email, kind="login",
                                         name="login link")
    click.echo(login_url(runtime, value))


def _act_on_member(ctx: click.Context, email: str,
                   action: Callable[[Session, Principal, str], UserPublic]) -> UserPublic:
    """Apply a members action to the account's user with this email, as the CLI's user."""
    principal = principal_of(ctx)
    with runtime_of(ctx).db.session() as session:
        return action(session, principal, members.member_by_email(session, principal, email))
