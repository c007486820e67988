"""The role matrix: every route of the app (REST API and pages), called by the admin, a
manage user and a monitor user of account A, and by the admin of account B, with bodies and
ids of account A. Each answer must be of the class the table below expects:

* allowed: neither 401, 403 nor 404, no 5xx, no redirect to the login page;
* denied: 403, and account A's data unchanged;
* account B on A's ids: 404 or 403, and account A's data unchanged.

A route missing from the table fails the test, so no new route escapes the matrix.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from segbridge.accounts import service as accounts
from segbridge.accounts.service import Principal
from segbridge.accounts.sessions import CSRF_HEADER, SESSION_COOKIE, csrf_token_for
from segbridge.connections.model import ConnectionDraft
from segbridge.runs.store import create_run
from segbridge.runtime import ADMIN_EMAIL
from segbridge.storage.models import (
    Account,
    ApiToken,
    AuditEntry,
    Connection,
    ConnectionSecret,
    Flow,
    Integration,
    IntegrationConnection,
    RecordErrorRow,
    Run,
    Upload,
    User,
)
from tests.integration.conftest import Server

RANK = {"monitor": 0, "manage": 1, "admin": 2, "instance": 3}
SKIPPED_PREFIXES = ("/sandbox", "/static", "/api/docs")
SKIPPED_PATHS = {"/api/v1/openapi.json", "/docs/oauth2-redirect"}  # the API docs' pages
CSV = b"order_id,customer_id,total\n1,c1,10.00\n2,c2,12.50\n"
_serial = itertools.count(1)


@dataclass
class Req:
    """What one call sends: the path with A's ids, and a JSON body, raw bytes or a form."""

    path: str
    json: Any = None
    content: bytes | None = None
    form: dict[str, str] | None = None


@dataclass
class Caller:
    name: str
    principal: Principal
    role: str  # for the table: monitor | manage | admin | instance
    other_account: bool = False


@dataclass
class World:
    server: Server
    account_a: str
    admin: Principal  # the instance admin, an admin of A
    callers: list[Caller]
    ids: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    @property
    def runtime(self) -> Any:
        return self.server.runtime

    # ---- fresh objects of account A, for calls that change or delete them --------------

    def connection(self) -> str:
        source = self.server.create_source(f"Matrix {next(_serial)}")
        draft = ConnectionDraft(name=f"Matrix connection {next(_serial)}", application="segment",
                                settings=self.server.segment_settings(source["write_key"]))
        created, _ = self.runtime.connections.create(self.admin, draft)
        return str(created.id)

    def integration(self) -> str:
        return self.runtime.integrations.create(self.admin, f"Group {next(_serial)}").id

    def flow(self) -> str:
        return self.runtime.flows.create(self.admin, flow_doc(self, f"Flow {next(_serial)}")).id

    def queued_run(self) -> str:
        flow_id = self.flow()
        with self.runtime.db.session() as session:
            flow = session.get(Flow, flow_id)
            return create_run(session, flow, trigger="manual", fresh_message_ids=False,
                              definition=dict(flow.definition)).id

    def open_error(self) -> tuple[str, str]:
        """A finished run of a fresh flow with one open record error: (flow id, error id)."""
        flow_id = self.flow()
        with self.runtime.db.session() as session:
            flow = session.get(Flow, flow_id)
            run = create_run(session, flow, trigger="manual", fresh_message_ids=False,
                             definition=dict(flow.definition))
            run.status, flow.active_run_id = "completed_with_errors", None
            error = RecordErrorRow(id=f"err_m{next(_serial)}", account_id=self.account_a,
                                   flow_id=flow_id, run_id=run.id, position=0, ref="row 2",
                                   step="map", reason="userId is missing",
                                   data={"order_id": "1", "email": "secret@example.com"})
            session.add(error)
            return flow_id, error.id

    def token_of_another_user(self) -> str:
        """The id of an API token of a fresh user of A (not the caller)."""
        with self.runtime.db.session() as session:
            user = session.get(User, self.user())
            value = accounts.issue_token(session, user, kind="api", name="someone's")
            return session.scalar(select(ApiToken.id).where(
                ApiToken.token_hash == accounts.hash_token(value)))

    def user(self, role: str = "monitor") -> str:
        with self.runtime.db.session() as session:
            user = accounts.create_user(session, self.account_a,
                                        f"matrix{next(_serial)}@a.example", None, role=role)
            return user.id


def flow_doc(world: World, name: str) -> dict[str, Any]:
    return {"name": name, "integration": "Shop A",
            "export": {"type": "csv", "upload": world.ids["upload"], "key_field": "order_id"},
            "imports": [{"name": "Orders", "connection": "Segment A", "call": "track",
                         "mapping": {"userId": "customer_id",
                                     "event": {"constant": "Order Completed"}}}]}


def connection_body(world: World, name: str) -> dict[str, Any]:
    return {"name": name, "application": "segment",
            "settings": world.server.segment_settings(world.sources[0])}


