"""What a diff snapshot holds, read through the store's own comparison (``DiffStore.compare``)."""

from __future__ import annotations

from collections.abc import Sequence

from segbridge.runs.diff_store import DiffStore

NO_VERSION = -(2**63)  # a version no test stores: every key the snapshot has differs from it


def versions_sent(store: DiffStore, snapshot: int, keys: Sequence[int]) -> dict[int, int]:
    """The version the snapshot holds for each of ``keys`` it has."""
    differences = store.compare(snapshot, keys, [NO_VERSION] * len(keys))
    return {keys[index]: version for index, version in differences.items()
            if version is not None}
