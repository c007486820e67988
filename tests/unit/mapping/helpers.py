"""Helpers for the mapping tests."""

from __future__ import annotations

from typing import Any

import pytest

from segbridge.core.errors import ValidationFailed
from segbridge.exports.contracts import MappingError
from segbridge.mapping import compile_mapping


def call(call_type: str, spec: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return compile_mapping(call_type, spec)(data)


def mapping_error(call_type: str, spec: dict[str, Any], data: dict[str, Any]) -> MappingError:
    map_record = compile_mapping(call_type, spec)
    with pytest.raises(MappingError) as caught:
        map_record(data)
    return caught.value


def problems(call_type: str, spec: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationFailed) as caught:
        compile_mapping(call_type, spec)
    return [(p.field, p.message) for p in caught.value.problems]