# ---- the table: (method, path) -> (least role, how to call it) --------------------------------
# least role: public | monitor | manage | admin | instance (the instance admin).
# "scoped": the path names an object of account A (account B must get 404 or 403).

Build = Callable[[World], Req]
EXPECT: dict[tuple[str, str], tuple[str, Build]] = {
    # sign-in, health: no role at all
    ("GET", "/healthz"): ("public", lambda w: Req("/healthz")),
    # readiness, and /metrics (its own token, else loopback: tests/integration/
    # test_metrics_health.py)
    ("GET", "/readyz"): ("public", lambda w: Req("/readyz")),
    ("GET", "/metrics"): ("public", lambda w: Req("/metrics")),
    ("GET", "/login"): ("public", lambda w: Req("/login")),
    ("POST", "/login"): ("public", lambda w: Req("/login", form={"email": "x@y.z"})),
    ("POST", "/api/v1/auth/login"): ("public", lambda w: Req(
        "/api/v1/auth/login", json={"email": "nobody@a.example", "password": "wrong pass"})),
    ("POST", "/api/v1/auth/logout"): ("monitor", lambda w: Req("/api/v1/auth/logout")),
    ("GET", "/api/v1/me"): ("monitor", lambda w: Req("/api/v1/me")),
    # applications and connections
    # alerts: the account's settings (tests/integration/test_alerts.py)
    ("GET", "/api/v1/alerts"): ("monitor", lambda w: Req("/api/v1/alerts")),
    ("PUT", "/api/v1/alerts"): ("manage", lambda w: Req(
        "/api/v1/alerts", json={"email_recipients": [], "run_failed": True})),
    ("POST", "/api/v1/alerts/test"): ("manage", lambda w: Req("/api/v1/alerts/test")),
    ("GET", "/api/v1/applications"): ("monitor", lambda w: Req("/api/v1/applications")),
    ("GET", "/api/v1/connections"): ("monitor", lambda w: Req("/api/v1/connections")),
    ("POST", "/api/v1/connections"): ("manage", lambda w: Req(
        "/api/v1/connections", json=connection_body(w, f"New {next(_serial)}"))),
    ("POST", "/api/v1/connections/test"): ("manage", lambda w: Req(
        "/api/v1/connections/test", json={"application": "segment",
                                          "settings": connection_body(w, "x")["settings"]})),
    ("GET", "/api/v1/connections/{connection_id}"): ("monitor", lambda w: Req(
        f"/api/v1/connections/{w.ids['connection']}")),
    ("PUT", "/api/v1/connections/{connection_id}"): ("manage", lambda w: Req(
        f"/api/v1/connections/{w.ids['connection']}", json=connection_body(w, "Segment A"))),
    ("DELETE", "/api/v1/connections/{connection_id}"): ("manage", lambda w: Req(
        f"/api/v1/connections/{w.connection()}")),
    ("POST", "/api/v1/connections/{connection_id}/test"): ("manage", lambda w: Req(
        f"/api/v1/connections/{w.ids['connection']}/test")),
    ("GET", "/api/v1/connections/{connection_id}/audit"): ("monitor", lambda w: Req(
        f"/api/v1/connections/{w.ids['connection']}/audit")),
    # integrations
    ("GET", "/api/v1/integrations"): ("monitor", lambda w: Req("/api/v1/integrations")),
    ("POST", "/api/v1/integrations"): ("manage", lambda w: Req(
        "/api/v1/integrations", json={"name": f"Integration {next(_serial)}"})),
    ("GET", "/api/v1/integrations/{integration_id}"): ("monitor", lambda w: Req(
        f"/api/v1/integrations/{w.ids['integration']}")),
    ("PUT", "/api/v1/integrations/{integration_id}"): ("manage", lambda w: Req(
        f"/api/v1/integrations/{w.integration()}", json={"name": f"Renamed {next(_serial)}"})),
    ("DELETE", "/api/v1/integrations/{integration_id}"): ("manage", lambda w: Req(
        f"/api/v1/integrations/{w.integration()}")),
    ("POST", "/api/v1/integrations/{integration_id}/connections"): ("manage", lambda w: Req(
        f"/api/v1/integrations/{w.ids['integration']}/connections",
        json={"connection_id": w.ids["connection"]})),
    # flows
    ("GET", "/api/v1/flows"): ("monitor", lambda w: Req("/api/v1/flows")),
    ("POST", "/api/v1/flows"): ("manage", lambda w: Req(
        "/api/v1/flows", json=flow_doc(w, f"Created {next(_serial)}"))),
    ("POST", "/api/v1/flows/import"): ("manage", lambda w: Req(
        "/api/v1/flows/import", content=_yaml(flow_doc(w, f"Imported {next(_serial)}")))),
    ("GET", "/api/v1/flows/{flow_id}"): ("monitor", lambda w: Req(
        f"/api/v1/flows/{w.ids['flow']}")),
    ("GET", "/api/v1/flows/{flow_id}/yaml"): ("monitor", lambda w: Req(
        f"/api/v1/flows/{w.ids['flow']}/yaml")),
    ("PUT", "/api/v1/flows/{flow_id}"): ("manage", lambda w: Req(
        f"/api/v1/flows/{w.ids['flow']}", json=flow_doc(w, "Orders A"))),
    ("PUT", "/api/v1/flows/{flow_id}/enabled"): ("manage", lambda w: Req(
        f"/api/v1/flows/{w.ids['flow']}/enabled", json={"enabled": True})),
    ("DELETE", "/api/v1/flows/{flow_id}"): ("manage", lambda w: Req(
        f"/api/v1/flows/{w.flow()}")),
    ("POST", "/api/v1/flows/{flow_id}/preview"): ("manage", lambda w: Req(
        f"/api/v1/flows/{w.ids['flow']}/preview", json={"limit": 2})),
    # runs and record errors
    ("POST", "/api/v1/flows/{flow_id}/runs"): ("manage", lambda w: Req(
        f"/api/v1/flows/{w.flow()}/runs", json={})),
    ("GET", "/api/v1/flows/{flow_id}/runs"): ("monitor", lambda w: Req(
        f"/api/v1/flows/{w.ids['flow']}/runs")),
    ("GET", "/api/v1/runs/{run_id}"): ("monitor", lambda w: Req(f"/api/v1/runs/{w.ids['run']}")),
    ("POST", "/api/v1/runs/{run_id}/cancel"): ("manage", lambda w: Req(
        f"/api/v1/runs/{w.queued_run()}/cancel")),
    ("POST", "/api/v1/runs/{run_id}/resume"): ("manage", lambda w: Req(
        f"/api/v1/runs/{w.ids['run']}/resume")),
    ("GET", "/api/v1/runs/{run_id}/progress"): ("monitor", lambda w: Req(
        f"/api/v1/runs/{w.ids['run']}/progress")),
    ("GET", "/api/v1/flows/{flow_id}/errors"): ("monitor", lambda w: Req(
        f"/api/v1/flows/{w.ids['flow']}/errors")),
    ("POST", "/api/v1/flows/{flow_id}/errors/resolve"): ("manage", lambda w: _errors(
        w, "resolve")),
    ("POST", "/api/v1/flows/{flow_id}/errors/retry"): ("manage", lambda w: _errors(w, "retry")),
    ("POST", "/api/v1/uploads"): ("manage", lambda w: Req("/api/v1/uploads", content=CSV)),
    # webhooks: a webhook flow's listener (tests/integration/webhooks), and its public URL
    ("POST", "/api/v1/flows/{flow_id}/webhook"): ("manage", lambda w: Req(
        f"/api/v1/flows/{w.ids['webhook_flow']}/webhook")),
    ("GET", "/api/v1/flows/{flow_id}/webhook"): ("monitor", lambda w: Req(
        f"/api/v1/flows/{w.ids['webhook_flow']}/webhook")),
    ("POST", "/api/v1/flows/{flow_id}/webhook/rotate"): ("manage", lambda w: Req(
        f"/api/v1/flows/{w.ids['webhook_flow']}/webhook/rotate")),
    ("PUT", "/api/v1/flows/{flow_id}/webhook/secret"): ("manage", lambda w: Req(
        f"/api/v1/flows/{w.ids['webhook_flow']}/webhook/secret", json={"secret": "s3cret"})),
    ("GET", "/api/v1/flows/{flow_id}/webhook/payloads"): ("manage", lambda w: Req(
        f"/api/v1/flows/{w.ids['webhook_flow']}/webhook/payloads")),
    ("POST", "/hooks/{token}"): ("public", lambda w: Req("/hooks/no-such-token", json={})),
    # diff syncs: forget what an import sent (the next run sends every record)
    ("POST", "/api/v1/flows/{flow_id}/imports/{import_name:path}/snapshot/reset"): ("manage",
        lambda w: Req(f"/api/v1/flows/{w.flow()}/imports/Orders/snapshot/reset",
                      json={"confirm": True})),
    # users and accounts
    ("GET", "/api/v1/users"): ("admin", lambda w: Req("/api/v1/users")),
    ("POST", "/api/v1/users"): ("admin", lambda w: Req(
        "/api/v1/users", json={"email": f"invited{next(_serial)}@a.example",
                               "role": "monitor"})),
    ("PATCH", "/api/v1/users/{user_id}"): ("admin", lambda w: Req(
        f"/api/v1/users/{w.user()}", json={"role": "manage"})),
    ("POST", "/api/v1/users/{user_id}/disable"): ("admin", lambda w: Req(
        f"/api/v1/users/{w.user()}/disable")),
    ("POST", "/api/v1/users/{user_id}/enable"): ("admin", lambda w: Req(
        f"/api/v1/users/{w.user()}/enable")),
    ("DELETE", "/api/v1/users/{user_id}"): ("admin", lambda w: Req(
        f"/api/v1/users/{w.user()}")),
    ("GET", "/api/v1/accounts"): ("instance", lambda w: Req("/api/v1/accounts")),
    ("POST", "/api/v1/accounts"): ("instance", lambda w: Req(
        "/api/v1/accounts", json={"name": f"Account {next(_serial)}",
                                  "admin_email": f"owner{next(_serial)}@new.example"})),
    # API tokens and passwords: one's own for every role; other users' tokens for admins
    ("POST", "/api/v1/tokens"): ("monitor", lambda w: Req("/api/v1/tokens", json={"name": "t"})),
    ("GET", "/api/v1/tokens"): ("monitor", lambda w: Req("/api/v1/tokens")),
    ("DELETE", "/api/v1/tokens/{token_id}"): ("admin", lambda w: Req(
        f"/api/v1/tokens/{w.token_of_another_user()}")),
    ("PUT", "/api/v1/me/password"): ("monitor", lambda w: Req(
        "/api/v1/me/password", json={"new_password": "a long new password"})),
    ("GET", "/account"): ("monitor", lambda w: Req("/account")),
    ("POST", "/account/tokens"): ("monitor", lambda w: Req("/account/tokens",
                                                           form={"name": "t"})),
    ("POST", "/account/tokens/{token_id}/revoke"): ("admin", lambda w: Req(
        f"/account/tokens/{w.token_of_another_user()}/revoke", form={})),
    ("POST", "/account/password"): ("monitor", lambda w: Req("/account/password", form={
        "new_password": "a long new password", "new_password_again": "a long new password"})),
    ("POST", "/account/sessions/end"): ("monitor", lambda w: Req("/account/sessions/end",
                                                                 form={})),
    # pages
    ("GET", "/"): ("monitor", lambda w: Req("/")),
    ("POST", "/logout"): ("monitor", lambda w: Req("/logout", form={})),
    ("GET", "/connections"): ("monitor", lambda w: Req("/connections")),
    ("GET", "/connections/new"): ("manage", lambda w: Req("/connections/new")),
    ("GET", "/connections/new/{app_key}"): ("manage", lambda w: Req(
        "/connections/new/segment")),
    ("POST", "/connections/new/{app_key}/test"): ("manage", lambda w: Req(
        "/connections/new/segment/test", form=_pane_form(w, "Tested"))),
    ("POST", "/connections/new/{app_key}"): ("manage", lambda w: Req(
        "/connections/new/segment", form=_pane_form(w, f"Page {next(_serial)}"))),
    ("GET", "/connections/{connection_id}"): ("monitor", lambda w: Req(
        f"/connections/{w.ids['connection']}")),
    ("POST", "/connections/{connection_id}/test"): ("manage", lambda w: Req(
        f"/connections/{w.ids['connection']}/test", form=_pane_form(w, "Segment A"))),
    ("POST", "/connections/{connection_id}"): ("manage", lambda w: Req(
        f"/connections/{w.ids['connection']}", form=_pane_form(w, "Segment A"))),
    ("POST", "/connections/{connection_id}/retest"): ("manage", lambda w: Req(
        f"/connections/{w.ids['connection']}/retest", form={})),
    ("GET", "/users"): ("admin", lambda w: Req("/users")),
    ("POST", "/users"): ("admin", lambda w: Req("/users", form={
        "email": f"page{next(_serial)}@a.example", "role": "monitor"})),
    ("POST", "/users/{user_id}/role"): ("admin", lambda w: Req(
        f"/users/{w.user()}/role", form={"role": "manage"})),
    ("POST", "/users/{user_id}/disable"): ("admin", lambda w: Req(
        f"/users/{w.user()}/disable", form={})),
    ("POST", "/users/{user_id}/enable"): ("admin", lambda w: Req(
        f"/users/{w.user()}/enable", form={})),
    ("POST", "/users/{user_id}/remove"): ("admin", lambda w: Req(
        f"/users/{w.user()}/remove", form={})),
    ("GET", "/runs"): ("monitor", lambda w: Req("/runs")),
    ("GET", "/runs/{run_id}"): ("monitor", lambda w: Req(f"/runs/{w.ids['run']}")),
    # integrations and the connection list's delete (web/routes/integrations.py, connections.py)
    ("POST", "/connections/{connection_id}/delete"): ("manage", lambda w: Req(
        f"/connections/{w.connection()}/delete", form={})),
    ("GET", "/integrations"): ("monitor", lambda w: Req("/integrations")),
    ("POST", "/integrations"): ("manage", lambda w: Req(
        "/integrations", form={"name": f"Page integration {next(_serial)}"})),
    ("GET", "/integrations/{integration_id}"): ("monitor", lambda w: Req(
        f"/integrations/{w.ids['integration']}")),
    ("POST", "/integrations/{integration_id}/rename"): ("manage", lambda w: Req(
        f"/integrations/{w.integration()}/rename", form={"name": f"Renamed {next(_serial)}"})),
    ("POST", "/integrations/{integration_id}/delete"): ("manage", lambda w: Req(
        f"/integrations/{w.integration()}/delete", form={})),
    # the flow builder (web/routes/flows/)
    ("GET", "/flows"): ("monitor", lambda w: Req("/flows")),
    ("GET", "/flows/new"): ("manage", lambda w: Req("/flows/new")),
    ("POST", "/flows"): ("manage", lambda w: Req("/flows", form={
        "name": f"Built {next(_serial)}", "integration": w.ids["integration"]})),
    ("POST", "/flows/import"): ("manage", lambda w: Req("/flows/import", form={})),
    ("GET", "/flows/{flow_id}"): ("monitor", lambda w: Req(f"/flows/{w.ids['flow']}")),
    ("POST", "/flows/{flow_id}/rename"): ("manage", lambda w: Req(
        f"/flows/{w.flow()}/rename", form={"name": f"Renamed {next(_serial)}"})),
    ("POST", "/flows/{flow_id}/enable"): ("manage", lambda w: Req(
        f"/flows/{w.flow()}/enable", form={})),
    ("POST", "/flows/{flow_id}/disable"): ("manage", lambda w: Req(
        f"/flows/{w.flow()}/disable", form={})),
    ("POST", "/flows/{flow_id}/run"): ("manage", lambda w: Req(
        f"/flows/{w.flow()}/run", form={})),
    ("POST", "/flows/{flow_id}/delete"): ("manage", lambda w: Req(
        f"/flows/{w.flow()}/delete", form={})),
    ("GET", "/flows/{flow_id}/source"): ("monitor", lambda w: Req(
        f"/flows/{w.ids['flow']}/source")),
    ("POST", "/flows/{flow_id}/source"): ("manage", lambda w: Req(
        f"/flows/{w.flow()}/source", form={"app": "files"})),
    ("GET", "/flows/{flow_id}/steps"): ("monitor", lambda w: Req(
        f"/flows/{w.ids['flow']}/steps")),
    ("POST", "/flows/{flow_id}/steps"): ("manage", lambda w: Req(
        f"/flows/{w.flow()}/steps", form={"expression": "1 == 1"})),
    ("POST", "/flows/{flow_id}/steps/preview"): ("manage", lambda w: Req(
        f"/flows/{w.ids['flow']}/steps/preview", form={"expression": "1 == 1"})),
    ("GET", "/flows/{flow_id}/schedule"): ("monitor", lambda w: Req(
        f"/flows/{w.ids['flow']}/schedule")),
    ("GET", "/flows/{flow_id}/schedule/next"): ("monitor", lambda w: Req(
        f"/flows/{w.ids['flow']}/schedule/next?schedule.cron=0+*+*+*+*")),
    ("POST", "/flows/{flow_id}/schedule"): ("manage", lambda w: Req(
        f"/flows/{w.flow()}/schedule", form={"schedule.cron": "0 * * * *"})),
    ("GET", "/flows/{flow_id}/imports/new"): ("monitor", lambda w: Req(
        f"/flows/{w.ids['flow']}/imports/new")),
    ("GET", "/flows/{flow_id}/imports/new/connection"): ("manage", lambda w: Req(
        f"/flows/{w.ids['flow']}/imports/new/connection?name=x&call=track")),
    ("GET", "/flows/{flow_id}/imports/{index}"): ("monitor", lambda w: Req(
        f"/flows/{w.ids['flow']}/imports/0")),
    ("POST", "/flows/{flow_id}/imports/{index}"): ("manage", lambda w: Req(
        f"/flows/{w.flow()}/imports/0", form={"name": "Orders 2", "connection": "Segment A"})),
    ("POST", "/flows/{flow_id}/imports/{index}/snapshot/reset"): ("manage", lambda w: Req(
        f"/flows/{w.flow()}/imports/0/snapshot/reset", form={})),
    ("POST", "/flows/{flow_id}/imports/{index}/delete"): ("manage", lambda w: Req(
        f"/flows/{w.flow()}/imports/0/delete", form={})),
    # the Lookup pane (web/routes/flows/lookups.py)
    ("GET", "/flows/{flow_id}/lookups/new"): ("monitor", lambda w: Req(
        f"/flows/{w.ids['flow']}/lookups/new")),
    ("POST", "/flows/{flow_id}/lookups/new/connection"): ("manage", lambda w: Req(
        f"/flows/{w.ids['flow']}/lookups/new/connection", form=_lookup_form(w))),
    ("POST", "/flows/{flow_id}/lookups"): ("manage", lambda w: Req(
        f"/flows/{w.flow()}/lookups", form=_lookup_form(w))),
    ("GET", "/flows/{flow_id}/lookups/{index}"): ("monitor", lambda w: Req(
        f"/flows/{_lookup_flow(w)}/lookups/0")),
    ("POST", "/flows/{flow_id}/lookups/{index}"): ("manage", lambda w: Req(
        f"/flows/{_lookup_flow(w, fresh=True)}/lookups/0",
        form={**_lookup_form(w), "lookup.on_missing": "ignore_record"})),
    ("POST", "/flows/{flow_id}/lookups/{index}/delete"): ("manage", lambda w: Req(
        f"/flows/{_lookup_flow(w, fresh=True)}/lookups/0/delete", form={})),
    # a webhook flow's box (web/routes/flows/webhook.py)
    ("GET", "/flows/{flow_id}/webhook"): ("monitor", lambda w: Req(
        f"/flows/{w.ids['webhook_flow']}/webhook")),
    ("POST", "/flows/{flow_id}/webhook"): ("manage", lambda w: Req(
        f"/flows/{w.ids['webhook_flow']}/webhook", form={})),
    ("POST", "/flows/{flow_id}/webhook/rotate"): ("manage", lambda w: Req(
        f"/flows/{w.ids['webhook_flow']}/webhook/rotate", form={})),
    ("POST", "/flows/{flow_id}/webhook/secret"): ("manage", lambda w: Req(
        f"/flows/{w.ids['webhook_flow']}/webhook/secret", form={"secret": "s3cret"})),
    ("GET", "/flows/{flow_id}/yaml"): ("monitor", lambda w: Req(
        f"/flows/{w.ids['flow']}/yaml")),
    ("GET", "/flows/{flow_id}/flow.yaml"): ("monitor", lambda w: Req(
        f"/flows/{w.ids['flow']}/flow.yaml")),
    ("POST", "/flows/{flow_id}/yaml"): ("manage", lambda w: Req(
        f"/flows/{w.flow()}/yaml", form={})),
    # the mapping editor (web/routes/mapping.py)
    ("GET", "/flows/{flow_id}/imports/{n}/mapping"): ("manage", lambda w: Req(
        f"/flows/{w.ids['flow']}/imports/0/mapping")),
    ("POST", "/flows/{flow_id}/imports/{n}/mapping/preview"): ("manage", lambda w: Req(
        f"/flows/{w.ids['flow']}/imports/0/mapping/preview", form=_mapping_form(w))),
    ("POST", "/flows/{flow_id}/imports/{n}/mapping/form"): ("manage", lambda w: Req(
        f"/flows/{w.ids['flow']}/imports/0/mapping/form", form=_mapping_form(w))),
    ("POST", "/flows/{flow_id}/imports/{n}/mapping"): ("manage", lambda w: Req(
        f"/flows/{w.flow()}/imports/0/mapping", form=_mapping_form(w))),
    # runs and record errors (web/routes/runs.py)
    ("GET", "/flows/{flow_id}/runs"): ("monitor", lambda w: Req(
        f"/flows/{w.ids['flow']}/runs")),
    ("POST", "/flows/{flow_id}/runs"): ("manage", lambda w: Req(
        f"/flows/{w.flow()}/runs", form={})),
    ("POST", "/runs/{run_id}/cancel"): ("manage", lambda w: Req(
        f"/runs/{w.queued_run()}/cancel", form={})),
    ("POST", "/flows/{flow_id}/errors/resolve"): ("manage", lambda w: _page_errors(w)),
    ("POST", "/flows/{flow_id}/errors/retry"): ("manage", lambda w: _page_errors(w, "retry")),
}


