"""``dualmail import``: mbox / Maildir into an account, parsed in parallel, written in batches.

Each batch is one store transaction (one modseq).  Parsing runs in worker processes so the
writer only writes: the importing process reads the source (one pass, see
``importer.sources``), sends windows of raw messages to the parsers, and hands their
results, in source order and in batches, to a writer thread (``_Writer``), which commits
while the parsers work on the next windows and the reading goes on.

Re-running an import skips messages already imported into the same mailbox: the key is
``importer.sources.dedup_key`` (Message-ID + internal date + size, or the SHA-256 of the
bytes when there is no Message-ID), kept in the store's ``dedup`` table.
"""

from __future__ import annotations

import gc
import hashlib
import multiprocessing
import os
import threading
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from multiprocessing.connection import Connection, wait
from queue import Empty, Queue, SimpleQueue
from typing import Any, Callable, Iterable, Iterator

from .mail.ops import Prepared, prepare, store_prepared
from .mime.jmap_listing import encode
from .mime.parse import summarize
from .model import errors
from .store.store import Store
from .store.txn import THREADING_FIELDS, EncodedSummary, MailTxn

# A batch is one transaction.  Larger batches write fewer B-tree pages per message
# (several tables have random keys: blob hashes, Message-IDs); while the parsers are
# busy the writer commits early, from MIN_FLUSH messages, doubling up to BATCH_MESSAGES.
BATCH_MESSAGES = 2000
MIN_FLUSH = 64
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


Parsed = tuple[dict[str, Any], EncodedSummary, bytes]  # threading fields, stored forms, SHA-256

TOO_LARGE = "message larger than 64 MiB"
# What storing one message may raise because of that message (its data): the message is
# reported failed and the import goes on.  Anything else (the disk, the store) stops it.
_MESSAGE_ERRORS = (ValueError, TypeError, LookupError, AttributeError, ArithmeticError,
                   RecursionError, errors.InvalidNameError)


class _QuotaStopError(Exception):
    """Storing ``items[index]`` would take the account over its quota: the items before
    it are committed, and the import stops there."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(index, reason)
        self.index, self.reason = index, reason


class _MessageFailedError(Exception):
    """Storing ``items[index]`` of a batch failed for a reason of its own."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(index, reason)
        self.index, self.reason = index, reason


def _summarize(raw: bytes) -> Parsed | str:
    """In a parser: the threading fields (as a dict), the stored forms, the blob's hash;
    or why the message cannot be imported."""
    if len(raw) > MAX_MESSAGE:
        return TOO_LARGE
    try:
        summary = summarize(raw)
        return ({k: summary.get(k) for k in THREADING_FIELDS}, encode(summary, raw),
                hashlib.sha256(raw).digest())
    except Exception as e:  # one message must not stop the import
        return f"could not be parsed ({type(e).__name__})"


WINDOW = 256
WINDOW_BYTES = 4 << 20
DEPTH = 8


def _start_method() -> str:
    """``fork`` when this process has one thread (the ``dualmail import`` command).

    A forked parser starts in a millisecond instead of a fresh interpreter's ~0.2 s of
    imports, which matters for small imports.  It never touches the inherited LMDB
    environment and leaves through ``os._exit`` (multiprocessing's rule), so nothing of
    the parent's store is used or closed in it.  With other threads running, a fork
    could copy a lock another thread holds: then ``spawn``.
    """
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return "spawn"


