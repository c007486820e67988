"""The migrations build the schema the code expects: after `migrate`, nothing differs from the
models (a column added to a model without a migration fails here, not in production)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from segbridge.storage.db import Database
from segbridge.storage.models import Base


def test_migrated_database_matches_the_models(database_url: str) -> None:
    db = Database(database_url)
    try:
        db.migrate()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            differences = compare_metadata(context, Base.metadata)
    finally:
        db.dispose()
    assert differences == []