def _yaml(doc: dict[str, Any]) -> bytes:
    import yaml

    return yaml.safe_dump(doc).encode()


def _errors(world: World, action: str) -> Req:
    flow_id, error_id = world.open_error()
    return Req(f"/api/v1/flows/{flow_id}/errors/{action}", json={"error_ids": [error_id]})


def _page_errors(world: World, action: str = "resolve") -> Req:
    flow_id, error_id = world.open_error()
    return Req(f"/flows/{flow_id}/errors/{action}", form={"error": error_id})


def _mapping_form(_world: World) -> dict[str, str]:
    return {"name": "Orders", "connection": "Segment A", "call": "track",
            "f.userId.kind": "field", "f.userId.value": "customer_id",
            "f.event.kind": "constant", "f.event.value": "Order Completed"}


def _lookup_form(world: World) -> dict[str, str]:
    _crm(world)
    return {"lookup.name": "customer", "lookup.connection": "CRM A",
            "lookup.query": "select id, plan from customers where id in :customer",
            "param": "customer", "param_field": "customer_id", "lookup.key_column": "id",
            "lookup.on_missing": "leave_empty"}


def _crm(world: World) -> None:
    """A Database connection of A, 'CRM A', on a SQLite customers table (made once)."""
    if "crm" in world.ids:
        return
    from pathlib import Path

    from sqlalchemy import create_engine, text

    path = Path(world.runtime.settings.file_roots.split(":")[0]) / "matrix-crm.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE customers (id TEXT PRIMARY KEY, plan TEXT)"))
        connection.execute(text("INSERT INTO customers VALUES ('c1', 'pro')"))
    engine.dispose()
    draft = ConnectionDraft(name="CRM A", application="database",
                            settings={"url": f"sqlite:///{path}"})
    world.ids["crm"] = world.runtime.connections.create(world.admin, draft)[0].id


