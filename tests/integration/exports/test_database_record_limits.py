"""PostgreSQL json values past the record caps: a row too deep is a record error and the rows
after it are read; a value too deep for the driver to decode fails the export with a message
that says what to do (never a raw RecursionError)."""

from __future__ import annotations

import pytest

from segbridge.apps.database.export import DatabaseExport
from segbridge.exports.errors import ExportError
from tests.integration.exports.dbs import Db

pytestmark = pytest.mark.postgres


def nested_json(levels: int) -> str:
    return f"(repeat('{{\"a\":', {levels}) || '1' || repeat('}}', {levels}))::jsonb"


def test_a_row_whose_json_nests_too_deep_is_a_record_error(postgres: Db) -> None:
    query = (f"SELECT 1 AS id, '{{\"a\": 1}}'::jsonb AS doc UNION ALL "
             f"SELECT 2, {nested_json(100)} UNION ALL SELECT 3, '[]'::jsonb ORDER BY id")

    records = list(DatabaseExport(postgres.url, None, query).records())

    assert [r.data for r in records] == [{"id": 1, "doc": {"a": 1}}, None, {"id": 3, "doc": []}]
    assert records[1].error == ("row 2: the record is nested 101 levels deep; at most 64 are "
                                "allowed (SEGBRIDGE_RECORD_MAX_DEPTH)")
    assert records[1].raw is not None and records[1].raw.startswith('{"id":2,"doc":{"a":')


def test_a_json_value_too_deep_for_the_driver_fails_the_export_clearly(postgres: Db) -> None:
    query = f"SELECT 1 AS id, {nested_json(5000)} AS doc"

    with pytest.raises(ExportError) as failed:
        list(DatabaseExport(postgres.url, None, query).records())

    assert "nested too deep for the database driver" in failed.value.message
    assert "SEGBRIDGE_RECORD_MAX_DEPTH" in failed.value.message
    assert "column::text" in failed.value.message
