"""Shared fixtures, and the rules of the suite.

Tiers by folder: tests/unit (no I/O), tests/integration (real databases, real HTTP servers on
loopback), tests/sandbox (the local Segment), tests/e2e (a real browser).

segbridge's own database: every test that needs one gets a migrated SQLite copy. PostgreSQL
as well only where SQL behaviour is what is tested: the tests in SQL_BEHAVIOUR below and
any test marked ``sql`` (for a new test of SQL behaviour: ``pytestmark = pytest.mark.sql``).
Every other test's ``[postgresql]`` variant is deselected; ``pytest --all-databases`` runs
every test on both, as the suite did before. (Exports from PostgreSQL and MariaDB *sources*
have their own fixtures in tests/integration/exports and always run.)

Parallel: ``make test`` runs pytest-xdist workers (``-n 4 --dist loadgroup``, see the
Makefile; a plain ``pytest`` runs in one process). Tests that must share one worker take
``pytest.mark.xdist_group(name)``. Each worker migrates its own templates (unique names),
servers listen on ports the kernel picks, and every file lives under the test's tmp_path.
Each worker runs its tests in the order sorted below, so browser tests come last there too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from segbridge.core.settings import Settings, load_settings
from segbridge.runtime import Runtime, build_runtime
from tests.support.databases import (
    migrated_postgres_template,
    migrated_sqlite_template,
    postgres_database,
    sqlite_copy,
    sqlite_url,
)

SQL_BEHAVIOUR = (
    # the migrations, from an empty database to head
    "integration/test_migrations.py",
    # the run store: the lifecycle's guarded moves, leases and their atomic claims
    "integration/flows/test_run_lifecycle.py",
    "integration/flows/test_runs_nobody_owns.py",
    # a flow never runs twice at once (a uniqueness race), database exports' cursors
    "integration/flows/test_flow_runs.py::test_a_flow_never_runs_twice_at_once",
    "integration/flows/test_database_flows.py",
    # master key rotation re-encrypting every stored secret while servers write
    "integration/test_keys.py",
    "integration/test_rotation_under_load.py",
    # segbridge's own database is never a source (on PostgreSQL: by its URL)
    "integration/test_access.py::test_segbridge_own_postgresql_database_is_never_a_source",
    # tenant isolation: every route, every role, another account's ids
    "integration/test_role_matrix.py",
    # sign-in throttling: counters updated by parallel guesses and by several processes
    "integration/test_login_throttling.py::test_parallel_guesses_get_no_more_tries_than_sequential_ones",
    "integration/test_login_throttling.py::test_counters_are_shared_by_every_process_through_the_database",
)
"""Test files (or ``file::test``) that run on SQLite and PostgreSQL, relative to tests/."""

TIERS = ("unit", "sandbox", "integration", "e2e")
LONGEST = (
    # the tests of a minute or more: started first, so parallel workers do not wait for them
    # at the end (xdist hands tests out in this order)
    "integration/test_api_contract.py::test_schemathesis",
    "integration/flows/test_run_memory.py",
    "integration/test_rotation_under_load.py",
    "integration/test_role_matrix.py",
    "integration/flows/test_faults.py",
    "integration/flows/test_runs_nobody_owns.py",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--all-databases", action="store_true",
                     help="run every test on PostgreSQL too, not only the SQL_BEHAVIOUR ones")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _deselect_postgresql_variants(config, items,
                                  all_databases=config.getoption("--all-databases"))
    for item in items:
        item.add_marker("integration" if _tier(item) == "sandbox" else _tier(item))
    # browser tests last: Playwright's sync API leaves an event loop running in the main
    # thread, where asyncio.run() (used by the CLI's foreground runs) then fails. Before them,
    # fastest first; in xdist workers the longest tests first
    longest_first = hasattr(config, "workerinput")
    items.sort(key=lambda item: _order(item, longest_first))


def _order(item: pytest.Item, longest_first: bool) -> tuple[bool, bool, int]:
    tier = _tier(item)
    return tier == "e2e", longest_first and not _listed(item, LONGEST), TIERS.index(tier)


def _deselect_postgresql_variants(config: pytest.Config, items: list[pytest.Item], *,
                                  all_databases: bool = False) -> None:
    """Drop the ``[postgresql]`` variant of the tests that do not test SQL behaviour (with
    ``--all-databases``: only of the tests of the single-process executor, marked
    ``in_process``: with PostgreSQL runs go through the job queue, tests/integration/scaleout)."""
    kept, dropped = [], []
    for item in items:
        single = item.get_closest_marker("in_process") is not None
        drop = _on_postgresql(item) and (single or not (all_databases or _sql_behaviour(item)))
        (dropped if drop else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _on_postgresql(item: pytest.Item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return "postgresql" in (params.get("database_url"), params.get("empty_database_url"))


def _sql_behaviour(item: pytest.Item) -> bool:
    return item.get_closest_marker("sql") is not None or _listed(item, SQL_BEHAVIOUR)


def _listed(item: pytest.Item, entries: tuple[str, ...]) -> bool:
    """The item's test is in ``entries``: files, ``file::test`` or ``file::test`` prefixes."""
    test = item.nodeid.removeprefix("tests/").split("[", 1)[0]
    return any(test.startswith(entry) for entry in entries)


def _tier(item: pytest.Item) -> str:
    parts = Path(str(item.fspath)).parts
    return next((tier for tier in TIERS if tier in parts), "integration")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated once per test run; each test gets a copy of the file."""
    return migrated_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """Migrated once per test run (only when a PostgreSQL test runs); each test gets a copy."""
    with migrated_postgres_template() as name:
        yield name


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of its own for the test: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_copy(request.getfixturevalue("sqlite_template"), tmp_path)
        return
    with postgres_database(template=request.getfixturevalue("postgres_template")) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all, for the tests that run the migrations."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    with postgres_database() as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # the test's own folder is where its files live: the file root of the install (the home
    # inside it stays unreadable, as in production)
    return load_settings(home=tmp_path / "home", database_url=database_url,
                         file_roots=str(tmp_path),
                         http_timeout_seconds=3.0)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    built = build_runtime(settings)
    yield built
    built.close()
