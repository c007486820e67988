"""The JSON management API: sources, their Debugger events, drops and counters; faults.

Each caller sees and changes only its account's sources (another account's id: 404) and
its account's faults. "read" is anyone the host lets in (a monitor too); "events" those whose
role may see records' data (not a monitor).

Routes (relative to the sandbox root; ``/sandbox/...`` when mounted in segbridge):

    GET    /api/sources                      list            (read)
    POST   /api/sources {"name"}             create -> 201   (manage)
    GET    /api/sources/{id}                 one source      (read)
    PATCH  /api/sources/{id} {"name"}        rename          (manage)
    DELETE /api/sources/{id}                 delete -> 204   (manage)
    GET    /api/sources/{id}/events?q=&type=&event=&limit=
                                             newest first; search, call type, event or
                                             page name (events)
    GET    /api/sources/{id}/events/stream?after=
                                             server-sent events; after Last-Event-ID or
                                             ``after``, the kept events first (events)
    GET    /api/sources/{id}/stats           counters        (read)
    GET    /api/sources/{id}/dropped?limit=  drop log        (read)
    GET    /api/receiver                     unknown keys, missing keys, rejected, peak
                                             requests in flight (read)
    GET|PUT|DELETE /api/faults               the account's fault injection (admin)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from segbridge.sandbox.auth import AccessPolicy, Caller
from segbridge.sandbox.debugger import EventKind
from segbridge.sandbox.faults import FaultSettingsError, parse_fault_request
from segbridge.sandbox.limits import DEFAULT_SOURCE_NAME
from segbridge.sandbox.responses import ApiError, json_response, read_json_object
from segbridge.sandbox.sse import event_stream, last_seen
from segbridge.sandbox.state import SandboxState
from segbridge.sandbox.store import IMPLICIT_ACCOUNT, Source


def _limit(request: Request, default: int, maximum: int) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        message = f"limit must be a whole number from 1 to {maximum}"
        raise ApiError(422, "invalid_limit", message, {"field": "limit"})
    return int(raw)


class ManagementAPI:
    def __init__(self, state: SandboxState, policy: AccessPolicy) -> None:
        self.state = state
        self.policy = policy

    def routes(self) -> list[Route]:
        sources = "/api/sources"
        return [
            Route(sources, self.list_sources, methods=["GET"]),
            Route(sources, self.create_source, methods=["POST"]),
            Route(sources + "/{id}", self.get_source, methods=["GET"]),
            Route(sources + "/{id}", self.rename_source, methods=["PATCH"]),
            Route(sources + "/{id}", self.delete_source, methods=["DELETE"]),
            Route(sources + "/{id}/events", self.events, methods=["GET"]),
            Route(sources + "/{id}/events/stream", self.stream, methods=["GET"]),
            Route(sources + "/{id}/stats", self.stats, methods=["GET"]),
            Route(sources + "/{id}/dropped", self.dropped, methods=["GET"]),
            Route("/api/receiver", self.receiver, methods=["GET"]),
            Route("/api/faults", self.get_faults, methods=["GET"]),
            Route("/api/faults", self.put_faults, methods=["PUT"]),
            Route("/api/faults", self.delete_faults, methods=["DELETE"]),
        ]

    def _reader(self, request: Request) -> Caller:
        """The caller; an account opening the receiver for the first time gets its source."""
        caller = self.policy.require_read(request)
        if caller.account_id != IMPLICIT_ACCOUNT:
            self.state.store.open_workspace(caller.account_id, DEFAULT_SOURCE_NAME)
        return caller

    def _source(self, request: Request) -> Source:
        caller = self.policy.require_read(request)
        return self.state.store.get(request.path_params["id"], caller.account_id)

    def _watched_source(self, request: Request) -> Source:
        """A source whose events the caller may see."""
        caller = self.policy.require_events(request)
        return self.state.store.get(request.path_params["id"], caller.account_id)

    def _own_source(self, request: Request) -> Source:
        """A source the caller may change (404 for another account's)."""
        caller = self.policy.require_manage(request)
        return self.state.store.get(request.path_params["id"], caller.account_id)

    async def list_sources(self, request: Request) -> Response:
        caller = self._reader(request)
        sources = self.state.store.list(caller.account_id)
        return json_response({"sources": [s.to_json() for s in sources]})

    async def create_source(self, request: Request) -> Response:
        caller = self.policy.require_manage(request)
        body = await read_json_object(request)
        source = self.state.store.create(body.get("name"), caller.account_id)
        return json_response(source.to_json(), 201)

    async def get_source(self, request: Request) -> Response:
        return json_response(self._source(request).to_json())

    async def rename_source(self, request: Request) -> Response:
        source = self._own_source(request)
        body = await read_json_object(request)
        return json_response(self.state.store.rename(source.id, body.get("name")).to_json())

    async def delete_source(self, request: Request) -> Response:
        self.state.delete_source(self._own_source(request).id)
        return Response(status_code=204)

    async def events(self, request: Request) -> Response:
        source = self._watched_source(request)
        limit = _limit(request, self.state.config.debugger_size, self.state.config.debugger_size)
        params = request.query_params
        kind = EventKind(params.get("type", "").strip(), params.get("event", "").strip())
        records = self.state.debugger.feed(source.id).newest(params.get("q", ""), limit, kind)
        return json_response({"events": [r.to_json() for r in records], "count": len(records)})

    async def stream(self, request: Request) -> Response:
        source = self._watched_source(request)
        after = last_seen(request.headers.get("last-event-id"), request.query_params.get("after"))
        return event_stream(self.state.debugger.feed(source.id), after)

    async def stats(self, request: Request) -> Response:
        source = self._source(request)
        feed = self.state.debugger.feed(source.id)
        body = {"source_id": source.id, **feed.stats.to_json(), "in_debugger": len(feed.events)}
        return json_response(body)

    async def dropped(self, request: Request) -> Response:
        source = self._source(request)
        feed = self.state.debugger.feed(source.id)
        limit = _limit(request, self.state.config.debugger_size, self.state.config.debugger_size)
        records = list(reversed(feed.dropped))[:limit]
        return json_response({"dropped": [r.to_json() for r in records]})

    async def receiver(self, request: Request) -> Response:
        self.policy.require_read(request)
        return json_response(
            {**self.state.receiver.to_json(), "mode": self.state.config.unknown_key_mode}
        )

    async def get_faults(self, request: Request) -> Response:
        caller = self.policy.require_admin(request)
        return json_response(self.state.faults_for(caller.account_id).to_json())

    async def put_faults(self, request: Request) -> Response:
        faults = self.state.faults_for(self.policy.require_admin(request).account_id)
        body = await read_json_object(request)
        try:
            settings, seed = parse_fault_request(body)
        except FaultSettingsError as err:
            raise ApiError(422, "invalid_faults", str(err), {"problems": err.problems}) from err
        faults.apply(settings, seed)
        return json_response(faults.to_json())

    async def delete_faults(self, request: Request) -> Response:
        faults = self.state.faults_for(self.policy.require_admin(request).account_id)
        faults.reset()
        return json_response(faults.to_json())