def _lookup_flow(world: World, *, fresh: bool = False) -> str:
    """A flow of A with one lookup step; the same one unless ``fresh``."""
    if not fresh and "lookup_flow" in world.ids:
        return world.ids["lookup_flow"]
    form = _lookup_form(world)
    doc = {**flow_doc(world, f"Lookup flow {next(_serial)}"), "steps": [{"lookup": {
        "name": "customer", "connection": "CRM A", "query": form["lookup.query"],
        "params": {"customer": "customer_id"}, "key_column": "id"}}]}
    flow_id: str = world.runtime.flows.create(world.admin, doc).id
    if not fresh:
        world.ids["lookup_flow"] = flow_id
    return flow_id


def _pane_form(world: World, name: str) -> dict[str, str]:
    return {"name": name, "settings.write_key": world.sources[0],
            "settings.endpoint": world.server.sandbox_url, "then": "stay"}


# ---- the routes of the app ------------------------------------------------------------------

def served_routes(runtime: Any) -> set[tuple[str, str]]:
    """The routes of the app as ``segbridge serve`` builds it."""
    from segbridge.assembly import create_app

    app = create_app(runtime)
    try:
        return app_routes(app.routes)
    finally:
        if app.state.local_segment is not None:
            app.state.local_segment.close()


def app_routes(routes: Any) -> set[tuple[str, str]]:
    """Every (method, path) served, but the local Segment, static files and docs; included
    routers are walked (FastAPI includes them lazily)."""
    found: set[tuple[str, str]] = set()
    for route in routes:
        if hasattr(route, "effective_candidates"):
            found |= app_routes(route.effective_candidates())
            continue
        path = getattr(route, "path", "")
        if path.startswith(SKIPPED_PREFIXES) or path in SKIPPED_PATHS:
            continue
        methods = getattr(route, "methods", None)
        if not methods:
            raise AssertionError(f"a route without methods: {route!r}; add it to the matrix "
                                 "or to its skipped paths with a reason")
        found |= {(method, path) for method in methods if method != "HEAD"}
    return found


