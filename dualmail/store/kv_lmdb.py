"""LMDB implementation of the ``kv`` interface: the only module that imports lmdb.

One environment per data directory, one named sub-database per table.  Commits are
synced (``sync=True``: a commit survives kill -9 and power loss).  The map grows by
itself: before each write the used fraction is checked and the map doubled when more
than half is used, a ``MapFullError`` inside a ``run_write`` grows the map and re-runs
the function, and a map grown by another process (``MapResizedError``) is adopted.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from itertools import takewhile
from typing import Callable, Iterator, Sequence, TypeVar

import lmdb

from ..model.errors import StoreLockedError
from .kv import Scan, get_each, scan_each

T = TypeVar("T")

_INITIAL_MAP = 256 << 20
_MIN_HEADROOM = 256 << 20
_GROW_WAIT = 5.0  # seconds a full map waits for other threads' transactions to end
# Written (one byte, no sync) after every write commit of any process: the file the
# server watches with inotify for other processes' commits.  Watching data.mdb itself
# woke the reactor once per page a commit wrote (tens per APPEND).
SIGNAL_FILE = "commit.signal"


class _Txn:
    __slots__ = ("_txn", "_dbs")

    def __init__(self, txn: lmdb.Transaction, dbs: dict[str, object]) -> None:
        self._txn = txn
        self._dbs = dbs

    def get(self, table: str, key: bytes) -> bytes | None:
        v = self._txn.get(key, db=self._dbs[table])
        return None if v is None else bytes(v)

    def get_many(self, table: str, keys: Sequence[bytes]) -> list[bytes | None]:
        db, get = self._dbs[table], self._txn.get
        return [None if (v := get(k, db=db)) is None else bytes(v) for k in keys]

    def range(
        self, table: str, start: bytes, stop: bytes | None = None, *, reverse: bool = False,
        expect: int | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        cur = self._txn.cursor(db=self._dbs[table])
        if not reverse:
            if not cur.set_range(start):
                return iter(())
            if stop is None:
                return cur.iternext()
            # (k, v) < (stop,) exactly when k < stop: the bound is tested in C, with no
            # Python frame per row (a listing FETCH reads two rows per message)
            return takewhile((stop,).__gt__, cur.iternext())
        return self._reverse(cur, start, stop)

    @staticmethod
    def _reverse(cur: lmdb.Cursor, start: bytes, stop: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        if stop is None:
            ok = cur.last()
        else:
            ok = cur.set_range(stop)
            ok = cur.prev() if ok else cur.last()
        if not ok:
            return
        while True:
            k = cur.key()
            if k < start:
                return
            yield k, cur.value()
            if not cur.prev():
                return

    def scan_many(self, reqs: Sequence[Scan]) -> list[list[tuple[bytes, bytes]]]:
        return scan_each(self, reqs)

    def get_many_each(self, reqs: Sequence[tuple[str, Sequence[bytes]]]) -> list[list[bytes | None]]:
        return get_each(self, reqs)

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self._txn.put(key, value, db=self._dbs[table])

    def delete(self, table: str, key: bytes) -> bool:
        return bool(self._txn.delete(key, db=self._dbs[table]))


class LmdbKV:
    """An LMDB environment holding ``tables`` as named sub-databases."""

    # one write transaction may change several accounts (Store.write_grouped)
    group_commit = True

    def __init__(self, path: str, tables: tuple[str, ...], *, sync: bool = True, readonly: bool = False) -> None:
        self.path = path
        try:
            os.makedirs(path, exist_ok=True)
            self._env = lmdb.open(
                path,
                map_size=_INITIAL_MAP,
                max_dbs=len(tables) + 2,
                sync=sync,
                metasync=sync,
                readahead=False,
                max_readers=512,
                readonly=readonly,
            )
        except lmdb.Error as e:
            raise StoreLockedError(f"cannot open store at {path}: {e}") from e
        except OSError as e:
            raise StoreLockedError(f"cannot open store at {path}: {e.strerror}") from e
        self._adopt_map_size()
        # Transactions open in this process, on any thread: LMDB allows set_mapsize only
        # when there are none (password checks read accounts on a thread pool).
        self._open_txns = 0
        self._count_lock = threading.Condition()
        self._dbs: dict[str, object] = {}
        try:
            if readonly:
                for t in tables:
                    self._dbs[t] = self._env.open_db(t.encode(), create=False)
            else:
                with self._env.begin(write=True) as txn:
                    for t in tables:
                        self._dbs[t] = self._env.open_db(t.encode(), txn=txn)
        except lmdb.Error as e:
            raise StoreLockedError(f"cannot open store at {path}: {e}") from e
        self._signal_fd = -1
        if not readonly:
            try:
                self._signal_fd = os.open(os.path.join(path, SIGNAL_FILE),
                                          os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as e:
                self._env.close()
                raise StoreLockedError(f"cannot open store at {path}: {e.strerror}") from e

    # -- map size management -------------------------------------------------

    def _adopt_map_size(self) -> None:
        # Another process may have grown the map: adopt its size (0 = take the file's).
        try:
            self._env.set_mapsize(0)
        except lmdb.Error:
            pass

    def _ensure_headroom(self) -> None:
        if self._open_txns:
            return  # grow at a later write; half the map is kept free, so this is safe
        info = self._env.info()
        psize = self._env.stat()["psize"]
        used = (info["last_pgno"] + 1) * psize
        size = info["map_size"]
        if size - used < max(_MIN_HEADROOM, size // 2):
            self._grow(max(size * 2, used + 2 * _MIN_HEADROOM))

    def _grow(self, new_size: int | None = None) -> None:
        # Other threads' transactions are short (a password check, an importer's
        # de-duplication read): wait for them to end rather than fail the write.
        with self._count_lock:
            if not self._count_lock.wait_for(lambda: self._open_txns == 0, timeout=_GROW_WAIT):
                raise StoreLockedError("the store is full and cannot grow while another thread reads it")
            size = self._env.info()["map_size"]
            self._env.set_mapsize(new_size or size * 2)

    def _begin(self, write: bool) -> lmdb.Transaction:
        # Counted before it exists: a map resize (under the lock, with no transaction
        # counted) can then never run while this one begins.
        with self._count_lock:
            self._open_txns += 1
        try:
            try:
                return self._env.begin(write=write)
            except lmdb.MapResizedError:
                with self._count_lock:
                    if self._open_txns > 1:
                        raise
                    self._adopt_map_size()
                return self._env.begin(write=write)
        except BaseException:
            self._end_count()
            raise

    def _end_count(self) -> None:
        with self._count_lock:
            self._open_txns -= 1
            if not self._open_txns:
                self._count_lock.notify_all()

    def _end(self, txn: lmdb.Transaction, commit: bool) -> None:
        try:
            if commit:
                txn.commit()
                if self._signal_fd >= 0:
                    try:  # inotify: IN_MODIFY, once per commit
                        os.pwrite(self._signal_fd, b"\n", 0)
                    except OSError:  # committed all the same: the caller must not see a failure
                        pass
            else:
                txn.abort()
        finally:
            self._end_count()

    # -- the interface ---------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[_Txn]:
        txn = self._begin(False)
        try:
            yield _Txn(txn, self._dbs)
        finally:
            self._end(txn, False)

    def get_latest(self, table: str, key: bytes) -> bytes | None:
        with self.read() as r:
            return r.get(table, key)

    @contextmanager
    def write(self, account: int | None = None) -> Iterator[_Txn]:
        self._ensure_headroom()
        txn = self._begin(True)
        try:
            yield _Txn(txn, self._dbs)
        except BaseException:
            self._end(txn, False)
            raise
        self._end(txn, True)

    def run_write(self, fn: Callable[[_Txn], T], account: int | None = None) -> T:
        for _attempt in range(8):
            self._ensure_headroom()
            txn = self._begin(True)
            try:
                result = fn(_Txn(txn, self._dbs))
            except lmdb.MapFullError:
                self._end(txn, False)
                self._grow()
                continue
            except BaseException:
                self._end(txn, False)
                raise
            try:
                self._end(txn, True)
            except lmdb.MapFullError:
                self._grow()
                continue
            return result
        raise StoreLockedError("the store could not grow to hold this write")

    def changed_path(self) -> str | None:
        return os.path.join(self.path, SIGNAL_FILE)

    def listen(self, on_change: Callable[[], None]) -> None:
        return None  # one writer per environment: other processes are seen via changed_path()

    def disk_size(self) -> int:
        return os.path.getsize(os.path.join(self.path, "data.mdb"))

    def close(self) -> None:
        if self._signal_fd >= 0:
            os.close(self._signal_fd)
            self._signal_fd = -1
        self._env.close()
