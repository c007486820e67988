"""`segbridge integrations ...`, `segbridge flows ...` and `segbridge runs ...`."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import click

from segbridge.accounts.roles import Permission, require
from segbridge.cli.context import handles_errors, principal_of, runtime_of
from segbridge.cli.output import emit_json, emit_table
from segbridge.core.gc_tuning import freeze_long_lived_objects
from segbridge.flows.views import FlowPublic, PublicForm, RunCounts, RunPublic
from segbridge.runs import execute_here
from segbridge.runs.counts import Tally
from segbridge.runs.diff import DIFF_COUNTS
from segbridge.runs.diff_deletions import DELETION_COUNTS
from segbridge.runs.engine import TAKEN_OVER_RESULT
from segbridge.runs.lifecycle import FINISHED, RunStatus


@click.group("integrations")
def integrations() -> None:
    """Integrations: groups of flows."""


@integrations.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handles_errors
def integrations_list(ctx: click.Context, as_json: bool) -> None:
    rows = runtime_of(ctx).integrations.list_all(principal_of(ctx))
    if as_json:
        emit_json(json_rows(rows))
        return
    emit_table(["ID", "NAME", "FLOWS", "CONNECTIONS"], [
        [r.id, r.name, len(r.flows), ", ".join(c.name for c in r.connections)] for r in rows])


@integrations.command("create")
@click.argument("name")
@click.pass_context
@handles_errors
def integrations_create(ctx: click.Context, name: str) -> None:
    created = runtime_of(ctx).integrations.create(principal_of(ctx), name)
    click.echo(f"Created integration '{created.name}' ({created.id}).")


@integrations.command("delete")
@click.argument("integration_id")
@click.pass_context
@handles_errors
def integrations_delete(ctx: click.Context, integration_id: str) -> None:
    runtime_of(ctx).integrations.delete(principal_of(ctx), integration_id)
    click.echo(f"Deleted integration {integration_id}.")


@click.group("flows")
def flows() -> None:
    """Flows: export, map, import into Segment."""


def _flow(ctx: click.Context, name: str) -> FlowPublic:
    return runtime_of(ctx).flows.find(principal_of(ctx), name)


@flows.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handles_errors
def flows_list(ctx: click.Context, as_json: bool) -> None:
    rows = runtime_of(ctx).flows.list_all(principal_of(ctx))
    if as_json:
        emit_json(json_rows(rows))
        return
    emit_table(["ID", "NAME", "INTEGRATION", "ENABLED", "LAST RUN"], [
        [r.id, r.name, r.integration, r.enabled, r.last_run.status if r.last_run else ""]
        for r in rows])


@flows.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.pass_context
@handles_errors
def flows_import(ctx: click.Context, path: str) -> None:
    """Create or update a flow from a YAML file ('-' for standard input)."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    flow = runtime_of(ctx).flows.import_yaml(principal_of(ctx), text)
    click.echo(f"Saved flow '{flow.name}' ({flow.id}).")


@flows.command("export")
@click.argument("name")
@click.pass_context
@handles_errors
def flows_export(ctx: click.Context, name: str) -> None:
    """Print a flow as YAML."""
    flow = _flow(ctx, name)
    click.echo(runtime_of(ctx).flows.export_yaml(principal_of(ctx), flow.id), nl=False)


@flows.command("show")
@click.argument("name")
@click.pass_context
@handles_errors
def flows_show(ctx: click.Context, name: str) -> None:
    emit_json(_flow(ctx, name).as_json())


@flows.command("preview")
@click.argument("name")
@click.option("--limit", default=5, show_default=True, help="How many records to map.")
@click.pass_context
@handles_errors
def flows_preview(ctx: click.Context, name: str, limit: int) -> None:
    """Show the calls the first records would become; sends nothing."""
    from segbridge.flows.preview import preview

    runtime = runtime_of(ctx)
    found = preview(runtime, principal_of(ctx), _flow(ctx, name).id, None, limit)
    emit_json(found.model_dump(mode="json", by_alias=True, exclude_unset=True))


@flows.command("reset-snapshot")
@click.argument("name")
@click.option("--import", "import_name", required=True,
              help="The import (sync: changed or new) whose snapshot to forget.")
@click.option("--yes", is_flag=True, help="Confirm: the next run sends every record again.")
@click.pass_context
@handles_errors
def flows_reset_snapshot(ctx: click.Context, name: str, import_name: str, yes: bool) -> None:
    """Forget what an import sent: its next run sends every record again."""
    if not yes:
        click.confirm(f"The next run of '{import_name}' will send every record again. "
                      "Reset its snapshot?", abort=True)
    reset = runtime_of(ctx).flows.reset_snapshot(principal_of(ctx), _flow(ctx, name).id,
                                                 import_name, confirm=True)
    click.echo(f"Snapshot of '{import_name}' reset: {reset.forgotten:,} key(s) forgotten; "
               "the next run sends every record.")


