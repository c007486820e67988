"""The expression sandbox: classic escapes are refused, large results are capped, and an
expression can read nothing but the record it is given."""

from __future__ import annotations

import contextlib
import copy
import random
import time
from typing import Any

import pytest

from segbridge.mapping import ExpressionError, ExpressionSyntaxError, compile_expression
from segbridge.mapping.expressions import FUNCTIONS

ATTRIBUTE = "attribute access (a.b) is not allowed: use record['a']['b'] or field('a.b')"
POWER = "** is not allowed (powers make huge numbers): multiply instead"
UNDERSCORE = "names starting with '_' are not allowed"


def refusal(text: str) -> str:
    with pytest.raises(ExpressionSyntaxError) as caught:
        compile_expression(text)
    return caught.value.message


def runtime(text: str, record: dict[str, Any]) -> str:
    evaluate = compile_expression(text)
    with pytest.raises(ExpressionError) as caught:
        evaluate(record)
    return str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ("__import__('os')", f"{UNDERSCORE} ('__import__')"),
    ("__import__('os').system('id')", ATTRIBUTE),
    ("().__class__.__bases__", ATTRIBUTE),
    ("''.__class__.__mro__[1].__subclasses__()", ATTRIBUTE),
    ("record.__class__", ATTRIBUTE),
    ("email.lower()", ATTRIBUTE),
    ("x.y", ATTRIBUTE),
    ("open('/etc/passwd')", "unknown function 'open'"),
    ("eval('1')", "unknown function 'eval'"),
    ("exec('1')", "unknown function 'exec'"),
    ("getattr(record, 'x')", "unknown function 'getattr'"),
    ("globals()", "unknown function 'globals'"),
    ("type(record)", "unknown function 'type'"),
    ("breakpoint()", "unknown function 'breakpoint'"),
    ("[x for x in range(10**9)]", "comprehensions are not allowed"),
    ("(x for x in tags)", "comprehensions are not allowed"),
    ("{k: 1 for k in tags}", "comprehensions are not allowed"),
    ("'a' * 10**10", POWER),
    ("9**9**9", POWER),
    ("2 ** 3", POWER),
    ("1 << 100000", "bitwise operators (| & ^ << >>) are not allowed"),
    ("lambda: 1", "lambda is not allowed"),
    ("(lambda: 1)()", "only functions can be called, by name: lower(email)"),
    ("[*tags]", "* unpacking is not allowed"),
    ("lower(*tags)", "* unpacking is not allowed"),
    ("(x := 1)", ":= is not allowed"),
    ("_secret", f"{UNDERSCORE} ('_secret')"),
    ("__builtins__", f"{UNDERSCORE} ('__builtins__')"),
    ("_field('a')", f"{UNDERSCORE} ('_field')"),
    ("tags[0](1)", "only functions can be called, by name: lower(email)"),
    ("'a' * 10000000000", "this always fails: the text would be longer than 100,000 characters"),
    ("f'{x:{y}}'", "format specifications such as :.2f are not supported: use round() or "
                   "format_date()"),
])
def test_classic_escapes_are_refused(text: str, message: str) -> None:
    assert refusal(text).startswith(message)


@pytest.mark.parametrize(("text", "message"), [
    ("import os", "syntax error: invalid syntax"),
    ("x = 1", "syntax error: invalid syntax"),
    ("def f(): pass", "syntax error: invalid syntax"),
    ("1; 2", "syntax error: invalid syntax"),
    ("(yield 1)", "yield is not allowed"),
    ("await x", "await is not allowed"),
])
def test_statements_and_yield_are_syntax_errors(text: str, message: str) -> None:
    assert refusal(text) == message


def test_long_and_deep_expressions_are_refused() -> None:
    assert refusal("1+" * 1000 + "1") == \
        "the expression has 2,001 characters; at most 2,000 are allowed"
    assert refusal("-" * 60 + "1") == "the expression is nested more than 50 levels deep"
    assert refusal("[" * 60 + "]" * 60) == "the expression is nested more than 50 levels deep"
    assert refusal("(" * 300 + ")" * 300).startswith("syntax error")
    assert refusal("1 + " * 60 + "1") == "the expression is nested more than 50 levels deep"
    compile_expression("-" * 40 + "1")


