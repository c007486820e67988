"""Mapping: business records -> Segment calls, compiled once per run.

    spec (dict from JSON/YAML)  --validate_mapping-->  [FieldProblem, ...]
                                --compile_mapping--->  MapRecord: data -> call dict

A spec names the call's fields (userId, anonymousId, event, name, category, groupId,
previousId, timestamp, traits/properties, context, integrations) and where each comes from:
a field path, a constant or a sandboxed expression (see ``expressions``). The format is
documented in docs/mapping.md.

    spec.py         read and check a spec, every problem at once -> MappingPlan
    sources.py      field paths, constants, expressions as closures
    timestamps.py   formats, time zones, ISO-8601 UTC output
    compiler.py     MappingPlan -> MapRecord
    calls.py        CALL_FIELDS: what each call type takes and needs
    expressions/    the expression language (parser, operators, functions)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segbridge.core.errors import FieldProblem, ValidationFailed
from segbridge.exports.contracts import MappingError, MapRecord
from segbridge.mapping.calls import CALL_FIELDS, CallFields
from segbridge.mapping.compiler import compile_plan
from segbridge.mapping.expressions import (
    ExpressionError,
    ExpressionSyntaxError,
    compile_expression,
)
from segbridge.mapping.spec import read_spec

__all__ = [
    "CALL_FIELDS",
    "CallFields",
    "ExpressionError",
    "ExpressionSyntaxError",
    "MapRecord",
    "MappingError",
    "compile_expression",
    "compile_mapping",
    "mapping_inputs",
    "validate_mapping",
]


def validate_mapping(call_type: str, spec: Mapping[str, Any]) -> list[FieldProblem]:
    """Every problem of ``spec`` for a ``call_type`` call (empty when it is fine)."""
    return read_spec(call_type, spec)[1]


def compile_mapping(call_type: str, spec: Mapping[str, Any]) -> MapRecord:
    """Compile ``spec`` once into a function mapping one record to one call.

    Raises ValidationFailed listing every problem of the spec. The function raises
    MappingError(field, reason) for a record that cannot be mapped."""
    plan, problems = read_spec(call_type, spec)
    if plan is None:
        raise ValidationFailed(problems)
    return compile_plan(plan)


def mapping_inputs(call_type: str, spec: Mapping[str, Any]) -> frozenset[str] | None:
    """The top-level record fields a valid ``spec`` reads (a dotted path counts as its first
    part and as itself: CSV headers may contain dots); None when it may read any field
    (``all_other_fields``, or an expression naming ``record``)."""
    plan, problems = read_spec(call_type, spec)
    if plan is None:
        raise ValidationFailed(problems)
    return None if plan.whole_record else plan.used
