"""Flows: export records from a source, map them, import them into Segment."""