# ---- account A's data, to prove a refused call changed nothing ------------------------------

def fingerprint(world: World) -> tuple[Any, ...]:
    a = world.account_a
    with world.runtime.db.session() as session:
        def rows(*columns: Any, where: Any) -> list[tuple[Any, ...]]:
            return sorted((tuple(row) for row in session.execute(select(*columns).where(where))),
                          key=repr)

        users = select(User.id).where(User.account_id == a)
        connections = select(Connection.id).where(Connection.account_id == a)
        integrations = select(Integration.id).where(Integration.account_id == a)
        return (
            session.scalar(select(func.count(Account.id))),
            rows(Connection.id, Connection.name, Connection.settings, Connection.status,
                 Connection.last_test_at, Connection.updated_at, where=Connection.account_id == a),
            rows(ConnectionSecret.connection_id, ConnectionSecret.ciphertext,
                 where=ConnectionSecret.connection_id.in_(connections)),
            rows(Integration.id, Integration.name, where=Integration.account_id == a),
            rows(IntegrationConnection.integration_id, IntegrationConnection.connection_id,
                 where=IntegrationConnection.integration_id.in_(integrations)),
            rows(Flow.id, Flow.name, Flow.enabled, Flow.definition, Flow.updated_at,
                 Flow.active_run_id, where=Flow.account_id == a),
            rows(Run.id, Run.status, where=Run.account_id == a),
            rows(RecordErrorRow.id, RecordErrorRow.status, RecordErrorRow.data,
                 where=RecordErrorRow.account_id == a),
            rows(Upload.id, where=Upload.account_id == a),
            rows(User.id, User.email, User.role, User.disabled_at, where=User.account_id == a),
            rows(ApiToken.id, ApiToken.kind, ApiToken.used_at, ApiToken.expires_at,
                 where=ApiToken.user_id.in_(users)),
            session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.account_id == a)),
        )


