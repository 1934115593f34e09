"""iter_mbox(): splitting, mboxrd unescaping, dates, flags, line endings."""

import calendar
import io
import os

import mailgen
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dualmail.importer.sources import iter_mbox


def write(tmp_path, data: bytes, name="in.mbox"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def epoch(y, mo, d, h=0, mi=0, s=0):
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))


# -- round trips with the generator -----------------------------------------


@pytest.mark.parametrize("crlf", [False, True])
def test_mailgen_roundtrip_bytes(tmp_path, crlf):
    msgs = list(mailgen.generate(300, seed=7))
    buf = io.BytesIO()
    assert mailgen.write_mbox(buf, msgs, crlf=crlf) == 300
    data = buf.getvalue()
    assert b"\n>From " in data  # the generator produced lines that needed escaping
    got = list(iter_mbox(write(tmp_path, data)))
    assert len(got) == 300
    for g, raw in zip(got, msgs):
        assert g.raw == raw
        assert g.mailbox == ()


def test_mailgen_roundtrip_records(tmp_path):
    recs = list(mailgen.generate_records(300, seed=3))
    buf = io.BytesIO()
    mailgen.write_mbox(buf, recs)
    got = list(iter_mbox(write(tmp_path, buf.getvalue())))
    assert len(got) == len(recs)
    for g, r in zip(got, recs):
        assert g.raw == r.raw  # the Status headers are the mbox's: stripped, byte-exact
        assert g.internal_date == r.date  # from the From_ line
        assert g.flags == r.flags - {"$Forwarded"}  # mbox has no letter for it
    assert any(g.flags for g in got) and any(not g.flags for g in got)


def test_origin_names_file_and_offset(tmp_path):
    first = b"From a Mon Jan  1 00:00:00 2024\nS: 1\n\nx\n\n"
    p = write(tmp_path, first + b"From b Mon Jan  1 00:00:00 2024\nS: 2\n\ny\n")
    a, b = iter_mbox(p)
    assert a.origin == f"{p}: message 1 at byte 0"
    assert b.origin == f"{p}: message 2 at byte {len(first)}"


# -- splitting and unescaping -----------------------------------------------


def test_from_escaping_unquoted(tmp_path):
    data = (b"From x@y Mon Jan  1 00:00:00 2024\n"
            b"Subject: s\n\n"
            b">From the start\n"
            b">>From quoted\n"
            b">>>From deep\n"
            b"> From not escaped\n"
            b"x>From not at start\n"
            b">Fromage\n"
            b"\n")
    (m,) = iter_mbox(write(tmp_path, data))
    assert m.raw == (b"Subject: s\r\n\r\n"
                     b"From the start\r\n"
                     b">From quoted\r\n"
                     b">>From deep\r\n"
                     b"> From not escaped\r\n"
                     b"x>From not at start\r\n"
                     b">Fromage\r\n")


def test_missing_blank_line_before_from(tmp_path):
    data = (b"From a@b Mon Jan  1 00:00:00 2024\nSubject: 1\n\none\n"
            b"From a@b Tue Jan  2 00:00:00 2024\nSubject: 2\n\ntwo\n")
    one, two = iter_mbox(write(tmp_path, data))
    assert one.raw == b"Subject: 1\r\n\r\none\r\n"
    assert two.raw == b"Subject: 2\r\n\r\ntwo\r\n"


def test_unescaped_from_without_blank_line_is_body(tmp_path):
    # Sloppy writer: a body "From " line that was not escaped and carries no
    # date, not after an empty line, stays in the message.
    data = (b"From a@b Mon Jan  1 00:00:00 2024\nSubject: 1\n\nline\n"
            b"From what I can tell it works\nend\n")
    (m,) = iter_mbox(write(tmp_path, data))
    assert m.raw == b"Subject: 1\r\n\r\nline\r\nFrom what I can tell it works\r\nend\r\n"


