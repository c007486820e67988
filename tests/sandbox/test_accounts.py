"""The local Segment mounted in segbridge: each account has its own sources, Debugger and
faults. Two accounts, A (the first) and B, each with users; a real server on loopback."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from segbridge.accounts import service as accounts
from segbridge.accounts.sessions import SESSION_COOKIE
from segbridge.assembly import create_app
from segbridge.runtime import ADMIN_EMAIL, Runtime, first_start
from segbridge.sandbox import SandboxState
from segbridge.server import ensure_sandbox_source
from tests.support.servers import serve_in_thread

from .test_state_files import old_state_file

pytestmark = pytest.mark.integration


@dataclass
class Member:
    """A signed-in user: an API client (bearer token) and a browser (session cookie)."""

    account_id: str
    api: httpx.Client
    browser: httpx.Client

    def new_source(self, name: str) -> dict[str, Any]:
        response = self.api.post("/api/sources", json={"name": name})
        assert response.status_code == 201, response.text
        source: dict[str, Any] = response.json()
        return source

    def source_ids(self) -> set[str]:
        response = self.api.get("/api/sources")
        assert response.status_code == 200, response.text
        return {s["id"] for s in response.json()["sources"]}

    def events(self, source_id: str) -> list[str]:
        response = self.api.get(f"/api/sources/{source_id}/events")
        assert response.status_code == 200, response.text
        return [e["message_id"] for e in response.json()["events"]]


@dataclass
class TwoAccounts:
    url: str
    app: Any
    runtime: Runtime
    sandbox: SandboxState
    clients: list[httpx.Client] = field(default_factory=list)

    def member(self, email: str, account_id: str | None = None, role: str = "admin") -> Member:
        with self.runtime.db.session() as session:
            if account_id is None:
                user = accounts.find_user(session, email)
            else:
                user = accounts.create_user(session, account_id, email, None, is_admin=False)
                user.role = role
            api_token = accounts.issue_token(session, user, kind="api", name="tests")
            browser_token = accounts.issue_token(session, user, kind="session", name="tests",
                                                 ttl=accounts.SESSION_TTL)
            account = user.account_id
        base = f"{self.url}/sandbox"
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {api_token}"},
                           trust_env=False)
        browser = httpx.Client(base_url=base, cookies={SESSION_COOKIE: browser_token},
                               trust_env=False)
        self.clients += [api, browser]
        return Member(account, api, browser)

    def new_account(self, name: str) -> str:
        with self.runtime.db.session() as session:
            return accounts.create_account(session, name).id

    def track(self, write_key: str, message_id: str, *, in_body: bool = False) -> int:
        call: dict[str, Any] = {"userId": "u1", "event": "Ordered", "messageId": message_id}
        headers = {}
        if in_body:
            call["writeKey"] = write_key
        else:
            basic = base64.b64encode(f"{write_key}:".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        with httpx.Client(base_url=f"{self.url}/sandbox", trust_env=False) as anonymous:
            return anonymous.post("/v1/track", json=call, headers=headers).status_code


@pytest.fixture
def two(runtime: Runtime) -> Iterator[TwoAccounts]:
    app = create_app(runtime)
    first_start(runtime)
    state: SandboxState = app.state.local_segment.state
    try:
        with serve_in_thread(app) as url:
            two = TwoAccounts(url, app, runtime, state)
            yield two
            for client in two.clients:
                client.close()
    finally:
        state.close()


@pytest.fixture
def alice(two: TwoAccounts) -> Member:
    """The admin of account A, the first account."""
    return two.member(ADMIN_EMAIL)


@pytest.fixture
def bob(two: TwoAccounts) -> Member:
    """The admin of account B."""
    return two.member("bob@b.example", two.new_account("B"), role="admin")


def form_token(page: str) -> str:
    tokens = set(re.findall(r'name="csrf_token" value="([^"]+)"', page))
    assert len(tokens) == 1, tokens
    return tokens.pop()


def test_an_account_lists_only_its_own_sources_and_write_keys(
    alice: Member, bob: Member
) -> None:
    theirs = bob.new_source("Bob's shop")
    ours = alice.new_source("Alice's shop")
    assert theirs["id"] not in alice.source_ids()
    assert ours["id"] in alice.source_ids()
    assert ours["id"] not in bob.source_ids()
    listing = alice.api.get("/api/sources").text
    assert theirs["write_key"] not in listing
    page = alice.browser.get("/sources").text
    assert "Alice&#39;s shop" in page
    assert theirs["write_key"] not in page
    assert "Bob&#39;s shop" not in page


@pytest.mark.parametrize("route", ["", "/events", "/stats", "/dropped"])
def test_another_accounts_source_id_answers_404(
    alice: Member, bob: Member, route: str
) -> None:
    theirs = bob.new_source("Bob's shop")
    response = alice.api.get(f"/api/sources/{theirs['id']}{route}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert theirs["write_key"] not in response.text


def test_another_accounts_source_cannot_be_renamed_or_deleted(
    two: TwoAccounts, alice: Member, bob: Member
) -> None:
    theirs = bob.new_source("Bob's shop")
    assert alice.api.patch(f"/api/sources/{theirs['id']}", json={"name": "Mine"}).status_code == 404
    assert alice.api.delete(f"/api/sources/{theirs['id']}").status_code == 404
    token = form_token(alice.browser.get("/sources").text)
    for action, data in (("rename", {"name": "Mine"}), ("delete", {})):
        page = alice.browser.post(f"/sources/{theirs['id']}/{action}",
                                  data={**data, "csrf_token": token})
        assert page.status_code == 404
        assert "No such source" in page.text
    assert bob.api.get(f"/api/sources/{theirs['id']}").json()["name"] == "Bob's shop"
    assert two.track(theirs["write_key"], "still-works") == 200
    assert bob.events(theirs["id"]) == ["still-works"]


def test_another_accounts_debugger_is_not_readable(
    two: TwoAccounts, alice: Member, bob: Member
) -> None:
    theirs = bob.new_source("Bob's shop")
    assert two.track(theirs["write_key"], "bobs-secret-order") == 200
    page = alice.browser.get(f"/sources/{theirs['id']}/debugger")
    assert page.status_code == 404
    stream = alice.api.get(f"/api/sources/{theirs['id']}/events/stream")
    assert stream.status_code == 404
    assert "bobs-secret-order" not in stream.text
    assert bob.events(theirs["id"]) == ["bobs-secret-order"]


def test_tracking_with_a_write_key_lands_only_in_its_own_accounts_debugger(
    two: TwoAccounts, alice: Member, bob: Member
) -> None:
    ours = alice.new_source("Alice's shop")
    theirs = bob.new_source("Bob's shop")
    assert two.track(theirs["write_key"], "for-bob") == 200
    assert two.track(theirs["write_key"], "for-bob-in-body", in_body=True) == 200
    assert bob.events(theirs["id"]) == ["for-bob-in-body", "for-bob"]
    assert alice.events(ours["id"]) == []
    assert two.sandbox.store.get(theirs["id"]).account_id == bob.account_id


def test_a_messageid_is_deduplicated_across_the_workspace_not_across_accounts(
    two: TwoAccounts, alice: Member, bob: Member
) -> None:
    web = alice.new_source("Alice's web")
    app = alice.new_source("Alice's app")
    bobs = bob.new_source("Bob's web")
    for source in (web, app, bobs):
        assert two.track(source["write_key"], "order-1") == 200
    assert alice.events(web["id"]) == ["order-1"]
    assert alice.events(app["id"]) == [], "the same id from another source of the workspace"
    assert bob.events(bobs["id"]) == ["order-1"], "another account is another workspace"


def test_an_admins_faults_apply_only_to_the_own_accounts_sources(
    two: TwoAccounts, alice: Member, bob: Member
) -> None:
    ours = alice.new_source("Alice's shop")
    theirs = bob.new_source("Bob's shop")
    assert alice.api.put("/api/faults", json={"error_500": 1.0}).status_code == 200
    assert two.track(ours["write_key"], "a-1") == 500
    assert two.track(ours["write_key"], "a-2", in_body=True) == 500
    assert two.track(theirs["write_key"], "b-1") == 200
    assert two.track(theirs["write_key"], "b-2", in_body=True) == 200
    assert bob.events(theirs["id"]) == ["b-2", "b-1"]
    assert bob.api.get("/api/faults").json()["active"] is False
    assert alice.api.get("/api/faults").json()["injected"] == {"500": 2}
    assert bob.api.delete("/api/faults").status_code == 200  # B's reset leaves A's faults
    assert two.track(ours["write_key"], "a-3") == 500


def test_a_manage_user_manages_the_own_accounts_sources_but_not_faults(
    two: TwoAccounts, alice: Member, bob: Member
) -> None:
    maker = two.member("maker@a.example", alice.account_id, role="manage")
    made = maker.new_source("Made by a maker")
    assert made["id"] in alice.source_ids()
    assert made["id"] not in bob.source_ids()
    assert maker.api.delete(f"/api/sources/{made['id']}").status_code == 204
    assert maker.api.put("/api/faults", json={"error_500": 1.0}).status_code == 403
    assert alice.api.get("/api/faults").json()["active"] is False


def test_a_monitor_sees_the_sources_but_changes_nothing_and_reads_no_events(
    two: TwoAccounts, alice: Member
) -> None:
    ours = alice.new_source("Alice's shop")
    assert two.track(ours["write_key"], "order-data") == 200
    watcher = two.member("watcher@a.example", alice.account_id, role="monitor")
    assert ours["id"] in watcher.source_ids()
    assert watcher.api.get(f"/api/sources/{ours['id']}/stats").json()["accepted"] == 1
    for route in ("/events", "/events/stream"):
        refused = watcher.api.get(f"/api/sources/{ours['id']}{route}")
        assert refused.status_code == 403
        assert "order-data" not in refused.text
    assert watcher.browser.get(f"/sources/{ours['id']}/debugger").status_code == 403
    assert watcher.api.post("/api/sources", json={"name": "Not allowed"}).status_code == 403
    assert watcher.api.patch(f"/api/sources/{ours['id']}", json={"name": "x"}).status_code == 403
    assert watcher.api.delete(f"/api/sources/{ours['id']}").status_code == 403
    assert watcher.api.put("/api/faults", json={"error_500": 1.0}).status_code == 403
    page = watcher.browser.get("/sources").text
    assert "Create source" not in page
    assert "Delete source" not in page
    assert f'/sources/{ours["id"]}/debugger' not in page
    assert "Alice&#39;s shop" in page
    assert alice.api.get(f"/api/sources/{ours['id']}").json()["name"] == "Alice's shop"


def test_a_new_account_gets_its_own_first_source_when_it_opens_the_local_segment(
    two: TwoAccounts, bob: Member
) -> None:
    page = bob.browser.get("/sources")
    assert page.status_code == 200
    sources = bob.api.get("/api/sources").json()["sources"]
    assert [s["name"] for s in sources] == ["My first source"]
    assert two.sandbox.store.by_write_key(sources[0]["write_key"]) is not None
    assert bob.api.delete(f"/api/sources/{sources[0]['id']}").status_code == 204
    assert bob.api.get("/api/sources").json()["sources"] == []  # given once, not again


def test_the_servers_default_source_belongs_to_the_first_account(
    two: TwoAccounts, alice: Member, bob: Member
) -> None:
    ensure_sandbox_source(two.app, two.runtime)  # as `segbridge serve` does at start
    default = [s for s in two.sandbox.store.list() if s.name == "My first source"]
    assert [s.account_id for s in default] == [alice.account_id]
    assert default[0].id in alice.source_ids()
    assert default[0].id not in bob.source_ids()


def test_sources_of_a_state_file_from_before_accounts_go_to_the_first_account(
    runtime: Runtime,
) -> None:
    keys = old_state_file(runtime.settings.home / "sandbox.sqlite3", "Old shop")
    app = create_app(runtime)
    first_start(runtime)
    ensure_sandbox_source(app, runtime)  # as `segbridge serve` does at start
    state: SandboxState = app.state.local_segment.state
    try:
        with serve_in_thread(app) as url:
            two = TwoAccounts(url, app, runtime, state)
            alice = two.member(ADMIN_EMAIL)
            bob = two.member("bob@b.example", two.new_account("B"))
            listed = alice.api.get("/api/sources").json()["sources"]
            assert [(s["name"], s["write_key"]) for s in listed] == [("Old shop", keys["Old shop"])]
            assert listed[0]["id"] not in bob.source_ids()
            assert two.track(keys["Old shop"], "after-the-upgrade") == 200
            assert alice.events(listed[0]["id"]) == ["after-the-upgrade"]
            for client in two.clients:
                client.close()
    finally:
        state.close()
