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

from segbridge.core.errors import FieldProblem, ValidationFailed
from segbridge.flows.document import FlowDocument, parse_flow_document

__all__ = ["FlowDocument", "parse_flow_document", "validate_definition"]


def validate_definition(doc: object) -> list[FieldProblem]:
    """Every problem of a flow document, each naming its place and the fix."""
    try:
        parse_flow_document(doc)
    except ValidationFailed as exc:
        return exc.problems
    return []
