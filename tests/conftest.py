"""Shared fixtures. Tiers by folder: tests/unit (no I/O), tests/integration (real SQLite and
PostgreSQL, real HTTP servers on loopback), tests/sandbox (the local Segment), tests/e2e."""

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

TIERS = ("unit", "sandbox", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker("integration" if _tier(item) == "sandbox" else _tier(item))
    # fastest first; browser tests last: Playwright's sync API leaves an event loop running
    # in the main thread, where asyncio.run() (used by the CLI's foreground runs) then fails
    items.sort(key=lambda item: TIERS.index(_tier(item)))


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
