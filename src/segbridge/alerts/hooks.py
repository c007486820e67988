"""The calls the rest of segbridge makes into alerts: each builds nothing heavy, never raises,
and takes what its caller has at hand (the run path has the database, the vault and the
settings, not the Runtime)."""

from __future__ import annotations

from segbridge.alerts.service import AlertService
from segbridge.core.access import access_policy
from segbridge.core.settings import Settings
from segbridge.core.vault import Vault
from segbridge.storage.db import Database


def notify_run_finished(db: Database, vault: Vault, settings: Settings, run_id: str) -> None:
    """After a run ended (``runs.executor`` next to ``after_run``): alert if it failed or
    completed with errors above the account's threshold."""
    AlertService(db, vault, settings, access_policy(settings)).run_finished(run_id)


def notify_connection_changes(db: Database, vault: Vault, settings: Settings) -> int:
    """After connection statuses may have changed (a re-test, a run pausing or resuming):
    alert about each change once."""
    return AlertService(db, vault, settings, access_policy(settings)).check_connections()
