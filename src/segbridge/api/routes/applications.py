"""/api/v1/applications: the Application list."""

from __future__ import annotations

from fastapi import APIRouter

from segbridge.api.deps import CurrentPrincipal, RuntimeDep
from segbridge.apps.public import ApplicationPublic, application_public

router = APIRouter(prefix="/applications", tags=["applications"])


@router.get("", operation_id="list_applications")
def list_applications(_principal: CurrentPrincipal, runtime: RuntimeDep) -> list[ApplicationPublic]:
    return [application_public(app) for app in runtime.registry.all()]
