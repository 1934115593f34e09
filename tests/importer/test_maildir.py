"""iter_maildir(): folders, modified UTF-7 names, flags, dates, order."""

import os

import mailgen
import pytest

from dualmail.importer.sources import decode_modified_utf7, iter_maildir, iter_source


def deliver(folder, sub, name, data=b"Subject: x\n\nbody\n", mtime=None):
    d = folder / sub
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    p.write_bytes(data)
    if mtime is not None:
        os.utime(p, (mtime, mtime))
    return p


def make_maildir(root):
    for s in ("cur", "new", "tmp"):
        (root / s).mkdir(parents=True, exist_ok=True)
    return root


def test_flags_from_info(tmp_path):
    md = make_maildir(tmp_path / "Maildir")
    deliver(md, "cur", "1700000001.M1P1.host,S=20:2,S")
    deliver(md, "cur", "1700000002.M1P1.host:2,FRS")
    deliver(md, "cur", "1700000003.M1P1.host:2,DT")
    deliver(md, "cur", "1700000004.M1P1.host:2,P")
    deliver(md, "cur", "1700000005.M1P1.host:2,")
    deliver(md, "cur", "1700000006.M1P1.host:2,Sab")  # dovecot keywords ignored
    deliver(md, "cur", "1700000007.M1P1.host!2,F")  # Windows-safe separator
    deliver(md, "new", "1700000008.M1P1.host")
    deliver(md, "tmp", "1700000009.M1P1.host")  # never read
    got = list(iter_maildir(md))
    assert [m.flags for m in got] == [
        {"\\Seen"},
        {"\\Flagged", "\\Answered", "\\Seen"},
        {"\\Draft", "\\Deleted"},
        {"$Forwarded"},
        set(),
        {"\\Seen"},
        {"\\Flagged"},
        set(),
    ]
    assert [m.internal_date for m in got] == list(range(1700000001, 1700000009))
    assert all(m.mailbox == () for m in got)
    assert got[0].origin == str(md / "cur" / "1700000001.M1P1.host,S=20:2,S")


def test_lf_to_crlf_and_bytes_kept(tmp_path):
    md = make_maildir(tmp_path)
    deliver(md, "new", "1.M1.h", b"A: 1\nB: 2\r\n\r\nx\ny\r\n\x00\xff\rz")
    (m,) = iter_maildir(md)
    assert m.raw == b"A: 1\r\nB: 2\r\n\r\nx\r\ny\r\n\x00\xff\rz"


def test_mtime_when_no_timestamp_and_order(tmp_path):
    md = make_maildir(tmp_path)
    deliver(md, "cur", "zzz:2,S", mtime=1_500_000_000)
    deliver(md, "cur", "aaa:2,S", mtime=1_600_000_000)
    deliver(md, "new", "1550000000.M2.h")
    deliver(md, "new", "1550000000.M1.h")
    deliver(md, "cur", ".hidden", mtime=1)  # dot-files are not messages
    (md / "cur" / "subdir").mkdir()
    got = list(iter_maildir(md))
    assert [(m.internal_date, os.path.basename(m.origin)) for m in got] == [
        (1_500_000_000, "zzz:2,S"),
        (1_550_000_000, "1550000000.M1.h"),
        (1_550_000_000, "1550000000.M2.h"),
        (1_600_000_000, "aaa:2,S"),
    ]


def test_subfolders(tmp_path):
    md = make_maildir(tmp_path / "md")
    deliver(md, "cur", "10.a:2,S")
    for dotted, t in [(".Sent", 20), (".Archive.2024", 30), (".&AMk-t&AOk-", 40),
                      (".Projets.&AMk-t&AOk- 2023", 50), (".&ZeVnLIqe-", 60),
                      (".Tom &- Jerry", 70), (".Bad&Name", 80)]:
        deliver(md / dotted, "new", f"{t}.x")
    (md / ".empty").mkdir()  # not a folder: no cur/new/tmp
    deliver(md / "..broken", "new", "1.x")  # empty name part: skipped
    got = {m.mailbox: m.internal_date for m in iter_maildir(md)}
    assert got == {
        (): 10,
        ("Sent",): 20,
        ("Archive", "2024"): 30,
        ("Été",): 40,
        ("Projets", "Été 2023"): 50,
        ("日本語",): 60,
        ("Tom & Jerry",): 70,
        ("Bad&Name",): 80,  # not valid modified UTF-7: kept as is
    }
    # INBOX first, then the folders by name
    assert next(iter_maildir(md)).mailbox == ()


def test_only_subfolders(tmp_path):
    deliver(tmp_path / ".Sent", "cur", "5.x:2,S")
    (m,) = iter_maildir(tmp_path)
    assert m.mailbox == ("Sent",) and m.flags == {"\\Seen"}


@pytest.mark.parametrize("encoded, decoded", [
    ("INBOX", "INBOX"),
    ("&AMk-t&AOk-", "Été"),
    ("&-", "&"),
    ("a&-b&-", "a&b&"),
    ("&ZeVnLIqe-", "日本語"),
    ("&2D3eAA-", "\U0001F600"),  # surrogate pair
    ("&Jjo-!", "☺!"),
    ("&U,BTFw-", "台北"),  # "," stands for "/"
    ("&AMk", "&AMk"),  # unterminated
    ("&!!!-", "&!!!-"),  # not base64
    ("Été", "Été"),  # already decoded
])
def test_decode_modified_utf7(encoded, decoded):
    assert decode_modified_utf7(encoded) == decoded


@pytest.mark.parametrize("name", ["Été 2023", "日本語", "Tom & Jerry", "a&b", "x\U0001F600y", "plain"])
def test_modified_utf7_roundtrip(name):
    assert decode_modified_utf7(mailgen.encode_modified_utf7(name)) == name


def test_mailgen_maildir_roundtrip(tmp_path):
    recs = list(mailgen.generate_records(400, seed=11))
    root = str(tmp_path / "Maildir")
    assert mailgen.write_maildir(root, recs) == 400
    got = list(iter_source(root))
    assert len(got) == 400
    by_raw = {r.raw: r for r in recs}
    for m in got:
        r = by_raw[m.raw]
        assert m.mailbox == r.folder
        assert m.flags == r.flags
        assert m.internal_date == r.date
    folders = {m.mailbox for m in got}
    assert ("Projets", "Été 2023") in folders and ("Sent",) in folders
    assert any(len(f) == 2 and f[0] == "Archive" for f in folders)
    # deterministic order: folder by folder, by date within a folder
    again = [m.origin for m in iter_maildir(root)]
    assert again == [m.origin for m in got]
    for a, b in zip(got, got[1:]):
        if a.mailbox == b.mailbox:
            assert a.internal_date <= b.internal_date
