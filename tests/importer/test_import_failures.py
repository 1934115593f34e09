"""One bad message never stops ``dualmail import`` (issue 10): a message that cannot be
parsed or stored for a reason of its own is reported (``failed N``, with its origin) and
the messages around it are imported; an error of the store itself still stops the
import (tests/importer/test_parallel_import.py)."""

from __future__ import annotations

import pytest

from dualmail import importer_run
from dualmail.store.check import verify
from dualmail.store.store import open_store


def _mbox(path, n: int, special: dict[int, bytes] | None = None) -> str:
    with open(path, "wb") as f:
        for i in range(n):
            f.write(b"From a@b Mon Jan  1 00:00:00 2024\n")
            f.write((special or {}).get(i) or f"Subject: m{i}\nMessage-ID: <{i}@x>\n\nbody {i}\n".encode())
            f.write(b"\n")
    return str(path)


def _subjects(s, a) -> list[str]:
    with s.read(a) as r:
        assert verify(r) == []
        inbox = r.mailbox_by_path(["INBOX"])
        return [r.summary(e)["subject"] for _u, e in r.uid_items(inbox)]


@pytest.fixture
def store(tmp_path):
    s = open_store(str(tmp_path / "d"))
    yield s
    s.close()


@pytest.mark.parametrize("workers", [0, 2])
def test_a_lone_surrogate_subject_is_imported(tmp_path, store, workers):
    """``Subject: =?utf-7?q?+2AA-?=`` decodes to a lone U+D800: it is stored as U+FFFD
    (the import used to end there with a traceback, the later messages lost)."""
    bad = b"Subject: =?utf-7?q?+2AA-?=\nMessage-ID: <bad@x>\n\nbody\n"
    path = _mbox(tmp_path / "m.mbox", 5, {2: bad})
    a = store.create_account("a@x", "pw")
    res = importer_run.run_import(store, a, path, workers=workers)
    assert (res.imported, res.skipped, res.failed) == (5, 0, [])
    assert _subjects(store, a) == ["m0", "m1", "\ufffd", "m3", "m4"]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_message_that_cannot_be_stored_is_reported_and_the_import_goes_on(tmp_path, store, monkeypatch,
                                                                           workers):
    path = _mbox(tmp_path / "m.mbox", 3000)
    real = importer_run.store_prepared

    def failing(tx, prep, mailboxes):
        if b"Subject: m2500\r\n" in prep.raw or b"Subject: m7\r\n" in prep.raw:
            raise ValueError("this message's data")
        return real(tx, prep, mailboxes)

    monkeypatch.setattr(importer_run, "store_prepared", failing)
    committed: list[int] = []
    a = store.create_account("a@x", "pw")
    res = importer_run.run_import(store, a, path, workers=workers, on_commit=lambda keys: committed.append(len(keys)))
    assert res.imported == 2998 and res.skipped == 0
    assert sorted(why for _origin, why in res.failed) == ["could not be stored (ValueError)"] * 2
    assert all(origin.startswith(path) for origin, _why in res.failed)
    assert res.summary_line() == ("imported 2998, skipped 0 (already present), failed 2: "
                                  "could not be stored (ValueError) (2)")
    assert sum(committed) == 2998
    assert _subjects(store, a) == [f"m{i}" for i in range(3000) if i not in (7, 2500)]
    # A second run imports nothing twice and reports the same two again.
    monkeypatch.setattr(importer_run, "store_prepared", failing)
    again = importer_run.run_import(store, a, path, workers=workers)
    assert (again.imported, again.skipped, len(again.failed)) == (0, 2998, 2)


def _unparseable(raw: bytes):
    if b"Subject: m3\r\n" in raw:
        raise RecursionError("deep")
    return _REAL[0](raw)


_REAL = [importer_run.summarize]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_message_that_cannot_be_parsed_is_reported_and_the_import_goes_on(tmp_path, store, monkeypatch,
                                                                           workers):
    monkeypatch.setattr(importer_run, "_start_method", lambda: "fork")  # the parsers see the patch
    monkeypatch.setattr(importer_run, "summarize", _unparseable)
    path = _mbox(tmp_path / "m.mbox", 6)
    a = store.create_account("a@x", "pw")
    res = importer_run.run_import(store, a, path, workers=workers)
    assert res.imported == 5
    assert [why for _origin, why in res.failed] == ["could not be parsed (RecursionError)"]
    assert _subjects(store, a) == ["m0", "m1", "m2", "m4", "m5"]
