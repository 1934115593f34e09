"""``dualmail store copy``: move an installation between engines (LMDB <-> PostgreSQL).

The copy is of the key-value rows themselves, table by table, from one read view of the
source (one consistent snapshot), so every account and mailbox number, UID, UIDVALIDITY,
modseq, change log entry and therefore every IMAP QRESYNC state and JMAP state string is
the same on both ends.  The destination must be empty and nothing may serve it during the
copy; the source's writers should be stopped (later writes are not copied).  Rows are
written in batches of short transactions (at most ``batch_rows`` rows or ``batch_bytes``
bytes), so memory stays bounded however large the store.

Blobs can move between the KV store and an S3-compatible one at the same time
(``--from-blobs`` / ``--to-blobs``, store.blobs): each blob a ``blobref`` row names is
read from the source's blob store and written to the destination's, before any metadata
row (bytes before the records that reference them, as in normal operation); the ``blob``
table's rows are copied as rows only when both ends keep blobs in the KV store.
"""

from __future__ import annotations

from typing import Any, Callable

from ..model import errors
from . import keys as K
from .blobs import BlobStore, KvBlobs
from .keys import TABLES
from .kv import KV


def copy_store(src: KV, dst: KV, *, batch_rows: int = 2000, batch_bytes: int = 32 << 20,
               progress: Callable[[str, int], None] | None = None,
               src_blobs: BlobStore | None = None,
               dst_blobs: BlobStore | None = None) -> dict[str, int]:
    """Copy every row of every table; returns the row count per table.  ``src_blobs`` /
    ``dst_blobs``: the external blob store of each end (None: the KV ``blob`` table)."""
    with dst.read() as r:
        for t in TABLES:
            if next(iter(r.range(t, b"")), None) is not None:
                raise errors.AlreadyExistsError(f"the destination store is not empty (table {t})")
    if dst_blobs is not None and next(iter(dst_blobs.keys()), None) is not None:
        raise errors.AlreadyExistsError("the destination blob store is not empty")
    counts: dict[str, int] = {}
    as_rows = src_blobs is None and dst_blobs is None
    with src.read() as r:
        if not as_rows:
            counts["blob"] = _copy_blobs(r, dst, src_blobs or KvBlobs(r), dst_blobs,
                                         batch_rows, batch_bytes)
        for t in TABLES:
            if t == "blob" and not as_rows:
                continue
            n = 0
            batch: list[tuple[bytes, bytes]] = []
            size = 0
            for k, v in r.range(t, b""):
                batch.append((bytes(k), bytes(v)))
                size += len(k) + len(v)
                if len(batch) >= batch_rows or size >= batch_bytes:
                    _write(dst, t, batch)
                    n += len(batch)
                    batch, size = [], 0
                    if progress is not None:
                        progress(t, n)
            if batch:
                _write(dst, t, batch)
                n += len(batch)
            counts[t] = n
    return counts


def _write(dst: KV, table: str, rows: list[tuple[bytes, bytes]]) -> None:
    def run(w):  # re-runnable: a retried batch writes the same rows again
        for k, v in rows:
            w.put(table, k, v)

    dst.run_write(run)


def _copy_blobs(r: Any, dst: KV, src_blobs: BlobStore, dst_blobs: BlobStore | None,
                batch_rows: int, batch_bytes: int) -> int:
    """Every blob the source's ``blobref`` names, from ``src_blobs`` into ``dst_blobs`` (or
    the destination's ``blob`` table); a blob missing at the source stops the copy."""
    n = 0
    batch: list[tuple[bytes, bytes]] = []
    size = 0
    for k, _v in r.range("blobref", b""):
        a, sha = K.un32(k), bytes(k[4:])
        data = src_blobs.get(a, sha)
        if data is None:
            raise errors.NotFoundError(f"blob a{a}/{sha.hex()} is missing at the source")
        n += 1
        if dst_blobs is not None:
            dst_blobs.put(a, sha, data)
            continue
        batch.append((K.blob(a, sha), data))
        size += len(data)
        if len(batch) >= batch_rows or size >= batch_bytes:
            _write(dst, "blob", batch)
            batch, size = [], 0
    if batch:
        _write(dst, "blob", batch)
    return n
