"""The mapping editor's form <-> mapping spec: round trips per call type, renames, all other
fields, exclusions, constants, expressions and defaults; what opens as YAML; where problems
are shown; expression errors with their line and column; the sample records' field paths."""

from __future__ import annotations

from typing import Any

import pytest

from segbridge.core.errors import FieldProblem
from segbridge.mapping import validate_mapping
from segbridge.web.mapping_form import (
    MappingForm,
    Row,
    SourceForm,
    call_fields,
    errors_by_slot,
    expression_issues,
    field_paths,
    form_from_mapping,
    form_from_post,
    import_problems,
    mapping_from_form,
    post_data,
    slot_of,
)

MAPPINGS: list[tuple[str, dict[str, Any]]] = [
    ("track", {"userId": "customer.id",
               "anonymousId": {"expression": "lower(trim(email))"},
               "event": {"constant": "Order Completed"},
               "timestamp": {"field": "created_at", "format": "%Y-%m-%d %H:%M:%S",
                             "timezone": "Europe/Paris"},
               "properties": {"fields": {"total": "amount", "currency": {"constant": "EUR"},
                                         "sku": "items.0.sku", "qty": {"constant": 2},
                                         "vip": {"expression": "amount > 100"}},
                              "all_other_fields": True, "exclude": ["password", "ssn"]},
               "context": {"fields": {"ip": "ip_address"}},
               "integrations": {"constant": {"All": True, "Mixpanel": False}}}),
    ("identify", {"userId": {"field": "id", "default": "unknown", "required": True},
                  "traits": {"fields": {"email": "email", "plan": {"constant": None}}}}),
    ("page", {"anonymousId": "visitor", "name": {"constant": "Home"},
              "category": {"field": "section", "default": "Docs"},
              "properties": {"all_other_fields": True, "fields": {}}}),
    ("screen", {"userId": "uid", "name": "screen_name",
                "timestamp": {"field": "ts", "format": "unix_ms"}}),
    ("group", {"userId": "uid", "groupId": {"constant": "42"},
               "traits": {"fields": {"company": "company_name"}}}),
    ("alias", {"previousId": "old_id", "userId": {"expression": "concat('u-', id)"},
               "timestamp": {"expression": "now()"}}),
]


@pytest.mark.parametrize(("call", "mapping"), MAPPINGS, ids=[call for call, _ in MAPPINGS])
def test_a_mapping_goes_to_the_form_and_back_unchanged(call: str,
                                                       mapping: dict[str, Any]) -> None:
    assert validate_mapping(call, mapping) == []
    form, fits = form_from_mapping(call, mapping)
    assert fits and not form.yaml_mode
    assert mapping_from_form(form) == (mapping, [])
    # and through the browser: the posted form reads back as the same form
    posted = form_from_post(post_data(form))
    assert {key: source for key, source in posted.fields.items() if source.kind != "none"} \
        == form.fields
    assert (posted.payload, posted.context) == (form.payload, form.context)
    assert mapping_from_form(posted) == (mapping, [])


def test_a_form_becomes_a_mapping_with_renames_constants_expressions_and_defaults() -> None:
    form = MappingForm(call="track", fields={
        "userId": SourceForm("field", " customer_id "),
        "anonymousId": SourceForm("none", "ignored"),
        "event": SourceForm("constant", "Order Completed"),
        "timestamp": SourceForm("field", "day", format="%d/%m/%Y", timezone="UTC"),
        "name": SourceForm("constant", "not a track field"),
    })
    form.payload.rows = [Row("total", "field", "amount"), Row("", "field", "sku"),
                         Row("", "field", ""), Row("n", "json", "[1, 2]"),
                         Row("vip", "expression", "amount > 100")]
    form.payload.all_other_fields = True
    form.payload.exclude = " password, , ssn "
    form.fields["userId"].default = "anonymous"
    assert mapping_from_form(form) == ({
        "userId": {"field": "customer_id", "default": "anonymous"},
        "event": {"constant": "Order Completed"},
        "timestamp": {"field": "day", "format": "%d/%m/%Y", "timezone": "UTC"},
        "properties": {"fields": {"total": "amount", "sku": "sku", "n": {"constant": [1, 2]},
                                  "vip": {"expression": "amount > 100"}},
                       "all_other_fields": True, "exclude": ["password", "ssn"]},
    }, [])


def test_the_forms_own_problems_are_at_their_slots() -> None:
    form = MappingForm(call="track", fields={"event": SourceForm("json", "{not json")})
    form.payload.rows = [Row("a", "field", "x"), Row("a", "field", "y"),
                         Row("", "constant", "EUR")]
    _mapping, problems = mapping_from_form(form)
    assert [(p.field, p.message.split(":")[0]) for p in problems] == [
        ("f.event", "write the constant as JSON"), ("p.1", "'a' is chosen twice"),
        ("p.2", "name the field in the call")]