HERE = click.option("--here", is_flag=True,
                    help="Execute the run in this process, not through the job queue "
                         "(PostgreSQL installs; with SQLite runs always execute here).")


@flows.command("run")
@click.argument("name")
@click.option("--follow", is_flag=True, help="Show live progress.")
@click.option("--fresh-ids", is_flag=True,
              help="New messageIds: Segment will not deduplicate records sent before.")
@click.option("--json", "as_json", is_flag=True, help="Print the finished run as JSON.")
@HERE
@click.pass_context
@handles_errors
def flows_run(ctx: click.Context, name: str, follow: bool, fresh_ids: bool,
              as_json: bool, here: bool) -> None:
    """Run a flow now and wait until it ends (with PostgreSQL a worker executes it, unless
    --here)."""
    runtime = runtime_of(ctx)
    principal = principal_of(ctx)
    flow = _flow(ctx, name)
    queued = _through_the_queue(ctx, here)
    run = runtime.flows.start_run(principal, flow.id, fresh_message_ids=fresh_ids,
                                  execute=queued)
    click.echo(f"Run {run.id} of '{flow.name}' started.", err=as_json)
    _execute(ctx, run.id, follow, as_json, queued=queued)


@click.group("runs")
def runs() -> None:
    """Runs of flows."""


@runs.command("resume")
@click.argument("run_id")
@click.option("--follow", is_flag=True, help="Show live progress.")
@HERE
@click.pass_context
@handles_errors
def runs_resume(ctx: click.Context, run_id: str, follow: bool, here: bool) -> None:
    """Resume a run from its last checkpoint: one whose process was killed, or one that
    failed by a crash (its lanes kept dying)."""
    require(principal_of(ctx), Permission.RUN_FLOWS)
    runtime = runtime_of(ctx)
    queued = _through_the_queue(ctx, here)
    runtime.flows.resume_run(principal_of(ctx), run_id, execute=queued,
                             lease_seconds=runtime.settings.run_lease_seconds)
    _execute(ctx, run_id, follow, False, queued=queued)


@runs.command("show")
@click.argument("run_id")
@click.pass_context
@handles_errors
def runs_show(ctx: click.Context, run_id: str) -> None:
    emit_json(runtime_of(ctx).flows.get_run(principal_of(ctx), run_id).as_json())


@runs.command("cancel")
@click.argument("run_id")
@click.pass_context
@handles_errors
def runs_cancel(ctx: click.Context, run_id: str) -> None:
    runtime_of(ctx).flows.cancel_run(principal_of(ctx), run_id)
    click.echo(f"Canceling run {run_id}.")


@flows.command("errors")
@click.argument("name")
@click.option("--status", default="open", show_default=True,
              type=click.Choice(["open", "resolved", "retried", "retrying", "all"]))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handles_errors
def flows_errors(ctx: click.Context, name: str, status: str, as_json: bool) -> None:
    """List a flow's record errors."""
    rows = runtime_of(ctx).flows.list_errors(principal_of(ctx), _flow(ctx, name).id,
                                             status=None if status == "all" else status)
    if as_json:
        emit_json(json_rows(rows))
        return
    emit_table(["ID", "REF", "STEP", "FIELD", "STATUS", "REASON"], [
        [r.id, r.ref, r.step, r.field or "", r.http_status or "", r.reason] for r in rows])


