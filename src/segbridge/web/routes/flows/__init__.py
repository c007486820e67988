"""Flows: the list, and the flow builder (a flow's page): source, lookups, filters,
destinations, schedule, run now, YAML.

The builder's state lives on the server: every action reads the flow's document
(``flow.definition.as_written()``), changes one part (``web.flow_editing``) and saves it with
one service call (``FlowService.update(..., unfinished=True)``). A refused save changes
nothing and shows each problem at its field (422). Each card of the builder opens its settings
in the side pane (``#pane-host``); without htmx the pane's URL is the builder page with the
pane open over it.

- ``pages``: the list, Create flow, the builder and its header's actions, the YAML.
- ``source``: the Add source pane (files or database, sample records).
- ``lookups``: the Lookup pane (add, edit, remove a lookup step; records with what it found).
- ``panes``: filters, schedule, destinations.
- ``webhook``: a webhook flow's box: its URL (shown once), rotate, secret, counts, payloads.
"""

from __future__ import annotations

from fastapi import APIRouter

from segbridge.web.routes.flows import lookups, pages, panes, source, webhook

router = APIRouter(include_in_schema=False)
router.include_router(pages.router)
router.include_router(source.router)
router.include_router(lookups.router)
router.include_router(panes.router)
router.include_router(webhook.router)
