"""The expression language: what it can do, and the errors users see."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from segbridge.mapping import ExpressionError, ExpressionSyntaxError, compile_expression

RECORD: dict[str, Any] = {
    "email": "  Ann@Example.COM ", "first": "Ann", "last": "Lee", "amount": 12.5, "qty": 3,
    "zero": 0, "tags": ["vip", "new"], "customer": {"id": 42, "address": {"city": "Lyon"}},
    "items": [{"sku": "A", "price": 2}, {"sku": "B", "price": 5}], "empty": "", "none": None,
    "first name": "Ann", "created": "2024-05-01 12:00:00", "price": Decimal("9.90"),
}


def run(text: str, record: dict[str, Any] | None = None) -> Any:
    return compile_expression(text)(RECORD if record is None else record)


def fails(text: str, record: dict[str, Any] | None = None) -> str:
    with pytest.raises(ExpressionError) as caught:
        run(text, record)
    return str(caught.value)


def refused(text: str) -> ExpressionSyntaxError:
    with pytest.raises(ExpressionSyntaxError) as caught:
        compile_expression(text)
    return caught.value


@pytest.mark.parametrize(("text", "expected"), [
    ("'text'", "text"), ("42", 42), ("1.5", 1.5), ("True", True), ("None", None),
    ("null", None), ("true and not false", True), ("[1, 'a', None]", [1, "a", None]),
    ("{'a': 1, 'b': [qty]}", {"a": 1, "b": [3]}), ("(1, 2)", (1, 2)),
])
def test_literals(text: str, expected: Any) -> None:
    assert run(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("first", "Ann"), ("missing", None), ("record['first name']", "Ann"),
    ("customer['address']['city']", "Lyon"), ("field('customer.address.city')", "Lyon"),
    ("field('items.1.sku')", "B"), ("items[-1]['price']", 5), ("tags[5]", None),
    ("customer['nope']['deeper']", None), ("record['customer']['id']", 42),
    ("field(concat('customer', '.id'))", 42), ("email[2:5]", "Ann"), ("tags[::-1]", ["new", "vip"]),
])
def test_reading_the_record(text: str, expected: Any) -> None:
    assert run(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("qty + 1", 4), ("amount - 2", 10.5), ("qty * amount", 37.5), ("qty / 2", 1.5),
    ("qty // 2", 1), ("qty % 2", 1), ("-qty", -3), ("+qty", 3), ("first + ' ' + last", "Ann Lee"),
    ("'ab' * 3", "ababab"), ("3 * 'ab'", "ababab"), ("tags + ['x']", ["vip", "new", "x"]),
    ("price * 2", Decimal("19.80")), ("qty > 2", True), ("1 < qty <= 3", True),
    ("first == 'Ann' != last", True), ("'vip' in tags", True), ("'z' not in tags", True),
    ("'Ex' in email", True), ("'x' in none", False), ("none is None", True),
    ("qty is not null", True),
    ("qty and first", "Ann"), ("zero or 'default'", "default"), ("empty or none", None),
    ("'big' if amount > 10 else 'small'", "big"), ("f'{first} {last}: {qty}'", "Ann Lee: 3"),
    ("f'{amount}{none}{True}'", "12.5true"),
])
def test_operators(text: str, expected: Any) -> None:
    assert run(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("lower(trim(email))", "ann@example.com"), ("upper(first)", "ANN"),
    ("lower(none)", None), ("concat(first, '-', qty, none)", "Ann-3"),
    ("coalesce(none, empty, last)", "Lee"), ("coalesce(none)", None),
    ("if_empty(empty, 'n/a')", "n/a"), ("if_empty(first, 'n/a')", "Ann"),
    ("len(tags)", 2), ("len(first)", 3), ("len(none)", 0), ("len(customer)", 2),
    ("str(qty)", "3"), ("str(2.0)", "2"), ("str(true)", "true"), ("str(none)", None),
    ("str(tags)", '["vip","new"]'), ("int('42')", 42), ("int(' 7.9 ')", 7), ("int(amount)", 12),
    ("float('2.5')", 2.5), ("float(qty)", 3.0), ("bool('yes')", True), ("bool('0')", False),
    ("bool(qty)", True), ("bool(none)", None), ("round(2.675, 2)", 2.67), ("round(amount)", 12),
    ("abs(-qty)", 3), ("min(3, 1, 2)", 1), ("max(tags)", "vip"), ("min(none, 4)", 4),
    ("max([])", None), ("replace(first, 'n', 'N')", "ANN"),
    ("split('a,b,c', ',')", ["a", "b", "c"]),
    ("split(' a  b ')", ["a", "b"]), ("join(tags, '|')", "vip|new"), ("join([1, none, 'x'])", "1x"),
    ("substr('abcdef', 1, 3)", "bcd"), ("substr('abcdef', -2)", "ef"),
    ("substr('abcdef', -3, 2)", "de"), ("starts_with(first, 'A')", True),
    ("ends_with(none, 'x')", False), ("contains(tags, 'new')", True),
    ("contains(email, 'Ann')", True), ("contains(customer, 'id')", True),
    ("sha256('a')", "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"),
    ("md5('a')", "0cc175b9c0f1b6a831c399e269772661"),
    ("parse_date(created, '%Y-%m-%d %H:%M:%S', 'Europe/Paris')", "2024-05-01T10:00:00.000Z"),
    ("parse_date('2024-05-01T12:00:00+02:00')", "2024-05-01T10:00:00.000Z"),
    ("parse_date(1714566896, 'unix')", "2024-05-01T12:34:56.000Z"),
    ("parse_date(empty)", None),
    ("format_date('2024-05-01T22:30:00Z', '%d/%m/%Y %H:%M', 'Europe/Paris')", "02/05/2024 00:30"),
    ("format_date('2024-05-01T22:30:00Z', 'unix')", 1714602600),
    ("to_unix('2024-05-01T12:34:56Z')", 1714566896),
    ("to_unix('2024-05-01T12:34:56.5Z')", 1714566896.5),
    ("to_unix('2024-05-01T12:34:56.789Z', 'ms')", 1714566896789),
])
def test_functions(text: str, expected: Any) -> None:
    assert run(text) == expected


def test_hashes_are_hex_of_utf8_text() -> None:
    assert run("sha256(lower(trim(email)))") == hashlib.sha256(b"ann@example.com").hexdigest()
    assert run("md5('é')") == hashlib.md5("é".encode(), usedforsecurity=False).hexdigest()
    assert run("sha256(none)") is None


def test_now_is_utc_iso_text() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    value = run("now()")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", value)
    assert datetime.fromisoformat(value) >= before


def test_multi_line_expressions_from_yaml_blocks() -> None:
    assert run("concat(first,\n  ' ',\n  last)\n") == "Ann Lee"
    assert run("\n  first\n  + last\n") == "AnnLee"


def test_compile_once_run_many() -> None:
    evaluate = compile_expression("qty * 2")
    assert [evaluate({"qty": n}) for n in range(3)] == [0, 2, 4]


@pytest.mark.parametrize(("text", "message"), [
    ("qty / zero", "division by zero"),
    ("qty // zero", "division by zero"),
    ("qty % zero", "division by zero"),
    ("first + qty", "cannot add text and a number"),
    ("none * 2", "cannot multiply null and a number"),
    ("first - 1", "cannot subtract text and a number"),
    ("-first", "cannot negate text"),
    ("qty > first", "cannot compare a number and text with >"),
    ("none < 1", "cannot compare null and a number with <"),
    ("qty in first", "cannot look for a number in text"),
    ("1 in qty", "cannot look inside a number"),
    ("qty['a']", "cannot index a number"),
    ("tags['a']", "a list is indexed by a whole number, not text"),
    ("customer[tags]", "a list cannot be a key"),
    ("int(first)", "cannot turn 'Ann' into a whole number"),
    ("float(first[:0] + 'nan')", "cannot turn 'nan' into a number"),
    ("bool(first)", "cannot turn 'Ann' into true/false: use true/false, yes/no, 1/0 or on/off"),
    ("lower(tags)", "expected text, got a list"),
    ("len(qty)", "len() needs text, a list or an object, not a number"),
    ("round(first)", "round() needs a number, not text"),
    ("max(qty, first)", "cannot compare these values: a number, text"),
    ("split(first, '')", "split() needs a separator that is not empty"),
    ("join(first)", "join() needs a list, not text"),
    ("substr(first, 'a')", "the start of substr() must be a whole number, not text"),
    ("parse_date(first)", "'Ann' is not an ISO-8601 date and time (such as 2024-05-01T12:00:00Z):"
                          " set format for other layouts"),
    ("parse_date(created, first)", "'Ann' is not a format: use iso, unix, unix_ms or a strftime "
                                   "pattern such as %Y-%m-%d %H:%M:%S"),
    ("parse_date(created, '%Y', first)", "unknown time zone 'Ann': use an IANA name such as "
                                         "Europe/Paris or America/New_York"),
    ("{qty: 1}", "object keys must be text, not '3'"),
    ("field(qty)", "field() takes a dotted path such as 'customer.id'"),
    ("tags[::zero]", "a slice step cannot be 0"),
    ("int(first * 5000)", "cannot turn '" + "Ann" * 19 + "An…' into a whole number"),
])
def test_runtime_errors_say_why(text: str, message: str) -> None:
    assert fails(text) == message


def test_runtime_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="division by zero"):
        compile_expression("1 / zero")({"zero": 0})


def test_a_mapping_names_the_expressions_target_field() -> None:
    from .helpers import mapping_error

    spec = {"userId": "id", "event": {"constant": "x"},
            "properties": {"fields": {"unit_price": {"expression": "total / qty"}}}}
    error = mapping_error("track", spec, {"id": 1, "total": 10, "qty": 0})
    assert error.field == "properties.unit_price"
    assert error.reason == "the expression 'total / qty' failed: division by zero"


@pytest.mark.parametrize(("text", "message", "position"), [
    ("lower(", "syntax error: '(' was never closed", 6),
    ("qty +", "syntax error: the expression is incomplete", 6),
    ("qty +* 2", "syntax error: invalid syntax", 6),
    ("", "the expression is empty", 1),
    ("lower(a, b)", "wrong number of arguments: use lower(text)", 1),
    ("now(1)", "wrong number of arguments: use now()", 1),
    ("round(x, ndigits=2)", "keyword arguments are not supported: use round(number, digits?)", 1),
    ("qty + shout(x)", "unknown function 'shout': use one of abs, bool, coalesce, concat, "
                       "contains, ends_with, field, float, format_date, if_empty, int, join, len, "
                       "lower, max, md5, min, now, parse_date, replace, round, sha256, split, "
                       "starts_with, str, substr, to_unix, trim, upper", 7),
    ("parse_date(x, '%Y/%5m')", "'%Y/%5m' has a directive segbridge does not accept: use %Y, %m, "
                                "%d, %H, %M, %S, %f, %z... without widths or flags", 15),
    ("format_date(x, '%d', 'Nowhere/City')", "unknown time zone 'Nowhere/City': use an IANA name "
                                             "such as Europe/Paris or America/New_York", 22),
    ("to_unix(x, 'minutes')", "the unit is 's' (seconds) or 'ms' (milliseconds)", 12),
    ("field('a..b')", "field() takes a dotted path such as 'customer.id' or 'items.0.sku'", 7),
    ("10 / 0", "this always fails: division by zero", 1),
    ("1 + 'a'", "this always fails: cannot add a number and text", 1),
    ("f'{qty!r}'", "conversions such as !r are not supported in f-strings", 1),
    ("f'{amount:.2f}'", "format specifications such as :.2f are not supported: use round() or "
                        "format_date()", 1),
    ("{1, 2}", "sets are not supported: use a list [a, b]", 1),
    ("b'x'", "only text, numbers, True/False and None are literals", 1),
    ("1j", "only text, numbers, True/False and None are literals", 1),
    ("x | 1", "bitwise operators (| & ^ << >>) are not allowed", 1),
    ("~x", "~ is not allowed", 1),
    ("1if x else 2", "syntax error: invalid decimal literal", 1),
    ("x is 'a'", "'is' compares only with None, True or False: use == for values", 1),
    ("{**record}", "** unpacking is not allowed", 1),
    ("'é' + x.y", "attribute access (a.b) is not allowed: use record['a']['b'] or field('a.b')", 7),
])
def test_refused_at_compile_time_with_position(text: str, message: str, position: int) -> None:
    error = refused(text)
    assert (error.message, error.position) == (message, position)
    assert str(error) == f"{message} (at position {position})"
    assert isinstance(error, ValueError)
