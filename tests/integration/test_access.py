"""Where data may come from: file exports and SQLite connections read only the operator's file
roots (never segbridge's home), and the outbound policy refuses private addresses when set.

The two theft paths of issue 10 are reproduced as an attacker tried them: the key ring read
through a CSV export whose delimiter and quote never occur, and segbridge's own database read
through a Database connection of another account.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from segbridge.accounts import service as accounts
from segbridge.assembly import create_app
from segbridge.core.access import AccessPolicy
from segbridge.core.errors import NotAllowedHere
from segbridge.core.settings import Settings, load_settings
from segbridge.runtime import Runtime, build_runtime, first_start
from tests.integration.conftest import Server
from tests.integration.flows.conftest import wait_for_run
from tests.support.hostile_mysql import HostileMySQL
from tests.support.servers import serve_in_thread, unused_port

RAW_CSV = {"delimiter": "\x01", "quote": "\x02", "header": ["line"]}


def other_account_api(server: Server) -> httpx.Client:
    """An API client signed in as the admin of a second account."""
    with server.runtime.db.session() as session:
        account = accounts.create_account(session, "Other")
        user = accounts.create_user(session, account.id, "mallory@other.example", None,
                                    is_admin=True)
        token = accounts.issue_token(session, user, kind="api", name="attack")
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"},
                        timeout=30, trust_env=False)


def flow_doc(export: dict[str, Any], connection: str) -> dict[str, Any]:
    return {"name": "Steal", "integration": "Shop", "export": export,
            "imports": [{"name": "Rows", "connection": connection, "call": "track",
                         "mapping": {"userId": "line", "event": {"constant": "Row"}}}]}


def key_material(settings: Settings) -> list[str]:
    ring = json.loads(settings.resolved_master_key_file.read_text())
    return list(ring["keys"])


@pytest.fixture
def segment_connection(server: Server, source: dict[str, Any]) -> str:
    server.api.post("/api/v1/integrations", json={"name": "Shop"})
    return str(server.new_connection("Segment - test", source["write_key"])["name"])


def test_a_member_cannot_read_the_key_ring_through_a_file_export(
        server: Server, segment_connection: str) -> None:
    home = server.runtime.settings.home
    key_file = str(home / "master.key")
    doc = flow_doc({"type": "csv", "path": key_file, "options": RAW_CSV}, segment_connection)

    preview = server.api.post("/api/v1/flows/new/preview", json={"flow": doc, "limit": 5})
    saved = server.api.post("/api/v1/flows", json=doc)

    assert preview.status_code == 403, preview.text
    assert "segbridge's own data" in preview.json()["error"]["message"]
    assert saved.status_code == 422, saved.text
    assert saved.json()["error"]["details"][0]["field"] == "export.path"
    for key in key_material(server.runtime.settings):
        assert key not in preview.text and key not in saved.text


def test_dot_dot_and_symlinks_do_not_lead_out_of_the_file_roots(
        server: Server, segment_connection: str, tmp_path: Path) -> None:
    roots = tmp_path / "data"
    roots.mkdir()
    link = roots / "innocent.csv"
    link.symlink_to(server.runtime.settings.home / "master.key")
    sneaky = f"{roots}/../home/master.key"
    outside = tmp_path.parent / "elsewhere.csv"

    answers = [server.api.post("/api/v1/flows/new/preview", json={
        "flow": flow_doc({"type": "csv", "path": str(path), "options": RAW_CSV},
                         segment_connection), "limit": 5})
        for path in (link, sneaky, outside)]

    assert [a.status_code for a in answers] == [403, 403, 403], [a.text for a in answers]
    assert "segbridge's own data" in answers[0].json()["error"]["message"]
    assert "segbridge's own data" in answers[1].json()["error"]["message"]
    assert "outside the directories" in answers[2].json()["error"]["message"]
    assert "SEGBRIDGE_FILE_ROOTS" in answers[2].json()["error"]["message"]


def test_a_file_inside_the_roots_is_read(server: Server, segment_connection: str,
                                         tmp_path: Path) -> None:
    data = tmp_path / "orders.csv"
    data.write_text("line\nana\n")
    doc = flow_doc({"type": "csv", "path": str(data)}, segment_connection)

    preview = server.api.post("/api/v1/flows/new/preview", json={"flow": doc, "limit": 5})

    assert preview.status_code == 200, preview.text
    assert preview.json()["records"][0]["calls"][0]["call"]["userId"] == "ana"


def test_a_run_rechecks_the_path_a_symlink_swapped_after_saving(
        server: Server, segment_connection: str, tmp_path: Path) -> None:
    real = tmp_path / "orders.csv"
    real.write_text("line\nana\n")
    link = tmp_path / "current.csv"
    link.symlink_to(real)
    flow = server.api.post("/api/v1/flows", json=flow_doc({"type": "csv", "path": str(link),
                                                            "options": RAW_CSV},
                                                           segment_connection))
    assert flow.status_code == 201, flow.text
    link.unlink()
    link.symlink_to(server.runtime.settings.home / "master.key")

    run = _run_to_end(server, flow.json()["id"])

    assert run["status"] == "failed"
    assert "segbridge's own data" in run["message"]
    assert run["counts"]["exported"] == 0


def test_another_account_cannot_read_segbridge_database_through_a_sqlite_connection(
        server: Server) -> None:
    database = server.runtime.settings.home / "segbridge.sqlite3"
    attacker = other_account_api(server)
    with attacker:
        created = attacker.post("/api/v1/connections", json={
            "name": "Steal", "application": "database",
            "settings": {"url": f"sqlite:///{database}"}})
        tested = attacker.post("/api/v1/connections/test", json={
            "application": "database", "settings": {"url": f"sqlite:///{database}"}})

    assert created.status_code == 422, created.text
    assert created.json()["error"]["details"]["cause"] == "not_allowed"
    assert tested.json()["ok"] is False and tested.json()["cause"] == "not_allowed"
    with server.runtime.db.session() as session:
        from segbridge.storage.models import Connection
        assert session.query(Connection).filter_by(name="Steal").count() == 0


def test_a_database_path_with_a_nul_character_is_a_clear_refusal(server: Server) -> None:
    url = f"duckdb:///{server.runtime.settings.home}/segbridge.sqlite3%00.duckdb"
    created = server.api.post("/api/v1/connections", json={
        "name": "Nul", "application": "database", "settings": {"url": url}})
    tested = server.api.post("/api/v1/connections/test", json={
        "application": "database", "settings": {"url": url}})

    assert created.status_code == 422, created.text
    assert "NUL character" in created.text
    assert tested.status_code == 200 and tested.json()["ok"] is False, tested.text
    assert "NUL character" in tested.text


def test_a_hostile_mysql_server_gets_no_file_of_the_server(server: Server) -> None:
    """A MySQL server may ask the client for a file (LOAD DATA LOCAL INFILE): with
    ?local_infile=1 in the URL, pymysql sent segbridge's key file to such a server during a
    connection test of another account (found by a tester)."""
    key = server.runtime.settings.resolved_master_key_file
    hostile = HostileMySQL(str(key))
    attacker = other_account_api(server)
    try:
        with attacker:
            answers = {option: attacker.post("/api/v1/connections/test", json={
                "application": "database", "settings": {
                    "url": f"mysql+pymysql://mallory@127.0.0.1:{hostile.port}/db{option}"}})
                for option in ("?local_infile=1", "?read_default_file=" + str(key),
                               "?init_command=SELECT+1", "")}
    finally:
        hostile.close()

    assert hostile.received == []
    for option in ("?local_infile=1", "?read_default_file=" + str(key), "?init_command=SELECT+1"):
        assert answers[option].status_code == 422, answers[option].text
        assert "Remove the option" in answers[option].text
    plain = answers[""]  # the server asks anyway: refused by the client, a failed test
    assert plain.status_code == 200 and plain.json()["ok"] is False, plain.text
    for answer in answers.values():
        assert key.read_text() not in answer.text


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://app@db.example:5432/shop?hostaddr=127.0.0.1",
    "postgresql+psycopg://app@db.example:5432/shop?host=nowhere.invalid,127.0.0.1",
    "postgresql+psycopg://app@db.example:5432/shop?host=db.example&host=127.0.0.1",
    "postgresql+psycopg://app@nowhere.invalid,127.0.0.1:5432/shop",
    "postgresql+psycopg://app@db.example/shop?port=%205432",
    "postgresql+psycopg://app@db.example:5432/shop?service=segbridge",
    "postgresql+psycopg://app@db.example:5432/shop?passfile=/etc/passwd",
    "postgresql+psycopg://app@db.example:5432/shop?sslkey=/etc/passwd",
    "sqlite:////srv/shop.db?vfs=unix%26mode%3Drwc"])
def test_a_database_url_names_one_server_and_reads_no_file(server: Server, url: str) -> None:
    answer = server.api.post("/api/v1/connections", json={
        "name": "Elsewhere", "application": "database", "settings": {"url": url}})
    assert answer.status_code == 422, answer.text
    assert any(said in answer.text for said in ("Remove the option", "Give one host",
                                                "digits only")), answer.text


def test_a_sqlite_query_writes_no_file_and_attaches_none(server: Server, tmp_path: Path,
                                                        segment_connection: str) -> None:
    """The file is opened read-only, yet VACUUM INTO wrote a copy of it anywhere the server
    could write, segbridge's home included (found by a tester)."""
    import sqlite3

    shop = tmp_path / "data" / "shop.db"
    shop.parent.mkdir()
    with sqlite3.connect(shop) as setup:
        setup.execute("CREATE TABLE orders (id INTEGER, total TEXT)")
        setup.execute("INSERT INTO orders VALUES (1, '9.50')")
        setup.execute("CREATE VIRTUAL TABLE notes USING fts4(body)")  # a customer's search
    planted = server.runtime.settings.home / "planted.db"
    connection = server.api.post("/api/v1/connections", json={
        "name": "Shop DB", "application": "database", "settings": {"url": f"sqlite:///{shop}"}})
    assert connection.status_code == 201, connection.text
    reads = {"SELECT value FROM json_each('[1, 2]')": [{"value": 1}, {"value": 2}],
             "SELECT name FROM pragma_table_info('orders')": [{"name": "id"},
                                                              {"name": "total"}],
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2) "
             "SELECT i, row_number() OVER (ORDER BY i) AS r FROM n": [{"i": 1, "r": 1},
                                                                      {"i": 2, "r": 2}]}
    for query, rows in reads.items():  # reads that go through virtual tables still work
        doc = flow_doc({"type": "database", "connection": "Shop DB", "query": query},
                       segment_connection)
        answer = server.api.post("/api/v1/flows/new/preview", json={"flow": doc, "limit": 5})
        assert answer.status_code == 200, (query, answer.text)
        assert [r["data"] for r in answer.json()["records"]] == rows
    for query in (f"VACUUM INTO '{planted}'", f"ATTACH '{tmp_path / 'other.db'}' AS other",
                  "SELECT hex(fts3_tokenizer('simple')) AS address",  # a pointer of SQLite's
                  "SELECT name FROM pragma_table_info(CASE WHEN fts3_tokenizer('simple', "
                  "X'4141414141414141') IS NOT NULL THEN 'notes' END)",  # (crashed the server)
                  "SELECT id, total FROM orders"):
        doc = flow_doc({"type": "database", "connection": "Shop DB", "query": query},
                       segment_connection)
        answer = server.api.post("/api/v1/flows/new/preview", json={"flow": doc, "limit": 5})
        if query == "SELECT id, total FROM orders":
            assert answer.status_code == 200, answer.text
            assert answer.json()["records"][0]["data"] == {"id": 1, "total": "9.50"}
        else:
            assert answer.status_code == 422, answer.text
            assert "segbridge runs only queries that read on SQLite" in answer.text
    assert not planted.exists() and not (tmp_path / "other.db").exists()


