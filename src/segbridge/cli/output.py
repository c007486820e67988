"""Printing for the CLI: tables for people, JSON for scripts, errors with what to do."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
import orjson

from segbridge.core.errors import SegbridgeError


def emit_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def emit_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        click.echo("  ".join(value.ljust(widths[i]) for i, value in enumerate(row)).rstrip())
        if index == 0:
            click.echo("  ".join("-" * w for w in widths))


def emit_error(exc: SegbridgeError) -> None:
    click.echo(f"Error: {exc.message}", err=True)
    if isinstance(exc.details, list):
        for problem in exc.details:
            if isinstance(problem, dict) and "field" in problem:
                click.echo(f"  - {problem['field']}: {problem['message']}", err=True)


def emit_test_result(result: dict[str, Any]) -> None:
    verdict = "ok" if result.get("ok") else "FAILED"
    click.echo(f"Test connection: {verdict}")
    click.echo(f"  endpoint:   {result.get('endpoint')}")
    click.echo(f"  status:     {result.get('status')}")
    click.echo(f"  latency:    {result.get('latency_ms')} ms")
    click.echo(f"  messageId:  {result.get('message_id')}")
    if result.get("message"):
        click.echo(f"  result:     {result['message']}")
    for check in result.get("checks", []):
        click.echo(f"  {check['label']}: {check['detail']}")
    if result.get("debugger_hint"):
        click.echo(f"  {result['debugger_hint']}")