def _parser_main(tasks: Connection, results: Connection) -> None:
    """A parsing process: windows of raw messages in, their summaries out, in order.

    One thread keeps reading tasks and another keeps sending results while the main
    thread parses, so neither a busy parser nor a busy importer stalls the other (and
    the two pipes cannot block each other).  The process ends at the end-of-tasks
    marker, or when the importer is gone.
    """
    queue: SimpleQueue[list[bytes] | None] = SimpleQueue()
    parent = multiprocessing.parent_process()

    def receive() -> None:
        watch: list[Any] = [tasks] + ([parent.sentinel] if parent is not None else [])
        while True:
            if tasks not in wait(watch):
                os._exit(0)  # the importer died
            try:
                task = tasks.recv()
            except EOFError:
                task = None
            queue.put(task)
            if task is None:
                return

    # Results go out from another thread too: the importer reads them window by window,
    # and a full pipe must not stop the parsing of the windows queued behind.
    out: SimpleQueue[list[Parsed | str] | None] = SimpleQueue()

    def send() -> None:
        while (done := out.get()) is not None:
            results.send(done)

    threading.Thread(target=receive, name="dualmail-parser-recv", daemon=True).start()
    sender = threading.Thread(target=send, name="dualmail-parser-send", daemon=True)
    sender.start()
    while (task := queue.get()) is not None:
        out.put([_summarize(raw) for raw in task])
    out.put(None)
    sender.join()


