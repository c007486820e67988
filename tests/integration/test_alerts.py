"""Alerts through real parts: a segbridge server and its run executor, an SMTP server on
loopback (aiosmtpd) and a webhook receiver on loopback; runs fail, complete with errors,
connections go offline and come back."""

from __future__ import annotations

import email
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from segbridge.accounts import service as accounts
from segbridge.alerts import secrets as alert_secrets
from segbridge.alerts import throttle
from segbridge.alerts.models import AlertSettingsRow
from segbridge.alerts.service import AlertService, AlertSettingsDraft
from segbridge.core.access import AccessPolicy
from segbridge.core.clock import utcnow
from segbridge.core.errors import ValidationFailed
from segbridge.core.settings import Settings, load_settings
from segbridge.core.vault import new_key
from segbridge.runs.store import RunStore
from segbridge.runtime import ADMIN_EMAIL, Runtime
from segbridge.storage.db import Database
from segbridge.workers import Workers
from tests.integration.conftest import Server
from tests.integration.flows import conftest as flows
from tests.integration.flows.conftest import (
    Receiver,
    orders,
    segment_connection,
    track_flow,
    wait_for_run,
    write_csv,
)
from tests.support.servers import serve_in_thread, unused_port

receiver = flows.receiver  # the flows' fixtures, used here too
workers = flows.workers
shop = flows.shop

SECRET_PATH = "/services/T000/B000/XXXXsecretXXXXwebhookXXXX"


# ---- the real peers: an SMTP server and a webhook receiver on loopback ------------------------