def test_the_port_and_host_the_driver_uses_are_the_ones_checked() -> None:
    """psycopg takes a ``port`` option over the address's; ``host=@name`` is an abstract Unix
    socket: both are this machine's database for the own-database rule (found by a
    reviewer)."""
    from segbridge.apps.database.url import targets_of

    policy = AccessPolicy(file_roots=(), protected=(),
                          own_database=("127.0.0.1", 5432, "segbridge"))
    for url in ("postgresql+psycopg://app@localhost:1/segbridge?port=5432",
                "postgresql+psycopg://app@db.example/segbridge?host=@pg&port=5432",
                "postgresql+psycopg://segbridge@127.0.0.1:5432"):  # (no database: the user's)
        with pytest.raises(NotAllowedHere, match="segbridge's own database"):
            policy.check_targets(targets_of(url))


def test_the_own_local_segment_path_cannot_climb_out_of_the_sandbox(
        strict_server: Server) -> None:
    policy = strict_server.runtime.access
    port = next(iter(policy.own_ports))
    policy.check_url(f"http://127.0.0.1:{port}/sandbox/v1/batch")  # the local Segment: allowed
    for path in ("/sandbox/../api/v1/me", "/sandbox/%2e%2e/api", "/sandbox/./../api",
                 "/sandboxes/x"):
        with pytest.raises(NotAllowedHere):
            policy.check_url(f"http://127.0.0.1:{port}{path}")


