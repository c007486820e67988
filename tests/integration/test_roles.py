"""Roles and accounts as users meet them: what a monitor is refused (API, CLI, pages), the
last admin of an account, disabled and removed users, accounts made by the instance admin."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from segbridge.accounts import service as accounts
from segbridge.accounts.sessions import CSRF_HEADER, SESSION_COOKIE, csrf_token_for
from segbridge.cli.main import cli
from segbridge.core.settings import Settings
from segbridge.runtime import ADMIN_EMAIL, first_start
from segbridge.storage.models import ApiToken, AuditEntry, Flow, RecordErrorRow, User
from tests.integration.conftest import Server

LINK = re.compile(r"https?://\S+/login\?token=(\S+)")


def user_client(server: Server, email: str, role: str,
                account_id: str | None = None) -> tuple[httpx.Client, str]:
    """An API client for a new user of the admin's account (or of ``account_id``)."""
    with server.runtime.db.session() as session:
        account = account_id or accounts.find_user(session, ADMIN_EMAIL).account_id
        user = accounts.create_user(session, account, email, None, role=role)
        token = accounts.issue_token(session, user, kind="api", name="t")
        user_id = user.id
    client = httpx.Client(base_url=server.base_url, trust_env=False, timeout=30,
                          headers={"Authorization": f"Bearer {token}"})
    return client, user_id


def browser_for(server: Server, email: str) -> httpx.Client:
    with server.runtime.db.session() as session:
        token = accounts.issue_token(session, accounts.find_user(session, email),
                                     kind="session", name="browser", ttl=accounts.SESSION_TTL)
    return httpx.Client(base_url=server.base_url, trust_env=False, timeout=30,
                        cookies={SESSION_COOKIE: token})


# ---- what each role may do -------------------------------------------------------------------

def test_a_monitor_reads_but_is_refused_every_change_with_the_role_it_needs(
    server: Server, source: dict[str, Any],
) -> None:
    mine = server.new_connection("Prod", source["write_key"])
    monitor, _ = user_client(server, "mo@example.com", "monitor")
    with monitor:
        assert monitor.get("/api/v1/me").json()["role"] == "monitor"
        assert [c["name"] for c in monitor.get("/api/v1/connections").json()] == ["Prod"]
        refused = monitor.post("/api/v1/connections", json={
            "name": "Mine", "application": "segment",
            "settings": server.segment_settings(source["write_key"])})
        assert refused.status_code == 403
        message = refused.json()["error"]["message"]
        assert message == ("Your role (monitor) may not create, edit or delete connections; "
                           "this needs the manage or admin role. Ask an admin of the account.")
        tested = monitor.post(f"/api/v1/connections/{mine['id']}/test")
        assert tested.status_code == 403
        assert "may not test connections" in tested.json()["error"]["message"]
        assert monitor.delete(f"/api/v1/connections/{mine['id']}").status_code == 403
    names = [c["name"] for c in server.api.get("/api/v1/connections").json()]
    assert names == ["Prod"]
    assert server.api.get("/api/v1/me").json()["role"] == "admin"


def test_a_manage_user_builds_but_cannot_manage_users(server: Server,
                                                      source: dict[str, Any]) -> None:
    manager, _ = user_client(server, "ma@example.com", "manage")
    with manager:
        created = manager.post("/api/v1/connections", json={
            "name": "Built by manage", "application": "segment",
            "settings": server.segment_settings(source["write_key"])})
        assert created.status_code == 201, created.text
        invited = manager.post("/api/v1/users", json={"email": "x@example.com",
                                                      "role": "admin"})
        assert invited.status_code == 403
        assert "needs the admin role" in invited.json()["error"]["message"]
        assert manager.get("/api/v1/users").status_code == 403


