"""The builder's Parquet source: no reading options (a text file's encoding would be refused
by the document), the columns typed in the form as a list, and the export that results."""

from __future__ import annotations

from segbridge.web import flow_editing as edit


def test_parquet_is_a_file_kind_without_reading_options() -> None:
    assert "parquet" in edit.FILE_KINDS
    assert edit.file_options("parquet", delimiter=";", header=False, encoding="latin-1") == {}
    assert edit.file_options("ndjson", delimiter=";", header=False, encoding=" ") == {
        "encoding": "utf-8"}
    assert edit.file_options("csv", delimiter="", header=True, encoding="utf-8") == {
        "delimiter": ",", "header": True, "encoding": "utf-8"}


def test_columns_are_typed_with_commas_or_new_lines() -> None:
    assert edit.column_names(" order_id, email ,\ntotal\n\n, email,") == [
        "order_id", "email", "total"]
    assert edit.column_names("  ") == []


def test_a_parquet_export_names_its_columns_only_when_some_are_given() -> None:
    assert edit.file_export("parquet", path="/srv/orders/", columns=["id", "email"],
                            key_field="id") == {
        "type": "parquet", "path": "/srv/orders/", "columns": ["id", "email"],
        "key_field": "id"}
    assert edit.file_export("parquet", upload="upl_1", options={}) == {
        "type": "parquet", "upload": "upl_1"}
