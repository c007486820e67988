"""The mapping editor of one import, with its live preview (nothing is sent)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