def test_a_monitor_sees_record_errors_without_their_data(server: Server,
                                                         source: dict[str, Any]) -> None:
    server.new_connection("Segment", source["write_key"])
    assert server.api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
    upload = server.api.post("/api/v1/uploads", content=b"id,email\n1,ana@example.com\n")
    flow = server.api.post("/api/v1/flows", json={
        "name": "Orders", "integration": "Shop",
        "export": {"type": "csv", "upload": upload.json()["id"], "key_field": "id"},
        "imports": [{"name": "People", "connection": "Segment", "call": "identify",
                     "mapping": {"userId": "id"}}]}).json()
    with server.runtime.db.session() as session:
        from segbridge.runs.store import create_run

        row = session.get(Flow, flow["id"])
        run = create_run(session, row, trigger="manual", fresh_message_ids=False,
                         definition=dict(row.definition))
        run.status, row.active_run_id = "completed_with_errors", None
        session.add(RecordErrorRow(id="err_roles1", account_id=row.account_id, flow_id=row.id,
                                   run_id=run.id, position=0, ref="row 2", step="map",
                                   reason="userId is missing", raw="1,ana@example.com",
                                   data={"id": "1", "email": "ana@example.com"}))
    monitor, _ = user_client(server, "mo@example.com", "monitor")
    with monitor:
        seen = monitor.get(f"/api/v1/flows/{flow['id']}/errors").json()
        assert [(e["reason"], e["data"], e["raw"], e["data_hidden"]) for e in seen] == [
            ("userId is missing", None, None, True)]
        assert "ana@example.com" not in monitor.get(f"/api/v1/flows/{flow['id']}/errors").text
        preview = monitor.post(f"/api/v1/flows/{flow['id']}/preview", json={})
        assert preview.status_code == 403
        assert "may not preview flows" in preview.json()["error"]["message"]
    shown = server.api.get(f"/api/v1/flows/{flow['id']}/errors").json()
    assert shown[0]["data"] == {"id": "1", "email": "ana@example.com"}
    assert shown[0]["data_hidden"] is False


# ---- the pages -------------------------------------------------------------------------------

def test_a_monitors_pages_have_no_buttons_it_may_not_use(server: Server,
                                                          source: dict[str, Any]) -> None:
    mine = server.new_connection("Prod", source["write_key"])
    user_client(server, "mo@example.com", "monitor")[0].close()
    user_client(server, "ma@example.com", "manage")[0].close()
    with browser_for(server, "mo@example.com") as monitor, \
            browser_for(server, "ma@example.com") as manager:
        for page, marks in [("/connections", ['id="create-connection"', "/retest"]),
                            (f"/connections/{mine['id']}", ['id="save-button"',
                                                           'id="test-button"']),
                            ("/", ['href="/connections/new/segment"'])]:
            as_monitor, as_manager = monitor.get(page), manager.get(page)
            assert as_monitor.status_code == as_manager.status_code == 200, page
            for mark in marks:
                assert mark in as_manager.text, (page, mark)
                assert mark not in as_monitor.text, (page, mark)
        assert "can read this connection but not change or test it" in monitor.get(
            f"/connections/{mine['id']}").text
        refused = monitor.get("/connections/new/segment")
        assert refused.status_code == 403
        assert "Not allowed for your role" in refused.text
        assert "needs the manage or admin role" in refused.text


def test_an_admin_manages_users_on_the_users_page(server: Server) -> None:
    user_client(server, "ma@example.com", "manage")[0].close()
    with browser_for(server, ADMIN_EMAIL) as admin, \
            browser_for(server, "ma@example.com") as manager:
        csrf = csrf_token_for(admin.cookies[SESSION_COOKIE])
        assert 'id="nav-users"' in admin.get("/").text
        assert 'id="nav-users"' not in manager.get("/").text
        refused = manager.get("/users")
        assert refused.status_code == 403 and "needs the admin role" in refused.text
        invited = admin.post("/users", data={"csrf_token": csrf, "email": "mo@example.com",
                                             "role": "monitor"})
        assert invited.status_code == 201
        token = re.search(r'value="https?://[^"]+/login\?token=([^"]+)"', invited.text)
        assert token, invited.text
        users = {u["email"]: u for u in server.api.get("/api/v1/users").json()}
        assert users["mo@example.com"]["role"] == "monitor"
        changed = admin.post(f"/users/{users['mo@example.com']['id']}/role",
                             data={"csrf_token": csrf, "role": "manage"})
        assert changed.status_code == 303
        me = users[ADMIN_EMAIL]["id"]
        kept = admin.post(f"/users/{me}/disable", data={"csrf_token": csrf})
        assert kept.status_code == 409 and "is the last admin of the account" in kept.text
        page = admin.get("/users").text
        assert re.search(r'mo@example.com.*?<option value="manage" selected>', page, re.S)
    with httpx.Client(base_url=server.base_url, trust_env=False) as new_user:
        assert new_user.get(f"/login?token={token.group(1)}").status_code == 303
        assert new_user.get("/api/v1/me").json()["role"] == "manage"


