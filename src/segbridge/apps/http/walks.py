"""Where a run's page walk was, so a resumed run continues at the failing page.

A run's walk has an id, saved with the run's bounds when the export opens. While it reads,
each page it asks for is noted here with the position of its first record (and the items
before it, for offsets). A resumed run of the same walk in the same process starts at the
last noted page at or before its start position, cursor or next link included, instead of
walking again from the first page. Another process (or a restart) has no notes: the walk
starts again at the first page and skips to the position, which gives the same records.

The notes are bounded: the latest ``PAGES`` pages of the latest ``WALKS`` walks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass

from segbridge.apps.http.pages import Page

WALKS = 64
PAGES = 256


@dataclass(frozen=True)
class Step:
    """A page of a walk, the position of its first record and the items before it."""

    page: Page
    position: int
    offset: int


class WalkNotes:
    """The pages of recent walks (thread-safe: runs read in worker threads)."""

    def __init__(self, walks: int = WALKS, pages: int = PAGES) -> None:
        self._walks: OrderedDict[str, deque[Step]] = OrderedDict()
        self._lock = threading.Lock()
        self._max_walks = walks
        self._max_pages = pages

    def note(self, walk: str, step: Step) -> None:
        with self._lock:
            steps = self._walks.get(walk)
            if steps is None:
                steps = self._walks[walk] = deque(maxlen=self._max_pages)
                while len(self._walks) > self._max_walks:
                    self._walks.popitem(last=False)
            self._walks.move_to_end(walk)
            if not steps or steps[-1].page.number < step.page.number:
                steps.append(step)

    def resume_at(self, walk: str, position: int) -> Step | None:
        """The last noted page of the walk whose first record is at or before
        ``position``."""
        with self._lock:
            steps = list(self._walks.get(walk, ()))
        earlier = [step for step in steps if step.position <= position]
        return earlier[-1] if earlier else None


NOTES = WalkNotes()
