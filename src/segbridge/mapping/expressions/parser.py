"""Compile an expression once into nested closures; nothing is evaluated by Python's eval.

The text is parsed by ``ast.parse(mode="eval")`` and every node must be on a whitelist:
literals, names (fields of the record; ``record`` is the whole record), arithmetic without
``**``, comparisons, and/or/not, ``a if c else b``, subscripts and slices, simple f-strings
and calls to the functions of ``functions.FUNCTIONS`` by name. Everything else (attributes,
lambdas, comprehensions, unpacking, walrus, names starting with ``_``) is refused with its
position. Parts whose inputs are all constants are computed once (and refused when they
always fail).
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from segbridge.mapping.expressions import operators as ops
from segbridge.mapping.expressions.errors import ExpressionError, ExpressionSyntaxError
from segbridge.mapping.expressions.functions import FUNCTIONS, Function
from segbridge.mapping.values import SCALARS, is_index, text_of

Evaluator = Callable[[Mapping[str, Any]], Any]

MAX_LENGTH: Final = 2_000
MAX_DEPTH: Final = 50
ALIASES: Final = {"true": True, "false": False, "null": None}

_COMPREHENSION = "comprehensions are not allowed"
REFUSED: Final[dict[type[ast.AST], str]] = {
    ast.Attribute: "attribute access (a.b) is not allowed: use record['a']['b'] or "
                   "field('a.b')",
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: _COMPREHENSION,
    ast.SetComp: _COMPREHENSION,
    ast.DictComp: _COMPREHENSION,
    ast.GeneratorExp: _COMPREHENSION,
    ast.Starred: "* unpacking is not allowed",
    ast.NamedExpr: ":= is not allowed",
    ast.Set: "sets are not supported: use a list [a, b]",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}
REFUSED_OPERATORS: Final[dict[type[ast.AST], str]] = {
    ast.Pow: "** is not allowed (powers make huge numbers): multiply instead",
    ast.MatMult: "@ is not allowed",
    ast.Invert: "~ is not allowed",
}
BITWISE: Final = "bitwise operators (| & ^ << >>) are not allowed"
SAFE_ERRORS: Final = (ArithmeticError, LookupError, TypeError, ValueError, RecursionError,
                      MemoryError)


@dataclass(frozen=True, slots=True)
class Part:
    """A compiled node: its evaluator, and its value when it is a constant."""

    run: Evaluator
    constant: bool = False
    value: Any = None


@dataclass(frozen=True, slots=True)
class ParsedExpression:
    """A compiled expression. ``fields``: the top-level fields it names statically (used by
    ``all_other_fields``); ``constant``/``value`` when it does not depend on the record;
    ``whole_record``: it names ``record`` (it may read any field)."""

    text: str
    run: Evaluator
    fields: frozenset[str]
    constant: bool
    value: Any
    whole_record: bool = False

    def evaluate(self, record: Mapping[str, Any]) -> Any:
        """The value for ``record``; raises only ExpressionError."""
        try:
            return self.run(record)
        except ExpressionError:
            raise
        except SAFE_ERRORS as exc:
            raise ExpressionError(describe(exc)) from None


def describe(exc: BaseException) -> str:
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    if isinstance(exc, OverflowError):
        return "the number is too large"
    if isinstance(exc, RecursionError):
        return "the value is nested too deeply"
    if isinstance(exc, MemoryError):
        return "the value is too large"
    return str(exc) or type(exc).__name__


def parse(text: str) -> ParsedExpression:
    """Compile ``text``; raises ExpressionSyntaxError with the position of the problem."""
    if not isinstance(text, str):
        raise ExpressionSyntaxError("an expression is text", 1)
    if len(text) > MAX_LENGTH:
        raise ExpressionSyntaxError(f"the expression has {len(text):,} characters; at most "
                                    f"{MAX_LENGTH:,} are allowed", MAX_LENGTH + 1)
    stripped = text.lstrip()
    if not stripped.strip():
        raise ExpressionSyntaxError("the expression is empty", 1)
    compiler = _Compiler(text, len(text) - len(stripped))
    tree = compiler.syntax_tree(stripped)
    compiler.check_depth(tree)
    part = compiler.compile(tree.body)
    return ParsedExpression(text, part.run, frozenset(compiler.fields), part.constant,
                            part.value, compiler.whole_record)


class _Compiler:
    def __init__(self, text: str, indent: int) -> None:
        self.text = text
        self.indent = indent
        self.fields: set[str] = set()
        self.whole_record = False
        self.line_shift = 0
        self.handlers: dict[type[ast.AST], Callable[[Any], Part]] = {
            ast.Constant: self._constant, ast.Name: self._name, ast.BinOp: self._binop,
            ast.UnaryOp: self._unaryop, ast.BoolOp: self._boolop, ast.Compare: self._compare,
            ast.IfExp: self._ifexp, ast.Subscript: self._subscript, ast.List: self._list,
            ast.Tuple: self._tuple, ast.Dict: self._dict, ast.Call: self._call,
            ast.JoinedStr: self._joinedstr,
        }

    # -- parsing and positions ------------------------------------------------------------

    def syntax_tree(self, source: str) -> ast.Expression:
        try:
            return _parse(source)
        except SyntaxError as exc:
            if "\n" in source:  # a multi-line expression (YAML block): read it as one
                try:
                    self.line_shift = 1
                    return _parse(f"(\n{source}\n)")
                except SyntaxError:
                    self.line_shift = 0
            if not exc.offset:  # CPython: the text ended before the expression did
                raise ExpressionSyntaxError("syntax error: the expression is incomplete",
                                            len(self.text) + 1) from None
            position = self._position(exc.lineno or 1, exc.offset - 1, chars=True)
            raise ExpressionSyntaxError(f"syntax error: {exc.msg}", position) from None
        except (RecursionError, MemoryError):
            raise ExpressionSyntaxError("the expression is nested too deeply", 1) from None
        except ValueError as exc:  # e.g. a NUL character
            raise ExpressionSyntaxError(f"syntax error: {exc}", 1) from None

    def _position(self, lineno: int, col: int, *, chars: bool = False) -> int:
        """1-based character position in the original text of (line, column)."""
        lines = self.text[self.indent:].splitlines(keepends=True) or [""]
        line = lines[min(lineno, len(lines)) - 1]
        if not chars:
            col = len(line.encode()[:col].decode(errors="ignore"))
        before = sum(len(previous) for previous in lines[: lineno - 1])
        return self.indent + before + col + 1

    def fail(self, node: ast.AST, message: str) -> NoReturn:
        lineno = max(getattr(node, "lineno", 1) - self.line_shift, 1)
        position = self._position(lineno, getattr(node, "col_offset", 0))
        raise ExpressionSyntaxError(message, position)

    def check_depth(self, tree: ast.AST) -> None:
        stack: list[tuple[ast.AST, int]] = [(tree, 0)]
        while stack:
            node, depth = stack.pop()
            if depth > MAX_DEPTH:
                self.fail(node, f"the expression is nested more than {MAX_DEPTH} levels deep")
            stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))

    # -- dispatch -------------------------------------------------------------------------

    def compile(self, node: ast.AST) -> Part:
        handler = self.handlers.get(type(node))
        if handler is None:
            self.fail(node, REFUSED.get(type(node), f"{type(node).__name__} is not allowed "
                                                    "in an expression"))
        return handler(node)

    def fold(self, node: ast.AST, run: Evaluator, parts: list[Part]) -> Part:
        """Compute a part whose inputs are constants once; refuse it if it always fails."""
        if not all(part.constant for part in parts):
            return Part(run)
        try:
            value = run({})
        except SAFE_ERRORS as exc:
            self.fail(node, f"this always fails: {describe(exc)}")
        if isinstance(value, SCALARS) or (isinstance(value, tuple) and
                                          all(isinstance(v, SCALARS) for v in value)):
            return Part(lambda _record: value, True, value)
        return Part(run)

    # -- nodes ----------------------------------------------------------------------------

    def _constant(self, node: ast.Constant) -> Part:
        value = node.value
        if not isinstance(value, SCALARS):
            self.fail(node, "only text, numbers, True/False and None are literals")
        return Part(lambda _record: value, True, value)

    def _name(self, node: ast.Name) -> Part:
        name = node.id
        if name.startswith("_"):
            self.fail(node, f"names starting with '_' are not allowed ('{name}')")
        if name == "record":
            self.whole_record = True
            return Part(lambda record: record)
        if name in ALIASES:
            value = ALIASES[name]
            return Part(lambda _record: value, True, value)
        self.fields.add(name)
        return Part(lambda record: record.get(name))

    def _binop(self, node: ast.BinOp) -> Part:
        kind = type(node.op)
        if kind in REFUSED_OPERATORS:
            self.fail(node, REFUSED_OPERATORS[kind])
        if kind.__name__ not in ops.BINARY:
            self.fail(node, BITWISE)
        function = ops.BINARY[kind.__name__]
        left, right = self.compile(node.left), self.compile(node.right)
        left_run, right_run = left.run, right.run
        return self.fold(node, lambda record: function(left_run(record), right_run(record)),
                         [left, right])

    def _unaryop(self, node: ast.UnaryOp) -> Part:
        if isinstance(node.op, ast.Invert):
            self.fail(node, REFUSED_OPERATORS[ast.Invert])
        operand = self.compile(node.operand)
        inner = operand.run
        if isinstance(node.op, ast.Not):
            run: Evaluator = lambda record: not inner(record)  # noqa: E731
        else:
            function = ops.negate if isinstance(node.op, ast.USub) else ops.plus
            run = lambda record: function(inner(record))  # noqa: E731
        return self.fold(node, run, [operand])

    def _boolop(self, node: ast.BoolOp) -> Part:
        parts = [self.compile(value) for value in node.values]
        runs = tuple(part.run for part in parts)
        stop_when = isinstance(node.op, ast.Or)

        def run(record: Mapping[str, Any]) -> Any:
            value: Any = None
            for evaluate in runs:
                value = evaluate(record)
                if bool(value) is stop_when:
                    return value
            return value

        return self.fold(node, run, parts)

    def _compare(self, node: ast.Compare) -> Part:
        operands = [node.left, *node.comparators]
        for index, op in enumerate(node.ops):
            pair = operands[index:index + 2]
            if isinstance(op, ast.Is | ast.IsNot) and not any(map(_singleton, pair)):
                self.fail(node, "'is' compares only with None, True or False: use == for "
                                "values")
        first = self.compile(node.left)
        rights = [self.compile(comparator) for comparator in node.comparators]
        tests = tuple((ops.COMPARISONS[type(op).__name__], right.run)
                      for op, right in zip(node.ops, rights, strict=True))
        left_run = first.run
        if len(tests) == 1:
            (test, right_run), = tests
            run: Evaluator = lambda record: test(left_run(record), right_run(record))  # noqa: E731
        else:
            def run(record: Mapping[str, Any]) -> Any:
                left = left_run(record)
                for compare, evaluate in tests:
                    right = evaluate(record)
                    if not compare(left, right):
                        return False
                    left = right
                return True
        return self.fold(node, run, [first, *rights])

    def _ifexp(self, node: ast.IfExp) -> Part:
        test, body, orelse = (self.compile(n) for n in (node.test, node.body, node.orelse))
        test_run, body_run, else_run = test.run, body.run, orelse.run
        if test.constant:
            return body if test.value else orelse
        return Part(lambda record: body_run(record) if test_run(record) else else_run(record))

    def _subscript(self, node: ast.Subscript) -> Part:
        container = self.compile(node.value)
        value_run = container.run
        if isinstance(node.slice, ast.Slice):
            bounds = [self._optional(b) for b in (node.slice.lower, node.slice.upper,
                                                   node.slice.step)]
            lower, upper, step = (b.run for b in bounds)
            return self.fold(node, lambda record: ops.slice_of(
                value_run(record), lower(record), upper(record), step(record)),
                [container, *bounds])
        key = self.compile(node.slice)
        if isinstance(node.value, ast.Name) and node.value.id == "record" and \
                key.constant and isinstance(key.value, str):
            self.fields.add(key.value)
        key_run = key.run
        return self.fold(node, lambda record: ops.index(value_run(record), key_run(record)),
                         [container, key])

    def _optional(self, node: ast.AST | None) -> Part:
        return Part(lambda _record: None, True, None) if node is None else self.compile(node)

    def _list(self, node: ast.List) -> Part:
        parts = [self.compile(element) for element in node.elts]
        runs = tuple(part.run for part in parts)
        return self.fold(node, lambda record: [evaluate(record) for evaluate in runs], parts)

    def _tuple(self, node: ast.Tuple) -> Part:
        parts = [self.compile(element) for element in node.elts]
        runs = tuple(part.run for part in parts)
        return self.fold(node, lambda record: tuple(evaluate(record) for evaluate in runs),
                         parts)

    def _dict(self, node: ast.Dict) -> Part:
        if any(key is None for key in node.keys):
            self.fail(node, "** unpacking is not allowed")
        keys = [self.compile(key) for key in node.keys if key is not None]
        values = [self.compile(value) for value in node.values]
        pairs = tuple((k.run, v.run) for k, v in zip(keys, values, strict=True))

        def run(record: Mapping[str, Any]) -> dict[str, Any]:
            result: dict[str, Any] = {}
            for key_run, value_run in pairs:
                key = key_run(record)
                if type(key) is not str:
                    raise ExpressionError(f"object keys must be text, not {text_of(key)!r}")
                result[key] = value_run(record)
            return result

        return self.fold(node, run, [*keys, *values])

    def _joinedstr(self, node: ast.JoinedStr) -> Part:
        parts: list[Part] = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                if value.conversion != -1:
                    self.fail(value, "conversions such as !r are not supported in f-strings")
                if value.format_spec is not None:
                    self.fail(value, "format specifications such as :.2f are not supported: "
                                     "use round() or format_date()")
                parts.append(self.compile(value.value))
            else:
                parts.append(self.compile(value))
        runs = tuple(part.run for part in parts)

        def run(record: Mapping[str, Any]) -> str:
            texts = [text_of(evaluate(record)) for evaluate in runs]
            ops.check_size(sum(map(len, texts)), "")
            return "".join(texts)

        return self.fold(node, run, parts)

    def _call(self, node: ast.Call) -> Part:
        function = self._function(node)
        if node.keywords:
            self.fail(node, f"keyword arguments are not supported: use {function.usage}")
        count = len(node.args)
        if count < function.min_args or (function.max_args is not None and
                                         count > function.max_args):
            self.fail(node, f"wrong number of arguments: use {function.usage}")
        args = [self.compile(arg) for arg in node.args]
        for index, check in function.checks:
            if index < count and args[index].constant:
                problem = check(args[index].value)
                if problem:
                    self.fail(node.args[index], problem)
        if function is FUNCTIONS["field"]:
            return self._field(args[0])
        run = _caller(function.impl, tuple(arg.run for arg in args))
        return self.fold(node, run, args) if function.pure else Part(run)

    def _function(self, node: ast.Call) -> Function:
        if isinstance(node.func, ast.Attribute):
            self.fail(node.func, REFUSED[ast.Attribute])
        if not isinstance(node.func, ast.Name):
            self.fail(node.func, "only functions can be called, by name: lower(email)")
        name = node.func.id
        if name.startswith("_"):
            self.fail(node.func, f"names starting with '_' are not allowed ('{name}')")
        function = FUNCTIONS.get(name)
        if function is None:
            self.fail(node.func, f"unknown function '{name}': use one of "
                                 f"{', '.join(sorted(FUNCTIONS))}")
        return function

    def _field(self, path: Part) -> Part:
        if path.constant:
            keys = tuple(str(path.value).split("."))
            self.fields.add(keys[0])
            return Part(lambda record: follow(record, keys))
        self.whole_record = True  # a path worked out per record may name any field (a diff
        # sync's version and a Parquet export's columns then take every field)
        path_run = path.run

        def run(record: Mapping[str, Any]) -> Any:
            text = path_run(record)
            if not isinstance(text, str) or not text:
                raise ExpressionError("field() takes a dotted path such as 'customer.id'")
            return follow(record, tuple(text.split(".")))

        return Part(run)


def _singleton(node: ast.AST) -> bool:
    """None, True or False, the only values 'is' may compare with."""
    if isinstance(node, ast.Constant):
        return node.value is None or node.value is True or node.value is False
    return isinstance(node, ast.Name) and node.id in ALIASES


def _parse(source: str) -> ast.Expression:
    """ast.parse, with Python's SyntaxWarnings ('1if x', "x is 'a'") made syntax errors, so
    they are refused the same way everywhere instead of printed on stderr. (catch_warnings
    touches global state only for SyntaxWarning, only while parsing.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("error", SyntaxWarning)
        return ast.parse(source, mode="eval")


def follow(value: Any, keys: tuple[str, ...]) -> Any:
    """The value at a dotted path (list items by index), or None when there is none."""
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(value, list | tuple) and is_index(key):
            number = int(key)
            value = value[number] if -len(value) <= number < len(value) else None
        else:
            return None
    return value


def _caller(impl: Callable[..., Any], runs: tuple[Evaluator, ...]) -> Evaluator:
    if not runs:
        return lambda _record: impl()
    if len(runs) == 1:
        (first,) = runs
        return lambda record: impl(first(record))
    if len(runs) == 2:
        first, second = runs
        return lambda record: impl(first(record), second(record))
    return lambda record: impl(*[evaluate(record) for evaluate in runs])