def test_blank_lines_kept_except_the_separator(tmp_path):
    data = (b"From a Mon Jan  1 00:00:00 2024\nS: 1\n\nbody\n\n\n\n"
            b"From b Mon Jan  1 00:00:00 2024\nS: 2\n\nbody2\n\n\n")
    one, two = iter_mbox(write(tmp_path, data))
    assert one.raw == b"S: 1\r\n\r\nbody\r\n\r\n\r\n"
    assert two.raw == b"S: 2\r\n\r\nbody2\r\n\r\n"


def test_last_message_without_newline(tmp_path):
    (m,) = iter_mbox(write(tmp_path, b"From a Mon Jan  1 00:00:00 2024\nS: 1\n\nbody"))
    assert m.raw == b"S: 1\r\n\r\nbody"


def test_leading_blank_lines_tolerated(tmp_path):
    (m,) = iter_mbox(write(tmp_path, b"\n\nFrom a Mon Jan  1 00:00:00 2024\nS: 1\n\nb\n"))
    assert m.raw == b"S: 1\r\n\r\nb\r\n"


def test_streams(tmp_path):
    # A generator, not a list: the first message comes before the file is read.
    p = write(tmp_path, b"From a Mon Jan  1 00:00:00 2024\nS: 1\n\nb\n" * 3)
    it = iter_mbox(p)
    assert next(it).raw.startswith(b"S: 1")
    assert len(list(it)) == 2


# -- line endings -----------------------------------------------------------


def test_lf_to_crlf(tmp_path):
    data = b"From a Mon Jan  1 00:00:00 2024\nA: 1\r\nB: 2\n\nmixed\r\nlf\nbare\rcr\n"
    (m,) = iter_mbox(write(tmp_path, data))
    assert m.raw == b"A: 1\r\nB: 2\r\n\r\nmixed\r\nlf\r\nbare\rcr\r\n"
    assert b"\n" not in m.raw.replace(b"\r\n", b"")


def test_crlf_file(tmp_path):
    data = (b"From a Mon Jan  1 00:00:00 2024\r\nS: 1\r\n\r\n>From x\r\n\r\n"
            b"From b Mon Jan  1 00:00:00 2024\r\nS: 2\r\n\r\ny\r\n\r\n")
    one, two = iter_mbox(write(tmp_path, data))
    assert one.raw == b"S: 1\r\n\r\nFrom x\r\n"
    assert two.raw == b"S: 2\r\n\r\ny\r\n"


# -- From_ line dates -------------------------------------------------------


@pytest.mark.parametrize("line, expected", [
    (b"From a@b Mon Jan  1 00:00:00 2024", epoch(2024, 1, 1)),
    (b"From a@b Sat Jan  3 01:05:34 1996", epoch(1996, 1, 3, 1, 5, 34)),
    (b"From MAILER-DAEMON Fri Dec 31 23:59:59 1999", epoch(1999, 12, 31, 23, 59, 59)),
    (b"From a@b Mon Jan 01 00:00:00 2024", epoch(2024, 1, 1)),
    (b"From a@b Jan  1 00:00:00 2024", epoch(2024, 1, 1)),  # no weekday
    (b"From a@b Mon Jan  1 12:34 2024", epoch(2024, 1, 1, 12, 34)),  # no seconds
    (b"From a@b Mon Jan  1 12:00:00 2024 +0200", epoch(2024, 1, 1, 10)),
    (b"From a@b Mon Jan  1 12:00:00 -0500 2024", epoch(2024, 1, 1, 17)),
    (b"From a@b Sat Jan  3 01:05:34 PST 1996", epoch(1996, 1, 3, 9, 5, 34)),
    (b"From a@b Mon, 1 Jan 2024 12:00:00 +0100", epoch(2024, 1, 1, 11)),
    (b"From a@b 1 Jan 2024 12:00:00", epoch(2024, 1, 1, 12)),
    (b"From a@b Thu Feb 29 08:00:00 2024\r", epoch(2024, 2, 29, 8)),
    (b"From a@b Wed Sep  5 08:00:00 99", epoch(1999, 9, 5, 8)),
    (b"From a@b Wed Sep  5 08:00:00 1999 remote from uucphost", epoch(1999, 9, 5, 8)),
    (b"From a@b not a date at all", epoch(2030, 1, 1)),  # Date: header used
])
def test_from_line_dates(tmp_path, line, expected):
    (m,) = iter_mbox(write(tmp_path, line + b"\nDate: Tue, 1 Jan 2030 00:00:00 +0000\n\nx\n"))
    assert m.internal_date == expected


