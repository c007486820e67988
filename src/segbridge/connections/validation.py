"""Validation of a ConnectionDraft: every problem found at once, each naming its field and fix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from segbridge.apps.base import Application, Registry, SettingKind, SettingSpec
from segbridge.connections.model import (
    MAX_CONCURRENCY,
    MAX_EVENTS_PER_SECOND,
    MAX_REQUESTS_PER_SECOND,
    MIN_CONCURRENCY,
    NAME_MAX_CHARS,
    ConnectionDraft,
    name_key,
)
from segbridge.core.errors import FieldProblem
from segbridge.core.secrets import Secret, looks_masked
from segbridge.storage.models import Connection


@dataclass(frozen=True)
class ValidDraft:
    """A draft that passed validation: settings split into plain values and secrets."""

    name: str
    application: Application
    values: dict[str, str | None]
    secrets: dict[str, Secret]
    concurrency_level: int | None
    lender: Connection | None
    requests_per_second: float | None = None
    events_per_second: float | None = None


def check_name(
    session: Session, account_id: str, name: str, *, own_id: str | None
) -> list[FieldProblem]:
    trimmed = name.strip()
    if not trimmed:
        return [FieldProblem("name", "enter a name, e.g. 'Segment - production'")]
    if len(trimmed) > NAME_MAX_CHARS:
        return [FieldProblem(
            "name", f"use at most {NAME_MAX_CHARS} characters (this one has {len(trimmed)})")]
    query = select(Connection.id).where(
        Connection.account_id == account_id, Connection.name_key == name_key(trimmed))
    other = session.scalar(query)
    if other is not None and other != own_id:
        return [FieldProblem(
            "name", f"a connection named '{trimmed}' exists already; choose another name")]
    return []


def check_application(
    registry: Registry, key: str | None
) -> tuple[Application | None, list[FieldProblem]]:
    if not key:
        return None, [FieldProblem("application", "choose an application, e.g. 'segment'")]
    application = registry.get(key)
    if application is None:
        known = ", ".join(app.key for app in registry.all())
        return None, [FieldProblem(
            "application", f"unknown application '{key}'; choose one of: {known}")]
    return application, []


def check_settings(
    application: Application, submitted: Mapping[str, str | Secret | None]
) -> tuple[dict[str, str | None], dict[str, Secret], list[FieldProblem]]:
    """The settings checked against the application's, split into plain values and
    secrets (a draft's settings arrive masked: here they are revealed, to be checked)."""
    specs = {spec.name: spec for spec in application.settings}
    problems = [
        FieldProblem(f"settings.{key}", f"unknown setting for {application.name}; known "
                                        f"settings: {', '.join(specs)}")
        for key in submitted if key not in specs
    ]
    values: dict[str, str | None] = {}
    secrets: dict[str, Secret] = {}
    for spec in application.settings:
        raw = submitted.get(spec.name)
        if isinstance(raw, Secret):
            raw = raw.reveal()
        text = raw.strip() if isinstance(raw, str) else None
        problem = _check_setting(spec, text or None)
        if problem:
            problems.append(problem)
        elif spec.secret and text:
            secrets[spec.name] = Secret(text)
        elif not spec.secret:
            values[spec.name] = text or spec.default
    if not problems:
        problems.extend(application.validate(values))
    return values, secrets, problems


def _check_setting(spec: SettingSpec, text: str | None) -> FieldProblem | None:
    field = f"settings.{spec.name}"
    if text is None:
        if spec.required and spec.secret:
            return FieldProblem(field, f"enter the {spec.label.lower()}; it is never shown or "
                                       "kept in the form, so every save needs it again")
        if spec.required:
            return FieldProblem(field, f"enter the {spec.label.lower()}")
        return None
    if spec.secret and looks_masked(text):
        return FieldProblem(field, f"enter the {spec.label.lower()} itself; a masked value "
                                   "cannot be saved")
    if len(text) > spec.max_length:
        return FieldProblem(field, f"use at most {spec.max_length} characters")
    if spec.secret and any(ch.isspace() for ch in text):
        return FieldProblem(field, f"the {spec.label.lower()} has no spaces; copy it again")
    if spec.kind is SettingKind.CHOICE and text not in {v for v, _ in spec.choices}:
        allowed = ", ".join(v for v, _ in spec.choices)
        return FieldProblem(field, f"choose one of: {allowed}")
    return None


def check_concurrency(level: object) -> list[FieldProblem]:
    if level is None:
        return []
    if isinstance(level, bool) or not isinstance(level, int):
        return [FieldProblem("concurrency_level",
                             f"enter a whole number from {MIN_CONCURRENCY} to {MAX_CONCURRENCY}, "
                             "or leave it blank for the default of 25")]
    if not MIN_CONCURRENCY <= level <= MAX_CONCURRENCY:
        return [FieldProblem("concurrency_level",
                             f"enter a number from {MIN_CONCURRENCY} to {MAX_CONCURRENCY} "
                             f"(got {level}); blank means the default of 25")]
    return []


RATE_FIELDS: dict[str, tuple[str, float]] = {
    "requests_per_second": ("requests", MAX_REQUESTS_PER_SECOND),
    "events_per_second": ("events", MAX_EVENTS_PER_SECOND),
}


def check_rates(draft: ConnectionDraft) -> list[FieldProblem]:
    return [problem for field in RATE_FIELDS
            for problem in check_rate(field, getattr(draft, field))]


def check_rate(field: str, rate: object) -> list[FieldProblem]:
    """A rate limit: blank (no limit) or a number above 0 (decimals allowed: 0.5 is one
    every two seconds) up to the field's maximum."""
    what, most = RATE_FIELDS[field]
    if rate is None:
        return []
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate != rate:
        return [FieldProblem(field, f"enter the {what} per second as a number, e.g. 500, or "
                                    "leave it blank for no limit")]
    if not 0 < rate <= most:
        return [FieldProblem(field, f"enter a number above 0 and at most {most:,.0f} "
                                    f"(got {rate:g}); blank means no limit")]
    return []


def check_lender(
    session: Session, account_id: str, draft: ConnectionDraft, application: Application | None,
    *, own_id: str | None,
) -> tuple[Connection | None, list[FieldProblem]]:
    lender_id = draft.borrow_concurrency_from
    if not lender_id:
        return None, []
    field = "borrow_concurrency_from"
    lender = session.get(Connection, lender_id)
    if lender is None or lender.account_id != account_id:
        return None, [FieldProblem(field, f"no connection '{lender_id}' in this account; "
                                          "choose one from the list or leave it empty")]
    if own_id is not None and lender.id == own_id:
        return None, [FieldProblem(field, "a connection cannot borrow concurrency from itself")]
    if application is not None and lender.application != application.key:
        return None, [FieldProblem(
            field, f"'{lender.name}' is a {lender.application} connection; borrow only from a "
                   f"connection of the same application ({application.key})")]
    if own_id is not None and _lends_to_itself(session, lender, own_id):
        return None, [FieldProblem(
            field, f"'{lender.name}' already borrows, directly or through others, from this "
                   "connection; borrowing from it would make a cycle")]
    return lender, []


def _lends_to_itself(session: Session, lender: Connection, own_id: str) -> bool:
    seen: set[str] = set()
    current: Connection | None = lender
    while current is not None and current.id not in seen:
        if current.id == own_id:
            return True
        seen.add(current.id)
        nxt = current.borrow_concurrency_from
        current = session.get(Connection, nxt) if nxt else None
    return False
