"""mbox metadata fields become flags and keywords and leave the message (docs/operating.md).

Dovecot's mbox driver hides Status, X-Status, X-Keywords, X-UID, X-IMAPbase, X-IMAP and
Content-Length; an import strips them from the top-level header so the stored message is
byte-exact as before it went into the mbox (and a re-export does not grow it again).
"""

from __future__ import annotations

import mailbox

from hypothesis import given, settings, strategies as st

from dualmail.importer.sources import MBOX_META_FIELDS, _mbox_meta, iter_mbox

ORIGINAL = (b"From: Anne <anne@example.org>\r\nTo: bob@example.net\r\nSubject: meta\r\n"
            b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <meta@example.org>\r\n\r\n"
            b"Status: this line is body text\r\nX-UID: so is this\r\n")


def test_python_mailbox_output_round_trips(tmp_path):
    path = tmp_path / "py.mbox"
    box = mailbox.mbox(str(path))
    for flags in ("RO", "O", "RAF", "ROD"):
        msg = mailbox.mboxMessage(ORIGINAL.replace(b"\r\n", b"\n"))
        msg.set_flags(flags)
        box.add(msg)
    box.flush()
    box.close()
    data = path.read_bytes()
    assert b"\nStatus: RO\n" in data and b"\nX-Status: " in data
    got = list(iter_mbox(path))
    assert [m.raw for m in got] == [ORIGINAL] * 4
    assert [m.flags for m in got] == [
        frozenset({"\\Seen"}), frozenset(), frozenset({"\\Seen", "\\Answered", "\\Flagged"}),
        frozenset({"\\Seen", "\\Deleted"}),
    ]


def test_mutt_dovecot_style_fields(tmp_path):
    head, body = ORIGINAL.replace(b"\r\n", b"\n").split(b"\n\n", 1)
    data = (b"From anne@example.org Mon Jan  1 10:00:00 2024\n"
            b"X-IMAPbase: 1700000000 0000000002 $Forwarded Custom $MailFlagBit0\n"
            + head + b"\nStatus: RO\nX-Status: AT\nX-Keywords: $Forwarded Custom,\n $MailFlagBit0\n"
            b"X-IMAP: 1700000000 0000000002\nContent-Length: %d\nX-UID: 1\n\n" % len(body) + body)
    (m,) = iter_mbox(_write(tmp_path, data))
    assert m.raw == ORIGINAL
    assert m.flags == {"\\Seen", "\\Answered", "\\Draft", "$Forwarded", "Custom", "$MailFlagBit0"}


def test_only_the_top_level_header_is_touched():
    raw = (b"Subject: s\r\nContent-Type: message/rfc822\r\n\r\nStatus: RO\r\nContent-Length: 9\r\n\r\nx\r\n")
    assert _mbox_meta(raw) == (raw, frozenset())


def test_no_blank_line_and_empty():
    assert _mbox_meta(b"Subject: s\r\nStatus: R") == (b"Subject: s\r\n", frozenset({"\\Seen"}))
    assert _mbox_meta(b"") == (b"", frozenset())
    assert _mbox_meta(b"\r\nStatus: R\r\n") == (b"\r\nStatus: R\r\n", frozenset())


def test_bad_keywords_are_ignored():
    raw, flags = _mbox_meta(b"X-Keywords: good \\Seen bad(paren) \"q\" ok\r\n\r\nb")
    assert raw == b"\r\nb" and flags == {"good", "ok"}


_FIELD = st.sampled_from([f.title().encode() for f in MBOX_META_FIELDS] + [b"Subject", b"X-Other", b"Status-Like"])


@settings(max_examples=300, deadline=None)
@given(fields=st.lists(st.tuples(_FIELD, st.sampled_from([b"RO", b"AF", b"1 2", b"", b"x\r\n y"])), max_size=8))
def test_strips_exactly_the_meta_fields(fields):
    header = b"".join(name + b": " + value + b"\r\n" for name, value in fields)
    kept = b"".join(name + b": " + value + b"\r\n" for name, value in fields
                    if name.lower().decode() not in MBOX_META_FIELDS)
    raw, _flags = _mbox_meta(header + b"\r\nbody\r\n")
    assert raw == kept + b"\r\nbody\r\n"


def _write(tmp_path, data: bytes):
    p = tmp_path / "m.mbox"
    p.write_bytes(data)
    return p
