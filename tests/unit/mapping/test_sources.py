"""Sources (shorthand, field, constant, expression), objects, ids, defaults, copies."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from segbridge.mapping import compile_mapping

from .helpers import call, mapping_error, problems

TRACK = {"userId": "id", "event": {"constant": "Order Completed"}}


def props(fields: dict[str, Any], data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    spec = {**TRACK, "properties": {"fields": fields, **extra}}
    return call("track", spec, {"id": 1, **data})["properties"]  # type: ignore[no-any-return]


def test_shorthand_string_is_a_field_path() -> None:
    assert call("track", TRACK, {"id": "u1"})["userId"] == "u1"


def test_each_source_kind() -> None:
    spec = {"userId": {"field": "id"}, "anonymousId": {"expression": "lower(trim(email))"},
            "event": {"constant": "Order Completed"}}
    assert call("track", spec, {"id": "u1", "email": "  Ann@Example.COM "}) == {
        "type": "track", "event": "Order Completed", "userId": "u1",
        "anonymousId": "ann@example.com"}


def test_renamed_fields_and_constants() -> None:
    assert props({"total": "amount", "currency": {"constant": "EUR"}}, {"amount": 12.5}) == \
        {"total": 12.5, "currency": "EUR"}


def test_nested_paths_and_list_indexes() -> None:
    data = {"customer": {"address": {"city": "Lyon"}}, "items": [{"sku": "A"}, {"sku": "B"}]}
    assert props({"city": "customer.address.city", "first": "items.0.sku",
                  "last": {"field": "items.-1.sku"}}, data) == \
        {"city": "Lyon", "first": "A", "last": "B"}


def test_a_dotted_top_level_key_is_found_too() -> None:
    assert call("track", {"userId": "customer.id", "event": {"constant": "x"}},
                {"customer.id": "c-1"})["userId"] == "c-1"


def test_absent_chosen_fields_are_left_out_and_nulls_kept() -> None:
    assert props({"a": "a", "b": "b", "c": "c.d", "e": "items.5"},
                 {"a": None, "items": []}) == {"a": None}


def test_values_are_copied_as_they_are() -> None:
    data = {"tags": ["x", "y"], "meta": {"k": 1}, "empty": "", "flag": False}
    assert props({"tags": "tags", "meta": "meta", "empty": "empty", "flag": "flag"}, data) == data


def test_expression_giving_null_leaves_the_property_out() -> None:
    assert props({"code": {"expression": "upper(coupon)"}}, {}) == {}
    assert props({"code": {"expression": "upper(coupon)"}}, {"coupon": "ab"}) == {"code": "AB"}


def test_default_when_missing_or_empty() -> None:
    fields = {"coupon": {"field": "coupon", "default": "none"}}
    assert props(fields, {}) == {"coupon": "none"}
    assert props(fields, {"coupon": ""}) == {"coupon": "none"}
    assert props(fields, {"coupon": None}) == {"coupon": "none"}
    assert props(fields, {"coupon": "X"}) == {"coupon": "X"}
    spec = {"userId": {"field": "id", "default": "guest"}, "event": {"constant": "x"}}
    assert call("track", spec, {})["userId"] == "guest"


def test_required_property_missing_is_an_error() -> None:
    spec = {**TRACK, "properties": {"fields": {"total": {"field": "amount", "required": True}}}}
    error = mapping_error("track", spec, {"id": 1})
    assert error.field == "properties.total"
    assert error.reason == "the field 'amount' is missing or empty; fix the data or set a default"


def test_all_other_fields_with_exclude() -> None:
    spec = {"userId": "id", "anonymousId": {"expression": "lower(email)"},
            "event": {"constant": "x"},
            "properties": {"fields": {"total": "amount"}, "all_other_fields": True,
                           "exclude": ["password"]}}
    data = {"id": 1, "email": "A@B.C", "amount": 3, "password": "s3cret", "coupon": "c",
            "note": None}
    assert call("track", spec, data)["properties"] == {"coupon": "c", "note": None, "total": 3}


def test_all_other_fields_skips_fields_used_anywhere() -> None:
    spec = {"userId": "customer.id", "event": "kind",
            "timestamp": "at", "context": {"fields": {"ip": "ip"}},
            "properties": {"all_other_fields": True}}
    data = {"customer": {"id": 1}, "kind": "Bought", "at": "2024-01-01", "ip": "1.1.1.1",
            "sku": "A"}
    assert call("track", spec, data)["properties"] == {"sku": "A"}


def test_chosen_fields_win_over_other_fields_of_the_same_name() -> None:
    assert props({"total": "amount"}, {"amount": 5, "total": "old"}, all_other_fields=True) \
        == {"total": 5}


def test_nested_objects_of_chosen_fields() -> None:
    spec = {**TRACK, "context": {"fields": {"ip": "ip", "page": {"fields": {"url": "url"}}}}}
    assert call("track", spec, {"id": 1, "ip": "1.2.3.4", "url": "https://x"})["context"] == \
        {"ip": "1.2.3.4", "page": {"url": "https://x"}}


def test_context_and_integrations_constants() -> None:
    spec = {**TRACK, "context": {"constant": {"library": {"name": "erp"}}},
            "integrations": {"constant": {"All": True, "Mixpanel": False}}}
    result = call("track", spec, {"id": 1})
    assert result["context"] == {"library": {"name": "erp"}}
    assert result["integrations"] == {"All": True, "Mixpanel": False}


def test_an_object_from_a_field_must_be_an_object() -> None:
    spec = {"userId": "id", "traits": "profile"}
    assert call("identify", spec, {"id": 1, "profile": {"plan": "pro"}})["traits"] == \
        {"plan": "pro"}
    assert "traits" not in call("identify", spec, {"id": 1})
    error = mapping_error("identify", spec, {"id": 1, "profile": "pro"})
    assert str(error) == "traits: the field 'profile' is text, not an object"


# -- ids --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (42, "42"), (42.0, "42"), (42.5, "42.5"), (Decimal("7.00"), "7"), (Decimal("7.50"), "7.5"),
    ("abc", "abc"), (UUID(int=1), "00000000-0000-0000-0000-000000000001"),
])
def test_ids_become_text(value: Any, expected: str) -> None:
    spec = {"userId": "id", "groupId": "gid"}
    assert call("group", spec, {"id": value, "gid": value}) == {
        "type": "group", "userId": expected, "groupId": expected}


def test_an_object_where_text_is_needed_is_an_error() -> None:
    error = mapping_error("track", TRACK, {"id": {"value": 1}})
    assert str(error) == ("userId: the field 'id' is an object, not text; map a field inside "
                          "it, such as id.value")
    assert str(mapping_error("track", TRACK, {"id": [1]})) == \
        "userId: the field 'id' is a list, not text"
    assert str(mapping_error("track", TRACK, {"id": True})) == \
        "userId: the field 'id' is true/false, not text or a number"


def test_expression_ids_are_converted_and_checked() -> None:
    spec = {"userId": {"expression": "id * 2"}, "event": {"constant": "x"}}
    assert call("track", spec, {"id": 21})["userId"] == "42"
    assert str(mapping_error("track", spec, {"id": None})) == \
        "userId: the expression 'id * 2' failed: cannot multiply null and a number"


def test_constant_ids_are_converted_once() -> None:
    assert call("track", {"userId": {"constant": 7}, "event": {"constant": "x"}}, {}) == \
        {"type": "track", "userId": "7", "event": "x"}
    assert problems("track", {"userId": {"constant": ""}, "event": {"constant": {"a": 1}}}) == [
        ("mapping.userId.constant", "the constant is empty"),
        ("mapping.event.constant", "the constant is an object, not text; use text or a number")]


# -- constants are never shared between calls -------------------------------------------------


def test_constants_are_not_shared_between_records() -> None:
    spec = {**TRACK,
            "properties": {"fields": {"tags": {"constant": ["a"]},
                                      "meta": {"constant": {"deep": {"x": 1}}},
                                      "n": {"field": "n", "default": {"v": []}}}},
            "context": {"constant": {"library": {"name": "erp"}}},
            "integrations": {"constant": {"All": True}}}
    map_record = compile_mapping("track", spec)
    first, second = map_record({"id": 1}), map_record({"id": 2})
    first["properties"]["tags"].append("b")
    first["properties"]["meta"]["deep"]["x"] = 2
    first["properties"]["n"]["v"].append(1)
    first["context"]["library"]["name"] = "changed"
    first["integrations"]["All"] = False
    first["event"] = "changed"
    assert second == map_record({"id": 2}) == {
        "type": "track", "event": "Order Completed", "userId": "2",
        "properties": {"tags": ["a"], "meta": {"deep": {"x": 1}}, "n": {"v": []}},
        "context": {"library": {"name": "erp"}}, "integrations": {"All": True}}


def test_changing_the_spec_after_compiling_changes_nothing() -> None:
    spec: dict[str, Any] = {**TRACK, "properties": {"fields": {"tags": {"constant": ["a"]}}}}
    map_record = compile_mapping("track", spec)
    spec["properties"]["fields"]["tags"]["constant"].append("b")
    assert map_record({"id": 1})["properties"] == {"tags": ["a"]}


def test_calls_are_new_dicts_each_time() -> None:
    map_record = compile_mapping("track", {**TRACK, "properties": {"fields": {"a": "a"}}})
    first = map_record({"id": 1, "a": 1})
    first["messageId"] = "m"
    first["properties"]["b"] = 2
    assert map_record({"id": 1, "a": 1}) == {"type": "track", "event": "Order Completed",
                                             "userId": "1", "properties": {"a": 1}}