@pytest.mark.parametrize(("call", "mapping"), [
    ("track", {"userId": "a", "event": "e",
               "properties": {"fields": {"page": {"fields": {"url": "u"}}}}}),  # nested
    ("track", {"userId": "a", "event": "e", "properties": "profile"}),  # a whole object
    ("identify", {"userId": "a", "properties": {"fields": {"x": "y"}}}),  # not its payload
    ("track", {"userId": {"field": "a", "default": 0}, "event": "e"}),  # default not text
    ("track", {"userId": "a", "event": "e", "messageId": "m"}),  # unknown key
    ("track", ["not", "a", "mapping"]),
])
def test_what_the_form_cannot_show_opens_as_yaml_as_written(call: str, mapping: Any) -> None:
    form, fits = form_from_mapping(call, mapping)
    assert not fits and form.yaml_mode
    if isinstance(mapping, dict):  # saved from YAML mode as it was
        assert mapping_from_form(form) == (mapping, [])


def test_yaml_mode_reads_the_yaml() -> None:
    form = MappingForm(call="track", yaml_mode=True,
                       yaml="userId: a\nevent: {constant: Paid}\n")
    assert mapping_from_form(form) == ({"userId": "a", "event": {"constant": "Paid"}}, [])
    listed, problems = mapping_from_form(MappingForm(yaml_mode=True, yaml="- a"))
    assert listed == {} and [(p.field, p.message) for p in problems] == [
        ("yaml", "write a mapping of call fields, e.g. userId: customer_id")]
    bad = mapping_from_form(MappingForm(yaml_mode=True, yaml="a: [b"))[1]
    assert bad[0].field == "yaml" and bad[0].message.startswith("not valid YAML")
    levels = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n"
        for i in range(8))
    bomb = mapping_from_form(MappingForm(yaml_mode=True, yaml=levels))
    assert bomb[0] == {} and bomb[1][0].field == "yaml"
    assert "expands to more than 100,000 values" in bomb[1][0].message


def test_call_fields_mark_what_each_call_needs() -> None:
    assert [(f.key, f.need) for f in call_fields("track")] == [
        ("userId", "required: this or anonymousId"),
        ("anonymousId", "required: this or userId"), ("event", "required"), ("timestamp", "")]
    assert [(f.key, f.need) for f in call_fields("alias")] == [
        ("previousId", "required"), ("userId", "required"), ("timestamp", "")]


def test_problems_land_at_their_slots() -> None:
    form = MappingForm(call="track")
    form.payload.rows = [Row("total", "field", "amount"), Row("", "field", "a.b")]
    problems = import_problems([FieldProblem("imports.1.mapping.event", "e"),
                                FieldProblem("imports.0.mapping.event", "other import"),
                                FieldProblem("export", "x")], 1)
    assert [p.field for p in problems] == ["mapping.event", "imports.0.mapping.event",
                                           "export"]
    cases = {
        "mapping.userId.expression": "f.userId",
        "mapping.timestamp.format": "f.timestamp.format",
        "mapping.timestamp.default": "f.timestamp",
        "mapping.properties.fields.total.expression": "p.0",
        "mapping.properties.fields.a.b": "p.1",
        "mapping.properties.exclude": "p.exclude",
        "mapping.properties.fields": "p",
        "mapping.context.fields.ip": "c",
        "mapping.traits": "mapping",
        "mapping": "mapping",
        "name": "name",
        "export": "export",
    }
    assert {path: slot_of(path, form) for path in cases} == cases
    assert slot_of("mapping.event", MappingForm(yaml_mode=True)) == "yaml"


def test_an_expression_error_has_its_line_and_column_and_replaces_its_problem() -> None:
    form = MappingForm(call="track", fields={
        "userId": SourceForm("expression", "lower(customer_id) +* 2"),
        "event": SourceForm("expression", "upper(name)")})
    form.payload.rows = [Row("x", "expression", "open('f')")]
    issues = expression_issues(form)
    assert set(issues) == {"f.userId", "p.0"}
    issue = issues["f.userId"]
    assert (issue.line, issue.column, issue.line_text) == (1, 21, "lower(customer_id) +* 2")
    assert issue.message.startswith("syntax error")
    assert issues["p.0"].message.startswith("unknown function 'open'")
    problems = [FieldProblem("mapping.userId.expression", f"{issue.message} (at position 21)"),
                FieldProblem("mapping.event", "another problem")]
    assert errors_by_slot(problems, form, issues) == {"f.event": "another problem"}


def test_a_multi_line_expression_error_counts_lines() -> None:
    form = MappingForm(call="track", yaml_mode=False, fields={
        "userId": SourceForm("expression", "concat(a,\n  b +)")})
    issue = expression_issues(form)["f.userId"]
    assert issue.line == 2 and issue.line_text == "  b +)"
    assert issue.column == len("  b +)")


def test_field_paths_are_the_union_of_the_records_keys_nested_dotted() -> None:
    records = [{"id": 1, "customer": {"id": 2, "address": {"city": "Paris"}},
                "items": [{"sku": "S1"}], "tags": ["a"]},
               None,
               {"id": 3, "email": "a@b.c"}]
    assert field_paths(records) == ["id", "customer", "customer.id", "customer.address",
                                    "customer.address.city", "items", "items.0.sku", "tags",
                                    "email"]