@pytest.mark.parametrize(("text", "message"), [
    ("text * n", "the text would be longer than 100,000 characters"),
    ("[0] * n", "the list would have more than 100,000 items"),
    ("[0] * 10000000000", "the list would have more than 100,000 items"),
    ("[tags] * 3", "only lists of plain values can be repeated with *"),
    ("[record] * 3", "only lists of plain values can be repeated with *"),
    ("big + big", "the text would be longer than 100,000 characters"),
    ("concat(big, big)", "the text would be longer than 100,000 characters"),
    ("f'{big}{big}'", "the text would be longer than 100,000 characters"),
    ("join([big, big])", "the text would be longer than 100,000 characters"),
    ("replace(big, 'a', 'aa')", "the text would be longer than 100,000 characters"),
    ("replace('ab', '', big)", "the text would be longer than 100,000 characters"),
    ("huge * huge", "the number would be too large"),
    ("huge * huge * huge", "the number would be too large"),
    ("int(text * 5000)", "cannot turn"),
    ("'%s' % text", "cannot take the remainder of text and text"),
    ("'%*d' % [n, 1]", "cannot take the remainder of text and a list"),
    ("round(1.5, n)", "round() takes between -20 and 20 digits"),
])
def test_large_results_are_capped_at_run_time(text: str, message: str) -> None:
    record = {"text": "ab", "n": 10**10, "tags": ["a"], "big": "a" * 60_000,
              "huge": 7 ** 1500}
    started = time.perf_counter()
    assert runtime(text, record).startswith(message)
    assert time.perf_counter() - started < 0.5


def test_names_read_only_the_record() -> None:
    for name in ("open", "os", "sys", "print", "globals", "builtins", "self", "compile",
                 "exit", "lower", "FUNCTIONS", "ops"):
        assert compile_expression(name)({}) is None
    assert compile_expression("os")({"os": "linux"}) == "linux"
    record = {"a": 1}
    assert compile_expression("record")(record) is record


def test_no_function_reaches_python_internals() -> None:
    forbidden = {"open", "eval", "exec", "compile", "getattr", "setattr", "globals", "locals",
                 "vars", "type", "dir", "import", "__import__", "input", "print", "range",
                 "object", "super", "id", "hash", "iter", "next", "format", "repr"}
    assert not forbidden & set(FUNCTIONS)


def test_expressions_never_change_the_record() -> None:
    record: dict[str, Any] = {"tags": ["b", "a"], "meta": {"k": [1]}, "s": "x"}
    before = copy.deepcopy(record)
    for text in ("tags + ['c']", "tags * 2", "split(s, 'x')", "max(tags)", "tags[::-1]",
                 "join(tags)", "{'m': meta}", "[tags, meta]", "coalesce(meta)"):
        compile_expression(text)(record)
    assert record == before


def test_values_from_records_do_not_unlock_anything() -> None:
    class Sneaky:
        def __getitem__(self, key: Any) -> Any:
            raise AssertionError("custom __getitem__ must not run")

    assert runtime("thing['x']", {"thing": Sneaky()}) == "cannot index a Sneaky"
    assert runtime("thing + 1", {"thing": Sneaky()}) == "cannot add a Sneaky and a number"


TOKENS = ["x", "record", "'a'", "1", "0", "2.5", "None", "True", "+", "-", "*", "/", "//", "%",
          "**", "(", ")", "[", "]", "{", "}", ":", ",", ".", "__class__", "lower", "concat",
          "field", "'x.y'", " if ", " else ", " and ", " or ", "not ", "==", "<", " in ",
          "lambda", "for", "f'{x}'", "_", "split", "len", "int", "@", "~", "|", ":="]


def test_random_token_soup_only_ever_fails_cleanly() -> None:
    chooser = random.Random(20241128)  # deterministic
    records: list[dict[str, Any]] = [{}, {"x": 3}, {"x": "a.b", "y": {"y": [1]}},
                                     {"x": [1, "a", None]}, {"x": {"y": 0}}]
    compiled = 0
    for _ in range(4000):
        text = "".join(chooser.choice(TOKENS) for _ in range(chooser.randint(1, 9)))
        try:
            evaluate = compile_expression(text)
        except ExpressionSyntaxError as exc:
            assert 1 <= exc.position <= len(text) + 1
            continue
        compiled += 1
        for record in records:
            with contextlib.suppress(ExpressionError):
                evaluate(record)
    assert compiled > 150
