"""A database prepared for one export test (see conftest.py for the fixtures)."""



from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine


@dataclass
class Db:
    """One database for a test: its URL (no password), an admin engine, fresh table names."""

    kind: str  # sqlite | postgresql | mariadb
    url: str
    admin: Engine
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    tables: list[str] = field(default_factory=list)

    def table(self, base: str) -> str:
        name = f"{base}_{self.suffix}"
        self.tables.append(name)
        return name

    def run(self, *statements: str) -> None:
        with self.admin.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)

    def insert(self, table: str, rows: list[dict[str, object]]) -> None:
        columns = list(rows[0])
        sql = (f"INSERT INTO {table} ({', '.join(columns)}) "
               f"VALUES ({', '.join(':' + c for c in columns)})")
        with self.admin.begin() as connection:
            connection.execute(sa.text(sql), rows)

    def drop_tables(self) -> None:
        for name in self.tables:
            self.run(f"DROP TABLE IF EXISTS {name}")