# ---- users of an account ---------------------------------------------------------------------

def test_the_last_admin_can_never_be_demoted_disabled_or_removed(server: Server) -> None:
    me = server.api.get("/api/v1/users").json()
    admin_id = next(u["id"] for u in me if u["email"] == ADMIN_EMAIL)
    for method, path, body in [("PATCH", f"/api/v1/users/{admin_id}", {"role": "manage"}),
                               ("POST", f"/api/v1/users/{admin_id}/disable", None),
                               ("DELETE", f"/api/v1/users/{admin_id}", None)]:
        answer = server.api.request(method, path, json=body)
        assert answer.status_code == 409, (path, answer.text)
        assert "is the last admin of the account" in answer.json()["error"]["message"]
    second = server.api.post("/api/v1/users", json={"email": "bo@example.com",
                                                    "role": "admin"}).json()["user"]
    # with another admin, the instance admin is still not demoted (as it is not disabled)
    kept = server.api.patch(f"/api/v1/users/{admin_id}", json={"role": "monitor"})
    assert kept.status_code == 409, kept.text
    assert "is the instance admin" in kept.json()["error"]["message"]
    # a second admin who is not the instance admin can be demoted, and the last one is kept
    demoted = server.api.patch(f"/api/v1/users/{second['id']}", json={"role": "monitor"})
    assert demoted.status_code == 200 and demoted.json()["role"] == "monitor"
    assert server.api.patch(f"/api/v1/users/{admin_id}",
                            json={"role": "manage"}).status_code == 409
    with server.runtime.db.session() as session:
        actions = list(session.scalars(select(AuditEntry.action).where(
            AuditEntry.entity == "user").order_by(AuditEntry.id)))
    assert actions == ["invite", "change_role"]


def test_an_invitation_answers_a_one_time_link_stored_only_as_its_hash(server: Server) -> None:
    answer = server.api.post("/api/v1/users", json={"email": "new@example.com",
                                                    "role": "monitor"})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["user"]["role"] == "monitor" and body["user"]["has_password"] is False
    token = LINK.match(body["login_url"]).group(1)  # type: ignore[union-attr]
    with server.runtime.db.session() as session:
        hashes = list(session.scalars(select(ApiToken.token_hash)))
    assert token not in hashes and accounts.hash_token(token) in hashes
    with httpx.Client(base_url=server.base_url, trust_env=False) as browser:
        assert browser.get(f"/login?token={token}").status_code == 303
        assert browser.get("/api/v1/me").json() | {"account_id": None} == {
            "email": "new@example.com", "account_id": None, "role": "monitor",
            "is_admin": False, "is_instance_admin": False}
    bad = server.api.post("/api/v1/users", json={"email": "x@example.com", "role": "owner"})
    assert bad.status_code == 422