def test_another_accounts_upload_cannot_be_read_by_path(
        server: Server, segment_connection: str) -> None:
    uploaded = server.api.post("/api/v1/uploads", files={"file": ("a.csv", b"line\nsecret\n")})
    assert uploaded.status_code in (200, 201), uploaded.text
    path = next((server.runtime.settings.home / "uploads").rglob(uploaded.json()["id"]))
    attacker = other_account_api(server)
    with attacker:
        attacker.post("/api/v1/integrations", json={"name": "Shop"})
        by_path = attacker.post("/api/v1/flows/new/preview", json={"flow": flow_doc(
            {"type": "csv", "path": str(path)}, "whatever"), "limit": 5})
        by_id = attacker.post("/api/v1/flows/new/preview", json={"flow": flow_doc(
            {"type": "csv", "upload": uploaded.json()["id"]}, "whatever"), "limit": 5})

    assert by_path.status_code in (403, 422), by_path.text
    assert by_id.status_code in (404, 422), by_id.text
    assert "secret" not in by_path.text and "secret" not in by_id.text


def test_a_sqlite_file_inside_the_roots_can_be_a_connection(server: Server,
                                                            tmp_path: Path) -> None:
    import sqlite3

    shop = tmp_path / "shop.db"
    with sqlite3.connect(shop) as db:
        db.execute("CREATE TABLE orders (id INTEGER)")

    created = server.api.post("/api/v1/connections", json={
        "name": "Shop DB", "application": "database", "settings": {"url": f"sqlite:///{shop}"}})

    assert created.status_code == 201, created.text


