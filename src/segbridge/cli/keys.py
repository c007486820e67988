"""`segbridge keys rotate | prune | status`: the vault's master keys (ids only, never keys)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from segbridge import keys as key_service
from segbridge.accounts.roles import Permission, require
from segbridge.cli.context import handles_errors, principal_of, runtime_of
from segbridge.cli.output import emit_json, emit_table
from segbridge.core.clock import isoformat
from segbridge.keys import KeyChange, KeyState


@click.group("keys")
def group() -> None:
    """Master keys of the vault."""


@group.command("rotate")
@click.pass_context
@handles_errors
def rotate(ctx: click.Context) -> None:
    """Add a new master key and re-encrypt every secret with it; the old key stays, retired."""
    _require_key_admin(ctx)
    runtime = runtime_of(ctx)
    change = key_service.rotate(runtime.settings, runtime.db, runtime.vault)
    click.echo(f"Rotated the master key: key {change.primary} is now primary "
               f"(was {change.previous}).")
    click.echo(f"Re-encrypted {change.reencrypted} secret(s) with key {change.primary}.")
    click.echo("Running servers and workers encrypt with the new key from their next write; "
               "no restart is needed.")
    _report_ring(change, just_retired=change.previous)


@group.command("prune")
@click.pass_context
@handles_errors
def prune(ctx: click.Context) -> None:
    """Remove retired master keys that no secret uses any more from the key ring."""
    _require_key_admin(ctx)
    runtime = runtime_of(ctx)
    change = key_service.prune(runtime.settings, runtime.db, runtime.vault)
    if change.reencrypted:
        click.echo(f"Re-encrypted {change.reencrypted} secret(s) still on a retired key with "
                   f"key {change.primary}.")
    if not change.removed:
        click.echo("No retired key to remove.")
    _report_ring(change, just_retired=None)


def _require_key_admin(ctx: click.Context) -> None:
    """Acting as a user (``--as``), only an admin may change the keys; without ``--as`` the
    operator of the key file acts."""
    if ctx.find_root().obj.get("as_email"):
        require(principal_of(ctx), Permission.MANAGE_KEYS)


@group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handles_errors
def status(ctx: click.Context, as_json: bool) -> None:
    """List master key ids: primary, retired (decrypt only), removed; secrets each encrypts."""
    runtime = runtime_of(ctx)
    states = key_service.status(runtime.db, runtime.vault)
    if as_json:
        emit_json([_public(state) for state in states])
        return
    emit_table(["KEY ID", "STATE", "SECRETS", "CREATED", "RETIRED"], [
        [s.key_id, s.state, s.secrets, _when(s.created_at), _when(s.retired_at)] for s in states])
    source = runtime.vault.key_file or "SEGBRIDGE_MASTER_KEY"
    click.echo(f"Key ring: {source}")


def _report_ring(change: KeyChange, just_retired: str | None) -> None:
    if change.removed:
        click.echo(f"Removed from the key ring (no secret uses them): {', '.join(change.removed)}.")
    for state in change.kept:
        click.echo(f"Retired key {state.key_id} stays in the key ring for decryption only: "
                   f"{_why_kept(state, just_retired)}")
    if not change.kept:
        click.echo(f"The key ring holds only the primary key {change.primary}.")


def _why_kept(state: KeyState, just_retired: str | None) -> str:
    if state.secrets:
        return (f"{state.secrets} secret(s) still use it; `segbridge keys prune` re-encrypts "
                "them and removes it.")
    if state.key_id == just_retired:
        return ("it was primary until now, and database backups made before this rotation need "
                "it. Remove it with `segbridge keys prune` once you have a newer backup.")
    return "no secret uses it; `segbridge keys prune` removes it."


def _public(state: KeyState) -> dict[str, object]:
    return {"key_id": state.key_id, "state": state.state, "in_ring": state.in_ring,
            "secrets": state.secrets, "created_at": _when(state.created_at),
            "retired_at": _when(state.retired_at)}


def _when(moment: object) -> str | None:
    if not isinstance(moment, datetime):
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return isoformat(aware)
