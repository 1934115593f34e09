"""The narrow ordered key-value interface the mail model speaks to.

get, put, delete, an ordered range scan, and one write transaction at a time.  The
model never sees the engine: LMDB lives in ``kv_lmdb``; a shared engine (PostgreSQL,
FoundationDB) can replace it by implementing these three protocols.

Keys and values are bytes; keys compare as unsigned bytes (memcmp order).  Tables are the
names listed in ``keys.TABLES``.  Imports nothing from twisted or lmdb.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable, Iterator, Protocol, TypeVar

T = TypeVar("T")


class KVRead(Protocol):
    def get(self, table: str, key: bytes) -> bytes | None: ...

    def range(
        self, table: str, start: bytes, stop: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Pairs with ``start <= key < stop`` (stop None: to the end), ascending or descending."""
        ...


class KVWrite(KVRead, Protocol):
    def put(self, table: str, key: bytes, value: bytes) -> None: ...

    def delete(self, table: str, key: bytes) -> bool: ...


class KV(Protocol):
    def read(self) -> AbstractContextManager[KVRead]: ...

    def write(self) -> AbstractContextManager[KVWrite]:
        """The one write transaction: committed durably when the block exits normally."""
        ...

    def run_write(self, fn: Callable[[KVWrite], T]) -> T:
        """Run ``fn`` in a write transaction, re-running it if the engine had to grow."""
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
