"""/api/v1/applications: the Application list."""

from __future__ import annotations

from fastapi import APIRouter

from segbridge.api.deps import CurrentPrincipal, RuntimeDep
from segbridge.api.schemas import ApplicationPublic, SettingPublic
from segbridge.apps.base import Application

router = APIRouter(prefix="/applications", tags=["applications"])


def application_public(application: Application) -> ApplicationPublic:
    return ApplicationPublic(
        key=application.key, name=application.name, description=application.description,
        capabilities=sorted(c.value for c in application.capabilities),
        settings=[SettingPublic(**s.public()) for s in application.settings])


@router.get("", operation_id="list_applications")
def list_applications(_principal: CurrentPrincipal, runtime: RuntimeDep) -> list[ApplicationPublic]:
    return [application_public(app) for app in runtime.registry.all()]
