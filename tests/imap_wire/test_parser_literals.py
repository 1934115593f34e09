"""Literals (RFC 9051 §4.3, RFC 7888 LITERAL+/LITERAL-, RFC 3516 literal8), limits,
and resynchronisation after errors, each fed whole, byte by byte and in chunks."""

from __future__ import annotations

import time

import pytest

from dualmail.imap.wire import commands as c
from dualmail.imap.wire.parser import CommandParser, LiteralTooLarge, NeedContinuation, ParseError
from wire_util import FEEDERS, drain

FEED = pytest.mark.parametrize("feeder", FEEDERS.values(), ids=FEEDERS.keys())


def test_sync_literal_asks_for_continuation_before_data() -> None:
    p = CommandParser()
    p.feed(b"a LOGIN {4}\r\n")
    assert drain(p) == [NeedContinuation(tag="a", size=4, command="LOGIN")]
    p.feed(b"fred")
    assert drain(p) == []
    p.feed(b" {3}\r\n")
    assert drain(p) == [NeedContinuation(tag="a", size=3, command="LOGIN")]
    p.feed(b"pwd")
    assert drain(p) == []
    p.feed(b"\r\n")
    assert drain(p) == [c.Login("a", "fred", "pwd")]


def test_literal_may_contain_crlf_and_braces() -> None:
    p = CommandParser()
    p.feed(b"a LOGIN {9+}\r\nx\r\n{3}\r\n\r pw\r\n")
    assert drain(p) == [c.Login("a", "x\r\n{3}\r\n\r", "pw")]


@FEED
def test_nonsync_literal_needs_no_continuation(feeder) -> None:
    events = feeder(b"A001 LOGIN {11+}\r\nFRED FOOBAR {7+}\r\nfat man\r\n")
    assert events == [c.Login("A001", "FRED FOOBAR", "fat man")]


@FEED
def test_oversized_sync_literal_refused_before_continuation(feeder) -> None:
    events = feeder(b"a APPEND INBOX {11}\r\nb NOOP\r\n", CommandParser(max_literal=10))
    assert events == [LiteralTooLarge("a", 11), c.Noop("b")]


@FEED
def test_oversized_nonsync_literal_is_swallowed_then_reported(feeder) -> None:
    body = b"x NOOP\r\nyyy"  # looks like a command: must not be parsed as one
    assert len(body) == 11
    events = feeder(b"a APPEND INBOX {11+}\r\n" + body + b"\r\nb NOOP\r\n", CommandParser(max_literal=10))
    assert events == [LiteralTooLarge("a", 11, sync=False), c.Noop("b")]


def test_oversized_nonsync_literal_is_reported_before_its_octets() -> None:
    # issue 10: `{4294967296+}` is answered at once (the session then closes,
    # RFC 7888 §4 choice 2), not after swallowing 4 GB
    p = CommandParser(max_literal=10)
    p.feed(b"a APPEND INBOX {20+}\r\n")
    assert drain(p) == [LiteralTooLarge("a", 20, sync=False)]
    p.feed(b"0123456789")
    assert drain(p) == []
    p.feed(b"0123456789\r\nb NOOP\r\n")
    assert drain(p) == [c.Noop("b")]


@FEED
def test_oversized_nonsync_literal_wins_over_a_syntax_error(feeder) -> None:
    events = feeder(b"a FROB {4294967296+}\r\n")
    assert events == [LiteralTooLarge("a", 4294967296, sync=False)]


@FEED
def test_literal_minus_limit_applies_to_nonsync_only(feeder) -> None:
    body = b"x" * 4097
    parser = CommandParser(max_nonsync_literal=4096)
    events = feeder(
        b"a APPEND INBOX {4097+}\r\n" + body + b"\r\nb APPEND INBOX {4097}\r\n" + body + b"\r\n", parser
    )
    assert events == [
        LiteralTooLarge("a", 4097, sync=False),
        NeedContinuation(tag="b", size=4097, command="APPEND"),
        c.Append("b", "INBOX", (), None, body),
    ]


@FEED
def test_limit_counts_all_literals_of_a_command(feeder) -> None:
    events = feeder(
        b"a LOGIN {6+}\r\nabcdef {6+}\r\nghijkl\r\nb NOOP\r\n", CommandParser(max_literal=10)
    )
    assert events == [LiteralTooLarge("a", 6, sync=False), c.Noop("b")]


@FEED
def test_huge_literal_size_is_refused(feeder) -> None:
    events = feeder(b"a LOGIN {99999999999999999999999999}\r\nb NOOP\r\n")
    assert events == [LiteralTooLarge("a", 2**63), c.Noop("b")]


@FEED
def test_syntax_error_before_sync_literal_sends_no_continuation(feeder) -> None:
    events = feeder(b"a FROB {5}\r\nb NOOP\r\n")
    assert [type(e) for e in events] == [ParseError, c.Noop]
    assert events[0].tag == "a"


