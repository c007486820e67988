"""`segbridge keys rotate`: a new master key, every secret re-encrypted."""

from __future__ import annotations

import click

from segbridge import keys as key_service
from segbridge.cli.context import handles_errors, runtime_of


@click.group("keys")
def group() -> None:
    """Master keys of the vault."""


@group.command("rotate")
@click.pass_context
@handles_errors
def rotate(ctx: click.Context) -> None:
    """Add a new master key and re-encrypt every secret with it."""
    runtime = runtime_of(ctx)
    vault, count = key_service.rotate(runtime.settings, runtime.db, runtime.vault)
    runtime.vault = vault
    click.echo(f"Rotated: {count} secret(s) re-encrypted with key {vault.primary_key_id}; "
               f"the key ring file {runtime.settings.resolved_master_key_file} now holds only it.")
