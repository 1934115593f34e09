"""The APPEND family side by side with Dovecot 2.3: MULTIAPPEND (RFC 3502), CATENATE
(RFC 4469) with good and bad URLs, SAVEDATE (RFC 8514).  Each scenario's tagged status
and response code must match, or be listed (scope "append") in deviations.py with the RFC
reason.  REPLACE, UNAUTHENTICATE and URLAUTH are not compared: Dovecot 2.3 has no REPLACE
or UNAUTHENTICATE, and URLAUTH needs its separate imap-urlauth service."""

from __future__ import annotations

import re

import pytest_twisted

import differential as d
from dovecot_util import PASSWORD, USER
from imap_raw import Client, IMAPError
from test_dovecot_differential import _check, _compare


def message(subject: str, body: str) -> bytes:
    return (f"From: bob@example.org\r\nTo: {USER}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\n{body}").encode()


M1, M2 = message("one", "Body one\r\n"), message("two", "Body two\r\n")

# (name, command with {} for each synchronising literal, literals)
SCENARIOS: list[tuple[str, str, tuple[bytes, ...]]] = [
    ("multiappend", "APPEND INBOX (\\Seen) {} {}", (M1, M2)),
    ("multiappend-empty-second", "APPEND INBOX {} {}", (M1, b"")),
    ("catenate", 'APPEND INBOX CATENATE (URL "/INBOX/;uid=1/;section=HEADER" TEXT {})', (b"Body\r\n",)),
    ("catenate-partial", 'APPEND INBOX CATENATE (URL "/INBOX/;uid=2/;partial=0.4")', ()),
    ("catenate-uidvalidity", 'APPEND INBOX CATENATE (URL "/INBOX;UIDVALIDITY=%(uv)s/;uid=1")', ()),
    ("catenate-no-message", 'APPEND INBOX CATENATE (URL "/INBOX/;uid=99")', ()),
    ("catenate-bad-uidvalidity", 'APPEND INBOX CATENATE (URL "/INBOX;UIDVALIDITY=999/;uid=1")', ()),
    ("catenate-missing-part", 'APPEND INBOX CATENATE (URL "/INBOX/;uid=1/;section=3")', ()),
    ("catenate-rump", 'APPEND INBOX CATENATE (URL "/INBOX/;uid=1;urlauth=anonymous")', ()),
    ("catenate-not-imap", 'APPEND INBOX CATENATE (URL "http://example.org/")', ()),
    ("catenate-trycreate", 'APPEND Missing CATENATE (URL "/INBOX/;uid=77")', ()),
    ("catenate-empty", "APPEND INBOX CATENATE (TEXT {})", (b"",)),
    ("multiappend-catenate", 'APPEND INBOX CATENATE (URL "/INBOX/;uid=1") {}', (M2,)),
    ("savedate-fetch", "UID FETCH 1:2 (SAVEDATE)", ()),
    ("savedate-search", "UID SEARCH SAVEDSINCE 1-Jan-2020 SAVEDATESUPPORTED", ()),
]


def _answer(c: Client, command: str, literals: tuple[bytes, ...]) -> tuple[str, str, int]:
    """(status, response code name, messages the command added to INBOX)."""
    before = _messages(c)
    try:
        r = c.run(command, *literals, ok=False)
        status, text = r.status, r.text
    except IMAPError as e:  # a literal refused before its "+": the tagged line
        line = str(e).encode().split(b" ", 1)[1]
        status, _, text = line.partition(b" ")
        status = status.decode()
    m = re.match(rb"\[([A-Z-]+)", text)
    return status, m.group(1).decode() if m else "", _messages(c) - before


def _messages(c: Client) -> int:
    [st] = [u for u in c.run("STATUS INBOX (MESSAGES)").untagged if u[1] == "STATUS"]
    return int(st[3][1])


def _run(dc, mport: int) -> list[d.Diff]:
    diffs: list[d.Diff] = []
    with Client(dc.port) as a, Client(mport) as b:
        a.login(USER, PASSWORD)
        b.login(USER, PASSWORD)
        uv = {}
        for c in (a, b):
            c.run("APPEND INBOX {} {}", M1, M2)
            sel = c.run("SELECT INBOX")
            uv[c] = next(re.search(r"UIDVALIDITY (\d+)", str(u)).group(1) for u in sel.untagged
                         if "UIDVALIDITY" in str(u))
        for name, command, literals in SCENARIOS:
            got = [_answer(c, command % {"uv": uv[c]} if "%(uv)" in command else command, literals)
                   for c in (a, b)]
            if got[0] != got[1]:
                diffs.append(d.Diff(name, "status", got[0], got[1]))
    return diffs


@pytest_twisted.ensureDeferred
async def test_append_family_as_dovecot(tmp_path):
    diffs = await _compare(tmp_path, _run)
    _check(diffs, "append")
