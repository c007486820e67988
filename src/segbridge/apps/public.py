"""An application as the Application list shows it (API, CLI): its key, name, what it can do
and its settings (which are secret), never a value. Here, not in the API, so the CLI can
print it without loading the web framework."""

from __future__ import annotations

from pydantic import BaseModel

from segbridge.apps.base import Application


class SettingPublic(BaseModel):
    name: str
    label: str
    kind: str
    required: bool
    advanced: bool
    secret: bool
    help: str
    choices: list[dict[str, str]]
    default: str | None


class ApplicationPublic(BaseModel):
    key: str
    name: str
    description: str
    capabilities: list[str]
    settings: list[SettingPublic]


def application_public(application: Application) -> ApplicationPublic:
    return ApplicationPublic(
        key=application.key, name=application.name, description=application.description,
        capabilities=sorted(c.value for c in application.capabilities),
        settings=[SettingPublic(**s.public()) for s in application.settings])
