"""What the flow builder's page tests share: a signed-in client as htmx uses the pages (the
session cookie, the CSRF token in ``X-CSRF-Token``; ``post`` of test_flow_builder sends it as
a form's ``csrf_token`` too), a monitor's, and a flow whose source is the orders CSV, uploaded.

A test module takes a fixture by naming it: ``client = builder.client``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from segbridge.accounts import service as accounts
from segbridge.accounts.sessions import SESSION_COOKIE, csrf_token_for
from segbridge.runtime import ADMIN_EMAIL
from tests.integration.conftest import Server
from tests.integration.web.test_flow_builder import new_flow, session_for, upload_source

MONITOR_EMAIL = "watcher@example.com"


@contextmanager
def signed_in(server: Server, email: str = ADMIN_EMAIL) -> Iterator[httpx.Client]:
    """A client holding a new browser session of ``email`` and its CSRF token."""
    token = session_for(server, email)
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30,
                      cookies={SESSION_COOKIE: token}) as client:
        client.headers["X-CSRF-Token"] = csrf_token_for(token)
        yield client


@contextmanager
def monitor(server: Server) -> Iterator[httpx.Client]:
    """A client signed in as a new monitor of the admin's account."""
    with server.runtime.db.session() as session:
        account = accounts.find_user(session, ADMIN_EMAIL).account_id
        accounts.create_user(session, account, MONITOR_EMAIL, None, role="monitor")
    with signed_in(server, MONITOR_EMAIL) as client:
        yield client


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    """The admin, signed in."""
    with signed_in(server) as signed:
        yield signed


browser = client  # the same fixture, under the name the source pane tests give it


@pytest.fixture
def flow_id(client: httpx.Client, shop: dict[str, Any]) -> str:
    """A new flow of the shop whose source is the orders CSV, uploaded in the pane."""
    made = new_flow(client, shop)
    assert upload_source(client, made).status_code == 200
    return made
