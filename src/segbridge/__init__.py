"""segbridge: a self-hosted integration platform whose first-class application is Segment."""

from __future__ import annotations

__version__ = "0.1.0"