# ---- the world: account A with admin, manage and monitor users; account B with its admin ----

@pytest.fixture
def world(server: Server) -> Iterator[World]:
    runtime = server.runtime
    with runtime.db.session() as session:
        admin_user = accounts.find_user(session, ADMIN_EMAIL)
        account_a = admin_user.account_id
        admin = accounts.principal_for(admin_user, via="token")
        callers = [Caller("admin of A", admin, "instance")]
        for role in ("manage", "monitor"):
            user = accounts.create_user(session, account_a, f"{role}@a.example", None, role=role)
            callers.append(Caller(f"{role} of A", accounts.principal_for(user, via="token"), role))
        other = accounts.create_account(session, "B")
        b_admin = accounts.create_user(session, other.id, "admin@b.example", None, role="admin")
        callers.append(Caller("admin of B", accounts.principal_for(b_admin, via="token"),
                              "admin", other_account=True))
    built = World(server, account_a, admin, callers)
    built.sources.append(server.create_source("Matrix A")["write_key"])
    upload = server.api.post("/api/v1/uploads", content=CSV, params={"filename": "o.csv"})
    assert upload.status_code == 201, upload.text
    built.ids["upload"] = upload.json()["id"]
    draft = ConnectionDraft(name="Segment A", application="segment",
                            settings=server.segment_settings(built.sources[0]))
    built.ids["connection"] = runtime.connections.create(admin, draft)[0].id
    built.ids["integration"] = runtime.integrations.create(admin, "Shop A").id
    built.ids["flow"] = runtime.flows.create(admin, flow_doc(built, "Orders A")).id
    hooks = {**flow_doc(built, "Hooks A"), "export": {"type": "webhook"}}
    built.ids["webhook_flow"] = runtime.flows.create(admin, hooks).id
    listener = server.api.post(f"/api/v1/flows/{built.ids['webhook_flow']}/webhook")
    assert listener.status_code == 201, listener.text
    flow_id, _error_id = built.open_error()
    with runtime.db.session() as session:
        built.ids["run"] = session.scalar(select(Run.id).where(Run.flow_id == flow_id))
    yield built


