"""Every call type with its requirements, at compile time and per record."""

from __future__ import annotations

import pytest

from segbridge.mapping import CALL_FIELDS, validate_mapping

from .helpers import call, mapping_error, problems

RECORD = {"id": 7, "email": "a@b.c", "company": "c-1", "old": "anon-9", "page": "Home"}


def test_call_fields_describe_each_call_type() -> None:
    assert set(CALL_FIELDS) == {"identify", "track", "page", "screen", "group", "alias"}
    assert CALL_FIELDS["track"].requires == ("event",)
    assert CALL_FIELDS["track"].one_of == ("userId", "anonymousId")
    assert CALL_FIELDS["group"].requires == ("groupId",)
    assert CALL_FIELDS["alias"].requires == ("previousId", "userId")
    assert CALL_FIELDS["alias"].one_of == ()
    assert CALL_FIELDS["identify"].payload == "traits"
    assert CALL_FIELDS["page"].payload == "properties"
    assert CALL_FIELDS["alias"].payload is None


def test_identify() -> None:
    spec = {"userId": "id", "traits": {"fields": {"email": "email"}}}
    assert call("identify", spec, RECORD) == {"type": "identify", "userId": "7",
                                              "traits": {"email": "a@b.c"}}


def test_track() -> None:
    spec = {"anonymousId": "email", "event": {"constant": "Signed Up"}}
    assert call("track", spec, RECORD) == {"type": "track", "event": "Signed Up",
                                           "anonymousId": "a@b.c"}


@pytest.mark.parametrize("call_type", ["page", "screen"])
def test_page_and_screen_take_name_and_category(call_type: str) -> None:
    spec = {"userId": "id", "name": "page", "category": {"constant": "Docs"},
            "properties": {"fields": {"path": {"constant": "/"}}}}
    assert call(call_type, spec, RECORD) == {
        "type": call_type, "category": "Docs", "userId": "7", "name": "Home",
        "properties": {"path": "/"}}


def test_group() -> None:
    spec = {"userId": "id", "groupId": "company",
            "traits": {"fields": {"plan": {"constant": "pro"}}}}
    assert call("group", spec, RECORD) == {"type": "group", "userId": "7", "groupId": "c-1",
                                           "traits": {"plan": "pro"}}


def test_alias() -> None:
    assert call("alias", {"previousId": "old", "userId": "id"}, RECORD) == \
        {"type": "alias", "userId": "7", "previousId": "anon-9"}


@pytest.mark.parametrize("call_type", ["identify", "track", "page", "screen", "group"])
def test_calls_need_user_id_or_anonymous_id(call_type: str) -> None:
    spec = {"event": "e", "groupId": "g"} if call_type in ("track", "group") else {}
    spec = {k: v for k, v in spec.items() if k in CALL_FIELDS[call_type].takes}
    assert ("mapping.userId", f"{call_type} calls need userId or anonymousId: map at least "
                              "one") in problems(call_type, spec)


def test_track_needs_event() -> None:
    assert problems("track", {"userId": "id"}) == [
        ("mapping.event", "track calls need event: map it, e.g. event: {constant: Order "
                          "Completed}")]


def test_group_needs_group_id() -> None:
    assert problems("group", {"userId": "id"}) == [
        ("mapping.groupId", "group calls need groupId: map it, e.g. groupId: company_id")]


def test_alias_needs_previous_id_and_user_id() -> None:
    assert problems("alias", {"previousId": "old"}) == [
        ("mapping.userId", "alias calls need userId: map it, e.g. userId: customer_id")]
    assert problems("alias", {"userId": "id"}) == [
        ("mapping.previousId", "alias calls need previousId: map it, e.g. previousId: old_id")]


def test_alias_takes_no_anonymous_id_nor_properties() -> None:
    assert problems("alias", {"previousId": "old", "userId": "id", "anonymousId": "x",
                              "properties": {"fields": {"a": "a"}}}) == [
        ("mapping.anonymousId", "alias calls take no anonymousId: remove it"),
        ("mapping.properties", "alias calls take no traits or properties: remove it")]


def test_payload_name_follows_the_call_type() -> None:
    assert problems("identify", {"userId": "id", "properties": {"fields": {"a": "a"}}}) == [
        ("mapping.properties", "identify calls take traits, not properties")]
    assert problems("track", {"userId": "id", "event": "e", "traits": {"fields": {"a": "a"}}}) \
        == [("mapping.traits", "track calls take properties, not traits")]