@dataclass
class Mailbox:
    port: int = 0
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content)
        message["X-Rcpt"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"

    def wait(self, count: int, timeout: float = 10) -> list[Message]:
        return _wait(lambda: self.messages, count, timeout)


@dataclass
class Hook:
    url: str
    posts: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200

    def wait(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        return _wait(lambda: self.posts, count, timeout)


def _wait(items: Any, count: int, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while len(items()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return list(items())


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(port=unused_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture
def hook() -> Iterator[Hook]:
    received = Hook(url="")

    async def post(request: Request) -> Response:
        received.posts.append({"path": request.url.path, "json": await request.json()})
        return JSONResponse({"ok": received.status < 300}, status_code=received.status)

    app = Starlette(routes=[Route("/services/{rest:path}", post, methods=["POST"])])
    with serve_in_thread(app) as base:
        received.url = base + SECRET_PATH
        yield received


@pytest.fixture
def settings(tmp_path: Path, database_url: str, mailbox: Mailbox) -> Settings:
    return load_settings(home=tmp_path / "home", database_url=database_url,
                         file_roots=str(tmp_path), http_timeout_seconds=3.0,
                         smtp_host="127.0.0.1", smtp_port=mailbox.port,
                         public_url="https://segbridge.example", alert_interval_seconds=900)


# ---- helpers -----------------------------------------------------------------------------------

def configure(server: Server, hook: Hook, **changes: Any) -> dict[str, Any]:
    body = {"email_recipients": ["ops@example.com"], "webhook_url": hook.url, **changes}
    response = server.api.put("/api/v1/alerts", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def create_flow(server: Server, doc: dict[str, Any]) -> dict[str, Any]:
    response = server.api.post("/api/v1/flows", json=doc)
    assert response.status_code == 201, response.text
    flow: dict[str, Any] = response.json()
    return flow


def run_flow(server: Server, flow_id: str) -> dict[str, Any]:
    response = server.api.post(f"/api/v1/flows/{flow_id}/runs")
    assert response.status_code == 202, response.text
    return wait_for_run(server, response.json()["id"])


def failing_flow(server: Server, receiver: Receiver, tmp_path: Path) -> dict[str, Any]:
    """A flow whose runs fail: its CSV header is not UTF-8."""
    connection = segment_connection(server, receiver)
    path = tmp_path / "broken.csv"
    path.write_bytes(b"order_id,customer_\xff_id\n1,c1\n")
    return create_flow(server, track_flow("Orders", path, connection["name"]))


def erring_flow(server: Server, receiver: Receiver, tmp_path: Path,
                name: str = "Orders") -> dict[str, Any]:
    """A flow whose runs complete with 2 record errors out of 10 (a share of 0.2)."""
    connection = segment_connection(server, receiver, name=f"Segment {name}")
    rows = orders(10)
    rows[3]["customer_id"] = rows[7]["customer_id"] = ""  # no userId: a mapping error
    path = write_csv(tmp_path / f"{name}.csv", rows)
    return create_flow(server, track_flow(name, path, connection["name"]))


def wait_quiet(seconds: float = 0.5) -> None:
    time.sleep(seconds)  # nothing more arrives: deliveries are synchronous after the run


# ---- runs ------------------------------------------------------------------------------------

def test_a_failed_run_sends_one_email_and_one_webhook_naming_flow_run_and_link_and_no_flood(
    server: Server, receiver: Receiver, workers: Workers, mailbox: Mailbox, hook: Hook,
    tmp_path: Path, shop: dict[str, Any],
) -> None:
    configure(server, hook)
    flow = failing_flow(server, receiver, tmp_path)

    run = run_flow(server, flow["id"])

    assert run["status"] == "failed", run
    [mail] = mailbox.wait(1)
    [post] = hook.wait(1)
    assert mail["To"] == "ops@example.com" and "Orders" in mail["Subject"]
    body = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
    link = f"https://segbridge.example/runs/{run['id']}"
    for text in (body, post["json"]["text"]):
        assert "flow 'Orders'" in text and run["id"] in text and link in text
        assert "failed" in text and "not valid utf-8" in text
    assert set(post["json"]) == {"text"}  # Slack-compatible
    assert post["path"] == SECRET_PATH

    again = run_flow(server, flow["id"])  # a second failure within the interval

    assert again["status"] == "failed"
    wait_quiet()
    assert len(mailbox.messages) == 1 and len(hook.posts) == 1


def test_completed_with_errors_notifies_only_above_the_threshold(
    server: Server, receiver: Receiver, workers: Workers, mailbox: Mailbox, hook: Hook,
    tmp_path: Path, shop: dict[str, Any],
) -> None:
    configure(server, hook, run_errors_over_count=2, run_errors_over_share=0.5)
    flow = erring_flow(server, receiver, tmp_path)

    below = run_flow(server, flow["id"])  # 2 errors: not more than 2, a share of 0.2

    assert below["status"] == "completed_with_errors" and below["counts"]["failed"] == 2
    wait_quiet()
    assert mailbox.messages == [] and hook.posts == []

    configure(server, hook, run_errors_over_count=None, run_errors_over_share=0.1)
    above = run_flow(server, flow["id"])

    [mail] = mailbox.wait(1)
    [post] = hook.wait(1)
    assert "completed with errors" in mail["Subject"]
    assert above["id"] in post["json"]["text"] and "failed 2" in post["json"]["text"]

    configure(server, hook, run_errors_over_count=1, run_errors_over_share=None)
    other = erring_flow(server, receiver, tmp_path, name="Refunds")  # its own throttle
    run_flow(server, other["id"])
    assert len(mailbox.wait(2)) == 2 and "Refunds" in hook.wait(2)[1]["json"]["text"]


def test_a_failed_delivery_is_logged_without_the_url_and_never_fails_the_run(
    server: Server, receiver: Receiver, workers: Workers, mailbox: Mailbox, hook: Hook,
    tmp_path: Path, shop: dict[str, Any], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    configure(server, hook, run_errors_over_count=0)
    hook.status = 500
    flow = erring_flow(server, receiver, tmp_path)

    run = run_flow(server, flow["id"])

    assert run["status"] == "completed_with_errors"
    assert len(hook.wait(1)) == 1 and len(mailbox.wait(1)) == 1  # the email still went out
    assert "the webhook answered HTTP 500" in caplog.text
    assert SECRET_PATH not in caplog.text and "XXXXsecret" not in caplog.text


# ---- connections --------------------------------------------------------------------------

def test_a_connection_going_offline_and_coming_back_notifies_once_each(
    server: Server, receiver: Receiver, mailbox: Mailbox, hook: Hook, shop: dict[str, Any],
) -> None:
    configure(server, hook)
    connection = segment_connection(server, receiver)
    alerts = server.runtime.alerts
    assert alerts.check_connections() == 0  # seen online: nothing to say
    store = RunStore(server.runtime.db, "run_none", 30)

    store.set_connection_status(connection["id"], "offline")  # as a run that pauses does
    assert alerts.check_connections() == 1
    assert alerts.check_connections() == 0  # noticed once

    [post] = hook.wait(1)
    [mail] = mailbox.wait(1)
    assert "connection 'Segment'" in post["json"]["text"] and "went offline" in mail["Subject"]
    assert "https://segbridge.example/connections" in post["json"]["text"]

    back = server.runtime.connections.retest_offline()  # the receiver answers again
    assert back == 1
    assert alerts.check_connections() == 1
    assert "is back online" in hook.wait(2)[1]["json"]["text"]
    assert len(mailbox.wait(2)) == 2


# ---- the settings API ----------------------------------------------------------------------

def test_settings_are_validated_field_by_field_and_the_webhook_url_is_write_only(
    server: Server, hook: Hook, mailbox: Mailbox, settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    default = server.api.get("/api/v1/alerts").json()
    assert default["has_webhook_url"] is False and default["email_recipients"] == []
    assert default["run_failed"] is True and default["interval_seconds"] == 900

    bad = server.api.put("/api/v1/alerts", json={
        "email_recipients": ["ops@example.com", "not an address", "x@y.z\nBcc: a@b.c"],
        "webhook_url": "ftp://hooks.example/x", "run_errors_over_count": -1,
        "run_errors_over_share": 1.5})
    assert bad.status_code == 422
    fields = {d["field"] for d in bad.json()["error"]["details"]}
    assert fields == {"email_recipients.1", "email_recipients.2", "webhook_url",
                      "run_errors_over_count", "run_errors_over_share"}
    assert server.api.put("/api/v1/alerts", json={"webhook_url": "********"}).status_code == 422
    assert server.api.put("/api/v1/alerts", json={"nope": 1}).status_code == 422
    assert server.api.put("/api/v1/alerts", json={"run_failed": 0}).status_code == 422
    twice = server.api.put("/api/v1/alerts", json={"email_recipients": ["a@b.cc", "a@b.cc"]})
    assert twice.status_code == 422
    assert twice.json()["error"]["details"][0]["field"] == "email_recipients"

    saved = configure(server, hook)
    kept = server.api.put("/api/v1/alerts", json={"email_recipients": [],
                                                  "run_failed": False})
    assert kept.json()["has_webhook_url"] is True and kept.json()["run_failed"] is False
    tested = server.api.post("/api/v1/alerts/test")
    assert tested.json() == {"email": "not configured", "webhook": "sent"}
    assert "test alert" in hook.wait(1)[0]["json"]["text"]
    answers = [saved, kept.json(), server.api.get("/api/v1/alerts").text, tested.text]
    assert all("XXXXsecret" not in str(a) for a in answers)
    assert "XXXXsecret" not in caplog.text
    if settings.resolved_database_url.startswith("sqlite"):  # the raw bytes of the database
        raw = b"".join(p.read_bytes() for p in settings.home.glob("segbridge.sqlite3*"))
        raw += b"".join(p.read_bytes() for p in Path(
            settings.resolved_database_url.removeprefix("sqlite:///")).parent.glob("*.sqlite3*"))
        assert b"XXXXsecret" not in raw

    removed = server.api.put("/api/v1/alerts", json={"webhook_url": ""})
    assert removed.json()["has_webhook_url"] is False
    assert server.api.post("/api/v1/alerts/test").json() == {
        "email": "not configured", "webhook": "not configured"}


def test_a_monitor_reads_but_may_not_change_or_test_and_other_accounts_see_nothing(
    server: Server, hook: Hook, mailbox: Mailbox,
) -> None:
    configure(server, hook)
    with _client(server, "monitor@a.example", "monitor") as monitor:
        assert monitor.get("/api/v1/alerts").json()["has_webhook_url"] is True
        refused = monitor.put("/api/v1/alerts", json={"email_recipients": []})
        assert refused.status_code == 403 and "monitor" in refused.text
        assert monitor.post("/api/v1/alerts/test").status_code == 403

    with server.runtime.db.session() as session:
        other_account = accounts.create_account(session, "Other").id
    with _client(server, "admin@other.example", "admin", other_account) as stranger:
        theirs = stranger.get("/api/v1/alerts").json()
        assert theirs["has_webhook_url"] is False and theirs["email_recipients"] == []
        assert stranger.post("/api/v1/alerts/test").json() == {
            "email": "not configured", "webhook": "not configured"}
    assert hook.posts == [] and mailbox.messages == []


def _client(server: Server, email_address: str, role: str,
            account_id: str | None = None) -> httpx.Client:
    with server.runtime.db.session() as session:
        account = account_id or accounts.find_user(session, ADMIN_EMAIL).account_id
        user = accounts.create_user(session, account, email_address, None, role=role)
        token = accounts.issue_token(session, user, kind="api", name="t")
    return httpx.Client(base_url=server.base_url, trust_env=False, timeout=30,
                        headers={"Authorization": f"Bearer {token}"})


def test_the_outbound_policy_applies_to_the_webhook_host(runtime: Runtime, hook: Hook) -> None:
    strict = AccessPolicy.from_settings(runtime.settings.model_copy(
        update={"outbound_deny_private": True}))
    service = AlertService(runtime.db, runtime.vault, runtime.settings, strict)
    principal = _admin(runtime)
    with pytest.raises(ValidationFailed) as refused:
        service.update(principal, AlertSettingsDraft(webhook_url=hook.url))
    assert refused.value.problems[0].field == "webhook_url"
    assert "XXXXsecret" not in str(refused.value.as_dict())


def _admin(runtime: Runtime) -> accounts.Principal:
    from segbridge.runtime import first_start

    first_start(runtime)
    with runtime.db.session() as session:
        return accounts.principal_for(accounts.find_user(session, ADMIN_EMAIL), via="cli")


# ---- the throttle under concurrency (PostgreSQL and SQLite) ---------------------------------

@pytest.mark.sql
def test_concurrent_claims_let_exactly_one_sender_through(database_url: str) -> None:
    db = Database(database_url)
    try:
        for round_ in range(5):
            winners = _claim_concurrently(db, f"flow_{round_}", threads=8)
            assert winners == 1, f"round {round_}: {winners} senders"
        with db.session() as session:  # after the interval: one again
            later = utcnow().replace(year=utcnow().year + 1)
            assert throttle.claim(session, "acc", "flow_0", "run_failed", later, 900)
            assert not throttle.claim(session, "acc", "flow_0", "run_failed", later, 900)
    finally:
        db.dispose()


def _claim_concurrently(db: Database, subject: str, threads: int) -> int:
    barrier = threading.Barrier(threads)
    results: list[bool] = []

    def claim() -> None:
        barrier.wait()
        for _attempt in range(20):
            try:
                with db.session() as session:
                    results.append(throttle.claim(session, "acc", subject, "run_failed",
                                                  utcnow(), 900))
                return
            except Exception:  # SQLite: "database is locked" under contention - try again
                time.sleep(0.05)

    claimers = [threading.Thread(target=claim) for _ in range(threads)]
    for claimer in claimers:
        claimer.start()
    for claimer in claimers:
        claimer.join()
    assert len(results) == threads
    return sum(results)


# ---- master key rotation ----------------------------------------------------------------------

def test_key_rotation_can_reencrypt_the_webhook_url_onto_the_new_primary_key(
    runtime: Runtime, hook: Hook,
) -> None:
    principal = _admin(runtime)
    runtime.alerts.update(principal, AlertSettingsDraft(webhook_url=hook.url))
    old = runtime.vault.ring
    new = old.with_new_primary(new_key())
    with runtime.db.session() as session:
        assert alert_secrets.secrets_per_key(session) == {old.primary: 1}
        assert alert_secrets.reencrypt(session, new) == 1
    with runtime.db.session() as session:
        assert alert_secrets.secrets_per_key(session) == {new.primary: 1}
        row = session.get(AlertSettingsRow, principal.account_id)
        assert row is not None and row.webhook_ciphertext is not None
        only_new = new.without({old.primary})
        url = only_new.unseal(row.webhook_ciphertext, alert_secrets.webhook_aad(row.account_id))
        assert url.reveal() == hook.url
        assert alert_secrets.reencrypt(session, new) == 0
