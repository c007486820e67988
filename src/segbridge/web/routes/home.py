"""The home page: where things stand, and the three steps of a first connection."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from segbridge.web.auth import SignedIn, runtime_of
from segbridge.web.rendering import render
from segbridge.web.results import local_segment

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request, user: SignedIn) -> Response:
    connections = runtime_of(request).connections.list_all(user.principal)
    online = sum(1 for c in connections if c.status == "online")
    return render("home.html", user=user, nav="home", total=len(connections), online=online,
                  sandbox=local_segment(request) is not None)
