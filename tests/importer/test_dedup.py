"""dedup_key(): stable re-import keys."""

import hashlib
import io

import mailgen

from dualmail.importer.sources import SourceMessage, dedup_key, iter_mbox


def msg(raw, date=1_700_000_000, flags=(), mailbox=(), origin="x"):
    return SourceMessage(mailbox=mailbox, raw=raw, flags=frozenset(flags),
                         internal_date=date, origin=origin)


RAW = b"Subject: a\r\nMessage-ID: <Abc.123@Example.COM>\r\n\r\nbody\r\n"


def test_message_id_key():
    assert dedup_key(msg(RAW)) == b"mid:<Abc.123@example.com>\n1700000000\n%d" % len(RAW)


def test_key_ignores_flags_mailbox_origin():
    assert dedup_key(msg(RAW)) == dedup_key(msg(RAW, flags={"\\Seen"}, mailbox=("A",), origin="y"))


def test_key_depends_on_date_and_size():
    assert dedup_key(msg(RAW)) != dedup_key(msg(RAW, date=1_700_000_001))
    assert dedup_key(msg(RAW)) != dedup_key(msg(RAW + b"more\r\n"))


def test_message_id_normalised():
    variants = [
        b"Message-ID: <Abc.123@Example.COM>\r\n",
        b"message-id:<Abc.123@example.com>\r\n",
        b"Message-Id:   <Abc.123@EXAMPLE.com>   (comment)\r\n",
        b"Message-ID:\r\n <Abc.123@example.com>\r\n",
        b"Message-ID: < Abc.123@example.com >\r\n",
    ]
    keys = set()
    for v in variants:
        raw = b"Subject: a\r\n" + v + b"\r\nbody\r\n"
        keys.add(dedup_key(msg(raw)).split(b"\n")[0])
    assert keys == {b"mid:<Abc.123@example.com>"}
    # the local part is case-sensitive
    other = b"Message-ID: <abc.123@example.com>\r\n\r\n"
    assert dedup_key(msg(other)).split(b"\n")[0] == b"mid:<abc.123@example.com>"


def test_no_message_id_is_sha256():
    raw = b"Subject: a\r\n\r\nMessage-ID: <in@body>\r\n"
    assert dedup_key(msg(raw)) == b"sha256:" + hashlib.sha256(raw).digest()
    assert dedup_key(msg(raw, date=1)) == dedup_key(msg(raw, date=2))
    empty = b"Message-ID: <>\r\n\r\nx\r\n"
    assert dedup_key(msg(empty)).startswith(b"sha256:")


def test_stable_across_reimport(tmp_path):
    recs = list(mailgen.generate_records(200, seed=5))
    buf = io.BytesIO()
    mailgen.write_mbox(buf, recs)
    p = tmp_path / "m.mbox"
    p.write_bytes(buf.getvalue())
    first = [dedup_key(m) for m in iter_mbox(p)]
    second = [dedup_key(m) for m in iter_mbox(p)]
    assert first == second
    assert len(set(first)) == 200  # every generated message is distinct
    assert all(k.startswith(b"mid:<") for k in first)
