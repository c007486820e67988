"""A DuckDB query reads only inside the allowed roots, and only reads: not /etc/passwd, not
segbridge's home or key file (even inside a root), not through a symlink, not a URL (a real
server on loopback sees no request), and it writes no file, attaches nothing, loads no
extension and cannot switch any of that back on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy.engine import Engine, make_url

from segbridge.apps.database.connect import create_database_engine
from segbridge.apps.database.duckdb_guard import allowed_places
from segbridge.apps.database.export import DatabaseExport
from segbridge.core.access import AccessPolicy
from segbridge.exports.errors import ExportError

REFUSED = r"Permission Error|segbridge runs one SELECT query|The query reads '"


@dataclass
class Install:
    """A file root holding segbridge's home and key file (protected), data, and links out."""

    root: Path
    home: Path
    key: Path
    engine: Engine
    hits: list[str]

    def rows(self, query: str) -> list[dict[str, object]]:
        return [dict(r.data or {}) for r in DatabaseExport(self.engine, None, query).records()]


class Counting(BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"a,b\n1,2\n")

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def web() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    handler = type("Handler", (Counting,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", hits
    server.shutdown()
    server.server_close()


@pytest.fixture
def install(tmp_path: Path, web: tuple[str, list[str]]) -> Iterator[Install]:
    root = tmp_path / "data"
    home = root / "segbridge-home"
    (root / "sub").mkdir(parents=True)
    home.mkdir()
    (home / "segbridge.db").write_text("accounts")
    key = root / "master.key"
    key.write_text("k" * 44)
    (root / "sub" / "people.csv").write_text("id,email\n1,a@x.io\n")
    pq.write_table(pa.table({"id": [1, 2], "plan": ["gold", "free"]}), root / "orders.parquet")
    (root / "passwd.csv").symlink_to("/etc/passwd")
    (root / "home-link").symlink_to(home)
    with duckdb.connect(str(root / "shop.duckdb")) as setup:
        setup.execute("CREATE TABLE customers AS SELECT 1 AS id, 'Ann' AS name")
    policy = AccessPolicy(file_roots=(root,), protected=(home, key))
    engine = create_database_engine(make_url(f"duckdb:///{root / 'shop.duckdb'}"), None,
                                    connect_timeout=5, policy=policy)
    yield Install(root, home, key, engine, web[1])
    engine.dispose()


def test_the_allowed_files_are_read(install: Install) -> None:
    root = install.root
    assert install.rows("SELECT * FROM customers") == [{"id": 1, "name": "Ann"}]
    assert install.rows(f"SELECT * FROM read_parquet('{root}/orders.parquet') ORDER BY id") \
        == [{"id": 1, "plan": "gold"}, {"id": 2, "plan": "free"}]
    assert install.rows(f"SELECT * FROM read_csv('{root}/sub/people.csv')") == [
        {"id": 1, "email": "a@x.io"}]


@pytest.mark.parametrize("query", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_csv('{root}/passwd.csv')",
    "SELECT * FROM read_csv('{root}/../../../../etc/passwd')",
    "SELECT * FROM read_text('{home}/segbridge.db')",
    "SELECT * FROM read_text('{root}/home-link/segbridge.db')",
    "SELECT * FROM read_text('{key}')",
    "SELECT * FROM glob('{home}/*')",
    "SELECT * FROM glob('/etc/*')",
])
def test_files_out_of_bounds_are_refused(install: Install, query: str) -> None:
    text = query.format(root=install.root, home=install.home, key=install.key)
    with pytest.raises(ExportError, match=REFUSED):
        install.rows(text)


def test_a_path_cut_at_a_nul_character_reads_nothing(install: Install) -> None:
    """DuckDB checks a path whole but opens it cut at its first NUL: a path whose '..' lead
    back into a root passed its check and read what comes before the NUL (found by a tester:
    segbridge's key file through a flow's preview)."""
    (install.root / "x").write_text("inside\n")
    climb = "/.." * len(install.key.parts) + str(install.root / "x")
    for target in ("/etc/passwd", str(install.key)):
        for query in (f"SELECT content FROM read_text('{target}' || chr(0) || '{climb}')",
                      f"SELECT * FROM read_csv(concat('{target}', chr(0), '{climb}'))",
                      f"SELECT * FROM query('SELECT content FROM read_text(''{target}'')')"):
            with pytest.raises(ExportError, match=r"quoted path|not available") as refused:
                install.rows(query)
            assert "k" * 44 not in str(refused.value) and "root:" not in str(refused.value)


def test_a_qualified_name_read_as_a_file_is_checked_and_no_nul_passes(install: Install) -> None:
    """DuckDB reads a qualified name it does not know as a file, its parts joined by dots: a
    NUL inside one reached open() cut short (found by a reviewer)."""
    climb = "/.." * len(install.key.parts) + str(install.root / "x")
    for query in (f'SELECT * FROM "/etc/passwd\x00{climb}"."csv"',
                  f'SELECT * FROM "{install.root}/master"."key\x00{climb}.csv"'):
        with pytest.raises(ExportError, match="NUL character"):
            install.rows(query)
    people = install.root / "sub" / "people"
    assert install.rows(f'SELECT * FROM "{people}"."csv"') == [{"id": 1, "email": "a@x.io"}]
    with pytest.raises(ExportError, match=REFUSED):
        install.rows(f'SELECT * FROM "{install.root}/master"."key"')


def test_a_name_of_four_parts_and_a_path_through_a_link_and_dot_dot_are_refused(
        install: Install, tmp_path: Path) -> None:
    """DuckDB joins every part of an unknown name into a file name (four parts too), and its
    own check collapses '..' before it follows a link (found by a tester)."""
    outside = tmp_path / "outside"
    (outside / "d1" / "d2" / "d3").mkdir(parents=True)
    (outside / "d1" / "secret.csv").write_text("card,owner\n4111111111111111,alice\n")
    links = install.root / "sub" / "a" / "b"
    links.mkdir(parents=True)
    (links / "link").symlink_to(outside / "d1" / "d2" / "d3")
    for query in (f'SELECT * FROM "{links}/"."/link/"."/../../secret"."csv"',
                  f"SELECT * FROM read_csv('{links}/link/../../secret.csv')"):
        with pytest.raises(ExportError, match=r"without '\.\.'") as refused:
            install.rows(query)
        assert "4111" not in str(refused.value)


def test_a_duckdb_file_with_views_or_macros_is_not_queried(install: Install) -> None:
    """A view's stored SQL runs past the statement check: a tester read the key file through
    a view of a DuckDB file someone else wrote into a root."""
    shared = install.root / "partner.duckdb"
    with duckdb.connect(str(shared)) as setup:
        setup.execute("CREATE TABLE orders AS SELECT 1 AS id")
        setup.execute("CREATE VIEW leak AS SELECT content FROM read_text('/etc/hostname')")
    engine = create_database_engine(make_url(f"duckdb:///{shared}"), None, connect_timeout=5,
                                    policy=AccessPolicy(file_roots=(install.root,),
                                                        protected=(install.home, install.key)))
    try:
        with pytest.raises(ExportError, match="views or macros"):
            list(DatabaseExport(engine, None, "SELECT * FROM orders").records())
    finally:
        engine.dispose()


def test_a_table_with_a_dot_in_its_name_is_a_table(install: Install) -> None:
    with duckdb.connect(str(install.root / "dotted.duckdb")) as setup:
        setup.execute('CREATE TABLE "orders.2024" AS SELECT 7 AS id')
    engine = create_database_engine(make_url(f"duckdb:///{install.root / 'dotted.duckdb'}"),
                                    None, connect_timeout=5)
    try:
        export = DatabaseExport(engine, None, 'SELECT id FROM "orders.2024"')
        assert [r.data for r in export.records()] == [{"id": 7}]
    finally:
        engine.dispose()


def test_a_readers_options_take_literal_values_however_they_are_written(
        install: Install) -> None:
    people = install.root / "sub" / "people.csv"
    assert install.rows(f"SELECT * FROM read_csv('{people}', header = true, "
                        "columns = {'id': 'INTEGER', 'email': 'VARCHAR'}, "
                        "auto_detect := false)") == [{"id": 1, "email": "a@x.io"}]
    with pytest.raises(ExportError, match="option header must be a literal value"):
        install.rows(f"SELECT * FROM read_csv('{people}', header = (SELECT true))")


def test_a_reader_takes_no_parameter_and_a_statement_duckdb_cannot_parse_is_refused(
        install: Install) -> None:
    with install.engine.connect() as connection, pytest.raises(Exception, match="quoted path"):
        connection.exec_driver_sql("SELECT content FROM read_text(?)", (str(install.key),))
    with pytest.raises(ExportError, match="DuckDB cannot parse the query"):
        install.rows("register")  # (the driver would have run it as its own command)


def test_a_side_file_of_segbridge_data_in_a_root_is_refused(install: Install) -> None:
    side = install.root / "master.key.tmp"  # a key rotation's temporary file
    side.write_text("k" * 44)
    for query in (f"SELECT content FROM read_text('{side}')",
                  f"SELECT content FROM read_text('{install.root}/master.key.t?p')"):
        with pytest.raises(ExportError, match=REFUSED):
            install.rows(query)
    places = allowed_places((install.root,), (install.home, install.key))
    assert str(side) not in places.files  # DuckDB's own list leaves it out too


def test_a_list_of_literal_paths_and_a_table_named_by_its_path_are_read(
        install: Install) -> None:
    orders = install.root / "orders.parquet"
    assert len(install.rows(f"SELECT * FROM read_parquet(['{orders}', '{orders}'])")) == 4
    assert len(install.rows(f"SELECT * FROM '{orders}'")) == 2
    with pytest.raises(ExportError, match=REFUSED):
        install.rows(f"SELECT * FROM '{install.key}'")


def test_a_url_is_never_fetched(install: Install, web: tuple[str, list[str]]) -> None:
    url, hits = web
    for query in (f"SELECT * FROM read_csv('{url}/people.csv')",
                  f"SELECT * FROM read_text('{url}/x')"):
        with pytest.raises(ExportError, match=REFUSED):
            install.rows(query)
    assert hits == []


@pytest.mark.parametrize("statement", [
    "COPY (SELECT 1 AS a) TO '{root}/out.csv'",
    "SELECT 1; COPY (SELECT 1 AS a) TO '{root}/out.csv'",
    "EXPORT DATABASE '{root}/out.csv'",
    "ATTACH '{root}/out.csv' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET allowed_directories = ['/']",
    "CREATE TABLE out AS SELECT 1",
    "PRAGMA version",
])
def test_nothing_but_a_select_runs(install: Install, statement: str) -> None:
    with pytest.raises(ExportError, match="segbridge runs one SELECT query on DuckDB"):
        install.rows(statement.format(root=install.root))
    assert not (install.root / "out.csv").exists()


def test_the_settings_are_locked_below_the_statement_check(install: Install) -> None:
    """Even a statement that got past the check (straight on the driver's connection) cannot
    undo the lock-down or write."""
    raw = install.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement in ("SET enable_external_access = true",
                          "SET allowed_directories = ['/']",
                          f"COPY (SELECT 1) TO '{install.home}/out.csv'",
                          "CREATE TABLE out AS SELECT 1"):
            with pytest.raises(duckdb.Error):
                cursor.execute(statement)
    finally:
        raw.close()
    assert not (install.home / "out.csv").exists()


def test_without_a_policy_a_query_reads_its_own_file_only(install: Install) -> None:
    engine = create_database_engine(make_url(f"duckdb:///{install.root / 'shop.duckdb'}"), None,
                                    connect_timeout=5)
    try:
        export = DatabaseExport(engine, None, "SELECT name FROM customers")
        assert [r.data for r in export.records()] == [{"name": "Ann"}]
        parquet = DatabaseExport(
            engine, None, f"SELECT * FROM read_parquet('{install.root}/orders.parquet')")
        with pytest.raises(ExportError, match=REFUSED):
            list(parquet.records())
    finally:
        engine.dispose()
