"""The Files application: CSV, NDJSON and JSON array exports of uploads and allowed paths."""
