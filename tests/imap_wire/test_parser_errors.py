"""Malformed commands give ParseError with the right tag, then the next command
parses (STYLE: the parser resets and the connection continues)."""

from __future__ import annotations

import pytest

from dualmail.imap.wire import commands as c
from dualmail.imap.wire.parser import CommandParser, ParseError
from wire_util import FEEDERS, drain

FEED = pytest.mark.parametrize("feeder", FEEDERS.values(), ids=FEEDERS.keys())

BAD: list[tuple[bytes, str | None]] = [
    (b"", None),
    (b"a", "a"),
    (b"* NOOP", None),
    (b"+ NOOP", None),
    (b"a  NOOP", "a"),  # two spaces (RFC 9051 §9 note 2)
    (b"a NOOP ", "a"),
    (b"a NOOP extra", "a"),
    (b"a FROBNICATE", "a"),
    (b"a UID NOOP", "a"),
    (b"a LOGIN fred", "a"),
    (b'a LOGIN "fred pw', "a"),
    (b'a LOGIN "fr\\ed" pw', "a"),  # only \" and \\ may be escaped
    (b"a LOGIN fred\x00 pw", "a"),
    (b"a LOGIN fr\ned pw", "a"),
    (b"a SELECT", "a"),
    (b"a SELECT \xff", "a"),
    (b'a SELECT "\xff\xfe"', "a"),  # mailbox names must be UTF-8
    (b"a SELECT INBOX (BOGUS)", "a"),
    (b"a SELECT INBOX (QRESYNC (0 5))", "a"),  # uidvalidity is nz-number
    (b"a SELECT INBOX (QRESYNC (1 0))", "a"),  # mod-sequence-value is non-zero
    (b"a SELECT INBOX (QRESYNC (1 5 1:*))", "a"),  # '*' not allowed in known-uids
    (b"a FETCH 0 FLAGS", "a"),
    (b"a FETCH 1:0 FLAGS", "a"),
    (b"a FETCH 4294967296 FLAGS", "a"),
    (b"a FETCH 1,,2 FLAGS", "a"),
    (b"a FETCH 1: FLAGS", "a"),
    (b"a FETCH 1 (FLAGS", "a"),
    (b"a FETCH 1 ()", "a"),
    (b"a FETCH 1 BOGUS", "a"),
    (b"a FETCH 1 BODY[MIME]", "a"),  # MIME needs a part number
    (b"a FETCH 1 BODY[0]", "a"),
    (b"a FETCH 1 BODY[1.]", "a"),
    (b"a FETCH 1 BODY[HEADER.FIELDS ()]", "a"),
    (b"a FETCH 1 BODY[TEXT]<0.0>", "a"),
    (b"a FETCH 1 BODY[TEXT]<5>", "a"),
    (b"a FETCH 1 BODY.PEEK", "a"),
    (b"a FETCH 1 BINARY[TEXT]", "a"),
    (b"a FETCH 1 (FLAGS) (VANISHED)", "a"),
    (b"a UID FETCH 1 (FLAGS) (VANISHED)", "a"),
    (b"a FETCH 1 (FLAGS) (CHANGEDSINCE 5 VANISHED)", "a"),
    (b"a FETCH 1 (FLAGS) (CHANGEDSINCE 0)", "a"),
    (b"a FETCH 1 PREVIEW (FAST)", "a"),
    (b"a STORE 1 FLAGS", "a"),
    (b"a STORE 1 *FLAGS (\\Seen)", "a"),
    (b"a STORE 1 (UNCHANGEDSINCE) FLAGS (\\Seen)", "a"),
    (b"a STORE 1 +FLAGS (\\Seen", "a"),
    (b"a SEARCH", "a"),
    (b"a SEARCH BOGUS", "a"),
    (b"a SEARCH (SEEN", "a"),
    (b"a SEARCH OR SEEN", "a"),
    (b"a SEARCH NOT", "a"),
    (b"a SEARCH SINCE 32-Jan-2020", "a"),
    (b"a SEARCH SINCE 1-Foo-2020", "a"),
    (b"a SEARCH SINCE 1-Jan-20", "a"),
    (b"a SEARCH RETURN (BOGUS) ALL", "a"),
    (b"a SEARCH MODSEQ \"/flags/x\" bogus 5", "a"),
    (b"a SEARCH EMAILID bad!id", "a"),
    (b"a SEARCH YOUNGER 0", "a"),
    (b"a SORT (DATE) ALL", "a"),  # charset is mandatory in SORT
    (b"a SORT (BOGUS) UTF-8 ALL", "a"),
    (b"a SORT (REVERSE) UTF-8 ALL", "a"),
    (b"a THREAD REFERENCES", "a"),
    (b"a APPEND INBOX", "a"),
    (b"a APPEND INBOX (\\Seen) \"bad date\" {1+}\r\nx", "a"),
    (b'a APPEND INBOX "1-Jan-2020 10:00:00 +0000" {1+}\r\nx', "a"),  # day must be 2 wide
    (b'a APPEND INBOX "01-Jan-2020 10:00:00 +0060" {1+}\r\nx', "a"),
    (b"a LIST", "a"),
    (b'a LIST (BOGUS) "" *', "a"),
    (b'a LIST (RECURSIVEMATCH) "" *', "a"),
    (b'a LIST "" * RETURN (BOGUS)', "a"),
    (b'a LIST "" ()', "a"),
    (b"a STATUS INBOX ()", "a"),
    (b"a STATUS INBOX (BOGUS)", "a"),
    (b"a CREATE x (USE (Drafts))", "a"),
    (b"a ENABLE", "a"),
    (b"a ID", "a"),
    (b'a ID ("x")', "a"),
    (b"a AUTHENTICATE", "a"),
    (b"a AUTHENTICATE PLAIN !!!", "a"),
    (b"a AUTHENTICATE PLAIN abc", "a"),  # bad base64 padding
    (b"a UID EXPUNGE", "a"),
    (b"a COPY 1", "a"),
]