class _Parsers:
    """Parsing processes; each window is split evenly over them (so a window is done in
    about the same time by all), and its results come back in source order.

    Not multiprocessing.Pool: its bookkeeping threads cost the importing process about
    90 µs of CPU per message here (its worker-handler thread spins while results wait
    to be read), as much as writing the message.  Plain pipes cost a few µs.
    """

    def __init__(self, n: int) -> None:
        ctx: Any = multiprocessing.get_context(_start_method())  # fork or spawn context
        self.procs: list[tuple[Any, Connection, Connection]] = []
        # Objects inherited by a forked parser stay out of its garbage collector (no
        # finalizer of the parent's objects runs there, no copy-on-write churn).
        gc.freeze()
        try:
            for _ in range(n):
                task_r, task_w = ctx.Pipe(duplex=False)
                res_r, res_w = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_parser_main, args=(task_r, res_w), daemon=True,
                                   name="dualmail-parser")
                proc.start()
                task_r.close()
                res_w.close()
                self.procs.append((proc, task_w, res_r))
        finally:
            gc.unfreeze()
        self.dead: set[int] = set()

    def submit(self, raws: list[bytes]) -> list[tuple[int, list[bytes]]]:
        """Send a window, split evenly over the parsers; returns the parts to collect."""
        n = len(self.procs)
        step = -(-len(raws) // n) or 1
        parts = [(k, raws[i : i + step]) for k, i in enumerate(range(0, len(raws), step))]
        for k, part in parts:
            if k in self.dead:
                continue
            try:
                self.procs[k][1].send(part)
            except OSError:
                self.dead.add(k)
        return parts

    def ready(self, parts: list[tuple[int, list[bytes]]]) -> bool:
        return all(k in self.dead or self.procs[k][2].poll() for k, _part in parts)

    def result(self, parts: list[tuple[int, list[bytes]]]) -> list[Parsed | str]:
        out: list[Parsed | str] = []
        for k, part in parts:
            if k not in self.dead:
                try:
                    out += self.procs[k][2].recv()
                    continue
                except (EOFError, OSError):
                    self.dead.add(k)  # a parser died (e.g. out of memory): parse here
            out += [_summarize(raw) for raw in part]
        return out

    def close(self, finished: bool) -> None:
        """End the parsers: at once when the import stopped early, else after their work."""
        for proc, task_w, _res_r in self.procs:
            if finished:
                try:
                    task_w.send(None)
                except OSError:
                    pass
            else:
                proc.terminate()
            task_w.close()
        for proc, _task_w, res_r in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join()
            res_r.close()


def _parsed(messages: Iterable[tuple[Any, bytes]], workers: int,
            idle: Callable[[], Any] = lambda: None) -> Iterator[tuple[tuple[Any, bytes], Parsed | str]]:
    """((message, dedup key), summary) in source order; for a message that cannot be
    imported (over the size limit, say), the reason instead of the summary.

    With workers, windows of messages are parsed in worker processes while earlier
    windows are written, so reading, parsing and writing overlap; memory stays bounded
    by DEPTH + 1 windows.  The first windows are small, so writing starts early, and
    ``idle`` is called when the next window is not parsed yet (the caller writes then).
    """
    if workers <= 0:
        for item in messages:
            yield item, _summarize(item[0].raw)
        return
    it = iter(messages)
    size = 16

    def window() -> list[tuple[Any, bytes]]:
        nonlocal size
        out = []
        nbytes = 0
        for item in it:
            out.append(item)
            nbytes += len(item[0].raw)
            if len(out) >= size or nbytes >= WINDOW_BYTES:
                break
        size = min(WINDOW, size * 2)
        return out

    parsers = _Parsers(workers)
    finished = False
    try:
        inflight: deque[tuple[list[tuple[int, list[bytes]]], list[tuple[Any, bytes]]]] = deque()
        while True:
            # Fill the pipeline, but hand over a parsed window as soon as there is one.
            while len(inflight) < DEPTH and not (inflight and parsers.ready(inflight[0][0])):
                nxt = window()
                if not nxt:
                    break
                inflight.append((parsers.submit([m.raw for m, _key in nxt]), nxt))
            if not inflight:
                finished = True
                return
            parts, cur = inflight.popleft()
            if not parsers.ready(parts):
                idle()
            yield from zip(cur, parsers.result(parts))
    finally:
        parsers.close(finished)


_Write = Callable[[MailTxn, list[Any]], tuple[int, int, list[bytes]]]


class _Writer:
    """The import's write transactions, on a thread of their own, in order.

    While a batch commits (LMDB copies its pages and fsyncs without holding the GIL),
    the importing thread goes on reading the source and feeding the parsers.  At most
    one batch waits behind the one being written.  Results come back to the importing
    thread, which reports them; the first error is raised there too.  A message that
    cannot be stored for a reason of its own is left out of its batch and reported.
    """

    def __init__(self, store: Store, account: int) -> None:
        self._store, self._account = store, account
        self._jobs: Queue[tuple[_Write, list[Any]] | None] = Queue(maxsize=1)
        self._done: SimpleQueue[tuple[Any, Any]] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.quota_stop: str | None = None  # why the account's quota stopped the import

    def busy(self) -> bool:
        return self._jobs.full()

    def submit(self, write: _Write, items: list[Any]) -> None:
        if self._thread is None:  # started late: the parsers are forked before it exists
            self._thread = threading.Thread(target=self._run, name="dualmail-import-writer", daemon=True)
            self._thread.start()
        self._jobs.put((write, items))

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            write, items = job
            if self.error is not None:
                continue  # after a failure, nothing more is written
            try:
                out = self._write(write, items)
            except BaseException as e:  # handed to the importing thread
                self.error = e
                continue
            self._done.put((items, out))
            if self.quota_stop is not None:
                self.error = errors.OverQuotaError(self.quota_stop)

    def _write(self, write: _Write, items: list[Any]) -> tuple[int, int, list[bytes], list[tuple[Any, str]]]:
        """Commit ``items`` in one transaction; when one of them fails on its own
        (``_MessageFailedError``), that one is left out and reported, the items before it
        are committed in a transaction of their own, and the rest goes on the same way."""
        imported = skipped = 0
        keys: list[bytes] = []
        failed: list[tuple[Any, str]] = []
        parts: list[tuple[int, int, list[bytes]]] = []
        while items:
            try:
                parts.append(self._store.transact(self._account, lambda tx: write(tx, items)))
                break
            except _QuotaStopError as e:
                head = items[: e.index]
                if head:
                    parts.append(self._store.transact(self._account, lambda tx: write(tx, head)))
                self.quota_stop = e.reason
                break
            except _MessageFailedError as e:
                failed.append((items[e.index], e.reason))
                head, items = items[: e.index], items[e.index + 1 :]
                if head:
                    parts.append(self._store.transact(self._account, lambda tx: write(tx, head)))
        for n, k, ks in parts:
            imported, skipped, keys = imported + n, skipped + k, keys + ks
        return imported, skipped, keys, failed

    def completed(self) -> list[tuple[Any, Any]]:
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except Empty:
                return out

    def close(self) -> None:
        """Wait for every batch handed over to be written."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None


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
        # One parser per core: the writer spends part of its time waiting on fsync,
        # and parsing is the larger share of the work.
        workers = max(1, min(os.cpu_count() or 1, 4))
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
        writer.submit(write, items)
        report()

    def write(tx: MailTxn, items: list[tuple[Any, Prepared, bytes]]) -> tuple[int, int, list[bytes]]:
        imported = skipped = 0
        keys: list[bytes] = []
        for index, (msg, prep, key) in enumerate(items):
            try:
                m = _resolve_mailbox(tx, target(msg))
                if tx.imported(m, key) is not None:
                    skipped += 1
                    continue
                e, _uids = store_prepared(tx, prep, [m])
                tx.mark_imported(m, key, e)
            except errors.OverQuotaError as exc:
                raise _QuotaStopError(index, exc.message) from exc
            except _MESSAGE_ERRORS as exc:
                raise _MessageFailedError(index, f"could not be stored ({type(exc).__name__})") from exc
            imported += 1
            keys.append(key)
        return imported, skipped, keys

    def report() -> None:
        """Count and report the batches written so far (after their commit)."""
        for items, (imported, skipped, keys, failed) in writer.completed():
            result.imported += imported
            result.skipped += skipped
            result.failed += [(msg.origin, why) for (msg, _prep, _key), why in failed]
            if on_commit is not None:
                on_commit(keys)
            if progress is not None:
                progress(len(items))
        if isinstance(writer.error, errors.OverQuotaError):
            raise errors.OverQuotaError(
                f"the account is over its quota ({writer.error.message}): stopped after importing "
                f"{result.imported} message(s); raise the quota (dualmail user quota) and run the "
                "same import again - messages already imported are skipped")
        if writer.error is not None:
            raise writer.error

    def fresh(messages: Iterable[Any]) -> Iterator[tuple[Any, bytes]]:
        """Skip what an earlier run imported before spending any parsing on it.

        One read transaction per window of messages; the writer's own check (in the
        write transaction) still catches a message that occurs twice in the source.
        """
        it = iter(messages)
        size = 16  # small at first: the parsers get their first window early
        while True:
            chunk = list(islice(it, size))
            size = min(WINDOW, size * 2)
            if not chunk:
                return
            kept = []
            with store.read(account) as r:
                ids: dict[tuple[str, ...], int | None] = {}
                for msg in chunk:
                    path = tuple(target(msg))
                    if path not in ids:
                        ids[path] = r.mailbox_by_path(list(path))
                    m = ids[path]
                    key = dedup_key(msg)
                    if m is not None and r.imported(m, key) is not None:
                        result.skipped += 1
                        if progress is not None:
                            progress(1)
                        continue
                    kept.append((msg, key))
            yield from kept

    min_flush = MIN_FLUSH

    def idle() -> None:
        nonlocal min_flush
        if len(batch) >= min_flush and not writer.busy():
            flush()
            min_flush = min(BATCH_MESSAGES, min_flush * 2)

    def read_parse_write() -> None:
        nonlocal size
        for (msg, key), parsed in _parsed(fresh(source), workers, idle):
            if isinstance(parsed, str):
                result.failed.append((msg.origin, parsed))
                continue
            try:
                p = prepare(msg.raw, msg.flags, msg.internal_date, summary=parsed[0],
                            encoded=parsed[1], digest=parsed[2])
            except Exception as e:  # an unusable flag set must not stop the import
                result.failed.append((msg.origin, f"unusable: {e}"))
                continue
            batch.append((msg, p, key))
            size += len(msg.raw)
            if len(batch) >= BATCH_MESSAGES or size >= BATCH_BYTES:
                flush()
        flush()

    writer = _Writer(store, account)
    try:
        read_parse_write()
    finally:
        writer.close()
    report()
    return result