# -- the outbound policy -------------------------------------------------------------------

@pytest.fixture
def strict_server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    """A server that refuses private addresses; its own local Segment stays reachable."""
    port = unused_port()
    settings = load_settings(home=tmp_path / "home", database_url=database_url, port=port,
                             http_timeout_seconds=3.0, outbound_deny_private=True,
                             outbound_allow_hosts="allowed.internal, 127.0.0.2")
    runtime = build_runtime(settings)
    app = create_app(runtime)
    first_start(runtime)
    with runtime.db.session() as session:
        token = accounts.issue_token(session, accounts.find_user(session, "admin@localhost"),
                                     kind="api", name="tests")
    with serve_in_thread(app, port) as base_url, httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30,
            trust_env=False) as api:
        yield Server(base_url, runtime, token, api)
    app.state.local_segment.close()
    runtime.close()


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9/", "http://10.1.2.3/",
                                      "http://169.254.169.254/latest", "http://localhost:1/",
                                      "http://[::1]:9/"])
def test_a_private_endpoint_is_refused_with_the_setting_named(strict_server: Server,
                                                              endpoint: str) -> None:
    tested = strict_server.api.post("/api/v1/connections/test", json={
        "application": "segment", "settings": {"write_key": "k" * 32, "endpoint": endpoint}})

    assert tested.status_code == 200, tested.text
    assert tested.json()["ok"] is False
    assert tested.json()["cause"] == "not_allowed"
    assert "SEGBRIDGE_OUTBOUND_DENY_PRIVATE" in tested.json()["message"]


def test_the_own_local_segment_stays_allowed_when_private_ranges_are_denied(
        strict_server: Server) -> None:
    source = strict_server.create_source()

    created = strict_server.api.post("/api/v1/connections", json={
        "name": "Local", "application": "segment",
        "settings": {"write_key": source["write_key"], "endpoint": strict_server.sandbox_url}})

    assert created.status_code == 201, created.text


def test_a_database_host_on_a_private_address_is_refused(strict_server: Server) -> None:
    created = strict_server.api.post("/api/v1/connections", json={
        "name": "Internal DB", "application": "database",
        "settings": {"url": "postgresql+psycopg://app@127.0.0.1:5432/postgres"}})

    assert created.status_code == 422, created.text
    assert created.json()["error"]["details"]["cause"] == "not_allowed"


