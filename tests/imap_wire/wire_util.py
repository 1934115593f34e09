"""Helpers for the wire tests: feed a parser whole, byte by byte, or in chunks."""

from __future__ import annotations

from typing import Any, Callable

from dualmail.imap.wire.parser import CommandParser, NeedContinuation


def drain(parser: CommandParser) -> list[Any]:
    out = []
    while True:
        ev = parser.next_event()
        if ev is None:
            return out
        out.append(ev)
        assert len(out) < 10_000, "parser does not make progress"


def feed_whole(data: bytes, parser: CommandParser | None = None) -> list[Any]:
    parser = parser or CommandParser()
    parser.feed(data)
    return drain(parser)


def feed_bytewise(data: bytes, parser: CommandParser | None = None) -> list[Any]:
    parser = parser or CommandParser()
    out = []
    for i in range(len(data)):
        parser.feed(data[i : i + 1])
        out += drain(parser)
    return out


def feed_chunks(data: bytes, parser: CommandParser | None = None, size: int = 7) -> list[Any]:
    parser = parser or CommandParser()
    out = []
    for i in range(0, len(data), size):
        parser.feed(data[i : i + size])
        out += drain(parser)
    return out


FEEDERS: dict[str, Callable[..., list[Any]]] = {
    "whole": feed_whole,
    "bytewise": feed_bytewise,
    "chunks": feed_chunks,
}


def commands(events: list[Any]) -> list[Any]:
    """Events without the NeedContinuation prompts."""
    return [e for e in events if not isinstance(e, NeedContinuation)]
