"""Fuzz target: the sans-I/O IMAP command parser (dualmail/imap/wire) and the command
builder behind it. Any exception out of ``feed``/``next_event`` is a crash; so is a
parser that neither consumes its buffer nor reports anything (a hang), or that keeps
more than its line limit buffered."""

from __future__ import annotations

import sys

from dualmail.imap.wire import commands as c
from dualmail.imap.wire.parser import CommandParser, Done, NeedContinuation, RawLine

SEEDS = [
    b"a LOGIN alice secret\r\n", b"b SELECT INBOX (CONDSTORE)\r\n",
    b"c UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From)]<0.100> MODSEQ) (CHANGEDSINCE 5 VANISHED)\r\n",
    b"d SEARCH CHARSET UTF-8 OR (FROM x SINCE 1-Jan-2020) NOT (UID 1:5,7) TEXT {3}\r\nabc\r\n",
    b"e APPEND INBOX (\\Seen) \"01-Jan-2020 00:00:00 +0000\" {5+}\r\nhello\r\n",
    b"f STORE 1:3 +FLAGS.SILENT (\\Deleted $x) \r\n", b"g UID MOVE 1,3:4 \"Trash\"\r\n",
    b"h LIST (SUBSCRIBED) \"\" (\"*\" \"%\") RETURN (STATUS (MESSAGES UIDNEXT))\r\n",
    b"i SORT (REVERSE DATE) UTF-8 ALL\r\n", b"j IDLE\r\nDONE\r\n", b"k AUTHENTICATE PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\n",
    b"l ENABLE QRESYNC\r\nm SELECT INBOX (QRESYNC (1 2 1:9 (1:3 1:3)))\r\n", b"n CREATE \"&AMk-t&AOk-\"\r\n",
    b"o UID EXPUNGE 1:*\r\n", b"p STATUS INBOX (MESSAGES UNSEEN HIGHESTMODSEQ)\r\n", b"q LOGOUT\r\n",
]
MAX_LINE = 4096


def TestOneInput(data: bytes) -> None:
    parser = CommandParser(max_line=MAX_LINE, max_literal=1 << 16, max_nonsync_literal=4096)
    # feed in pieces chosen by the data itself (byte by byte, whole, and between)
    step = (data[0] % 7) + 1 if data else 1
    body = data[1:]
    mode = data[0] >> 5 if data else 0
    for i in range(0, len(body) + 1, step):
        parser.feed(body[i:i + step])
        for _ in range(10_000):
            event = parser.next_event()
            if event is None:
                break
            if isinstance(event, NeedContinuation) and mode == 1:
                parser.reject_literal()
            if isinstance(event, c.Idle) and mode != 3:
                parser.expect_done()  # as the session does after "+ idling"
            elif isinstance(event, c.Authenticate) and mode != 3:
                parser.expect_line()
        else:
            raise AssertionError("the parser keeps returning events without input")
        assert parser.buffered <= MAX_LINE + step + (1 << 16) + 16, "unbounded buffer"


if __name__ == "__main__":
    from tests.fuzz.harness import main

    main(TestOneInput, SEEDS, ["dualmail.imap.wire"])
    sys.exit(0)
