"""DuckDB locked down: a query reads only inside the install's allowed directories, and only
reads.

DuckDB's SQL can read any file (``read_csv('/etc/passwd')``), fetch URLs, write files
(``COPY ... TO``), attach other databases and install extensions. Every DuckDB connection
segbridge opens is therefore, before its first statement:

- opened read-only (a database file) with extensions never installed nor loaded on demand;
- given ``allowed_directories`` (the allowed file roots, less segbridge's own data: when the
  home or the key file lies inside a root, the root's other entries are allowed one by one)
  and ``allowed_paths`` (the database file), then ``enable_external_access = false`` (no
  other file, no URL, no extension) and ``lock_configuration = true`` (no SET undoes it);
- checked statement by statement: only one SELECT at a time (so no COPY, ATTACH, INSTALL,
  LOAD, PRAGMA or SET, and no second statement after a semicolon).

DuckDB resolves symlinks before its check: a link inside a root that points out of it is
refused as the path it points to.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

ONLY_SELECT = ("segbridge runs one SELECT query on DuckDB (no COPY, ATTACH, INSTALL, LOAD, "
               "PRAGMA, SET or a second statement); write the export as a single SELECT")
DRIVER_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


@dataclass(frozen=True)
class Places:
    """What a DuckDB query may read: whole folders, and single files."""

    folders: tuple[str, ...] = ()
    files: tuple[str, ...] = ()


def allowed_places(roots: Iterable[Path], protected: Iterable[Path],
                   database: str | None = None) -> Places:
    """The roots as DuckDB settings, with every protected path carved out of them."""
    shielded = [Path(place).resolve() for place in protected]
    folders: list[str] = []
    files: list[str] = [str(Path(database).resolve())] if database else []
    for root in roots:
        _allow(Path(root).resolve(), shielded, folders, files)
    return Places(tuple(folders), tuple(files))


def _allow(folder: Path, shielded: list[Path], folders: list[str], files: list[str]) -> None:
    if any(folder == place or folder.is_relative_to(place) for place in shielded):
        return
    if not any(place.is_relative_to(folder) for place in shielded):
        folders.append(f"{folder}/")
        return
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink():
            continue  # DuckDB would allow where the link points; the link is left out
        if entry.is_dir():
            _allow(entry, shielded, folders, files)
        elif entry not in shielded:
            files.append(str(entry))


def connect_args(database: str | None) -> dict[str, Any]:
    """The DuckDB driver's arguments: read-only for a file, no extension autoloading."""
    args: dict[str, Any] = {"config": dict(DRIVER_CONFIG)}
    if database and database != ":memory:":
        args["read_only"] = True
    return args


def lock_down(engine: Engine, places: Places) -> Engine:
    """Lock every connection of ``engine`` down to ``places`` and to single SELECTs."""
    event.listen(engine, "connect", _locker(places))
    event.listen(engine, "before_cursor_execute", _only_select)
    return engine


def _locker(places: Places) -> Any:
    def lock(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SET enable_progress_bar = false")  # it would print to the terminal
            cursor.execute(f"SET allowed_directories = {_list(places.folders)}")
            cursor.execute(f"SET allowed_paths = {_list(places.files)}")
            cursor.execute("SET enable_external_access = false")
            cursor.execute("SET lock_configuration = true")
        finally:
            cursor.close()

    return lock


def _list(values: Sequence[str]) -> str:
    return "[" + ", ".join("'" + value.replace("'", "''") + "'" for value in values) + "]"


def _only_select(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
    import duckdb

    try:
        parsed = duckdb.extract_statements(statement)
    except duckdb.Error:
        return  # DuckDB itself reports the syntax error, with its position
    if len(parsed) != 1 or parsed[0].type != duckdb.StatementType.SELECT:
        raise duckdb.PermissionException(ONLY_SELECT)
