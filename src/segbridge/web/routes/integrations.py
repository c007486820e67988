"""Integrations: the list (flows, last run, open errors), create, rename, delete, and an
integration's page listing its flows."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