@FEED
def test_syntax_error_before_nonsync_literal_swallows_it(feeder) -> None:
    body = b"c NOOP\r\n1234"
    events = feeder(b"a FROB {12+}\r\n" + body + b"\r\nb NOOP\r\n")
    assert [type(e) for e in events] == [ParseError, c.Noop]
    assert events[0].tag == "a"


@FEED
def test_literal_in_wrong_place_rejected(feeder) -> None:
    # LIST select options are atoms; a literal there is a syntax error.
    events = feeder(b"a LIST ({3}\r\nb NOOP\r\n")
    assert [type(e) for e in events] == [ParseError, c.Noop]


@FEED
def test_error_after_literal_chain_resyncs(feeder) -> None:
    events = feeder(b"a SEARCH TEXT {3+}\r\nabc BOGUS {5+}\r\nhello\r\nb NOOP\r\n")
    assert [type(e) for e in events] == [ParseError, c.Noop]


@FEED
def test_error_found_after_literal(feeder) -> None:
    events = feeder(b"a LOGIN {3}\r\nabc\r\nb NOOP\r\n")
    assert [type(e) for e in events] == [NeedContinuation, ParseError, c.Noop]
    assert events[1].tag == "a"


@FEED
def test_rejected_sync_literal_then_client_continues(feeder) -> None:
    """After a refused {n} the client sends its next command, not the literal."""
    events = feeder(
        b"a APPEND INBOX {100}\r\nb APPEND INBOX {3}\r\nabc\r\nc NOOP\r\n", CommandParser(max_literal=50)
    )
    assert events == [
        LiteralTooLarge("a", 100),
        NeedContinuation(tag="b", size=3, command="APPEND"),
        c.Append("b", "INBOX", (), None, b"abc"),
        c.Noop("c"),
    ]


@FEED
def test_literal8_only_in_append(feeder) -> None:
    events = feeder(b"a LOGIN ~{3}\r\nb NOOP\r\n")
    assert [type(e) for e in events] == [ParseError, c.Noop]


@FEED
def test_literal8_nonsync(feeder) -> None:
    events = feeder(b"a APPEND INBOX ~{3+}\r\n\x00\xff\r\r\n")
    assert events == [c.Append("a", "INBOX", (), None, b"\x00\xff\r", binary=True)]


@FEED
def test_literal_with_leading_zeros(feeder) -> None:
    assert feeder(b"a LOGIN {003+}\r\nabc x\r\n") == [c.Login("a", "abc", "x")]


def test_large_append_is_linear() -> None:
    message = (b"x" * 998 + b"\r\n") * 5000  # 5 MB
    p = CommandParser(max_literal=10 * 1024 * 1024)
    start = time.perf_counter()
    p.feed(b"a APPEND INBOX {%d}\r\n" % len(message))
    assert drain(p) == [NeedContinuation(tag="a", size=len(message), command="APPEND")]
    for i in range(0, len(message), 16384):
        p.feed(message[i : i + 16384])
        assert drain(p) == []
    p.feed(b"\r\nb NOOP\r\n")
    events = drain(p)
    elapsed = time.perf_counter() - start
    assert events == [c.Append("a", "INBOX", (), None, message), c.Noop("b")]
    assert p.buffered == 0
    assert elapsed < 2.0


def test_large_nonsync_append_in_one_feed() -> None:
    message = b"y" * (3 * 1024 * 1024)
    p = CommandParser()
    p.feed(b"a APPEND INBOX (\\Seen) {%d+}\r\n" % len(message) + message + b"\r\n")
    (ev,) = drain(p)
    assert isinstance(ev, c.Append) and ev.message == message and ev.flags == ("\\Seen",)


def test_session_may_reject_a_sync_literal_instead_of_continuing() -> None:
    """E.g. a large APPEND before authentication: the session answers NO instead of "+"."""
    p = CommandParser()
    p.feed(b"a APPEND INBOX {500}\r\nb NOOP\r\n")
    assert p.next_event() == NeedContinuation(tag="a", size=500, command="APPEND")
    p.reject_literal()
    assert drain(p) == [c.Noop("b")]
    with pytest.raises(RuntimeError):
        p.reject_literal()


def test_reject_literal_mid_command_keeps_nothing() -> None:
    p = CommandParser()
    p.feed(b"a LOGIN {1}\r\nx {3}\r\n")
    assert p.next_event() == NeedContinuation(tag="a", size=1, command="LOGIN")
    assert p.next_event() == NeedContinuation(tag="a", size=3, command="LOGIN")
    p.reject_literal()
    p.feed(b"b LOGIN x y\r\n")
    assert drain(p) == [c.Login("b", "x", "y")]


def test_limits_can_be_changed_between_commands() -> None:
    p = CommandParser(max_literal=10)
    p.feed(b"a APPEND INBOX {20+}\r\n" + b"x" * 20 + b"\r\n")
    assert drain(p) == [LiteralTooLarge("a", 20, sync=False)]
    p.max_literal = 100
    p.feed(b"b APPEND INBOX {20+}\r\n" + b"x" * 20 + b"\r\n")
    assert drain(p) == [c.Append("b", "INBOX", (), None, b"x" * 20)]
