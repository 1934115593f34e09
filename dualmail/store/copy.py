"""``dualmail store copy``: move an installation between engines (LMDB <-> PostgreSQL).

The copy is of the key-value rows themselves, table by table, from one read view of the
source (one consistent snapshot), so every account and mailbox number, UID, UIDVALIDITY,
modseq, change log entry and therefore every IMAP QRESYNC state and JMAP state string is
the same on both ends.  The destination must be empty and nothing may serve it during the
copy; the source's writers should be stopped (later writes are not copied).  Rows are
written in batches of short transactions (at most ``batch_rows`` rows or ``batch_bytes``
bytes), so memory stays bounded however large the store.
"""

from __future__ import annotations

from typing import Callable

from ..model import errors
from .keys import TABLES
from .kv import KV


def copy_store(src: KV, dst: KV, *, batch_rows: int = 2000, batch_bytes: int = 32 << 20,
               progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Copy every row of every table; returns the row count per table."""
    with dst.read() as r:
        for t in TABLES:
            if next(iter(r.range(t, b"")), None) is not None:
                raise errors.AlreadyExistsError(f"the destination store is not empty (table {t})")
    counts: dict[str, int] = {}
    with src.read() as r:
        for t in TABLES:
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
