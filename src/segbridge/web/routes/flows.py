"""Flows: the list, and the flow builder (a flow's page): source, filters, destinations,
schedule, run now, YAML."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
