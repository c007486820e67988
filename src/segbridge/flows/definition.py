"""A flow's definition (flows as code): validated with every problem listed.

    name: Orders to Segment
    integration: Shop
    enabled: true
    schedule: {cron: "0 * * * *", timezone: Europe/Paris}
    export:
      type: csv                      # csv | ndjson | json | database
      path: /srv/data/orders.csv     # or upload: upl_...   (files)
      options: {delimiter: ",", quote: '"', encoding: utf-8, header: true}
      key_field: order_id            # optional: the record's stable key (messageIds)
      connection: Shop DB            # database: a Database connection
      query: SELECT * FROM orders
      cursor: {column: updated_at, lag_seconds: 60}   # incremental
    steps:
      - lookup:                                       # fields added from another connection
          name: customer                              # the record field the row goes under
          connection: Shop DB                         # an application that answers lookups
          query: select id, plan from customers where id in :id
          params: {id: customer_id}                   # parameter -> record field
          key_column: id                              # batched: one IN (...) per batch
          on_missing: leave_empty                     # | fail_record | ignore_record
          cache: {size: 10000, ttl_seconds: 600}
      - lookup:                                       # an HTTP API connection: a request
          name: account                               # per distinct key, several at once
          connection: CRM API                         # (the connection's concurrency level)
          request: {method: GET, path: "/accounts/{id}", query: {expand: plan}}
          params: {id: account_id}                    # {placeholder} -> record field
          result: data                                # where the answer's object is ($: all)
          on_missing: leave_empty                     # a 404 is "nothing found"
      - filter: {expression: "status != 'test'"}      # records for which it is false: ignored
    imports:
      - name: Orders
        connection: Segment - production
        call: track
        mapping: {userId: customer_id, event: {constant: Order Completed}}

The document is the typed model ``FlowDocument`` (flows/document.py); this module is the entry
that answers its problems as a list, for the callers that only need to know what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from segbridge.apps.base import Registry
from segbridge.core.errors import FieldProblem, ValidationFailed
from segbridge.flows.document import FlowDocument, parse_flow_document

__all__ = ["FlowDocument", "lookup_connection_ids", "parse_flow_document", "resolved_steps",
           "validate_definition"]


def validate_definition(doc: object) -> list[FieldProblem]:
    """Every problem of a flow document, each naming its place and the fix."""
    try:
        parse_flow_document(doc)
    except ValidationFailed as exc:
        return exc.problems
    return []


def resolved_steps(session: Session, account_id: str, registry: Registry,
                   steps: Sequence[Mapping[str, Any]],
                   problems: list[FieldProblem]) -> list[dict[str, Any]]:
    """The steps as written, each lookup with its connection's id beside its name; a lookup
    whose connection is not one of the account's, or cannot answer lookups, or is written in
    another application's form (a ``request`` to a Database connection), or whose query or
    request does not fit its parameters, adds its problems at ``steps.N.lookup...``."""
    from segbridge.runs.lookup_factory import lookup_connection_problems

    resolved = []
    for index, step in enumerate(steps):
        lookup = step.get("lookup")
        if not isinstance(lookup, Mapping):
            resolved.append(dict(step))
            continue
        written = {k: v for k, v in lookup.items() if k != "connection_id"}
        connection, found = lookup_connection_problems(session, account_id, registry, written,
                                                       f"steps.{index}.lookup")
        problems += found
        if connection is not None:
            written["connection_id"] = connection.id
        resolved.append({"lookup": written})
    return resolved


def lookup_connection_ids(definition: Mapping[str, Any]) -> set[str]:
    """The ids of the connections a stored flow's lookups use."""
    return {str(step["lookup"]["connection_id"]) for step in definition.get("steps") or []
            if isinstance(step.get("lookup"), Mapping)
            and step["lookup"].get("connection_id")}
