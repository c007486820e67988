"""Saving a flow resolves what its document names through the registry: the export's
connection against the application that exports that kind, each import's connection against
the applications that receive records, and a file export's path or upload through the Files
application's own check; the problems keep their field paths and words."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segbridge.accounts.service import Principal, create_account, create_user, principal_for
from segbridge.connections.model import name_key
from segbridge.core.access import AccessPolicy
from segbridge.core.errors import ValidationFailed
from segbridge.flows.service import FlowService
from segbridge.runs.queue import RunQueue
from segbridge.storage.db import Database
from segbridge.storage.models import Connection, Flow, Integration

DATABASE_FLOW: dict[str, Any] = {
    "name": "Users", "integration": "Shop",
    "export": {"type": "database", "connection": "Shop DB", "query": "SELECT * FROM users"},
    "imports": [{"name": "Users", "connection": "Segment", "call": "identify",
                 "mapping": {"userId": "id"}}],
}


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def principal(db: Database) -> Principal:
    with db.session() as session:
        account = create_account(session, "Shop")
        user = create_user(session, account.id, "admin@example.com", None, is_admin=True)
        session.add(Integration(id="int_shop", account_id=account.id, name="Shop",
                                name_key=name_key("Shop")))
        for key, name, application in [("con_seg", "Segment", "segment"),
                                       ("con_db", "Shop DB", "database")]:
            session.add(Connection(id=key, account_id=account.id, name=name,
                                   name_key=name_key(name), application=application))
        session.commit()
        return principal_for(user, "cli")


def _service(db: Database, root: Path) -> FlowService:
    return FlowService(db, AccessPolicy(file_roots=(root,), protected=()), RunQueue())


def _stored(db: Database, flow_id: str) -> dict[str, Any]:
    """The definition as stored (the document as written, with the connections' ids)."""
    with db.session() as session:
        flow = session.get(Flow, flow_id)
        assert flow is not None
        return dict(flow.definition)


def _problems(service: FlowService, principal: Principal, doc: dict[str, Any]) -> list[Any]:
    with pytest.raises(ValidationFailed) as refused:
        service.create(principal, doc)
    return [(p.field, p.message) for p in refused.value.problems]


def test_connections_resolve_against_the_applications_that_can_use_them(
    db: Database, principal: Principal, tmp_path: Path,
) -> None:
    service = _service(db, tmp_path)
    flow = service.create(principal, DATABASE_FLOW)
    assert _stored(db, flow.id)["export"]["connection_id"] == "con_db"
    assert _stored(db, flow.id)["imports"][0]["connection_id"] == "con_seg"
    swapped = copy.deepcopy(DATABASE_FLOW)
    swapped["name"] = "Swapped"
    swapped["export"]["connection"] = "Segment"
    swapped["imports"][0]["connection"] = "Shop DB"
    assert _problems(service, principal, swapped) == [
        ("export.connection", "'Segment' is a segment connection; choose a database connection"),
        ("imports.0.connection", "'Shop DB' is a database connection; choose a segment "
                                 "connection")]


def test_a_file_export_is_checked_by_the_files_application(
    db: Database, principal: Principal, tmp_path: Path,
) -> None:
    service = _service(db, tmp_path)
    upload = {**DATABASE_FLOW, "export": {"type": "csv", "upload": "upl_none"}}
    assert _problems(service, principal, upload) == [
        ("export.upload", "no upload 'upl_none' in your account; upload the file again")]
    outside = {**DATABASE_FLOW, "export": {"type": "csv", "path": "/etc/hosts"}}
    assert [field for field, _ in _problems(service, principal, outside)] == ["export.path"]
    inside = {**DATABASE_FLOW, "export": {"type": "csv", "path": str(tmp_path / "a.csv")}}
    assert "connection_id" not in _stored(db, service.create(principal, inside).id)["export"]
