"""What every CLI command shares: the runtime, the acting user, and error handling."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from segbridge.accounts.service import Principal
from segbridge.cli.output import emit_error, emit_test_result
from segbridge.core.errors import ConnectionTestFailed, SegbridgeError
from segbridge.core.settings import load_settings
from segbridge.runtime import Runtime, build_runtime, cli_principal

F = TypeVar("F", bound=Callable[..., Any])


def handles_errors(func: F) -> F:
    """Print a SegbridgeError as what to do, and exit 1; never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConnectionTestFailed as exc:
            emit_error(exc)
            if isinstance(exc.details, dict):
                emit_test_result(exc.details)
            sys.exit(1)
        except SegbridgeError as exc:
            emit_error(exc)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def runtime_of(ctx: click.Context) -> Runtime:
    root = ctx.find_root()
    root.ensure_object(dict)
    if "runtime" not in root.obj:
        root.obj["runtime"] = build_runtime(load_settings())
        root.call_on_close(root.obj["runtime"].close)
    runtime: Runtime = root.obj["runtime"]
    return runtime


def principal_of(ctx: click.Context) -> Principal:
    root = ctx.find_root()
    return cli_principal(runtime_of(ctx), root.obj.get("as_email"))
