"""Spec problems are all listed at once, each named by where it is in the spec."""

from __future__ import annotations

from segbridge.core.errors import ValidationFailed
from segbridge.mapping import compile_mapping, validate_mapping

from .helpers import problems


def test_four_problems_in_one_spec_are_listed_together() -> None:
    spec = {"userId": "customer.id",
            "colour": "red",
            "timestamp": {"field": "created_at", "timezone": "Europe/Pariss"},
            "anonymousId": {"expression": "lower(trim(email)"}}
    assert problems("track", spec) == [
        ("mapping.colour", "unknown key; use userId, anonymousId, event, timestamp, context, "
                           "integrations, properties"),
        ("mapping.anonymousId.expression", "syntax error: '(' was never closed (at position 6)"),
        ("mapping.timestamp.timezone", "unknown time zone 'Europe/Pariss': use an IANA name "
                                       "such as Europe/Paris or America/New_York"),
        ("mapping.event", "track calls need event: map it, e.g. event: {constant: Order "
                          "Completed}")]


def test_validation_failed_carries_details_for_the_api() -> None:
    try:
        compile_mapping("track", {"userId": "id"})
    except ValidationFailed as exc:
        assert exc.details == [{"field": "mapping.event", "message": "track calls need event: "
                                "map it, e.g. event: {constant: Order Completed}"}]
        assert exc.message == ("mapping.event: track calls need event: map it, e.g. event: "
                               "{constant: Order Completed}")
    else:
        raise AssertionError("expected ValidationFailed")


def test_validate_mapping_lists_the_same_problems() -> None:
    found = validate_mapping("identify", {"traits": 3})
    assert [(p.field, p.message) for p in found] == [
        ("mapping.traits", "use {fields: {name: source, ...}}, {constant: {...}}, {field: ...} "
                           "or {expression: ...}"),
        ("mapping.userId", "identify calls need userId or anonymousId: map at least one")]


def test_source_problems() -> None:
    spec = {"userId": {"field": "id", "constant": "x"},
            "anonymousId": {"field": "a..b", "required": "yes", "fallback": 1},
            "event": 42}
    assert problems("track", spec) == [
        ("mapping.userId", "use exactly one of field, constant or expression"),
        ("mapping.anonymousId.fallback", "unknown key; use field, constant, expression, "
                                         "required, default"),
        ("mapping.anonymousId.required", "use true or false"),
        ("mapping.anonymousId.field", "use a field name or a dotted path such as customer.id "
                                      "or items.0.sku"),
        ("mapping.event", "use a field path (text such as customer.id), or {field: ...}, "
                          "{constant: ...} or {expression: ...}")]


def test_expression_must_be_text_and_constants_json() -> None:
    spec = {"userId": {"expression": 12}, "event": {"constant": "x"},
            "properties": {"fields": {"when": {"constant": {"d": object()}}}}}
    found = problems("track", spec)
    assert found[0] == ("mapping.userId.expression",
                        'write the expression as text, e.g. "lower(email)"')
    assert found[1][0] == "mapping.properties.fields.when.constant"
    assert found[1][1].startswith("the constant holds a object; use text, numbers")


def test_object_problems() -> None:
    spec = {"userId": "id", "event": {"constant": "x"},
            "properties": {"fields": {"total": {"expression": "amount *"}, "": "x"},
                           "exclude": "password", "extra": 1},
            "context": {"fields": {}},
            "integrations": {"constant": {"Mixpanel": "no"}}}
    assert problems("track", spec) == [
        ("mapping.properties.extra", "unknown key; use fields, all_other_fields, exclude"),
        ("mapping.properties.exclude", "use a list of field names, e.g. [password]"),
        ("mapping.properties.fields.total.expression",
         "syntax error: the expression is incomplete (at position 9)"),
        ("mapping.properties.fields.", "a field name is text that is not empty"),
        ("mapping.context.fields", "map at least one field or set all_other_fields: true"),
        ("mapping.integrations.constant.Mixpanel", "use true, false or an object of options")]


def test_exclude_needs_all_other_fields_and_constants_objects() -> None:
    spec = {"userId": "id", "event": {"constant": "x"},
            "properties": {"fields": {"a": "a"}, "exclude": ["b"]},
            "context": {"constant": [1]}}
    assert problems("track", spec) == [
        ("mapping.properties.exclude", "exclude works with all_other_fields: true"),
        ("mapping.context.constant", "use an object, not a list")]
