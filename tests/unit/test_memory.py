from __future__ import annotations

import sys

import pytest

from segbridge.core.memory import needs_arena_limit


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
@pytest.mark.parametrize(("argv", "expected"), [
    (["serve"], True), (["serve", "--port", "9000"], True), (["flows", "run", "Orders"], True),
    (["runs", "resume", "run_1"], True), (["--as", "a@b.c", "flows", "run", "x"], True),
    (["connections", "list"], False), (["flows", "list"], False), ([], False),
])
def test_only_commands_that_run_flows_set_the_arena_limit(argv: list[str],
                                                          expected: bool) -> None:
    assert needs_arena_limit(argv, {}) is expected
    assert needs_arena_limit(argv, {"MALLOC_ARENA_MAX": "4"}) is False
