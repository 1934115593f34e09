"""PostgreSQL implementation of the ``kv`` interface: the only module that imports psycopg.

Each table of ``keys.TABLES`` is a PostgreSQL table ``dm_<name> (k bytea PRIMARY KEY, v
bytea)``; ``bytea`` compares bytewise with a shorter prefix first, which is exactly the
memcmp order the interface promises, so a range scan is an index range scan.

- A read view is one ``REPEATABLE READ READ ONLY`` transaction: one snapshot for the view.
- Round trips are what a PostgreSQL store pays for, so a transaction begins lazily:
  ``BEGIN`` (and a write's account lock) goes in one pipelined round trip with its first
  statement, and a write's ``NOTIFY`` with its ``COMMIT``.  A read-only transaction's
  ``COMMIT`` is sent but not waited for: the connection is kept aside (``_settle``) and
  its next user reads that answer first.  A read view of one ``get`` is one round trip
  waited for, an unused view none.  Pooled connections are not pinged before use: a
  first statement that finds its connection dead is re-sent on another (nothing has been
  done yet), and the pool is swept for other dead ones.
- A write transaction is ``READ COMMITTED`` and begins by taking a transaction-scoped
  advisory lock keyed by its account: one writer per account across every node, and
  writers of different accounts never wait for each other's locks.  The tables whose keys
  do not start with an account number (``GLOBAL_TABLES``: the format and counters in
  ``meta``, ``login``, ``token``, the global commit log) are guarded by one more advisory
  lock, taken the first time a transaction touches one of them.  Every read in a write
  transaction therefore sees every earlier writer's commit (read committed, after the
  lock), so a read-modify-write never loses an update.  Locks are always taken account
  first, global second: no lock cycle.
- ``synchronous_commit`` is on (the server default, set again per session).
- A commit sends ``NOTIFY dualmail_commits`` (payload: the account number) inside the
  transaction, so PostgreSQL delivers it after the commit and only if it committed;
  ``listen`` turns those into calls of a callback, reconnecting (and calling it once, so
  the caller catches up from the commit log) after a lost connection.
- ``get_many`` is one ``k = ANY(...)`` query per ``_MAX_PAGE`` keys (an index lookup
  per key, one round trip), the values put back in the order asked.  Keys of one length
  (the usual case: an Email's key is 12 bytes) travel as one concatenated ``bytea`` that
  the server cuts up: psycopg dumps a Python list of 50 keys in about 100 µs more.
- Range scans stream in keyset pages (16 rows first, growing to 1,000; the caller's
  ``expect`` + 1 first where it gives one), so a scan that stops early reads little and a
  100k-row scan never holds everything.
- A lost connection, a server restart, a deadlock or a lock wait past ``lock_timeout``
  is retried where nothing can have been applied (before the first statement of a
  ``write`` block; a whole ``run_write`` function), else raised as
  ``errors.UnavailableError``: the transaction is rolled back, never half-applied.  A
  failure during COMMIT itself is always raised (its outcome is unknown to the client).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Callable, Iterator, Sequence, TypeVar

import psycopg
from psycopg import generators, sql
from psycopg_pool import ConnectionPool, PoolTimeout

from ..model import errors
from .kv import Scan, get_each, scan_each

T = TypeVar("T")

# Tables whose keys do not begin with the account number.
GLOBAL_TABLES = frozenset({"meta", "login", "token", "commits", "outdue",
                           "pushdue"})  # outdue, pushdue: the queues' global indexes
CHANNEL = "dualmail_commits"

_LOCK_NS_ACCOUNT = 0x646D6101  # advisory lock key spaces ("dma\x01", "dma\x02")
_LOCK_NS_GLOBAL = 0x646D6102
_LOCK_NS_SCHEMA = 0x646D6103
_FIRST_PAGE = 16
_MAX_PAGE = 1000
_RETRIES = 3
_RETRY_PAUSE = 0.1  # seconds, doubled per attempt
_GETCONN_TIMEOUT = 1.0  # seconds a transaction waits for a pooled connection
_SETTLING = 4  # connections kept aside with a read-only COMMIT on its way (``_settle``)


def _signed32(n: int) -> int:
    n &= 0xFFFFFFFF
    return n - (1 << 32) if n >= 1 << 31 else n


def _unavailable(e: BaseException) -> errors.UnavailableError:
    return errors.UnavailableError(f"the database is unavailable: {type(e).__name__}: {str(e).strip()}")


_TEMPORARY = (psycopg.OperationalError, PoolTimeout)


class _Txn:
    """One PostgreSQL transaction seen as a ``KVRead``/``KVWrite``.

    Lazy: it takes a pooled connection and sends ``BEGIN`` (and, for a write, the account's
    advisory lock) only with its first statement, in one pipelined round trip, so a read
    view of one ``get`` costs one round trip (its ``COMMIT`` is not waited for) and an
    empty one none.
    A first statement that finds its pooled connection dead is re-sent on another: nothing
    has been done yet."""

    __slots__ = ("_kv", "_conn", "_cur", "_account", "_global_locked", "_write", "dirty")

    def __init__(self, kv: "PgKV", write: bool, account: int | None) -> None:
        self._kv = kv
        self._write = write
        self._account = account
        self._conn: psycopg.Connection | None = None
        self._cur: psycopg.Cursor | None = None
        self._global_locked = False
        self.dirty = False

    def _table(self, table: str) -> dict[str, Any]:
        if self._write and not self._global_locked and table in GLOBAL_TABLES:
            self._global_locked = True
            self._execute(_GLOBAL_LOCK, (_LOCK_NS_GLOBAL,))
        return self._kv._sql[table]

    def _execute(self, query: Any, params: Sequence[Any]) -> psycopg.Cursor:
        cur = self._cur
        if cur is not None:
            return cur.execute(query, params, binary=True)
        return self._first([(query, params)])[0]

    def _execute_many(self, stmts: list[tuple[Any, Sequence[Any]]]) -> list[psycopg.Cursor]:
        """Several statements in one pipelined round trip, a cursor each."""
        conn = self._conn
        if conn is None:
            return self._first(stmts)
        curs = [conn.cursor() for _ in stmts]
        with conn.pipeline():
            for cur, (query, params) in zip(curs, stmts):
                cur.execute(query, params, binary=True)
        return curs

    def _first(self, stmts: list[tuple[Any, Sequence[Any]]]) -> list[psycopg.Cursor]:
        pool = self._kv._pool
        begin = _BEGIN_WRITE if self._write else _BEGIN_READ
        pause = _RETRY_PAUSE
        for attempt in range(_RETRIES):
            conn = None
            try:
                conn = self._kv._getconn()
                cur = conn.cursor()
                curs = [cur] + [conn.cursor() for _ in stmts[1:]]
                with conn.pipeline():
                    cur.execute(begin)
                    if self._write and self._account is not None:
                        cur.execute(_ACCOUNT_LOCK, (_LOCK_NS_ACCOUNT, _signed32(self._account)))
                    for c, (query, params) in zip(curs, stmts):
                        c.execute(query, params, binary=True)
            except _TEMPORARY as e:
                if conn is not None:
                    _rollback(conn)
                    pool.putconn(conn)  # a broken one is discarded by the pool
                if attempt == _RETRIES - 1 or isinstance(e, psycopg.errors.LockNotAvailable):
                    raise _unavailable(e) from e
                pool.check()  # a restarted server: drop the other dead connections too
                time.sleep(pause)
                pause *= 2
                continue
            except BaseException:
                if conn is not None:
                    _rollback(conn)
                    pool.putconn(conn)
                raise
            self._conn, self._cur = conn, cur
            return curs
        raise AssertionError("unreachable")

    def get(self, table: str, key: bytes) -> bytes | None:
        row = self._execute(self._table(table)["get"], (key,)).fetchone()
        return None if row is None else row[0]

    def _get_many_statements(self, table: str, keys: list[bytes]) -> list[tuple[Any, Sequence[Any]]]:
        """The statements of one ``get_many``: a key list per ``_MAX_PAGE`` keys, or where
        every key has one length, the keys concatenated (no per-key dump in psycopg)."""
        q = self._table(table)
        out: list[tuple[Any, Sequence[Any]]] = []
        for i in range(0, len(keys), _MAX_PAGE):
            chunk = keys[i:i + _MAX_PAGE]
            n = len(chunk[0])
            if n and all(len(k) == n for k in chunk):
                out.append((q["get_packed"], (b"".join(chunk), n, n, len(chunk))))
            else:
                out.append((q["get_many"], (chunk,)))
        return out

    def get_many(self, table: str, keys: Sequence[bytes]) -> list[bytes | None]:
        if len(keys) <= 1:
            return [self.get(table, k) for k in keys]
        asked = [bytes(k) for k in keys]
        found: dict[bytes, bytes] = {}
        for query, params in self._get_many_statements(table, asked):
            found.update(self._execute(query, params).fetchall())
        return [found.get(k) for k in asked]

    def range(
        self, table: str, start: bytes, stop: bytes | None = None, *, reverse: bool = False,
        expect: int | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        q = self._table(table)
        # one more than expected: a scan that holds what was expected ends in one page
        page = _FIRST_PAGE if expect is None else max(1, min(expect + 1, _MAX_PAGE))
        lo, lo_incl, hi = start, True, stop  # the window still to read
        while True:
            # Each page is read whole before it is yielded: the caller may use the same
            # transaction (another get or range) between rows.
            if not reverse:
                name = ("fwd_ge" if lo_incl else "fwd_gt") + ("" if hi is None else "_lt")
            else:
                name = "rev" + ("" if hi is None else "_lt")
            params = (lo, page) if hi is None else (lo, hi, page)
            rows = self._execute(q[name], params).fetchall()
            yield from rows
            if len(rows) < page:
                return
            if not reverse:
                lo, lo_incl = rows[-1][0], False
            else:
                hi = rows[-1][0]
            page = min(page * 4, _MAX_PAGE)

    def get_many_each(self, reqs: Sequence[tuple[str, Sequence[bytes]]]) -> list[list[bytes | None]]:
        asked = [(t, [bytes(k) for k in keys]) for t, keys in reqs]
        stmts: list[tuple[Any, Sequence[Any]]] = []
        for t, keys in asked:
            stmts += self._get_many_statements(t, keys)
        if len(stmts) <= 1:
            return get_each(self, reqs)
        curs = iter(self._execute_many(stmts))
        out: list[list[bytes | None]] = []
        for _t, keys in asked:
            found: dict[bytes, bytes] = {}
            for _i in range(0, len(keys), _MAX_PAGE):
                found.update(next(curs).fetchall())
            out.append([found.get(k) for k in keys])
        return out

    def scan_many(self, reqs: Sequence[Scan]) -> list[list[tuple[bytes, bytes]]]:
        if len(reqs) <= 1:
            return scan_each(self, reqs)
        stmts: list[tuple[Any, Sequence[Any]]] = []
        for table, start, stop, limit in reqs:
            q = self._table(table)
            stmts.append((q["fwd_ge"], (start, limit)) if stop is None
                         else (q["fwd_ge_lt"], (start, stop, limit)))
        return [cur.fetchall() for cur in self._execute_many(stmts)]

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self._execute(self._table(table)["put"], (key, bytes(value)))
        self.dirty = True

    def delete(self, table: str, key: bytes) -> bool:
        cur = self._execute(self._table(table)["delete"], (key,))
        self.dirty = True
        return cur.rowcount > 0

    # -- the end of the transaction ----------------------------------------------------

    def end(self) -> None:
        """Commit: a write's ``NOTIFY`` (if it changed anything) and ``COMMIT`` in one round
        trip; a failure there is raised as unknown-outcome, never retried."""
        conn = self._conn
        if conn is None:
            return  # nothing was read or written: no transaction was begun
        if not self._write:
            # A read-only transaction: its COMMIT is sent, and its answer read by the
            # connection's next user (``PgKV._getconn``), not waited for here.
            self._conn = None
            self._kv._settle(conn)
            return
        try:
            with conn.pipeline():
                if self.dirty:  # every node's listener hears it, and only if committed
                    conn.execute(_NOTIFY, (CHANNEL, "" if self._account is None else str(self._account)))
                conn.execute("COMMIT")
        except _TEMPORARY as e:
            raise errors.UnavailableError(
                "the database connection failed during commit: the change may or may not "
                f"have been applied ({type(e).__name__})") from e

    def abort(self) -> None:
        if self._conn is not None:
            _rollback(self._conn)

    def release(self) -> None:
        conn, self._conn, self._cur = self._conn, None, None
        if conn is not None:
            self._kv._pool.putconn(conn)


_BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
_BEGIN_WRITE = "BEGIN ISOLATION LEVEL READ COMMITTED"
_ACCOUNT_LOCK = "SELECT pg_advisory_xact_lock(%s, %s)"
_GLOBAL_LOCK = "SELECT pg_advisory_xact_lock(%s, 0)"
_NOTIFY = "SELECT pg_notify(%s, %s)"


def _statements(table: str) -> dict[str, Any]:
    t = sql.Identifier(f"dm_{table}")

    def s(text: str) -> Any:
        return sql.SQL(text).format(t=t)

    return {
        "get": s("SELECT v FROM {t} WHERE k = %s"),
        "get_many": s("SELECT k, v FROM {t} WHERE k = ANY(%s)"),
        # keys of one length, concatenated: (bytes, length, length, count)
        "get_packed": s("SELECT k, v FROM {t} WHERE k = ANY(ARRAY("
                        "SELECT substr(%s::bytea, i * %s + 1, %s) FROM generate_series(0, %s - 1) AS i))"),
        "put": s("INSERT INTO {t} (k, v) VALUES (%s, %s) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v"),
        "delete": s("DELETE FROM {t} WHERE k = %s"),
        "fwd_ge": s("SELECT k, v FROM {t} WHERE k >= %s ORDER BY k LIMIT %s"),
        "fwd_gt": s("SELECT k, v FROM {t} WHERE k > %s ORDER BY k LIMIT %s"),
        "fwd_ge_lt": s("SELECT k, v FROM {t} WHERE k >= %s AND k < %s ORDER BY k LIMIT %s"),
        "fwd_gt_lt": s("SELECT k, v FROM {t} WHERE k > %s AND k < %s ORDER BY k LIMIT %s"),
        "rev": s("SELECT k, v FROM {t} WHERE k >= %s ORDER BY k DESC LIMIT %s"),
        "rev_lt": s("SELECT k, v FROM {t} WHERE k >= %s AND k < %s ORDER BY k DESC LIMIT %s"),
    }


class PgKV:
    """The tables of ``tables`` in the PostgreSQL database at ``url`` (a libpq URI)."""

    def __init__(self, url: str, tables: tuple[str, ...], *, max_connections: int = 16,
                 connect_timeout: float = 5.0, lock_timeout_ms: int = 30_000) -> None:
        self.url = url
        self.tables = tables
        self._sql = {t: _statements(t) for t in tables}
        self._timeout = connect_timeout
        self._lock_timeout_ms = int(lock_timeout_ms)
        self._settling: deque[psycopg.Connection] = deque()  # (``_settle``)
        try:
            self._pool = ConnectionPool(
                url, min_size=1, max_size=max_connections, open=False, timeout=connect_timeout,
                kwargs={"autocommit": True, "connect_timeout": max(1, int(connect_timeout))},
                configure=self._configure, name="dualmail")
            self._pool.open(wait=True, timeout=connect_timeout)
        except (psycopg.Error, PoolTimeout) as e:
            raise errors.StoreLockedError(f"cannot open the PostgreSQL store {_redact(url)}: {e}") from e
        self._create_schema()

    # -- connections whose read-only COMMIT is on its way ---------------------------

    def _settle(self, conn: psycopg.Connection) -> None:
        """End a read-only transaction without waiting: send its COMMIT (the server ends
        the transaction, and lets go of its snapshot, as soon as it arrives) and keep the
        connection aside; its next user reads the answer, long since there (one round
        trip less per read view)."""
        try:
            conn.pgconn.send_query(b"COMMIT")
            conn.wait(generators.send(conn.pgconn))
        except (psycopg.Error, OSError):
            conn.close()  # (the pool discards a closed connection)
            self._pool.putconn(conn)
            return
        if len(self._settling) < _SETTLING:
            self._settling.append(conn)
        else:
            self._putconn_settled(conn)

    def _settled(self, conn: psycopg.Connection) -> bool:
        """Read the answer of ``conn``'s deferred COMMIT; False if it failed (the
        connection is then closed)."""
        try:
            results = conn.wait(generators.fetch_many(conn.pgconn), timeout=_GETCONN_TIMEOUT)
            if all(r.status == psycopg.pq.ExecStatus.COMMAND_OK for r in results) and \
                    conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                return True
        except (psycopg.Error, OSError):
            pass
        conn.close()
        return False

    def _putconn_settled(self, conn: psycopg.Connection) -> None:
        self._settled(conn)
        self._pool.putconn(conn)

    def _getconn(self) -> psycopg.Connection:
        """A connection for a transaction: one set aside by ``_settle`` if any, else the
        pool's."""
        while True:
            try:
                conn = self._settling.popleft()
            except IndexError:
                return self._pool.getconn(timeout=_GETCONN_TIMEOUT)
            if self._settled(conn):
                return conn
            self._pool.putconn(conn)

    def _configure(self, conn: psycopg.Connection) -> None:
        conn.execute("SET synchronous_commit = on")
        conn.execute(f"SET lock_timeout = {self._lock_timeout_ms}")

    def _create_schema(self) -> None:
        # Several nodes may start at once: CREATE TABLE IF NOT EXISTS is not race-free.
        with self._pool.connection() as conn:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (_LOCK_NS_SCHEMA,))
                for t in self.tables:
                    conn.execute(sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {t} (k bytea PRIMARY KEY, v bytea NOT NULL)"
                    ).format(t=sql.Identifier(f"dm_{t}")))

    # -- transactions --------------------------------------------------------------

    def read(self) -> AbstractContextManager[_Txn]:
        return self._transaction(None, write=False)

    def write(self, account: int | None = None) -> AbstractContextManager[_Txn]:
        return self._transaction(account, write=True)

    def get_latest(self, table: str, key: bytes) -> bytes | None:
        """One statement in autocommit (its own snapshot): one round trip; re-sent on
        another connection if the pooled one is dead (a read: nothing to undo)."""
        q = self._sql[table]["get"]
        pause = _RETRY_PAUSE
        for attempt in range(_RETRIES):
            conn = None
            try:
                conn = self._getconn()
                row = conn.execute(q, (key,), binary=True).fetchone()
            except _TEMPORARY as e:
                if attempt == _RETRIES - 1:
                    raise _unavailable(e) from e
                self._pool.check()
                time.sleep(pause)
                pause *= 2
                continue
            finally:
                if conn is not None:
                    self._pool.putconn(conn)
            return None if row is None else row[0]
        raise AssertionError("unreachable")

    @contextmanager
    def _transaction(self, account: int | None, *, write: bool) -> Iterator[_Txn]:
        txn = _Txn(self, write, account)
        try:
            try:
                yield txn
                txn.end()
            except _TEMPORARY as e:
                txn.abort()
                raise _unavailable(e) from e
            except BaseException:
                txn.abort()
                raise
        finally:
            txn.release()

    def run_write(self, fn: Callable[[_Txn], T], account: int | None = None) -> T:
        pause = _RETRY_PAUSE
        for attempt in range(_RETRIES):
            txn = _Txn(self, True, account)
            try:
                try:
                    result = fn(txn)
                    txn.end()
                    return result
                except BaseException:
                    txn.abort()
                    raise
                finally:
                    txn.release()
            except _TEMPORARY as e:  # before COMMIT: rolled back, safe to run again
                if attempt == _RETRIES - 1 or isinstance(e, psycopg.errors.LockNotAvailable):
                    raise _unavailable(e) from e
                time.sleep(pause)
                pause *= 2
        raise AssertionError("unreachable")

    # -- change signal ----------------------------------------------------------------

    def changed_path(self) -> str | None:
        return None

    def listen(self, on_change: Callable[[], None]) -> Callable[[], None]:
        """Call ``on_change()`` (on a background thread) after every commit of any node, and
        once after every (re)connection of the listening session; returns a stop function."""
        stop = threading.Event()
        thread = threading.Thread(target=self._listen_loop, args=(on_change, stop),
                                  name="dualmail-pg-listen", daemon=True)
        thread.start()

        def stop_listening() -> None:
            stop.set()
            thread.join(timeout=5)

        return stop_listening

    def _listen_loop(self, on_change: Callable[[], None], stop: threading.Event) -> None:
        import logging

        log = logging.getLogger("dualmail.store.pg")
        pause = 0.05
        while not stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True,
                                     connect_timeout=max(1, int(self._timeout))) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
                    pause = 0.05
                    on_change()  # catch up on whatever was committed while not listening
                    while not stop.is_set():
                        for _n in conn.notifies(timeout=0.5, stop_after=1):
                            on_change()
            except psycopg.Error as e:
                log.warning("PostgreSQL listen connection lost (%s); reconnecting", e)
                stop.wait(pause)
                pause = min(pause * 2, 2.0)
            except Exception:
                log.exception("commit listener failed")
                stop.wait(pause)

    def disk_size(self) -> int:
        with self.read() as r:
            row = r._execute("SELECT pg_database_size(current_database())", ()).fetchone()
        return int(row[0])

    def close(self) -> None:
        while self._settling:
            self._putconn_settled(self._settling.popleft())
        self._pool.close()


def _rollback(conn: psycopg.Connection) -> None:
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error:
        pass  # a broken connection is discarded by the pool


def _redact(url: str) -> str:
    """The URL without its password (for messages)."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        d = conninfo_to_dict(url)
    except psycopg.Error:
        return "(unparsable URL)"
    d.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in d.items())
