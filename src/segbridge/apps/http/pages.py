"""Which page to ask for next, and when to stop.

A ``Pager`` turns the export's pagination into the first page to ask for and, after each
page, the next one (or None): a page number or an offset counted up, a cursor or a next URL
read from the page, a ``Link: rel=next`` header. Every next URL must be on the connection's
own origin (the connection's credentials go with it); the access policy checks it too.

A resumed run asks for ``first(start_position)``: with page numbers or offsets, full pages and
nothing left out locally, the page holding that position is computed and asked for directly;
otherwise the walk starts again at the first page and the records before the position are
skipped (parsed, not built into records).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from segbridge.apps.http.connection import origin_of
from segbridge.exports.errors import ExportError


@dataclass(frozen=True)
class Page:
    """One request of the walk: its ordinal (1-based), URL and query parameters."""

    number: int
    url: str
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PageRead:
    """What a page gave: how many items, the scalars picked from its body, its next link,
    and how many of its items became records (the others were outside the window)."""

    items: int
    values: Mapping[str, Any]
    link_next: str | None
    kept: int


def query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Pager:
    """The walk over an export's pages (``pagination`` as the flow document has it)."""

    def __init__(self, url: str, query: Mapping[str, Any], pagination: Mapping[str, Any] | None,
                 origin: tuple[str, str, int], mask: Any) -> None:
        self.url = url
        self.query = {name: query_text(value) for name, value in query.items()}
        self.paging = dict(pagination or {})
        self.kind = str(self.paging.get("type") or "none")
        self.size: int | None = self.paging.get("size")
        self.origin = origin
        self._mask = mask
        self.stop = self.paging.get("stop") or ("short" if self.size else "empty")

    @property
    def wanted(self) -> tuple[str, ...]:
        """The body paths this walk reads (a cursor, a next URL)."""
        return tuple(str(self.paging[name]) for name in ("cursor_path", "next_path")
                     if self.paging.get(name))

    def can_jump(self) -> bool:
        return self.kind in ("page", "offset") and self.stop == "short"

    def first(self, start_position: int, counted_locally: bool) -> tuple[Page, int]:
        """The first page to ask for and the position of its first record."""
        if start_position > 0 and self.size and self.can_jump() and not counted_locally:
            skipped = start_position // self.size
            return self._numbered(skipped + 1, skipped * self.size), skipped * self.size
        return self._numbered(1, 0), 0

    def after(self, page: Page, read: PageRead, offset: int) -> Page | None:
        """The page after ``page`` (``offset``: the items before the next page), or None."""
        max_pages = self.paging.get("max_pages")
        if self.kind == "none" or (max_pages and page.number >= max_pages) or read.items == 0:
            return None
        if self.stop == "short" and self.size and read.items < self.size:
            return None
        if self.kind in ("page", "offset"):
            return self._numbered(page.number + 1, offset)
        if self.kind == "cursor":
            cursor = read.values.get(str(self.paging["cursor_path"]))
            if cursor is None or cursor == "":
                return None
            return Page(page.number + 1, self.url,
                        {**self.query, str(self.paging["cursor_param"]): query_text(cursor)})
        target = read.link_next if self.kind == "link" else \
            read.values.get(str(self.paging["next_path"]))
        if not isinstance(target, str) or not target.strip():
            return None
        return Page(page.number + 1, self._next_url(page, target.strip()))

    def _numbered(self, number: int, offset: int) -> Page:
        params = dict(self.query)
        if self.kind == "page":
            params[str(self.paging.get("param") or "page")] = \
                str(int(self.paging.get("start", 1)) + number - 1)
        elif self.kind == "offset":
            params[str(self.paging.get("param") or "offset")] = str(offset)
        if self.kind in ("page", "offset") and self.size:
            default = "per_page" if self.kind == "page" else "limit"
            params[str(self.paging.get("size_param") or default)] = str(self.size)
        return Page(number, self.url, params)

    def _next_url(self, page: Page, target: str) -> str:
        current = httpx.URL(page.url).copy_merge_params(dict(page.params))
        try:
            url = str(current.join(target))
        except httpx.InvalidURL:
            url = ""
        if not url.startswith(("http://", "https://")):
            raise ExportError(f"Page {page.number} names its next page as "
                              f"{self._mask(target)!r}, which is not a URL.", cause="pagination")
        if origin_of(url) != self.origin:
            scheme, host, port = origin_of(url)
            raise ExportError(
                f"Page {page.number} names its next page at {scheme}://{host}:{port}, not on "
                "the connection's base URL; segbridge sends the connection's credentials only "
                "there, so the export stops. Point the connection's base URL at the API that "
                "serves every page.", cause="next_url_elsewhere")
        return url
