"""Raw-line modes: IDLE ... DONE (RFC 2177, RFC 9051 §6.3.13) and the SASL exchange
of AUTHENTICATE (RFC 9051 §6.2.2), driven the way the session drives them."""

from __future__ import annotations

from typing import Any

import pytest

from dualmail.imap.wire import commands as c
from dualmail.imap.wire.parser import CommandParser, Done, NeedContinuation, ParseError, RawLine


def session_events(chunks: list[bytes]) -> list[Any]:
    """Minimal session: after IDLE expect DONE; after AUTHENTICATE without an
    initial response expect one raw line (a single SASL round)."""
    p = CommandParser()
    out: list[Any] = []
    for chunk in chunks:
        p.feed(chunk)
        while (ev := p.next_event()) is not None:
            out.append(ev)
            if isinstance(ev, c.Idle):
                p.expect_done()
            elif isinstance(ev, c.Authenticate) and ev.initial_response is None:
                p.expect_line()
    return out


def split_modes(data: bytes) -> dict[str, list[bytes]]:
    return {
        "whole": [data],
        "bytewise": [data[i : i + 1] for i in range(len(data))],
        "chunks": [data[i : i + 5] for i in range(0, len(data), 5)],
    }


IDLE_PACKET = b"a IDLE\r\nDONE\r\nb NOOP\r\nc FETCH 1 UID\r\n"


@pytest.mark.parametrize("mode", ["whole", "bytewise", "chunks"])
def test_idle_done_and_pipelined_commands_in_one_packet(mode: str) -> None:
    events = session_events(split_modes(IDLE_PACKET)[mode])
    assert events == [
        c.Idle("a"),
        Done(),
        c.Noop("b"),
        c.Fetch("c", False, events[3].sequence_set, (c.FetchAtt("UID"),)),
    ]


def test_done_is_case_insensitive_and_only_after_expect_done() -> None:
    p = CommandParser()
    p.feed(b"done\r\n")
    assert isinstance(p.next_event(), ParseError)
    p.expect_done()
    p.feed(b"done\r\n")
    assert p.next_event() == Done()


def test_anything_but_done_is_an_error_and_ends_raw_mode() -> None:
    p = CommandParser()
    p.expect_done()
    p.feed(b"x NOOP\r\ny NOOP\r\n")
    assert p.next_event() == ParseError("x", "Expected DONE")
    assert p.next_event() == c.Noop("y")


@pytest.mark.parametrize("mode", ["whole", "bytewise", "chunks"])
def test_authenticate_raw_lines(mode: str) -> None:
    data = b"a AUTHENTICATE PLAIN\r\ndGVzdAB0ZXN0AHRlc3Q=\r\nb NOOP\r\n"
    assert session_events(split_modes(data)[mode]) == [
        c.Authenticate("a", "PLAIN"),
        RawLine(b"dGVzdAB0ZXN0AHRlc3Q="),
        c.Noop("b"),
    ]


def test_authenticate_cancel_and_empty_lines_are_raw() -> None:
    p = CommandParser()
    for line in (b"*", b"", b"{5}", b"a NOOP"):
        p.expect_line()
        p.feed(line + b"\r\n")
        assert p.next_event() == RawLine(line)
        assert p.next_event() is None


def test_raw_line_too_long() -> None:
    p = CommandParser(max_line=10)
    p.expect_line()
    p.feed(b"A" * 50 + b"\r\nb NOOP\r\n")
    assert p.next_event() == ParseError(None, "Line too long", "TOOBIG")
    assert p.next_event() == c.Noop("b")


def test_raw_mode_is_refused_mid_command() -> None:
    p = CommandParser()
    p.feed(b"a LOGIN {3}\r\n")
    assert isinstance(p.next_event(), NeedContinuation)
    with pytest.raises(RuntimeError):
        p.expect_line()
    with pytest.raises(RuntimeError):
        p.expect_done()


def test_idle_then_literal_command_after_done() -> None:
    events = session_events([b"a IDLE\r\nDONE\r\nb LOGIN {1}\r\nx y\r\n"])
    assert events == [c.Idle("a"), Done(), NeedContinuation(tag="b", size=1, command="LOGIN"), c.Login("b", "x", "y")]


def test_raw_line_too_long_bytewise() -> None:
    p = CommandParser(max_line=10)
    p.expect_line()
    events = []
    for b in b"A" * 50 + b"{5+}\r\nb NOOP\r\n":
        p.feed(bytes([b]))
        while (ev := p.next_event()) is not None:
            events.append(ev)
    # a raw line never announces a literal: "{5+}" is just part of the dropped line
    assert events == [ParseError(None, "Line too long", "TOOBIG"), c.Noop("b")]
