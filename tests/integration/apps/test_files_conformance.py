"""Files passes the application conformance kit: CSV, NDJSON and JSON files with unreadable
records among the good ones (a short row, invalid UTF-8, an unterminated quote, invalid JSON,
an array where an object belongs), and one big enough to cross the readers' buffers, resume
at any position with the same records; a missing file and a path outside the install's file
roots fail with their causes. Files has no connection: no Test connection, no secret."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from segbridge.apps.files.app import FilesApplication
from tests.kit import ApplicationConformance, Case, ExportSample

NO_CONNECTION = "Files has no connection: a flow names its file"

CSV = (b'id,name,note\n1,Ann,"multi\nline"\n2,Bob\n3,"Cy,x",ok\n\xff\xfe,bad,utf\n'
       b'4,"unclosed,z\n5,Eve,end\n')
SEMICOLONS = b"id;name\n1;Ann\n\n2;Bob\n3;Cy\n"
NDJSON = (b'{"id":1}\n\n{"id":2,"deep":{"a":[1,2]}}\nnot json\n[1,2]\n{"id":3}\n'
          b'\xff{"id":4}\n{"id":5}')
JSON = b'[{"id":1},{"id":2,"x":"y"}, 7, {"id":3}, "s", {"id":4, "n": null}]'
BIG_ROWS = 5000  # about 200 KB: more than one read of the file


def big_csv() -> bytes:
    rows = [f"{n},user-{n},{'x' * (n % 50)}" if n % 997 else f"{n},short" for n in range(BIG_ROWS)]
    return ("id,user,padding\n" + "\n".join(rows) + "\n").encode()


class TestFilesConformance(ApplicationConformance):
    application = FilesApplication()
    not_applicable: ClassVar = {case: NO_CONNECTION for case in Case}
    export_samples = ("csv", "csv_options", "ndjson", "json", "big_csv")
    failing_exports = ("missing_file", "outside_the_file_roots")
    files: ClassVar = {
        "csv": ("csv", CSV, {}),
        "csv_options": ("csv", SEMICOLONS, {"delimiter": ";", "skip_blank_lines": True}),
        "ndjson": ("ndjson", NDJSON, {}),
        "json": ("json", JSON, {}),
    }

    @contextmanager
    def export_sample(self, name: str, folder: Path) -> Iterator[ExportSample]:
        if name == "missing_file":
            yield ExportSample({"type": "csv", "path": str(folder / "missing.csv")},
                               fails="file_not_found")
        elif name == "outside_the_file_roots":
            yield ExportSample({"type": "csv", "path": "/etc/passwd"}, fails="not_allowed_here")
        elif name == "big_csv":
            path = folder / "big.csv"
            path.write_bytes(big_csv())
            yield ExportSample({"type": "csv", "path": str(path)},
                               resume_at=(996, 997, 998, 2500, BIG_ROWS - 2))
        else:
            kind, content, options = self.files[name]
            path = folder / f"sample.{kind}"
            path.write_bytes(content)
            yield ExportSample({"type": kind, "path": str(path), "options": options})
