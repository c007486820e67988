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
- checked statement by statement, on DuckDB's own parse of it (``json_serialize_sql``): one
  SELECT at a time (so no COPY, ATTACH, INSTALL, LOAD, PRAGMA or SET, and no second statement
  after a semicolon; a statement DuckDB cannot parse is refused, not passed on), reading files
  only through the readers named in ``FILE_READERS`` (no ``query()``, which would run SQL the
  check never saw), each path written in the query as a quoted string that the access policy
  allows (``AccessPolicy.check_file``: inside a root, not segbridge's own data nor a side file
  of it, no NUL).

The second check is not a repeat of the first. DuckDB checks a path as a whole string but opens
it cut at its first NUL: ``read_text('/etc/passwd' || chr(0) || '/../../<root>/x')`` passed
DuckDB's check and read /etc/passwd (a tester read segbridge's key file that way through a
flow's preview). A path made at run time (``||``, ``chr()``, a parameter) cannot be checked
before it runs, so a reader takes only literal paths; the literal is checked here, then by
DuckDB. DuckDB resolves symlinks before its check: a link inside a root that points out of it
is refused as the path it points to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Engine

from segbridge.core.access import is_inside
from segbridge.core.errors import SegbridgeError

ONLY_SELECT = ("segbridge runs one SELECT query on DuckDB (no COPY, ATTACH, INSTALL, LOAD, "
               "PRAGMA, SET or a second statement); write the export as a single SELECT")
FILE_READERS = frozenset({
    "read_parquet", "parquet_scan", "parquet_metadata", "parquet_schema",
    "parquet_file_metadata", "parquet_kv_metadata", "read_csv", "read_csv_auto", "sniff_csv",
    "read_json", "read_json_auto", "read_ndjson", "read_ndjson_auto", "read_json_objects",
    "read_json_objects_auto", "read_ndjson_objects", "read_text", "read_blob", "glob"})
OTHER_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest", "json_each",
                                   "json_tree"})
LITERAL_PATHS = ("a DuckDB query names each file it reads as a quoted path in the query "
                 "(read_parquet('/data/orders.parquet'), or a list of them); a path built "
                 "from other values (||, a function, a parameter) cannot be checked before "
                 "the query runs")
PATH_MARKS = ("/", "\\", ":")  # a table name with one names a file (a plain dotted name
# "orders.2024" is a table; a relative file name is left to DuckDB's own check)
PathCheck = Callable[[str], None]
"""Raises a SegbridgeError for a path a query may not read."""
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
        elif not any(is_inside(entry, place) for place in shielded):  # (nor a side file
            files.append(str(entry))  # of segbridge's database or key: -wal, .tmp...)


def connect_args(database: str | None) -> dict[str, Any]:
    """The DuckDB driver's arguments: read-only for a file, no extension autoloading."""
    args: dict[str, Any] = {"config": dict(DRIVER_CONFIG)}
    if database and database != ":memory:":
        args["read_only"] = True
    return args


def lock_down(engine: Engine, places: Places, check_path: PathCheck) -> Engine:
    """Lock every connection of ``engine`` down to ``places`` and to single SELECTs that
    read only the files ``check_path`` allows."""
    event.listen(engine, "connect", _locker(places))
    event.listen(engine, "before_cursor_execute", _statement_check(check_path))
    return engine


def no_files(_path: str) -> None:
    """The path check of a DuckDB connection without an access policy: its own file only."""
    raise PermissionError("this DuckDB connection reads its own database file only; ask the "
                          "operator to allow a folder (SEGBRIDGE_FILE_ROOTS)")


