"""The schedule: start each enabled flow's run when its cron (in its time zone) fires.

Called by a server's schedule loop (SQLite) or by the job queue's schedule tick (PostgreSQL:
one tick at a time across the cluster). Either way a due flow is claimed once: its row is
locked while its next fire time moves on (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so two
ticks at once never both start it), and a flow still running refuses a second run."""

from __future__ import annotations

import logging

from sqlalchemy import select

from segbridge.accounts.service import Principal
from segbridge.core.clock import utcnow
from segbridge.core.errors import Conflict
from segbridge.flows.service import FlowService, next_fire
from segbridge.storage.models import Flow

log = logging.getLogger(__name__)


def start_due_runs(flows: FlowService) -> list[str]:
    """Start a run of every flow whose time has come; skip flows still running."""
    now = utcnow()
    with flows.db.session() as session:
        due = list(session.scalars(select(Flow).where(
            Flow.enabled.is_(True), Flow.next_run_at.is_not(None), Flow.next_run_at <= now)
            .with_for_update(skip_locked=True)))
        for flow in due:
            flow.next_run_at = next_fire(flow, after=now)
        work = [(flow.id, flow.account_id, flow.name) for flow in due]
    started = []
    for flow_id, account_id, name in work:
        system = Principal(user_id=None, account_id=account_id, email="scheduler",
                           role="admin", via="system")
        try:
            started.append(flows.start_run(system, flow_id, trigger="schedule").id)
        except Conflict:
            log.info("flow %s is still running; its scheduled run is skipped", name)
    return started