def test_fields_of_other_calls_are_refused() -> None:
    assert problems("identify", {"userId": "id", "event": "e", "messageId": "m"}) == [
        ("mapping.event", "identify calls take no event: remove it"),
        ("mapping.messageId", "messageId is set by segbridge, not mapped: remove it")]


def test_unknown_call_type() -> None:
    found = [(p.field, p.message) for p in validate_mapping("purchase", {"userId": "id"})]
    assert found == [("call", "use one of: identify, track, page, screen, group, alias")]


def test_a_spec_that_is_not_a_mapping() -> None:
    assert problems("track", ["userId"]) == [
        ("mapping", "use a mapping of call fields, e.g. {userId: customer_id}")]


def test_validate_mapping_returns_no_problem_for_a_good_spec() -> None:
    assert validate_mapping("track", {"userId": "id", "event": {"constant": "x"}}) == []


# -- per record -----------------------------------------------------------------------------


def test_missing_user_id_names_the_field_and_suggests_anonymous_id() -> None:
    error = mapping_error("track", {"userId": "customer.id", "event": {"constant": "x"}},
                          {"customer": {"id": ""}})
    assert error.field == "userId"
    assert str(error) == ("userId: the field 'customer.id' is missing or empty; map "
                          "anonymousId too or fix the data")


def test_missing_anonymous_id_alone_suggests_user_id() -> None:
    error = mapping_error("identify", {"anonymousId": "email"}, {})
    assert str(error) == ("anonymousId: the field 'email' is missing or empty; map userId too "
                          "or fix the data")


def test_user_id_missing_is_fine_when_anonymous_id_is_there() -> None:
    spec = {"userId": "id", "anonymousId": "email", "event": {"constant": "x"}}
    assert call("track", spec, {"id": None, "email": "a@b.c"}) == {
        "type": "track", "event": "x", "anonymousId": "a@b.c"}


def test_both_ids_missing_is_an_error_naming_both() -> None:
    spec = {"userId": "id", "anonymousId": "email", "event": {"constant": "x"}}
    error = mapping_error("track", spec, {"id": "", "email": None})
    assert error.field == "userId"
    assert error.reason == ("the field 'id' is missing or empty and so is anonymousId (the "
                            "field 'email'); track calls need userId or anonymousId: fix the "
                            "data")


def test_required_user_id_fails_even_with_anonymous_id() -> None:
    spec = {"userId": {"field": "id", "required": True}, "anonymousId": "email",
            "event": {"constant": "x"}}
    error = mapping_error("track", spec, {"email": "a@b.c"})
    assert str(error) == "userId: the field 'id' is missing or empty; fix the data or set a default"


def test_missing_event_is_an_error() -> None:
    error = mapping_error("track", {"userId": "id", "event": "name"}, {"id": 1})
    assert str(error) == ("event: the field 'name' is missing or empty; fix the data or set a "
                          "default")


def test_missing_group_id_and_previous_id_are_errors() -> None:
    assert mapping_error("group", {"userId": "id", "groupId": "g"}, {"id": 1}).field == "groupId"
    error = mapping_error("alias", {"userId": "id", "previousId": "old"}, {"id": 1})
    assert str(error) == ("previousId: the field 'old' is missing or empty; fix the data or set "
                          "a default")


def test_required_false_cannot_make_a_needed_field_optional() -> None:
    assert problems("track", {"userId": {"field": "id", "required": False},
                              "event": {"field": "e", "required": False}}) == [
        ("mapping.userId.required", "track calls need userId unless anonymousId is mapped "
                                    "too: remove required: false"),
        ("mapping.event.required", "track calls need event: remove required: false")]


def test_optional_fields_that_resolve_to_nothing_are_left_out() -> None:
    spec = {"userId": "id", "name": "title", "category": "section"}
    assert call("page", spec, {"id": 1, "title": None}) == {"type": "page", "userId": "1"}


def test_no_message_id_nor_sent_at_is_set() -> None:
    result = call("track", {"userId": "id", "event": {"constant": "x"}}, {"id": 1})
    assert "messageId" not in result and "sentAt" not in result
