"""The base of every public form: a resource as the services answer it and the API shows it.

It lives in core/ so that any package (connections, flows, runs) can declare its public forms
without importing another's. The services return these models; the API declares them as its
response models (so the OpenAPI document describes every answer), the pages read their
attributes and the CLI prints ``as_json()``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PublicForm(BaseModel):
    """A resource as the API answers it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    def as_json(self) -> dict[str, object]:
        """The resource as the API answers it (for the CLI's ``--json``)."""
        answered: dict[str, object] = self.model_dump(mode="json", by_alias=True)
        return answered
