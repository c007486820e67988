"""Tables of diff syncs (migrations 0010, 0011): per flow and import, the snapshot of what was
sent (key hash -> call hash), and the calls a run sent, staged until the run finishes; for an
import that sends a call for its deleted keys, each key's value and identity (``diff_keys``)
and the keys a finishing run found gone (``diff_gone``).

A row is two 64-bit integers beside a small snapshot id: ``runs.diff`` hashes the record key
and the mapped call, so a row's size does not depend on the record. ``runs.diff_store`` reads
them in bulk per chunk of records and merges a run's staged rows into the snapshot in one
transaction when the run finishes without failing.

The rows of a snapshot have no foreign key to it (migration 0012: checked for every row
written, it made staging and merging on PostgreSQL about twice as slow); a flow's deletion
deletes them (``DiffStore.delete_flow``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from segbridge.core.clock import utcnow
from segbridge.storage.models import Base

ROW_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys


class DiffSnapshot(Base):
    """One import's snapshot: which keys were sent, with which call."""

    __tablename__ = "diff_snapshots"
    __table_args__ = (UniqueConstraint("flow_id", "import_name"),)

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    flow_id: Mapped[str] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    import_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    staging_run_id: Mapped[str | None] = mapped_column(String(40), default=None)  # whose
    # staged rows ``diff_staged`` holds for this snapshot (one run of a flow at a time)
    settled_blocks: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)  # the
    # 16-byte digests of file blocks whose every record it holds (``runs.diff_blocks``)


class DiffEntry(Base):
    """A key of a snapshot and the hash of the call last sent for it."""

    __tablename__ = "diff_entries"
    __table_args__ = {"sqlite_with_rowid": False}

    snapshot_id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)  # (no foreign key)
    key_hash: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    call_hash: Mapped[int] = mapped_column(BigInteger)


class DiffStaged(Base):
    """A call the snapshot's staging run sent (delivered, not an error), merged into the
    snapshot when that run finishes without failing; the last row of a key wins.

    Appended in input order, with no index but its row id (measured at 1M rows on SQLite:
    keyed by the hashes, each chunk's rows landed on random pages, 30k rows/s; appended,
    416k rows/s; a run id and a (run, position) index on every row made the file 1.35 GB
    at 10M keys). The rows are read once, by the merge, which sorts them."""

    __tablename__ = "diff_staged"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    snapshot_id: Mapped[int] = mapped_column(ROW_ID)  # (no foreign key)
    position: Mapped[int] = mapped_column(BigInteger)
    key_hash: Mapped[int] = mapped_column(BigInteger)
    call_hash: Mapped[int] = mapped_column(BigInteger)
    # an import with a call for deleted keys (NULL for any other): the key and identity of the
    # call sent (``DiffKey.about``), or ``seen_only``: the key was seen but its call was not
    # sent (unchanged, held, or a record error): not deleted, and its entry is left as it is
    about: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    seen_only: Mapped[bool | None] = mapped_column(Boolean, default=None)


class DiffKey(Base):
    """What the call for a deleted key needs of a snapshot's key, kept apart from the entries
    (which stay 16 bytes of hashes a key) and only for an import with a call for deleted
    keys: the key's value and the identity of the call last sent for it, as JSON
    (``{"key": ..., "userId": ..., "anonymousId": ...}``)."""

    __tablename__ = "diff_keys"
    __table_args__ = {"sqlite_with_rowid": False}

    snapshot_id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)  # (no foreign key)
    key_hash: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    about: Mapped[bytes] = mapped_column(LargeBinary)


class DiffGone(Base):
    """A key of the snapshot that a finishing run did not see (its call for deleted keys is
    being sent): worked out once when the run finishes, read in key order, page by page, and
    removed from the snapshot when the run's staged rows are merged. A key whose call failed
    is taken out of here first: it stays in the snapshot and is tried again next run."""

    __tablename__ = "diff_gone"
    __table_args__ = {"sqlite_with_rowid": False}

    snapshot_id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)  # (no foreign key)
    key_hash: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    call_hash: Mapped[int] = mapped_column(BigInteger)
    about: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
