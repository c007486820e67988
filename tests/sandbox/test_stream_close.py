"""Live streams end promptly: on ``SandboxState.close()`` from any thread, and when the server
shuts down (uvicorn waits for open connections; a stream must not hold it)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from segbridge.sandbox import SandboxConfig, create_sandbox_app
from segbridge.sandbox.debugger import Debugger

from .conftest import ADMIN_TOKEN, SandboxFactory, StreamListener, serve

pytestmark = pytest.mark.integration

BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_close_from_another_thread_ends_open_streams(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox()
    source = sandbox.new_source()
    url = f"{sandbox.url}/api/sources/{source['id']}/events/stream"
    listeners = [StreamListener(url, headers=BEARER).start() for _ in range(3)]
    assert threading.current_thread() is threading.main_thread()  # not the server's loop

    started = time.monotonic()
    sandbox.state.close()
    assert time.monotonic() - started < 1  # close() itself never waits on the streams
    for listener in listeners:
        assert listener.ended.wait(2), "the stream outlived close()"
        assert listener.error is None  # ended cleanly, not cut
    sandbox.state.close()  # twice is fine


def test_a_stream_opened_after_close_ends_at_once(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox()
    source = sandbox.new_source()
    sandbox.state.debugger.close()
    listener = StreamListener(
        f"{sandbox.url}/api/sources/{source['id']}/events/stream", headers=BEARER
    ).start()
    assert listener.ended.wait(2)


@pytest.mark.parametrize("graceful", [None, 30])
def test_server_shutdown_does_not_wait_for_open_streams(graceful: int | None) -> None:
    """Without a graceful timeout uvicorn would wait for the stream forever."""
    app = create_sandbox_app(SandboxConfig(state_path=None, admin_token=ADMIN_TOKEN))
    with serve(app, timeout_graceful_shutdown=graceful) as url:
        source = app.state.sandbox.store.create("Shutdown")
        listener = StreamListener(
            f"{url}/api/sources/{source.id}/events/stream", headers=BEARER
        ).start()
        started = time.monotonic()
    assert time.monotonic() - started < 3
    assert listener.ended.wait(2)


def test_debugger_close_is_thread_safe_with_a_loop_in_another_thread() -> None:
    """Subscribers on a loop in one thread, close() from another: every waiter wakes."""
    debugger = Debugger(10)
    ready = threading.Event()
    results: list[object] = []

    async def wait_for_end() -> None:
        feed = debugger.feed("src_a")
        subscribers = [feed.subscribe() for _ in range(5)]
        ready.set()
        results.extend(
            await asyncio.wait_for(asyncio.gather(*(s.queue.get() for s in subscribers)), 2)
        )

    thread = threading.Thread(target=asyncio.run, args=(wait_for_end(),))
    thread.start()
    assert ready.wait(2)
    time.sleep(0.05)  # the gets are waiting
    debugger.close()
    thread.join(3)
    assert results == [None] * 5


def test_close_after_the_loop_is_gone_does_not_raise() -> None:
    debugger = Debugger(10)

    async def subscribe() -> None:
        debugger.feed("src_a").subscribe()

    asyncio.run(subscribe())  # its loop is closed now
    debugger.close()
    assert debugger.feed("src_a").closed
    assert debugger.feed("src_new").closed  # feeds made after close are closed too
