"""The Database application: PostgreSQL, MySQL/MariaDB and SQLite, for exports and lookups."""
