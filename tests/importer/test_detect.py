"""detect(): format detection and its one-line error messages."""

import os

import pytest

from dualmail.importer.sources import ImportSourceError, detect, iter_maildir, iter_mbox


def test_mbox(tmp_path):
    p = tmp_path / "a.mbox"
    p.write_bytes(b"From x@y Mon Jan  1 00:00:00 2024\nSubject: a\n\nbody\n")
    assert detect(p) == "mbox"
    assert detect(str(p)) == "mbox"


@pytest.mark.parametrize("subs", [("cur", "new", "tmp"), ("cur",), ("new",), ("tmp",)])
def test_maildir(tmp_path, subs):
    for s in subs:
        (tmp_path / s).mkdir()
    assert detect(tmp_path) == "maildir"


def test_maildirpp_only(tmp_path):
    (tmp_path / ".Sent" / "cur").mkdir(parents=True)
    assert detect(tmp_path) == "maildir"


def test_nonexistent(tmp_path):
    p = tmp_path / "nope"
    with pytest.raises(ImportSourceError) as e:
        detect(p)
    assert str(e.value) == f"{p}: no such file or directory"


def test_plain_directory(tmp_path):
    (tmp_path / "something").mkdir()
    (tmp_path / ".hidden").mkdir()  # a dot-dir without cur/new/tmp is no folder
    with pytest.raises(ImportSourceError) as e:
        detect(tmp_path)
    assert str(e.value) == (
        f"{tmp_path}: directory is not a Maildir "
        "(no cur/, new/ or tmp/ and no Maildir++ subfolders)"
    )


def test_empty_file(tmp_path):
    p = tmp_path / "empty"
    p.write_bytes(b"")
    with pytest.raises(ImportSourceError) as e:
        detect(p)
    assert str(e.value) == f"{p}: empty file, not an mbox"


@pytest.mark.parametrize("head", [b"Subject: x\n\nbody\n", b"from x@y\n", b"From:x\n", b"Fro"])
def test_not_mbox(tmp_path, head):
    p = tmp_path / "f"
    p.write_bytes(head)
    with pytest.raises(ImportSourceError) as e:
        detect(p)
    assert str(e.value) == f"{p}: not an mbox (does not start with a 'From ' line)"


def test_not_regular(tmp_path):
    p = tmp_path / "fifo"
    os.mkfifo(p)
    with pytest.raises(ImportSourceError) as e:
        detect(p)
    assert str(e.value) == f"{p}: not a regular file or directory"


def test_messages_are_one_line(tmp_path):
    for p in (tmp_path / "nope", tmp_path):
        with pytest.raises(ImportSourceError) as e:
            detect(p)
        assert "\n" not in str(e.value)


def test_iterators_fail_early(tmp_path):
    # The errors come from the call, not from the first next().
    with pytest.raises(ImportSourceError, match="no such file"):
        iter_mbox(tmp_path / "nope")
    with pytest.raises(ImportSourceError, match="not a Maildir"):
        iter_maildir(tmp_path)


def test_iter_mbox_rejects_garbage(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"Subject: x\n\nbody\n")
    with pytest.raises(ImportSourceError, match="does not start with a 'From ' line"):
        list(iter_mbox(p))


def test_iter_mbox_empty_file_is_empty(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"")
    assert list(iter_mbox(p)) == []