def test_an_allowed_host_passes_the_policy(strict_server: Server) -> None:
    policy = strict_server.runtime.access

    policy.check_url("http://127.0.0.2:9/v1")  # named in SEGBRIDGE_OUTBOUND_ALLOW_HOSTS
    with pytest.raises(NotAllowedHere):
        policy.check_url("http://127.0.0.3:9/v1")


def test_without_roots_only_uploads_can_be_read(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    data = tmp_path / "orders.csv"
    data.write_text("x\n")

    with pytest.raises(NotAllowedHere, match="none is set"):
        AccessPolicy.from_settings(settings).check_file(data)


def test_a_root_that_holds_the_home_still_keeps_the_home_unreadable(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", file_roots="/")
    policy = AccessPolicy.from_settings(settings)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "segbridge.sqlite3-wal").write_text("x")

    with pytest.raises(NotAllowedHere):
        policy.check_file(tmp_path / "home" / "segbridge.sqlite3-wal")
    assert policy.check_file(tmp_path) == tmp_path.resolve()


# -- files are the owner's only ------------------------------------------------------------

def test_the_home_and_the_database_are_readable_by_the_owner_only(runtime: Runtime) -> None:
    home = runtime.settings.home
    database = home / "segbridge.sqlite3"

    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    if database.exists():  # SQLite runs; PostgreSQL keeps no file here
        assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert stat.S_IMODE(runtime.settings.resolved_master_key_file.stat().st_mode) == 0o600


def _run_to_end(server: Server, flow_id: str) -> dict[str, Any]:
    from segbridge.workers import Workers

    workers = Workers(server.runtime)
    workers.start()
    try:
        run = server.api.post(f"/api/v1/flows/{flow_id}/runs")
        assert run.status_code == 202, run.text
        return wait_for_run(server, run.json()["id"], timeout=60)
    finally:
        workers.stop()


def test_segbridge_own_postgresql_database_is_never_a_source(server: Server) -> None:
    """On PostgreSQL the same theft as with the SQLite file: every account's data is there."""
    from sqlalchemy.engine import make_url

    own = server.runtime.settings.resolved_database_url
    if not own.startswith("postgresql"):
        pytest.skip("segbridge runs on SQLite here: its file is protected as a path")
    url = make_url(own)
    spelled_otherwise = url.set(host="localhost" if url.host != "localhost" else "127.0.0.1")
    other_database = url.set(database="postgres")

    refused = [server.api.post("/api/v1/connections", json={
        "name": f"Own {index}", "application": "database",
        "settings": {"url": candidate.render_as_string(hide_password=False)}})
        for index, candidate in enumerate((url, spelled_otherwise))]
    allowed = server.api.post("/api/v1/connections", json={
        "name": "Another database", "application": "database",
        "settings": {"url": other_database.render_as_string(hide_password=False)}})

    assert [answer.status_code for answer in refused] == [422, 422], [a.text for a in refused]
    assert all("segbridge's own database" in a.json()["error"]["message"] for a in refused)
    assert allowed.status_code == 201, allowed.text


def test_a_test_result_never_names_another_accounts_local_source(server: Server) -> None:
    """Account B tests a connection with account A's local write key (the ping lands in A's
    source, as Segment would take it): B's pane must not name A's source nor link to it."""
    from segbridge.accounts.sessions import SESSION_COOKIE, csrf_token_for

    theirs = server.create_source("Payroll of account A")
    with server.runtime.db.session() as session:
        account = accounts.create_account(session, "B")
        user = accounts.create_user(session, account.id, "bob@b.example", None, is_admin=True)
        session_token = accounts.issue_token(session, user, kind="session", name="browser",
                                             ttl=accounts.SESSION_TTL)
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30,
                      cookies={SESSION_COOKIE: session_token}) as browser:
        page = browser.post("/connections/new/segment/test", data={
            "csrf_token": csrf_token_for(session_token), "name": "Borrowed key",
            "settings.write_key": theirs["write_key"],
            "settings.endpoint": server.sandbox_url})

    assert page.status_code == 200, page.text
    assert "Payroll of account A" not in page.text
    assert theirs["id"] not in page.text