def credentials(world: World, caller: Caller) -> dict[str, str]:
    """A fresh API token and browser session of the caller, as request headers."""
    with world.runtime.db.session() as session:
        user = session.get(User, caller.principal.user_id)
        token = accounts.issue_token(session, user, kind="api", name="matrix")
        cookie = accounts.issue_token(session, user, kind="session", name="matrix",
                                      ttl=accounts.SESSION_TTL)
    return {"Authorization": f"Bearer {token}", "Cookie": f"{SESSION_COOKIE}={cookie}",
            CSRF_HEADER: csrf_token_for(cookie), "X-Matrix-Csrf": csrf_token_for(cookie)}


def call(world: World, method: str, req: Req, headers: dict[str, str]) -> httpx.Response:
    form = None
    if req.form is not None:
        form = {"csrf_token": headers["X-Matrix-Csrf"], **req.form}
    with httpx.Client(base_url=world.server.base_url, trust_env=False, timeout=30) as client:
        return client.request(method, req.path, json=req.json, content=req.content, data=form,
                              headers=headers, follow_redirects=False)


def allowed(caller: Caller, least: str, scoped: bool) -> bool:
    if least == "public":
        return True
    if caller.other_account and scoped:
        return False
    return RANK[caller.role] >= RANK[least]


def is_scoped(path: str) -> bool:
    return "{" in path and "{app_key}" not in path


