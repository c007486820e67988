"""The Webhook application: a flow whose records arrive as requests to its own URL."""
