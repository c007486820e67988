"""Alerts: each account's notification settings, and emails and webhook posts when a run
fails, completes with errors above a threshold, or a connection goes offline or comes back."""
