"""``dualmail import`` with parsing processes gives what parsing in-process gives.

The parsers are plain processes fed over pipes (``importer_run._Parsers``): windows are
split over them, results come back in source order; a parser that dies is replaced by
parsing in the importing process; fork and spawn both work.
"""

from __future__ import annotations

import os

import pytest

import mailgen
from dualmail import importer_run
from dualmail.store.check import verify
from dualmail.store.store import open_store


@pytest.fixture(scope="module")
def mbox(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("mbox") / "mail.mbox"
    with open(path, "wb") as f:
        mailgen.write_mbox(f, list(mailgen.generate_records(300, seed=11)))
    return str(path)


def _import(path: str, data: str, workers: int) -> dict[bytes, tuple]:
    """Import into a fresh store; what was stored, keyed by each message's bytes."""
    s = open_store(data)
    try:
        a = s.create_account("a@x", "pw")
        res = importer_run.run_import(s, a, path, workers=workers)
        assert (res.imported, res.skipped, res.failed) == (300, 0, [])
        out = {}
        with s.read(a) as r:
            assert verify(r) == []
            inbox = r.mailbox_by_path(["INBOX"])
            for u, e in r.uid_items(inbox):
                raw = r.raw_message(e)
                out[raw] = (u, r.summary(e), r.kv.get("text", _key(r, e)), r.kv.get("srch", _key(r, e)))
        return out
    finally:
        s.close()


def _key(r, e):
    from dualmail.store import keys as K

    return K.email(r.a, e)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_parsers_store_what_in_process_parsing_stores(mbox, tmp_path, monkeypatch, method):
    monkeypatch.setattr(importer_run, "_start_method", lambda: method)
    here = _import(mbox, str(tmp_path / "here"), workers=0)
    there = _import(mbox, str(tmp_path / "there"), workers=2)
    assert there == here  # same messages, same UIDs (source order), same stored forms


def _dies_on_marked(raw: bytes):
    if b"Subject: poison" in raw and os.getpid() != _PARENT[0]:
        os._exit(3)  # a parser killed mid-window (say, by the OOM killer)
    return _REAL[0](raw)


_PARENT = [0]
_REAL = [importer_run._summarize]


def test_a_dead_parser_is_replaced_by_parsing_here(tmp_path, monkeypatch):
    path = tmp_path / "poison.mbox"
    with open(path, "wb") as f:
        for i in range(200):
            subject = "poison" if i == 37 else f"m{i}"
            f.write(b"From a@b Mon Jan  1 00:00:00 2024\n"
                    + f"Subject: {subject}\nMessage-ID: <{i}@x>\n\nbody {i}\n\n".encode())
    _PARENT[0] = os.getpid()
    monkeypatch.setattr(importer_run, "_start_method", lambda: "fork")
    monkeypatch.setattr(importer_run, "_summarize", _dies_on_marked)
    s = open_store(str(tmp_path / "d"))
    try:
        a = s.create_account("a@x", "pw")
        res = importer_run.run_import(s, a, str(path), workers=2)
        assert (res.imported, res.failed) == (200, [])
        with s.read(a) as r:
            assert verify(r) == []
            inbox = r.mailbox_by_path(["INBOX"])
            subjects = [r.summary(e)["subject"] for _u, e in r.uid_items(inbox)]
        assert subjects == ["poison" if i == 37 else f"m{i}" for i in range(200)]
    finally:
        s.close()


def test_a_failed_write_stops_the_import_with_its_error(tmp_path, monkeypatch):
    """Batches are written on a writer thread; its error reaches the caller, the failed
    batch leaves nothing behind (one transaction), and earlier batches stay committed."""
    path = tmp_path / "m.mbox"
    with open(path, "wb") as f:
        for i in range(3000):
            f.write(b"From a@b Mon Jan  1 00:00:00 2024\n"
                    + f"Subject: m{i}\nMessage-ID: <{i}@x>\n\nbody {i}\n\n".encode())
    real = importer_run.store_prepared

    def failing(tx, prep, mailboxes):
        if b"Subject: m2500\r\n" in prep.raw:
            raise RuntimeError("disk on fire")
        return real(tx, prep, mailboxes)

    monkeypatch.setattr(importer_run, "store_prepared", failing)
    committed: list[int] = []
    s = open_store(str(tmp_path / "d"))
    try:
        a = s.create_account("a@x", "pw")
        with pytest.raises(RuntimeError, match="disk on fire"):
            importer_run.run_import(s, a, str(path), workers=2, on_commit=lambda keys: committed.append(len(keys)))
        with s.read(a) as r:
            assert verify(r) == []
            inbox = r.mailbox_by_path(["INBOX"])
            stored = len(list(r.uid_items(inbox)))
        assert 0 < sum(committed) <= stored < 2500  # what was reported is there; m2500 is not
    finally:
        s.close()
