"""The narrow ordered key-value interface the mail model speaks to.

get, put, delete, an ordered range scan, and one write transaction at a time.  The
model never sees the engine: LMDB lives in ``kv_lmdb``; a shared engine (PostgreSQL,
FoundationDB) can replace it by implementing these three protocols.

Keys and values are bytes; keys compare as unsigned bytes (memcmp order).  Tables are the
names listed in ``keys.TABLES``.  Imports nothing from twisted or lmdb.

The one widening for shared engines (``kv_pg``, several nodes on one database):

- ``write(account)`` / ``run_write(fn, account)`` name the account the transaction changes.
  A shared engine runs one write transaction per account at a time across all nodes and
  lets different accounts write in parallel; an embedded engine (LMDB: one writer per
  environment) may ignore it.  Rows whose key starts with an account number are written
  only in a transaction of that account (or of a new account nobody can reach yet);
  the global tables (``meta``, ``login``, ``token``, ``commits``) are serialised by the
  engine itself.  ``account=None``: a transaction that touches global tables only.
- ``listen(on_change)``: an engine with its own commit signal (PostgreSQL ``NOTIFY``)
  calls ``on_change()`` from any thread after another process's commit, and once after
  each reconnection (so the caller catches up from the global commit log); it returns a
  stop function.  An engine without one returns None and offers ``changed_path()`` (a
  file to watch with inotify) instead.
- ``get_many(table, keys)``: the values of several keys in one call, in the order asked
  (None for a missing key).  An embedded engine loops over ``get``; a networked one reads
  them in one round trip (PostgreSQL: ``k = ANY(...)``), which is what keeps a FETCH or
  Email/get window from costing one round trip per message.  ``range`` on such an engine
  streams in keyset pages: a short scan is one round trip, a long one never holds
  everything.  ``range(..., expect=n)`` says the caller will read about ``n`` rows (a
  FETCH batch, a whole UID map), so that a paged engine reads them in one round trip
  rather than in pages growing from a small first one; an embedded engine ignores it.
- ``get_latest(table, key)``: one key's latest committed value, outside any read view.
  One read needs no snapshot, so a networked engine answers it in one round trip where a
  read view costs two (``BEGIN`` with the statement, ``COMMIT``): the per-request
  credential and token checks, and the per-command "did the selected mailbox change?"
  check of an IMAP session, which opens a read view only when it did.
- ``scan_many(reqs)``: several bounded ascending scans, each ``(table, start, stop,
  limit)``, in one call: up to ``limit`` pairs of each.  An embedded engine loops over
  ``range``; a networked one sends them together (PostgreSQL: one pipelined round trip).
  A search looks up independent things at once this way (the mailbox record, the
  index's watermark and tail, a word's grams and postings: one round trip, not one per
  list).
  ``scan_complete(kv, reqs)`` reads on where a scan filled its limit.
- ``get_many_each(reqs)``: several ``get_many``, each ``(table, keys)``, in one call (one
  round trip on PostgreSQL): a search reads its candidates' Email and search records
  together.
- An engine whose server is temporarily unreachable raises
  ``model.errors.UnavailableError`` with nothing applied.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from itertools import islice
from typing import Callable, Iterator, Protocol, Sequence, TypeVar

T = TypeVar("T")

#: one bounded ascending scan of ``scan_many``: (table, start, stop, limit)
Scan = tuple[str, bytes, bytes | None, int]


class KVRead(Protocol):
    def get(self, table: str, key: bytes) -> bytes | None: ...

    def get_many(self, table: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """``[get(table, k) for k in keys]``, in one round trip where the engine has them."""
        ...

    def range(
        self, table: str, start: bytes, stop: bytes | None = None, *, reverse: bool = False,
        expect: int | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        """Pairs with ``start <= key < stop`` (stop None: to the end), ascending or descending.

        ``expect``: about how many rows the caller will read (a hint; None: unknown, maybe
        few).  An engine that reads scans in pages makes its first page that size (plus one),
        smaller or larger than its default."""
        ...

    def get_many_each(self, reqs: Sequence[tuple[str, Sequence[bytes]]]) -> list[list[bytes | None]]:
        """``[get_many(table, keys) for table, keys in reqs]``, in one round trip where the
        engine can."""
        ...

    def scan_many(self, reqs: Sequence[Scan]) -> list[list[tuple[bytes, bytes]]]:
        """For each ``(table, start, stop, limit)``: up to ``limit`` pairs with ``start <= key
        < stop`` (stop None: to the end), ascending; in one round trip where the engine can."""
        ...


class KVWrite(KVRead, Protocol):
    def put(self, table: str, key: bytes, value: bytes) -> None: ...

    def delete(self, table: str, key: bytes) -> bool: ...


class KV(Protocol):
    def read(self) -> AbstractContextManager[KVRead]: ...

    def get_latest(self, table: str, key: bytes) -> bytes | None:
        """The latest committed value of one key (no read view: one round trip)."""
        ...

    def write(self, account: int | None = None) -> AbstractContextManager[KVWrite]:
        """The one write transaction (of ``account``): committed durably when the block
        exits normally."""
        ...

    def run_write(self, fn: Callable[[KVWrite], T], account: int | None = None) -> T:
        """Run ``fn`` in a write transaction (of ``account``), re-running it if the engine
        had to grow or lost its connection before committing: ``fn`` must only touch the
        transaction."""
        ...

    def listen(self, on_change: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``on_change`` after other processes' commits; a stop function, or None."""
        ...

    def changed_path(self) -> str | None:
        """A file whose modification signals a commit by any process (for inotify), or None."""
        ...

    def close(self) -> None: ...


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    p = bytearray(prefix)
    while p:
        if p[-1] != 0xFF:
            p[-1] += 1
            return bytes(p)
        p.pop()
    return None


def get_each(kv: KVRead, reqs: Sequence[tuple[str, Sequence[bytes]]]) -> list[list[bytes | None]]:
    """``get_many_each`` by one ``get_many`` per table (an engine with no round trips)."""
    return [kv.get_many(t, keys) for t, keys in reqs]


def scan_each(kv: KVRead, reqs: Sequence[Scan]) -> list[list[tuple[bytes, bytes]]]:
    """``scan_many`` by one ``range`` per scan (an engine where a scan costs no round trip)."""
    return [list(islice(kv.range(t, start, stop, expect=limit), limit)) for t, start, stop, limit in reqs]


def scan_complete(kv: KVRead, reqs: Sequence[tuple[str, bytes, bytes | None]],
                  page: int = 64) -> list[list[tuple[bytes, bytes]]]:
    """Every pair of each scan ``(table, start, stop)``: the first ``page`` of all of them in
    one ``scan_many``, then the rest of any that filled its page by ``range``."""
    got = kv.scan_many([(t, start, stop, page) for t, start, stop in reqs])
    for (t, _start, stop), rows in zip(reqs, got):
        if len(rows) >= page:  # more may follow: from just above the last key read
            rows.extend(kv.range(t, rows[-1][0] + b"\x00", stop))
    return got
