"""The run engine: plan, produce, deliver, count, checkpoint; one entry point, ``execute``.

``execute`` (and the CLI's ``execute_here``) are imported on first use: a lane process
(``python -m segbridge.runs.lanes``) imports this package too, and needs only the producer,
the exports and the mapping, not the database, the sinks or HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from segbridge.runs.executor import execute, execute_here

__all__ = ["execute", "execute_here"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from segbridge.runs import executor

        return getattr(executor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
