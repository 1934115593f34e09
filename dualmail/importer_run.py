"""``dualmail import``: mbox / Maildir into an account, parsed in parallel, written in batches.

Each batch is one store transaction (one modseq).  Parsing runs in worker processes so the
writer only writes.  Re-running an import skips messages already imported into the same
mailbox: the key is ``importer.sources.dedup_key`` (Message-ID + internal date + size, or
the SHA-256 of the bytes when there is no Message-ID), kept in the store's ``dedup`` table.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from .mail.ops import Prepared, prepare, store_prepared
from .mime.parse import summarize
from .model import errors
from .store.store import Store
from .store.txn import THREADING_FIELDS, EncodedSummary, MailTxn, encode_summary

BATCH_MESSAGES = 500
BATCH_BYTES = 32 << 20
MAX_MESSAGE = 64 << 20


@dataclass
class ImportResult:
    imported: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    def summary_line(self) -> str:
        line = f"imported {self.imported}, skipped {self.skipped} (already present), failed {len(self.failed)}"
        if self.failed:
            reasons: dict[str, int] = {}
            for _origin, why in self.failed:
                reasons[why] = reasons.get(why, 0) + 1
            line += ": " + "; ".join(f"{why} ({n})" for why, n in sorted(reasons.items()))
        return line


Parsed = tuple[dict[str, Any], EncodedSummary]


def _summarize(raw: bytes) -> Parsed | None:
    """Parse and encode in the worker; only the threading fields travel back as a dict."""
    if len(raw) > MAX_MESSAGE:
        return None
    summary = summarize(raw)
    return {k: summary.get(k) for k in THREADING_FIELDS}, encode_summary(summary)


WINDOW = 256
DEPTH = 4


def _parsed(messages: Iterable[Any], workers: int) -> Iterator[tuple[Any, Parsed | None]]:
    """(message, summary) in source order; None for messages over the size limit.

    With workers, windows of messages are parsed in worker processes while the previous
    window is written, so reading, parsing and writing overlap; memory stays bounded by
    two windows.
    """
    if workers <= 0:
        for msg in messages:
            yield msg, _summarize(msg.raw)
        return
    ctx = multiprocessing.get_context("spawn")
    it = iter(messages)

    def window() -> list[Any]:
        out = []
        for msg in it:
            out.append(msg)
            if len(out) >= WINDOW:
                break
        return out

    with ctx.Pool(workers) as pool:
        # Several windows in flight, so the parsers keep working while the writer
        # waits on a commit's fsync.
        inflight: deque[tuple[list[Any], Any]] = deque()
        while True:
            while len(inflight) < DEPTH:
                nxt = window()
                if not nxt:
                    break
                inflight.append((nxt, pool.map_async(_summarize, [m.raw for m in nxt], chunksize=16)))
            if not inflight:
                return
            cur, pending = inflight.popleft()
            yield from zip(cur, pending.get())


def _resolve_mailbox(tx: MailTxn, path: list[str]) -> int:
    parent = 0
    m = 0
    for name in path:
        found = tx.child(parent, name)
        if found is None:
            found = tx.create_mailbox(name, parent)
        m = parent = found
    return m


def run_import(store: Store, account: int, path: str, *, mailbox: str | None = None,
               progress: Callable[[int], Any] | None = None, workers: int | None = None,
               on_commit: Callable[[list[bytes]], Any] | None = None) -> ImportResult:
    from .importer.sources import ImportSourceError, dedup_key, detect, iter_maildir, iter_mbox

    try:
        kind = detect(path)
    except ImportSourceError as e:
        raise errors.InvalidSourceError(str(e)) from None
    base = [p for p in (mailbox or "INBOX").split("/") if p]
    source = iter_mbox(path) if kind == "mbox" else iter_maildir(path)
    if workers is None:
        # the writing process is busy too: leave it a core
        workers = max(1, min((os.cpu_count() or 1) - 1, 4))
    result = ImportResult()
    batch: list[tuple[Any, Prepared, bytes]] = []
    size = 0

    def target(msg: Any) -> list[str]:
        sub = list(msg.mailbox)
        if not sub:
            return base
        return base + sub if mailbox else sub

    def flush() -> None:
        nonlocal batch, size
        if not batch:
            return
        items = batch
        batch, size = [], 0

        def write(tx: MailTxn) -> tuple[int, int, list[bytes]]:
            imported = skipped = 0
            keys: list[bytes] = []
            for msg, prep, key in items:
                m = _resolve_mailbox(tx, target(msg))
                if tx.imported(m, key) is not None:
                    skipped += 1
                    continue
                e, _uids = store_prepared(tx, prep, [m])
                tx.mark_imported(m, key, e)
                imported += 1
                keys.append(key)
            return imported, skipped, keys

        def done(out: tuple[int, int, list[bytes]]) -> None:
            imported, skipped, keys = out
            result.imported += imported
            result.skipped += skipped
            if on_commit is not None:
                on_commit(keys)
            if progress is not None:
                progress(len(items))

        # On this thread: the map may grow before a write (set_mapsize), which LMDB allows
        # only while no other thread of the process has a transaction open.  The parsers
        # keep working on the windows in flight meanwhile.
        done(store.transact(account, write))

    def fresh(messages: Iterable[Any]) -> Iterator[Any]:
        """Skip what an earlier run imported before spending any parsing on it."""
        for msg in messages:
            with store.read(account) as r:
                m = r.mailbox_by_path(target(msg))
                if m is not None and r.imported(m, dedup_key(msg)) is not None:
                    result.skipped += 1
                    if progress is not None:
                        progress(1)
                    continue
            yield msg

    for msg, parsed in _parsed(fresh(source), workers):
        if parsed is None:
            result.failed.append((msg.origin, "message larger than 64 MiB"))
            continue
        try:
            p = prepare(msg.raw, msg.flags, msg.internal_date, summary=parsed[0], encoded=parsed[1])
        except Exception as e:  # an unusable flag set must not stop the import
            result.failed.append((msg.origin, f"unusable: {e}"))
            continue
        batch.append((msg, p, dedup_key(msg)))
        size += len(msg.raw)
        if len(batch) >= BATCH_MESSAGES or size >= BATCH_BYTES:
            flush()
    flush()
    return result