@FEED
@pytest.mark.parametrize(("line", "tag"), BAD, ids=[b[0].decode("latin-1") for b in BAD])
def test_bad_command_then_resync(line: bytes, tag: str | None, feeder) -> None:
    events = feeder(line + b"\r\nz NOOP\r\n")
    assert len(events) == 2, events
    assert isinstance(events[0], ParseError), events
    assert events[0].tag == tag
    assert events[0].text
    assert events[1] == c.Noop("z")


@FEED
def test_long_line_is_discarded_and_reported(feeder) -> None:
    parser = CommandParser(max_line=100)
    events = feeder(b"a SEARCH " + b"SEEN " * 100 + b"\r\nb NOOP\r\n", parser)
    assert events == [ParseError("a", "Command line too long", "TOOBIG"), c.Noop("b")]


@FEED
def test_long_line_ending_in_nonsync_literal_swallows_it(feeder) -> None:
    parser = CommandParser(max_line=50)
    events = feeder(b"a SEARCH " + b"SEEN " * 20 + b"TEXT {8+}\r\nc NOOP\r\n\r\nb NOOP\r\n", parser)
    assert events == [ParseError("a", "Command line too long", "TOOBIG"), c.Noop("b")]


@FEED
def test_line_limit_counts_continuation_lines(feeder) -> None:
    parser = CommandParser(max_line=40)
    data = b"a LOGIN {3+}\r\nabc " + b"x" * 40 + b"\r\nb NOOP\r\n"
    events = feeder(data, parser)
    assert events == [ParseError("a", "Command line too long", "TOOBIG"), c.Noop("b")]


def test_unterminated_line_does_not_grow_the_buffer() -> None:
    p = CommandParser(max_line=1000)
    events = []
    for _ in range(1000):
        p.feed(b"x" * 1000)
        events += drain(p)
        assert p.buffered <= 1000 + 1000
    p.feed(b"\r\nb NOOP\r\n")
    assert events + drain(p) == [ParseError(None, "Command line too long", "TOOBIG"), c.Noop("b")]


def test_long_line_is_reported_before_its_end_arrives() -> None:
    # issue 10: a 1 MB line without CRLF must be answered at once (the session then
    # closes the connection, RFC 7888 §4), not when a CRLF finally comes
    p = CommandParser(max_line=1000)
    p.feed(b"a NOOP " + b"x" * 2000)
    assert drain(p) == [ParseError("a", "Command line too long", "TOOBIG")]
    p.feed(b"x" * 5000)
    assert drain(p) == []
    p.feed(b"\r\nb NOOP\r\n")
    assert drain(p) == [c.Noop("b")]


def test_line_exactly_at_limit_is_accepted() -> None:
    line = b"a SELECT " + b"x" * 91
    assert len(line) == 100
    p = CommandParser(max_line=100)
    p.feed(line + b"\r\n")
    assert drain(p) == [c.Select("a", "x" * 91)]


def test_deep_nesting_is_a_parse_error_not_a_crash() -> None:
    p = CommandParser()
    p.feed(b"a SEARCH " + b"(" * 5000 + b"SEEN" + b")" * 5000 + b"\r\n")
    p.feed(b"b SEARCH " + b"NOT " * 5000 + b"SEEN\r\n")
    p.feed(b"c SEARCH " + b"OR SEEN " * 150 + b"SEEN\r\n")
    events = drain(p)
    assert [type(e) for e in events] == [ParseError, ParseError, c.Search]


def test_bare_lf_is_not_a_line_end() -> None:
    p = CommandParser()
    p.feed(b"a NOOP\nb NOOP\r\n")
    (ev,) = drain(p)
    assert isinstance(ev, ParseError) and ev.tag == "a"
