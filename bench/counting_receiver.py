"""A minimal Segment-compatible receiver that only counts track calls (not the connection
test's identify ping): the same receiver for both
sides of the flows benchmark (decodes each body with orjson, gunzips gzip bodies).

Run: python bench/counting_receiver.py PORT   (GET /count answers the number of calls)
"""

from __future__ import annotations

import gzip
import sys
from typing import Any

import orjson
import uvicorn

COUNT = {"calls": 0, "requests": 0}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        await _answer(send, orjson.dumps(COUNT))
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    payload = orjson.loads(body)
    COUNT["requests"] += 1
    single = "track" if scope["path"].endswith("/track") else "other"
    calls = payload.get("batch", [{"type": single}])
    COUNT["calls"] += sum(1 for call in calls if call.get("type") == "track")
    await _answer(send, b'{"success":true}')


async def _answer(send: Any, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False, http="httptools", loop="uvloop")