@flows.command("retry")
@click.argument("name")
@click.argument("error_ids", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every open error.")
@HERE
@click.pass_context
@handles_errors
def flows_retry(ctx: click.Context, name: str, error_ids: tuple[str, ...],
                retry_all: bool, here: bool) -> None:
    """Send the records of open errors again."""
    runtime = runtime_of(ctx)
    principal = principal_of(ctx)
    flow_id = _flow(ctx, name).id
    ids = list(error_ids) or (runtime.flows.open_error_ids(principal, flow_id)
                              if retry_all else [])
    if not ids:
        raise click.ClickException("Name the errors to retry, or use --all.")
    queued = _through_the_queue(ctx, here)
    run = runtime.flows.retry_errors(principal, flow_id, ids, execute=queued)
    _execute(ctx, run.id, False, False, queued=queued)


@flows.command("resolve")
@click.argument("name")
@click.argument("error_ids", nargs=-1, required=True)
@click.pass_context
@handles_errors
def flows_resolve(ctx: click.Context, name: str, error_ids: tuple[str, ...]) -> None:
    """Mark errors resolved without sending them."""
    count = runtime_of(ctx).flows.resolve_errors(principal_of(ctx), _flow(ctx, name).id,
                                                 list(error_ids))
    click.echo(f"Resolved {count} error(s).")


def _through_the_queue(ctx: click.Context, here: bool) -> bool:
    """With PostgreSQL a run goes to the job queue (a worker executes it), unless --here."""
    return not here and runtime_of(ctx).settings.resolved_database_url.startswith("postgresql")


def _execute(ctx: click.Context, run_id: str, follow: bool, as_json: bool, *,
             queued: bool = False) -> None:
    """Execute the run here, or (``queued``) wait for the worker that executes it; then its
    summary, and exit code 1 when it failed."""
    runtime = runtime_of(ctx)
    if queued:
        click.echo(f"Run {run_id} is in the job queue: a worker executes it "
                   "(segbridge worker, or the server). Waiting for it to end; Ctrl-C stops "
                   "waiting, not the run.", err=True)
        status = _wait_for(ctx, run_id, follow)
    else:
        progress = Progress() if follow else None
        freeze_long_lived_objects()
        result = execute_here(runtime, run_id, progress.show if progress else None)
        if progress:
            progress.done()
        if result.status == TAKEN_OVER_RESULT:
            click.echo(f"This process stopped: {result.message}; it goes on there.", err=True)
        status = result.status
    run = runtime.flows.get_run(principal_of(ctx), run_id)
    if as_json:
        emit_json(run.as_json())
    else:
        _summary(run)
    # exit code 1 when it failed, or was taken over (another process has it)
    if status in (RunStatus.FAILED, TAKEN_OVER_RESULT):
        sys.exit(1)


def _wait_for(ctx: click.Context, run_id: str, follow: bool) -> str:
    """Follow a run a worker executes, from its row, until it ends; its final status."""
    flows, principal = runtime_of(ctx).flows, principal_of(ctx)
    started = time.monotonic()
    while True:
        run = flows.get_run(principal, run_id)
        if run.status in FINISHED:
            if follow:
                click.echo("", err=True)
            return run.status
        if follow:
            share = f"{run.progress:4.0%}  " if run.progress is not None else ""
            click.echo(f"\r{run.status}  {share}exported {_count(run.counts, 'exported'):,}  "
                       f"sent {_count(run.counts, 'sent'):,}  "
                       f"failed {_count(run.counts, 'failed'):,}  "
                       f"{time.monotonic() - started:.0f} s", nl=False, err=True)
        time.sleep(0.5)


class Progress:
    """One live line, redrawn as chunks are committed: a bar with the share of the input read
    when the export knows it (files, retries), then counts and rate."""

    width = 24

    def __init__(self) -> None:
        self.started = time.monotonic()

    def show(self, tally: Tally, share: float | None) -> None:
        click.echo("\r" + self.line(tally, share, time.monotonic() - self.started), nl=False,
                   err=True)

    @classmethod
    def line(cls, tally: Tally, share: float | None, seconds: float) -> str:
        t = tally.totals
        rate = t["exported"] / max(seconds, 1e-6)
        counts = (f"exported {t['exported']:,}  sent {t['sent']:,}  failed {t['failed']:,}  "
                  f"ignored {t['ignored']:,}  {rate:,.0f} rec/s")
        if share is None:
            return counts
        filled = round(share * cls.width)
        return f"[{'#' * filled}{'.' * (cls.width - filled)}] {share:4.0%}  {counts}"

    def done(self) -> None:
        click.echo("", err=True)


def json_rows(rows: Sequence[PublicForm]) -> list[dict[str, object]]:
    return [row.as_json() for row in rows]


def _summary(run: RunPublic) -> None:
    counts = run.counts
    click.echo(f"Run {run.id}: {run.status}" + (f" ({run.message})" if run.message else ""))
    click.echo("  " + "  ".join(f"{key} {counts.get(key, 0):,}" for key in
                                ("exported", "sent", "failed", "ignored", "retried", "batches")))
    _diff_summary(counts)
    if run.duration_seconds:
        rate = _count(counts, "sent") / max(run.duration_seconds, 1e-6)
        click.echo(f"  {run.duration_seconds:.1f} s, {rate:,.0f} events/s")


def _diff_summary(counts: RunCounts) -> None:
    """Per import that sends only changed or new records: what the diff found."""
    per_import = counts.get("imports")
    for name, per in (per_import.items() if isinstance(per_import, dict) else ()):
        if any(key in per for key in DIFF_COUNTS):
            click.echo(f"  {name}: " + "  ".join(f"{key} {per.get(key, 0):,}"
                                                 for key in DIFF_COUNTS))
        if any(key in per for key in DELETION_COUNTS):  # (an import that sends a call for
            # each deleted key: how those calls went)
            click.echo(f"  {name}, calls for deleted keys: " + "  ".join(
                f"{key.removeprefix('deletions_')} {per.get(key, 0):,}"
                for key in DELETION_COUNTS))


def _count(counts: RunCounts, key: str) -> int:
    value = counts.get(key, 0)
    return value if isinstance(value, int) else 0