def _locker(places: Places) -> Any:
    def lock(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SET enable_progress_bar = false")  # it would print to the terminal
            cursor.execute(f"SET allowed_directories = {_list(places.folders)}")
            cursor.execute(f"SET allowed_paths = {_list(places.files)}")
            cursor.execute("SET enable_external_access = false")
            cursor.execute("SET lock_configuration = true")
            _refuse_stored_sql(cursor)
        finally:
            cursor.close()

    return lock


STORED_SQL = ("segbridge does not query a DuckDB file that holds views or macros: their SQL "
              "runs as written, past segbridge's check of what a query reads. Query a file "
              "with tables only (COPY the views into tables), or read the files directly "
              "with read_parquet or read_csv.")


def _refuse_stored_sql(cursor: Any) -> None:
    """A view or macro of the database file is SQL the statement check never sees (a tester
    read the key file through a view of a DuckDB file someone else wrote)."""
    import duckdb

    cursor.execute("SELECT (SELECT count(*) FROM duckdb_views() WHERE NOT internal) + "
                   "(SELECT count(*) FROM duckdb_functions() WHERE NOT internal AND "
                   "function_type IN ('macro', 'table_macro'))")
    row = cursor.fetchone()
    if row and row[0]:
        raise duckdb.PermissionException(STORED_SQL)


def _list(values: Sequence[str]) -> str:
    return "[" + ", ".join("'" + value.replace("'", "''") + "'" for value in values) + "]"


def _statement_check(check_path: PathCheck) -> Any:
    @lru_cache(maxsize=64)  # a lookup runs its query again and again
    def problem(statement: str) -> str | None:
        return statement_problem(statement, check_path)

    def check(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        import duckdb

        found = problem(statement)
        if found is not None:
            raise duckdb.PermissionException(found)

    return check


def statement_problem(statement: str, check_path: PathCheck) -> str | None:
    """Why ``statement`` may not run on a locked-down connection (None: it may)."""
    import duckdb

    if "\x00" in statement:  # (a NUL in a quoted name reached DuckDB's open() cut short)
        return "The query contains a NUL character (\\u0000); remove it."
    try:
        parsed = duckdb.extract_statements(statement)
    except duckdb.Error as exc:
        return f"DuckDB cannot parse the query: {exc}"
    if len(parsed) != 1 or parsed[0].type != duckdb.StatementType.SELECT:
        return ONLY_SELECT
    with duckdb.connect() as parser:  # (parsing only: nothing runs)
        row = parser.execute("SELECT json_serialize_sql(?)", [statement]).fetchone()
    try:
        tree = orjson.loads(row[0]) if row else {"error": True}
    except orjson.JSONDecodeError:  # subqueries nested some 400 deep: past orjson's depth
        return "The query is nested too deeply to be checked; write it with fewer levels."
    if tree.get("error"):
        return f"DuckDB cannot parse the query: {tree.get('error_message', '')}".rstrip(": ")
    try:
        paths = list(_paths_read(tree))
    except PermissionError as exc:
        return str(exc)
    for path in paths:
        if ".." in path.replace("\\", "/").split("/"):
            return (f"The query reads '{path}': write the path without '..' (DuckDB checks "
                    "such a path as written, and opens it through the links in it)")
        try:
            check_path(path)
        except (SegbridgeError, PermissionError) as exc:
            return f"The query reads '{path}': {getattr(exc, 'message', None) or exc}"
    return None


def _paths_read(tree: Any) -> Iterator[str]:
    """Every file path the parsed query reads (a table function's literal paths, a table
    named by a path); PermissionError for a reader given anything but literal paths, or for
    another table function."""
    for node in _nodes(tree):
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            yield from _reader_paths(node.get("function") or {})
        elif kind == "BASE_TABLE":
            parts = [str(part) for part in (node.get("qualified_name") or {}).get("path") or
                     [node.get(key) or "" for key in ("catalog_name", "schema_name",
                                                      "table_name")] if part]
            if any(mark in part for part in parts for mark in PATH_MARKS):
                yield ".".join(parts)  # DuckDB reads a table it does not know as a file (a
                # "replacement scan"), every part of its name joined (a.b.c.d has four)


def _reader_paths(function: dict[str, Any]) -> Iterator[str]:
    name = str(function.get("function_name", "")).lower()
    if function.get("schema") or function.get("catalog") or \
            (name not in FILE_READERS and name not in OTHER_TABLE_FUNCTIONS):
        raise PermissionError(
            f"DuckDB's {name}() is not available to segbridge's queries; read files with "
            "read_parquet, read_csv, read_json, read_text or glob")
    if name not in FILE_READERS:
        return
    for argument in function.get("arguments", []):
        expression = argument.get("expression") or {}
        option = argument.get("name") or _option_name(expression)
        if option:  # an option (name := value, or name = value): literal values only
            value = expression if argument.get("name") else expression.get("right") or {}
            if not _literal(value):
                raise PermissionError(f"{name}()'s option {option} must be a literal value")
            continue
        yield from _literal_paths(expression, name)


def _option_name(expression: dict[str, Any]) -> str | None:
    """``header = true`` in a reader's arguments: DuckDB's other way to name an option."""
    left = expression.get("left") or {}
    if expression.get("type") == "COMPARE_EQUAL" and left.get("class") == "COLUMN_REF" \
            and len(left.get("column_names") or ()) == 1:
        return str(left["column_names"][0])
    return None


def _literal(expression: dict[str, Any]) -> bool:
    """A constant, or a list or struct of constants (``columns={'a': 'INT'}``)."""
    if expression.get("class") == "CONSTANT":
        return True
    return expression.get("function_name") in ("list_value", "struct_pack") and all(
        _literal(item.get("expression") or {}) for item in expression.get("arguments", []))


def _literal_paths(expression: dict[str, Any], reader: str) -> Iterator[str]:
    if expression.get("class") == "CONSTANT":
        literal = expression.get("value") or expression.get("literal") or {}
        if literal.get("kind") == "STRING" and isinstance(literal.get("text"), str):
            yield literal["text"]
            return
    elif expression.get("function_name") == "list_value":
        for item in expression.get("arguments", []):
            yield from _literal_paths(item.get("expression") or {}, reader)
        return
    raise PermissionError(f"{reader}(): {LITERAL_PATHS}")


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object of the parse tree, depth first."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
