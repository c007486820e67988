"""The Create connection form <-> ``ConnectionDraft``, and problems -> the fields they name.

Form field names are the service's field names (``name``, ``settings.write_key``,
``concurrency_level``, ``borrow_concurrency_from``), so a ``FieldProblem`` lands next to
its field without translation. Secret settings are read from the form and handed to the
service; they are never kept for rendering (the password field is always empty).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from segbridge.apps.base import Application, SettingSpec
from segbridge.connections import validation
from segbridge.connections.model import ConnectionDraft
from segbridge.core.errors import FieldProblem

NAME = "name"
APPLICATION = "application"
LEVEL = "concurrency_level"
LENDER = "borrow_concurrency_from"
REQUESTS_RATE = "requests_per_second"
EVENTS_RATE = "events_per_second"
_WHOLE_NUMBER = re.compile(r"[+-]?\d{1,6}")
_NUMBER = re.compile(r"\d{1,9}(\.\d{1,6})?|\.\d{1,6}")


def setting_field(spec: SettingSpec) -> str:
    return f"settings.{spec.name}"


def field_id(name: str) -> str:
    """The HTML id of a form field: ``settings.write_key`` -> ``field-settings-write_key``."""
    return "field-" + name.replace(".", "-")


def error_id(name: str) -> str:
    return field_id(name) + "-error"


def help_id(name: str) -> str:
    return field_id(name) + "-help"


@dataclass
class ConnectionForm:
    """What the pane shows and submits. ``secrets`` is input only, never rendered."""

    name: str = ""
    settings: dict[str, str] = field(default_factory=dict)
    concurrency_level: str = ""
    borrow_concurrency_from: str = ""
    requests_per_second: str = ""
    events_per_second: str = ""
    secrets: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def blank(cls, application: Application) -> ConnectionForm:
        defaults = {spec.name: spec.default or "" for spec in application.settings
                    if not spec.secret}
        return cls(settings=defaults)

    @classmethod
    def parse(cls, form: FormData, application: Application) -> ConnectionForm:
        text = _texts(form)
        parsed = cls(name=text.get(NAME, ""), concurrency_level=text.get(LEVEL, "").strip(),
                     borrow_concurrency_from=text.get(LENDER, "").strip(),
                     requests_per_second=text.get(REQUESTS_RATE, "").strip(),
                     events_per_second=text.get(EVENTS_RATE, "").strip())
        for spec in application.settings:
            value = text.get(setting_field(spec), "")
            if spec.secret:
                parsed.secrets[spec.name] = value
            else:
                parsed.settings[spec.name] = value
        return parsed

    @classmethod
    def from_connection(cls, connection: Mapping[str, Any],
                        application: Application) -> ConnectionForm:
        stored = connection.get("settings") or {}
        settings = {spec.name: str(stored.get(spec.name) or spec.default or "")
                    for spec in application.settings if not spec.secret}
        level = connection.get("concurrency_level")
        return cls(name=str(connection.get("name") or ""), settings=settings,
                   concurrency_level="" if level is None else str(level),
                   borrow_concurrency_from=str(connection.get(LENDER) or ""),
                   requests_per_second=_shown(connection.get(REQUESTS_RATE)),
                   events_per_second=_shown(connection.get(EVENTS_RATE)))

    @property
    def borrowing(self) -> bool:
        return bool(self.borrow_concurrency_from)

    def secret_values(self) -> list[str]:
        return [value.strip() for value in self.secrets.values() if value.strip()]

    def first_secret(self) -> str | None:
        values = self.secret_values()
        return values[0] if values else None

    def draft(self, application_key: str) -> tuple[ConnectionDraft, list[FieldProblem]]:
        """The draft for the service, and the problems only the form can see (a level that is
        not a whole number, a rate that is not a number), worded by the service's own
        validation. While borrowing, the lender's level and rate limit apply."""
        level, problems = _level(self.concurrency_level)
        requests, requests_problems = _rate(REQUESTS_RATE, self.requests_per_second)
        events, events_problems = _rate(EVENTS_RATE, self.events_per_second)
        problems += requests_problems + events_problems
        settings: dict[str, str | None] = {**self.settings, **self.secrets}
        draft = ConnectionDraft(
            name=self.name, application=application_key, settings=settings,
            concurrency_level=None if self.borrowing else level,
            borrow_concurrency_from=self.borrow_concurrency_from or None,
            requests_per_second=None if self.borrowing else requests,
            events_per_second=None if self.borrowing else events)
        return draft, ([] if self.borrowing else problems)


def _texts(form: FormData) -> dict[str, str]:
    return {key: value for key, value in form.multi_items() if isinstance(value, str)}


def _level(text: str) -> tuple[int | None, list[FieldProblem]]:
    if not text:
        return None, []
    if _WHOLE_NUMBER.fullmatch(text):
        return int(text), []
    return None, validation.check_concurrency(text)


def _rate(field: str, text: str) -> tuple[float | None, list[FieldProblem]]:
    if not text:
        return None, []
    if _NUMBER.fullmatch(text):
        return float(text), []
    return None, validation.check_rate(field, text)


def _shown(rate: object) -> str:
    """A stored rate as the form shows it: 500, not 500.0."""
    return "" if rate is None else f"{rate:g}" if isinstance(rate, float) else str(rate)


@dataclass(frozen=True)
class FieldErrors:
    """Problems sorted onto the form's fields; the rest are shown above the form."""

    by_field: dict[str, str]
    general: list[str]

    @classmethod
    def none(cls) -> FieldErrors:
        return cls({}, [])

    @classmethod
    def of(cls, problems: Iterable[FieldProblem], fields: Iterable[str]) -> FieldErrors:
        known = set(fields)
        by_field: dict[str, list[str]] = {}
        general: list[str] = []
        for problem in problems:
            if problem.field in known:
                by_field.setdefault(problem.field, []).append(problem.message)
            else:
                general.append(f"{problem.field}: {problem.message}")
        return cls({name: "; ".join(messages) for name, messages in by_field.items()}, general)

    def get(self, name: str) -> str:
        return self.by_field.get(name, "")

    def any_in(self, names: Iterable[str]) -> bool:
        return any(name in self.by_field for name in names)

    def __bool__(self) -> bool:
        return bool(self.by_field or self.general)


def form_fields(application: Application) -> list[str]:
    """Every field of the pane, in order (the ones that can carry an error)."""
    return [NAME, APPLICATION, *(setting_field(spec) for spec in application.settings),
            LENDER, LEVEL, REQUESTS_RATE, EVENTS_RATE]


def advanced_fields(application: Application) -> list[str]:
    return [*(setting_field(s) for s in application.settings if s.advanced), LENDER, LEVEL,
            REQUESTS_RATE, EVENTS_RATE]
