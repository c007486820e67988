"""The webhook box on a webhook flow's page: the URL shown once with a copy button after
create and rotate, the secret write-only, the counts and the last payloads."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import orjson

from segbridge.web.routes.flows import webhook as webhook_pages
from tests.integration.flows.conftest import Receiver, segment_connection
from tests.integration.flows.test_flow_runs import create_flow
from tests.integration.webhooks.conftest import HookServer, listener, post, webhook_flow
from tests.support.browser_session import browser


def routed(server: HookServer) -> None:
    """The box's routes (until the flows' router includes them)."""
    paths = {getattr(route, "path", "") for route in server.app.router.routes}
    if "/flows/{flow_id}/webhook" not in paths:
        server.app.include_router(webhook_pages.router)


def test_the_box_shows_the_url_once_then_the_counts_and_last_payloads(
    server: HookServer, receiver: Receiver, shop: dict[str, Any],
) -> None:
    routed(server)
    connection = segment_connection(server, receiver)
    flow = create_flow(server, webhook_flow("Hooks", connection["name"],
                                            verification={"kind": "token"}))
    with browser(server) as page:
        csrf = {"csrf_token": page.headers["X-Test-Csrf"]}
        builder = page.get(f"/flows/{flow['id']}")
        assert builder.status_code == 200
        assert f'hx-get="/flows/{flow["id"]}/webhook"' in builder.text
        empty = page.get(f"/flows/{flow['id']}/webhook")
        assert "It has no URL yet" in empty.text and 'id="webhook-create"' in empty.text

        created = page.post(f"/flows/{flow['id']}/webhook", data=csrf)
        assert created.status_code == 200, created.text
        url = re.search(r'id="webhook-url" type="text" readonly value="([^"]+)"', created.text)
        assert url is not None and 'data-copy="#webhook-url"' in created.text
        path = urlparse(url.group(1)).path
        assert path not in page.get(f"/flows/{flow['id']}/webhook").text  # shown once

        saved = page.post(f"/flows/{flow['id']}/webhook/secret",
                          data={**csrf, "secret": "t0ken-for-the-page"})
        assert "Secret saved." in saved.text and "t0ken-for-the-page" not in saved.text
        assert post(server, path, orjson.dumps({"order_id": 7, "customer_id": "c7"}),
                    Authorization="Bearer t0ken-for-the-page").status_code == 200
        assert post(server, path, b"{}", Authorization="Bearer guess").status_code == 401
        box = page.get(f"/flows/{flow['id']}/webhook").text
        assert re.search(r'id="webhook-received">2<', box)
        assert re.search(r'id="webhook-rejected">1<', box)
        assert "&#34;order_id&#34;: 7" in box or '"order_id": 7' in box

        rotated = page.post(f"/flows/{flow['id']}/webhook/rotate", data=csrf)
        assert "the old URL no longer works" in rotated.text
        assert post(server, path, b"{}", Authorization="Bearer t0ken-for-the-page") \
            .status_code == 404
    assert listener(server, flow["id"])["rotated_at"] is not None
