"""Wiring: settings -> database (migrated) -> vault -> services. Used by the server and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from segbridge.accounts import service as accounts
from segbridge.accounts.service import Principal
from segbridge.alerts.service import AlertService
from segbridge.apps.base import Registry
from segbridge.apps.registry import default_registry
from segbridge.connections.service import ConnectionService
from segbridge.core.access import AccessPolicy, access_policy
from segbridge.core.errors import NotAuthenticated, NotFound
from segbridge.core.files import make_private_dir, restrict_sqlite_file
from segbridge.core.settings import Settings
from segbridge.core.vault import Vault
from segbridge.flows.integrations import IntegrationService
from segbridge.flows.service import FlowService, flows_using
from segbridge.keys import load_vault
from segbridge.runs.queue import RunQueue
from segbridge.storage.db import Database
from segbridge.storage.models import Account, User

ADMIN_EMAIL = "admin@localhost"


@dataclass(frozen=True)
class Runtime:
    """The services of one segbridge process, built once (``build_runtime``); never reassigned:
    the vault follows its key file, so rotating keys needs no new Runtime."""

    settings: Settings
    db: Database
    vault: Vault
    registry: Registry
    connections: ConnectionService
    integrations: IntegrationService
    flows: FlowService
    access: AccessPolicy
    run_queue: RunQueue
    alerts: AlertService

    def close(self) -> None:
        self.run_queue.close()
        self.db.dispose()


def build_runtime(settings: Settings) -> Runtime:
    """Open the database, apply migrations, load the master key, build the services."""
    make_private_dir(settings.home)
    db = Database(settings.resolved_database_url)
    try:
        db.migrate()
        restrict_sqlite_file(settings.resolved_database_url)
        vault = load_vault(settings, db)
    except BaseException:  # a wrong key, a failed migration: start-up ends, its pool with it
        db.dispose()
        raise
    registry = default_registry()
    access = access_policy(settings)
    connections = ConnectionService(db, vault, registry, timeout=settings.http_timeout_seconds,
                                    usage_checks=(flows_using,), access=access)
    run_queue = choose_queue(db, settings)
    return Runtime(settings, db, vault, registry, connections, IntegrationService(db),
                   FlowService(db, access, run_queue, registry), access, run_queue,
                   AlertService(db, vault, settings, access))


def choose_queue(db: Database, settings: Settings) -> RunQueue:
    """Where started runs go: the job queue with PostgreSQL (workers on any machine execute
    them), the in-process queue with SQLite (this process executes them)."""
    url = settings.resolved_database_url
    if not url.startswith("postgresql"):
        return RunQueue()
    from segbridge.queueing.jobs import JobQueue  # (procrastinate: imported only when used)

    return JobQueue(db, url)


def first_start(runtime: Runtime) -> str | None:
    """On an empty database create the account and its admin; return a one-time login URL."""
    with runtime.db.session() as session:
        if session.scalar(select(Account.id).limit(1)) is not None:
            return None
        account = accounts.create_account(session, "Default")
        admin = accounts.create_user(session, account.id, ADMIN_EMAIL, None, is_admin=True)
        admin.is_instance_admin = True
        token = accounts.issue_token(session, admin, kind="login", name="first start",
                                     ttl=accounts.LOGIN_LINK_TTL)
    return login_url(runtime, token)


def login_url(runtime: Runtime, token: str) -> str:
    return f"{runtime.settings.base_url}/login?token={token}"


def cli_principal(runtime: Runtime, email: str | None = None) -> Principal:
    """The CLI acts as a user of the local database: the one named, else the instance admin
    (else the first active admin). Its role applies as in the API and the pages."""
    with runtime.db.session() as session:
        if email:
            named = accounts.find_user(session, email)
            if named.disabled_at is not None:
                raise NotAuthenticated(f"The user {named.email} is disabled; ask an admin of "
                                       "the account, or act as another user with --as.")
            return accounts.principal_for(named, via="cli")
        user = session.scalar(select(User).where(User.role == "admin",
                                                 User.disabled_at.is_(None))
                              .order_by(User.is_instance_admin.desc(), User.created_at)
                              .limit(1))
        if user is None:
            raise NotFound("No admin user exists yet; start the server once (`segbridge "
                           "serve`) or create one with `segbridge users create --admin`.")
        return accounts.principal_for(user, via="cli")
