"""`segbridge tokens ...`: list and revoke API tokens (make one with `segbridge users token`)."""

from __future__ import annotations

import click

from segbridge.accounts import credentials
from segbridge.cli.context import handles_errors, principal_of, runtime_of
from segbridge.cli.output import emit_json, emit_table


@click.group("tokens")
def group() -> None:
    """API tokens: list and revoke. Values are shown only when a token is made."""


@group.command("list")
@click.option("--as", "as_email", default=None, metavar="EMAIL",
              help="List this user's tokens (default: the acting user).")
@click.option("--all", "all_users", is_flag=True,
              help="Every user's tokens in the account (admins).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handles_errors
def list_tokens(ctx: click.Context, as_email: str | None, all_users: bool,
                as_json: bool) -> None:
    """List API tokens: name, created, expires, last used (never the value)."""
    if as_email:
        ctx.find_root().obj["as_email"] = as_email
    principal = principal_of(ctx)
    with runtime_of(ctx).db.session() as session:
        tokens = credentials.list_tokens(session, principal, whole_account=all_users)
    if as_json:
        emit_json([token.model_dump() for token in tokens])
        return
    emit_table(["ID", "NAME", "USER", "CREATED", "EXPIRES", "LAST USED"], [
        [t.id, t.name, t.user_email, t.created_at[:16],
         "never" if t.expires_at is None else t.expires_at[:16] + (" (expired)" if t.expired
                                                                  else ""),
         "never" if t.last_used_at is None else t.last_used_at[:16]]
        for t in tokens])


@group.command("revoke")
@click.argument("token_id")
@click.pass_context
@handles_errors
def revoke(ctx: click.Context, token_id: str) -> None:
    """Revoke an API token by its id (from `segbridge tokens list`); it stops working at once."""
    with runtime_of(ctx).db.session() as session:
        revoked = credentials.revoke_token(session, principal_of(ctx), token_id)
    click.echo(f"Revoked the token '{revoked.name}' of {revoked.user_email}.")