def test_date_header_fallback(tmp_path):
    (m,) = iter_mbox(write(tmp_path, b"From a@b\nSubject: s\nDate: Tue, 2 Jan 2024 "
                                     b"10:00:00 +0100\n\nx\n"))
    assert m.internal_date == epoch(2024, 1, 2, 9)


def test_date_header_folded(tmp_path):
    (m,) = iter_mbox(write(tmp_path, b"From a@b garbage\nDate: Tue,\n 2 Jan 2024 10:00:00"
                                     b" +0000\n\nx\n"))
    assert m.internal_date == epoch(2024, 1, 2, 10)


def test_mtime_fallback(tmp_path):
    p = write(tmp_path, b"From a@b\nSubject: s\nDate: not a date\n\nx\n")
    os.utime(p, (1_600_000_000, 1_600_000_123))
    (m,) = iter_mbox(p)
    assert m.internal_date == 1_600_000_123


def test_date_only_from_headers_not_body(tmp_path):
    p = write(tmp_path, b"From a@b\nSubject: s\n\nDate: Tue, 2 Jan 2024 10:00:00 +0000\n")
    os.utime(p, (1_600_000_000, 1_600_000_000))
    (m,) = iter_mbox(p)
    assert m.internal_date == 1_600_000_000


# -- Status flags -----------------------------------------------------------


@pytest.mark.parametrize("headers, flags", [
    (b"", set()),
    (b"Status: RO\n", {"\\Seen"}),
    (b"Status: R\n", {"\\Seen"}),
    (b"Status: O\n", set()),  # old but unread
    (b"Status: RO\nX-Status: A\n", {"\\Seen", "\\Answered"}),
    (b"X-Status: F\n", {"\\Flagged"}),
    (b"X-Status: D\n", {"\\Deleted"}),
    (b"X-Status: T\n", {"\\Draft"}),
    (b"status: ro\n", set()),  # letters are case-sensitive
    (b"STATUS: RO\nx-status: AFDT\n",
     {"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"}),
])
def test_status_flags(tmp_path, headers, flags):
    data = b"From a Mon Jan  1 00:00:00 2024\nSubject: s\n" + headers + b"\nStatus: R\n"
    (m,) = iter_mbox(write(tmp_path, data))
    assert m.flags == frozenset(flags)
    # the mbox's fields leave the header; the body's "Status: R" line stays
    assert m.raw == b"Subject: s\r\n\r\nStatus: R\r\n"


# -- hypothesis: bodies with From lines survive write + read ---------------

_special = st.sampled_from([
    "From ", "From me", ">From ", ">>From x", "From", "", " From x", ">", "From: y",
    "From a@b Mon Jan  1 00:00:00 2024",
])
_line = st.one_of(_special, st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
    max_size=40,
), st.builds(lambda a, b: a + b, _special, st.text(max_size=10).map(
    lambda s: s.replace("\r", "").replace("\n", ""))))
_body = st.lists(_line, max_size=12).map(lambda ls: "".join(x + "\r\n" for x in ls))


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bodies=st.lists(_body, min_size=1, max_size=4), crlf=st.booleans())
def test_hypothesis_mboxrd_roundtrip(tmp_path, bodies, crlf):
    msgs = [b"Subject: %d\r\n\r\n" % i + b.encode("utf-8") for i, b in enumerate(bodies)]
    buf = io.BytesIO()
    mailgen.write_mbox(buf, msgs, crlf=crlf)
    p = write(tmp_path, buf.getvalue(), "h.mbox")
    got = [m.raw for m in iter_mbox(p)]
    assert got == msgs
