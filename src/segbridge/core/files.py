"""Files segbridge creates hold secrets or customers' data: directories 0700, files 0600."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if missing; the directory itself is made 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    os.chmod(path, PRIVATE_DIR)
    return path


def restrict_sqlite_file(url: str) -> None:
    """segbridge's own SQLite database and its side files: readable by the owner only."""
    if not url.startswith("sqlite:///"):
        return
    database = Path(url[len("sqlite:///"):].split("?", 1)[0])
    for candidate in (database, *(database.with_name(database.name + side)
                                  for side in ("-wal", "-shm", "-journal"))):
        if candidate.exists():
            os.chmod(candidate, PRIVATE_FILE)
