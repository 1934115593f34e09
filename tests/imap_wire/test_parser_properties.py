"""Hypothesis properties of the parser: serialise -> parse roundtrips, arbitrary
chunking, and junk input that must only ever produce events (never exceptions,
never a hang, never unbounded buffering)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r
from dualmail.imap.wire import utf7
from dualmail.imap.wire.parser import (
    CommandParser,
    Done,
    LiteralTooLarge,
    NeedContinuation,
    ParseError,
    RawLine,
)
from dualmail.imap.wire.sequence import SeqRange, SequenceSet
from test_parser_table import TABLE
from wire_util import commands, drain, feed_whole

EVENT_TYPES = (c.Command, NeedContinuation, ParseError, LiteralTooLarge, RawLine, Done)


def parse_one(data: bytes) -> Any:
    events = commands(feed_whole(data))
    assert len(events) == 1, events
    return events[0]


@given(st.binary(max_size=200))
def test_astring_roundtrip(value: bytes) -> None:
    cmd = parse_one(b"a LOGIN " + r.astring(value) + b" pw\r\n")
    assert cmd == c.Login("a", value.decode("utf-8", "surrogateescape"), "pw")


@given(st.binary(max_size=200), st.booleans())
def test_string_roundtrip_in_search(value: bytes, utf8: bool) -> None:
    cmd = parse_one(b"a SEARCH CHARSET UTF-8 TEXT " + r.string(value, utf8=utf8) + b"\r\n")
    assert cmd.keys == c.Key("TEXT", (value,))


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40), st.booleans())
def test_mailbox_roundtrip(name: str, utf8: bool) -> None:
    cmd = parse_one(b"a SELECT " + r.mailbox(name, utf8=utf8) + b"\r\n")
    got = cmd.mailbox if utf8 else utf7.decode(cmd.mailbox)
    assert got == ("INBOX" if name.upper() == "INBOX" and (utf8 or name.isascii()) else name)


seq_number = st.one_of(st.integers(min_value=1, max_value=2**32 - 1), st.just("*"))
sequence_sets = st.lists(
    st.one_of(st.builds(SeqRange, seq_number, seq_number), st.just("$")), min_size=1, max_size=10
).map(lambda xs: SequenceSet(tuple(xs)))


@given(sequence_sets)
def test_sequence_set_roundtrip_through_parser(s: SequenceSet) -> None:
    wire = r.sequence_set(s)
    assert parse_one(b"a UID FETCH " + wire + b" UID\r\n").sequence_set == s
    assert parse_one(b"a SEARCH " + wire + b"\r\n").keys == c.Key("SEQSET", (s,))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TABLE), st.lists(st.integers(min_value=1, max_value=400), max_size=8))
def test_any_chunking_gives_same_events(entry: tuple[bytes, c.Command], cuts: list[int]) -> None:
    line, expected = entry
    data = line + b"\r\nz NOOP\r\n"
    whole = feed_whole(data)
    p = CommandParser()
    events: list[Any] = []
    last = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        p.feed(data[last:cut])
        events += drain(p)
        last = max(last, cut)
    assert events == whole
    assert commands(events) == [expected, c.Noop("z")]


TOKENS = [
    b"a", b"b1", b" ", b"  ", b"\r\n", b"\r", b"\n", b"(", b")", b'"', b"\\", b"[", b"]", b"<0.5>",
    b"{3}\r\n", b"{2+}\r\n", b"~{1}\r\n", b"{0}\r\n", b"{99999999999}\r\n", b"*", b"$", b"1:*", b"3,5",
    b"FETCH", b"UID", b"SEARCH", b"OR", b"NOT", b"APPEND", b"INBOX", b"BODY[", b"HEADER.FIELDS",
    b"LOGIN", b"SELECT", b"(QRESYNC (1 2", b"STORE", b"+FLAGS", b"\\Seen", b"IDLE", b"DONE",
    b"AUTHENTICATE", b"PLAIN", b"=", b"LIST", b"RETURN", b"STATUS", b"\x00", b"\xff", b"\xc3\xa9",
    b"1-Jan-2020", b'"01-Jan-2020 10:00:00 +0000"', b"CHARSET", b"UTF-8", b"SORT", b"THREAD",
]
junk = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(TOKENS), max_size=60).map(b"".join),
)


def run_session_like(chunks: list[bytes], parser: CommandParser) -> list[Any]:
    out: list[Any] = []
    for chunk in chunks:
        parser.feed(chunk)
        for _ in range(100_000):
            ev = parser.next_event()
            if ev is None:
                break
            assert isinstance(ev, EVENT_TYPES), ev
            out.append(ev)
            if isinstance(ev, c.Idle):
                parser.expect_done()
            elif isinstance(ev, c.Authenticate):
                parser.expect_line()
        else:
            raise AssertionError("parser made no progress")
        assert parser.buffered <= len(chunk) + parser.max_line + 64
    return out


@settings(max_examples=300)
@given(st.lists(junk, min_size=1, max_size=5))
def test_junk_only_yields_events(chunks: list[bytes]) -> None:
    run_session_like(chunks, CommandParser(max_line=200, max_literal=50))


@settings(max_examples=300)
@given(st.lists(junk.filter(lambda b: b"{" not in b), min_size=1, max_size=5))
def test_junk_without_literals_always_resyncs(chunks: list[bytes]) -> None:
    p = CommandParser(max_line=200)
    events = run_session_like(chunks + [b"\r\nzz NOOP\r\n"], p)
    if isinstance(events[-1], (RawLine, Done, ParseError)) and p.next_event() is None:
        # the NOOP line itself was consumed as the raw SASL/IDLE line: feed it again
        events += run_session_like([b"zz NOOP\r\n"], p)
    assert events[-1] == c.Noop("zz")


@given(st.integers(min_value=1, max_value=400), st.integers(min_value=1, max_value=64))
def test_line_length_limit(n: int, chunk: int) -> None:
    line = b"a SELECT " + b"x" * n
    data = line + b"\r\nb NOOP\r\n"
    p = CommandParser(max_line=100)
    events: list[Any] = []
    for i in range(0, len(data), chunk):
        p.feed(data[i : i + chunk])
        events += drain(p)
        assert p.buffered <= 100 + chunk + 2
    if len(line) <= 100:
        assert events == [c.Select("a", "x" * n), c.Noop("b")]
    else:
        assert events == [ParseError("a", "Command line too long", "TOOBIG"), c.Noop("b")]