# ---- the tests ------------------------------------------------------------------------------

def test_every_route_of_the_app_has_an_entry_in_the_role_matrix(server: Server) -> None:
    routes = served_routes(server.runtime)
    missing = sorted(routes - set(EXPECT))
    stale = sorted(set(EXPECT) - routes)
    assert not missing, f"routes without an entry in the role matrix (add them to EXPECT): " \
                        f"{missing}"
    assert not stale, f"entries of the role matrix for routes that no longer exist: {stale}"


def test_every_route_answers_each_role_and_another_account_as_the_matrix_says(
    world: World,
) -> None:
    problems: list[str] = []
    routes = sorted(served_routes(world.runtime) & set(EXPECT))
    # the least powerful first: a refused call must find account A as it was
    callers = sorted(world.callers, key=lambda c: (not c.other_account, RANK[c.role]))
    for caller in callers:
        for method, path in routes:
            least, build = EXPECT[(method, path)]
            req = build(world)
            headers = credentials(world, caller)
            before = fingerprint(world)
            answer = call(world, method, req, headers)
            problem = judge(world, caller, method, path, req, least, answer, before)
            if problem:
                problems.append(problem)
    assert not problems, "\n".join(problems)


def judge(world: World, caller: Caller, method: str, path: str, req: Req, least: str,
          answer: httpx.Response, before: tuple[Any, ...]) -> str | None:
    where = f"{caller.name}: {method} {path} -> {answer.status_code} {answer.text[:200]!r}"
    if answer.status_code >= 500:
        return f"server error; {where}"
    if least == "public":
        return None
    scoped = is_scoped(path)
    if allowed(caller, least, scoped):
        to_login = (answer.is_redirect and path != "/logout"
                    and answer.headers.get("location", "").startswith("/login"))
        if answer.status_code in (401, 403, 404) or to_login:
            return f"expected allowed; {where}"
        return None
    expected = (403, 404) if caller.other_account else (403,)
    if answer.status_code not in expected:
        return f"expected {' or '.join(map(str, expected))}; {where}"
    if fingerprint(world) != before:
        return f"refused, yet account A's data changed; {where}"
    if caller.other_account:
        for value in world.ids.values():
            if value in answer.text and value not in req.path:
                return f"another account's answer names {value}; {where}"
    return None
