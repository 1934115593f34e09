"""The file the server watches for other processes' commits (``LmdbKV.changed_path``,
``notify.ExternalCommitWatcher``): written once after each committed write, never by a
read or a write that rolls back.  The server used to watch ``data.mdb`` itself, which
woke its reactor for every page a commit wrote (tens per APPEND, seen with strace)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from dualmail.store.keys import TABLES
from dualmail.store.kv_lmdb import SIGNAL_FILE, LmdbKV


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _key(i: int) -> bytes:
    return b"\x00\x00\x00\x01" + i.to_bytes(8, "big")


def test_only_a_committed_write_touches_the_signal_file(tmp_path):
    kv = LmdbKV(str(tmp_path / "kv"), TABLES, sync=False)
    try:
        path = kv.changed_path()
        assert path == str(tmp_path / "kv" / SIGNAL_FILE)
        assert os.path.exists(path)
        os.truncate(path, 0)
        with kv.read() as r:
            assert r.get("email", _key(1)) is None
        with pytest.raises(RuntimeError):
            with kv.write(1) as w:
                w.put("email", _key(1), b"x" * 100)
                raise RuntimeError("rolled back")
        assert os.path.getsize(path) == 0
        with kv.read() as r:  # and the rolled-back row is not there
            assert r.get("email", _key(1)) is None

        def fill(w):
            for i in range(300):  # many pages, one signal
                w.put("email", _key(i), b"y" * 200)
            return 300

        assert kv.run_write(fill, 1) == 300
        assert os.path.getsize(path) == 1
        os.truncate(path, 0)
        with kv.write(1) as w:
            w.delete("email", _key(0))
        assert os.path.getsize(path) == 1
    finally:
        kv.close()


def test_a_read_only_open_leaves_no_signal_file(tmp_path):
    LmdbKV(str(tmp_path / "kv"), TABLES, sync=False).close()
    os.remove(tmp_path / "kv" / SIGNAL_FILE)
    ro = LmdbKV(str(tmp_path / "kv"), TABLES, sync=False, readonly=True)
    try:
        with ro.read() as r:
            assert r.get("email", _key(1)) is None
        assert not os.path.exists(tmp_path / "kv" / SIGNAL_FILE)
    finally:
        ro.close()


_WRITER = """
import sys
from dualmail.store.store import open_store
store = open_store(sys.argv[1], sync=False)
a = store.require_account("u@example.org")
with store.write(a) as tx:
    tx.create_mailbox("FromOutside")
print("committed", flush=True)
sys.stdin.readline()  # stays open (no close, no exit) until the test has seen the commit
store.close()
"""


@pytest_twisted.ensureDeferred
async def test_the_watcher_sees_a_commit_while_its_writer_stays_open(tmp_path):
    """CONTRACT §5: another process's commit reaches subscribers at once.  The writer keeps
    the store open, so only the signal written after its commit (not a close) can tell."""
    from twisted.internet import defer, reactor

    from dualmail.notify import ExternalCommitWatcher
    from dualmail.store.store import open_store

    data = str(tmp_path / "data")
    store = open_store(data, sync=False)
    a = store.create_account("u@example.org", "pw")
    seen: defer.Deferred = defer.Deferred()
    store.subscribe(lambda c: None if seen.called or c.account != a else seen.callback(c))
    watcher = ExternalCommitWatcher(store, reactor)
    watcher.startService()
    assert watcher._notifier is not None  # inotify, not the fallback timer
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, data], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": ROOT})
    try:
        line = await deferToThread(proc.stdout.readline)
        assert line == b"committed\n"
        commit = await seen.addTimeout(30, reactor)  # a deadline to fail by, not a wait for timing
        assert proc.poll() is None  # the writer is still running, its store still open
        assert commit.account == a
    finally:
        proc.stdin.close()
        await deferToThread(proc.wait, 60)
        watcher.stopService()
        store.close()
