"""Named API tokens with an optional expiry and their last use: made once, listed without
their value, revoked at once (API and CLI)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update

from segbridge.accounts import service as accounts
from segbridge.cli.main import cli
from segbridge.core.clock import utcnow
from segbridge.runtime import ADMIN_EMAIL
from segbridge.storage.models import ApiToken
from tests.integration.conftest import Server


def bearer(server: Server, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, trust_env=False, timeout=30,
                        headers={"Authorization": f"Bearer {token}"})


def user_in(server: Server, email: str, *, role: str, account_id: str | None = None) -> str:
    """A user (in the admin's account unless told) and an API token of theirs."""
    with server.runtime.db.session() as session:
        if account_id is None:
            account_id = accounts.find_user(session, ADMIN_EMAIL).account_id
        user = accounts.create_user(session, account_id, email, None, role=role)
        return accounts.issue_token(session, user, kind="api", name="setup")


def create(client: httpx.Client, name: str, days: int | None = None) -> dict[str, object]:
    response = client.post("/api/v1/tokens", json={"name": name, "expires_in_days": days})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def test_a_named_token_with_expiry_is_shown_once_and_lists_its_last_use(
    server: Server, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    made = create(server.api, "nightly import", 30)
    value = str(made["token"])
    assert made["name"] == "nightly import" and made["last_used_at"] is None
    assert str(made["expires_at"]).startswith((utcnow() + timedelta(days=30)).date().isoformat())

    listed = server.api.get("/api/v1/tokens")
    assert value not in listed.text
    mine = next(t for t in listed.json() if t["id"] == made["id"])
    assert "token" not in mine and mine["last_used_at"] is None and mine["expired"] is False

    with bearer(server, value) as client:
        assert client.get("/api/v1/connections").status_code == 200
        first_use = next(t for t in client.get("/api/v1/tokens").json()
                         if t["id"] == made["id"])["last_used_at"]
        assert first_use is not None
        client.get("/api/v1/connections")  # within the minute: no new write
        again = next(t for t in client.get("/api/v1/tokens").json() if t["id"] == made["id"])
        assert again["last_used_at"] == first_use
    assert value not in caplog.text


def test_a_revoked_token_answers_401_at_once(server: Server) -> None:
    made = create(server.api, "to revoke")
    with bearer(server, str(made["token"])) as client:
        assert client.get("/api/v1/connections").status_code == 200
        assert server.api.delete(f"/api/v1/tokens/{made['id']}").status_code == 204
        refused = client.get("/api/v1/connections")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "not_authenticated"
    assert made["id"] not in server.api.get("/api/v1/tokens").text
    assert server.api.delete(f"/api/v1/tokens/{made['id']}").status_code == 404


def test_an_expired_token_answers_401(server: Server) -> None:
    made = create(server.api, "short lived", 1)
    with server.runtime.db.session() as session:
        session.execute(update(ApiToken).where(ApiToken.id == made["id"])
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
    with bearer(server, str(made["token"])) as client:
        assert client.get("/api/v1/connections").status_code == 401
    listed = next(t for t in server.api.get("/api/v1/tokens").json() if t["id"] == made["id"])
    assert listed["expired"] is True


def test_another_accounts_token_id_answers_404_and_is_never_listed(server: Server) -> None:
    with server.runtime.db.session() as session:
        other = accounts.create_account(session, "Other").id
    eve_token = user_in(server, "eve@other.example", role="admin", account_id=other)
    with bearer(server, eve_token) as eve:
        eves = create(eve, "eve's")
        mine = create(server.api, "mine")
        assert eve.delete(f"/api/v1/tokens/{mine['id']}").status_code == 404
        assert mine["id"] not in eve.get("/api/v1/tokens", params={"all_users": True}).text
        assert server.api.delete(f"/api/v1/tokens/{eves['id']}").status_code == 404
        assert eve.get("/api/v1/connections").status_code == 200


def test_an_admin_sees_and_revokes_the_accounts_tokens_a_member_only_their_own(
    server: Server,
) -> None:
    member_token = user_in(server, "mia@example.com", role="manage")
    with bearer(server, member_token) as mia:
        theirs = create(mia, "mia's script")
        assert [t["name"] for t in mia.get("/api/v1/tokens").json()] == [
            "mia's script", "setup"]
        assert mia.get("/api/v1/tokens", params={"all_users": True}).status_code == 403
        admins = create(server.api, "admin's")
        assert mia.delete(f"/api/v1/tokens/{admins['id']}").status_code == 403
        everyone = server.api.get("/api/v1/tokens", params={"all_users": True}).json()
        assert {"mia@example.com", ADMIN_EMAIL} <= {t["user_email"] for t in everyone}
        assert server.api.delete(f"/api/v1/tokens/{theirs['id']}").status_code == 204
        assert mia.get("/api/v1/tokens").json()[0]["name"] == "setup"


@pytest.mark.parametrize(("body", "field"), [
    ({"name": ""}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": "ok", "expires_in_days": 0}, "expires_in_days"),
    ({"name": "ok", "expires_in_days": 3651}, "expires_in_days"),
])
def test_a_token_needs_a_name_and_a_sensible_expiry(
    server: Server, body: dict[str, object], field: str,
) -> None:
    response = server.api.post("/api/v1/tokens", json=body)
    assert response.status_code == 422
    assert [p["field"] for p in response.json()["error"]["details"]] == [field]


def test_session_and_login_link_tokens_are_not_listed_as_api_tokens(server: Server) -> None:
    with server.runtime.db.session() as session:
        admin = accounts.find_user(session, ADMIN_EMAIL)
        accounts.issue_token(session, admin, kind="session", name="browser")
        accounts.issue_token(session, admin, kind="login", name="login link")
    assert {t["name"] for t in server.api.get("/api/v1/tokens").json()} == {"tests"}


def run(server: Server, *args: str) -> Result:
    env = {"SEGBRIDGE_HOME": str(server.runtime.settings.home),
           "SEGBRIDGE_DATABASE_URL": server.runtime.settings.resolved_database_url}
    return CliRunner().invoke(cli, list(args), env=env, obj={}, catch_exceptions=False)


def test_cli_makes_lists_and_revokes_tokens_without_printing_them_again(server: Server) -> None:
    made = run(server, "users", "token", ADMIN_EMAIL, "--name", "deploy",
               "--expires-in-days", "7")
    assert made.exit_code == 0, made.output
    value = made.stdout.strip()
    assert len(value) >= 40 and "\n" not in value
    assert "'deploy'" in made.stderr and "shown only now" in made.stderr

    table = run(server, "tokens", "list")
    assert "deploy" in table.output and "LAST USED" in table.output
    assert value not in table.output
    rows = json.loads(run(server, "tokens", "list", "--json").output)
    deploy = next(r for r in rows if r["name"] == "deploy")
    assert "token" not in deploy and value not in json.dumps(rows)

    with bearer(server, value) as client:
        assert client.get("/api/v1/connections").status_code == 200
        used = json.loads(run(server, "tokens", "list", "--json").output)
        assert next(r for r in used if r["name"] == "deploy")["last_used_at"] is not None
        revoked = run(server, "tokens", "revoke", deploy["id"])
        assert revoked.exit_code == 0 and "Revoked the token 'deploy'" in revoked.output
        assert client.get("/api/v1/connections").status_code == 401
    gone = run(server, "tokens", "revoke", deploy["id"])
    assert gone.exit_code == 1 and "No API token has the id" in gone.output


def test_cli_lists_another_users_tokens_with_as(server: Server) -> None:
    user_in(server, "mia@example.com", role="manage")
    listed = json.loads(run(server, "tokens", "list", "--as", "mia@example.com",
                            "--json").output)
    assert [(t["name"], t["user_email"]) for t in listed] == [("setup", "mia@example.com")]