def test_a_disabled_users_token_and_session_are_refused_at_once(server: Server) -> None:
    client, user_id = user_client(server, "ma@example.com", "manage")
    browser = browser_for(server, "ma@example.com")
    with client, browser:
        assert client.get("/api/v1/me").status_code == 200
        assert browser.get("/api/v1/me").status_code == 200
        assert server.api.post(f"/api/v1/users/{user_id}/disable").json()["disabled"] is True
        for answer in (client.get("/api/v1/me"), browser.get("/api/v1/me")):
            assert answer.status_code == 401
            assert answer.json()["error"]["message"] == (
                "This user is disabled; ask an admin of the account.")
        page = browser.get("/connections", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        server.api.post(f"/api/v1/users/{user_id}/enable")
        assert client.get("/api/v1/me").status_code == 200  # the API token works again
        assert browser.get("/api/v1/me").status_code == 401  # the session ended for good
        assert server.api.delete(f"/api/v1/users/{user_id}").status_code == 204
        assert client.get("/api/v1/me").status_code == 401
    with server.runtime.db.session() as session:
        assert session.get(User, user_id) is None
        assert list(session.scalars(select(ApiToken).where(ApiToken.user_id == user_id))) == []


def test_another_accounts_users_answer_404(server: Server) -> None:
    with server.runtime.db.session() as session:
        other = accounts.create_account(session, "Other")
    eve, _ = user_client(server, "eve@other.example", "admin", account_id=other.id)
    mine = server.api.post("/api/v1/users", json={"email": "mo@example.com",
                                                  "role": "monitor"}).json()["user"]
    with eve:
        assert [u["email"] for u in eve.get("/api/v1/users").json()] == ["eve@other.example"]
        for method, path in [("PATCH", f"/api/v1/users/{mine['id']}"),
                             ("POST", f"/api/v1/users/{mine['id']}/disable"),
                             ("DELETE", f"/api/v1/users/{mine['id']}")]:
            answer = eve.request(method, path, json={"role": "admin"} if method == "PATCH"
                                 else None)
            assert answer.status_code == 404, path
    assert server.api.get("/api/v1/users").json()[-1]["role"] == "monitor"


# ---- accounts --------------------------------------------------------------------------------

def test_the_instance_admin_creates_accounts_by_api_and_others_are_refused(
    server: Server,
) -> None:
    created = server.api.post("/api/v1/accounts", json={"name": "Acme",
                                                        "admin_email": "owner@acme.example"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["account"]["name"] == "Acme" and body["admin"]["role"] == "admin"
    token = LINK.match(body["login_url"]).group(1)  # type: ignore[union-attr]
    with httpx.Client(base_url=server.base_url, trust_env=False) as owner:
        assert owner.get(f"/login?token={token}").status_code == 303
        me = owner.get("/api/v1/me").json()
        assert me["account_id"] == body["account"]["id"] and me["role"] == "admin"
        assert me["is_instance_admin"] is False
        csrf = {CSRF_HEADER: csrf_token_for(owner.cookies[SESSION_COOKIE])}
        for answer in (owner.get("/api/v1/accounts"),
                       owner.post("/api/v1/accounts", headers=csrf, json={
                           "name": "Mine", "admin_email": "x@y.example"})):
            assert answer.status_code == 403
            assert "Only the instance admin" in answer.json()["error"]["message"]
    listed = server.api.get("/api/v1/accounts").json()
    assert [(a["name"], a["users"]) for a in listed] == [("Default", 1), ("Acme", 1)]
    taken = server.api.post("/api/v1/accounts", json={"name": "Again",
                                                      "admin_email": "owner@acme.example"})
    assert taken.status_code == 409


# ---- the CLI ---------------------------------------------------------------------------------

def run(settings: Settings, *args: str, stdin: str | None = None) -> Result:
    env = {"SEGBRIDGE_HOME": str(settings.home),
           "SEGBRIDGE_DATABASE_URL": settings.resolved_database_url}
    return CliRunner().invoke(cli, list(args), env=env, input=stdin, obj={},
                              catch_exceptions=False)


@pytest.fixture
def cli_settings(runtime: Any, settings: Settings) -> Settings:
    first_start(runtime)
    return settings


def test_the_cli_acting_as_a_monitor_is_refused_with_the_role_it_needs(
    cli_settings: Settings,
) -> None:
    made = run(cli_settings, "users", "create", "mo@example.com", "--role", "monitor",
               "--no-password")
    assert made.exit_code == 0, made.output
    assert "Created user mo@example.com (monitor)." in made.output
    assert LINK.search(made.output)
    refused = run(cli_settings, "--as", "mo@example.com", "integrations", "create", "Shop")
    assert refused.exit_code == 1
    assert ("Your role (monitor) may not create, edit or delete integrations and flows; this "
            "needs the manage or admin role.") in refused.output
    listed = run(cli_settings, "--as", "mo@example.com", "integrations", "list", "--json")
    assert listed.exit_code == 0 and listed.output.strip() == "[]"
    users = run(cli_settings, "--as", "mo@example.com", "users", "list")
    assert users.exit_code == 1 and "needs the admin role" in users.output
    other_token = run(cli_settings, "--as", "mo@example.com", "users", "token", ADMIN_EMAIL)
    assert other_token.exit_code == 1 and "needs the admin role" in other_token.output
    own = run(cli_settings, "--as", "mo@example.com", "users", "token", "mo@example.com")
    assert own.exit_code == 0 and len(own.output.strip()) >= 40


def test_the_cli_manages_roles_and_keeps_the_last_admin(cli_settings: Settings) -> None:
    assert run(cli_settings, "users", "create", "ma@example.com", "--admin",
               "--no-password").exit_code == 0
    assert "ma@example.com is now manage." in run(
        cli_settings, "users", "role", "ma@example.com", "manage").output
    last = run(cli_settings, "users", "role", ADMIN_EMAIL, "monitor")
    assert last.exit_code == 1 and "is the last admin of the account" in last.output
    assert run(cli_settings, "users", "disable", "ma@example.com").exit_code == 0
    disabled = run(cli_settings, "--as", "ma@example.com", "connections", "list")
    assert disabled.exit_code == 1 and "is disabled" in disabled.output
    table = run(cli_settings, "users", "list").output
    assert re.search(r"ma@example.com\s+manage\s+disabled", table), table
    assert run(cli_settings, "users", "remove", "ma@example.com", "--yes").exit_code == 0
    assert "ma@example.com" not in run(cli_settings, "users", "list").output


def test_the_cli_creates_an_account_with_a_one_time_link_for_its_admin(
    cli_settings: Settings, runtime: Any,
) -> None:
    made = run(cli_settings, "accounts", "create", "Acme", "--admin", "owner@acme.example")
    assert made.exit_code == 0, made.output
    assert "Created account Acme" in made.output
    token = LINK.search(made.output).group(1)  # type: ignore[union-attr]
    with runtime.db.session() as session:
        session_token = accounts.redeem_login_link(session, token)
        principal = accounts.authenticate_token(session, session_token, kinds=("session",))
    assert (principal.email, principal.role) == ("owner@acme.example", "admin")
    listed = run(cli_settings, "accounts", "list")
    assert "Acme" in listed.output and "Default" in listed.output
    refused = run(cli_settings, "--as", "owner@acme.example", "accounts", "create", "X",
                  "--admin", "x@x.example")
    assert refused.exit_code == 1 and "Only the instance admin" in refused.output
    # a user of the new account is created there by the instance admin
    placed = run(cli_settings, "users", "create", "mo@acme.example", "--role", "monitor",
                 "--account", principal.account_id, "--no-password")
    assert placed.exit_code == 0, placed.output
    with runtime.db.session() as session:
        assert accounts.find_user(session, "mo@acme.example").account_id == \
            principal.account_id


def test_only_an_admin_rotates_the_master_key_when_the_cli_acts_as_a_user(
    cli_settings: Settings,
) -> None:
    run(cli_settings, "users", "create", "ma@example.com", "--role", "manage", "--no-password")
    refused = run(cli_settings, "--as", "ma@example.com", "keys", "rotate")
    assert refused.exit_code == 1
    assert "may not rotate the master key; this needs the admin role" in refused.output
    rotated = run(cli_settings, "--as", ADMIN_EMAIL, "keys", "rotate")
    assert rotated.exit_code == 0, rotated.output
