"""One fan-out to many IDLE sessions (``IMAPFactory._push_all``, ``Session.idle_updates``):
sessions in the same state are told the same bytes once rendered, and each is left in the
state it would have reached alone; sessions in different states (CONDSTORE, IMAP4rev2,
another mailbox map) are told their own responses; the \\Recent claim (RFC 3501 §2.3.2:
one session only) is one store write for the whole fan-out."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock

from imap_util import deliver, lines
from test_imap_protocol import Conn, login, make_factory


@pytest.fixture
def clock() -> MemoryReactorClock:
    return MemoryReactorClock()


def idling(f: Any, n: int, enable: str | None = None) -> list[Conn]:
    conns = []
    for _ in range(n):
        c = Conn(f)
        c.take()
        login(c)
        if enable:
            assert "OK" in c.send(f"e ENABLE {enable}\r\n")
        c.send("s SELECT INBOX\r\n")
        assert c.send("i IDLE\r\n") == "+ idling\r\n"
        conns.append(c)
    return conns


def done_and_fetch(c: Conn) -> list[str]:
    return lines(c.send("DONE\r\nf FETCH 1:* (UID FLAGS)\r\n"))


def test_same_state_same_bytes_recent_once(store, account, clock, monkeypatch) -> None:
    f = make_factory(store, clock)
    deliver(store, account)
    conns = idling(f, 4)
    writes = []
    real_write = store.write
    monkeypatch.setattr(store, "write", lambda a: writes.append(a) or real_write(a))
    deliver(store, account)  # (its own write goes through mail.ops, not store.write here)
    writes.clear()
    clock.advance(0)
    told = [c.take() for c in conns]
    # RFC 3501 §2.3.2: the new message is \Recent in exactly one session (the first, which
    # also claimed message 1 at its SELECT)
    assert [lines(t) for t in told] == [["* 2 EXISTS", "* 2 RECENT"]] + [["* 2 EXISTS", "* 0 RECENT"]] * 3
    assert len(writes) == 1  # the fan-out's one \Recent claim
    # the next commit: every session was left with the map (and \Recent) it was told
    other = Conn(f)
    other.take()
    login(other)
    other.send("o SELECT INBOX\r\n")
    other.send("o STORE 2 +FLAGS (\\Flagged)\r\n")
    clock.advance(0)
    assert lines(conns[0].take()) == ["* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent))"]
    assert [lines(c.take()) for c in conns[1:]] == [["* 2 FETCH (UID 2 FLAGS (\\Flagged))"]] * 3
    other.send("o STORE 1 +FLAGS (\\Deleted)\r\no EXPUNGE\r\n")
    clock.advance(0)
    assert [c.take() for c in conns] == ["* 1 EXPUNGE\r\n"] * 4
    for c in conns[1:]:
        assert done_and_fetch(c) == ["i OK IDLE terminated", "* 1 FETCH (UID 2 FLAGS (\\Flagged))",
                                     "f OK FETCH completed"]


def test_a_session_leaving_the_shared_state_keeps_its_own(store, account, clock) -> None:
    """After a shared update the sessions share one UID map; one session's own expunge
    must not change what the others hold."""
    f = make_factory(store, clock)
    for _ in range(3):
        deliver(store, account)
    a, b, c = idling(f, 3)
    deliver(store, account)
    clock.advance(0)
    assert [lines(x.take())[0] for x in (a, b, c)] == ["* 4 EXISTS"] * 3
    # a leaves IDLE and expunges message 2 itself; b and c hear of it as a push
    out = lines(a.send("DONE\r\na1 STORE 2 +FLAGS.SILENT (\\Deleted)\r\na2 EXPUNGE\r\n"))
    assert out == ["i OK IDLE terminated", "a1 OK STORE completed", "* 2 EXPUNGE", "a2 OK EXPUNGE completed"]
    clock.advance(0)
    assert b.take() == c.take() == "* 2 EXPUNGE\r\n"
    deliver(store, account)
    clock.advance(0)
    assert lines(b.take())[0] == lines(c.take())[0] == "* 4 EXISTS"
    expected = ["i OK IDLE terminated", "* 1 FETCH (UID 1 FLAGS ())", "* 2 FETCH (UID 3 FLAGS ())",
                "* 3 FETCH (UID 4 FLAGS ())", "* 4 FETCH (UID 5 FLAGS ())", "f OK FETCH completed"]
    assert done_and_fetch(c) == expected
    # a claimed UIDs 1-3 at its SELECT and 4 in the first fan-out; b (first in IDLE) 5
    assert done_and_fetch(b) == [ln.replace("UID 5 FLAGS ()", "UID 5 FLAGS (\\Recent)") for ln in expected]
    # a, not idling, hears of message 5 at the end of its next command (UIDs 1, 3, 4 are
    # its \\Recent)
    assert lines(a.send("a3 FETCH 1:* (UID)\r\n")) == ["* 1 FETCH (UID 1)", "* 2 FETCH (UID 3)", "* 3 FETCH (UID 4)",
                                                        "* 4 EXISTS", "* 3 RECENT", "a3 OK FETCH completed"]



def test_different_states_are_told_their_own(store, account, clock) -> None:
    """CONDSTORE sessions get MODSEQ in every FETCH (RFC 7162 §3.2.4); IMAP4rev2 ones no
    RECENT (RFC 9051 §7.4); a session that selected earlier (other \\Recent claims) is told
    its own flags and RECENT count."""
    f = make_factory(store, clock)
    deliver(store, account)
    late = idling(f, 1)[0]
    deliver(store, account)
    clock.advance(0)
    late.take()
    plain = idling(f, 2)
    cond = idling(f, 2, "CONDSTORE")
    rev2 = idling(f, 2, "IMAP4rev2")
    other = Conn(f)
    other.take()
    login(other)
    other.send("o SELECT INBOX\r\n")
    other.send("o STORE 1 +FLAGS (\\Seen)\r\n")
    clock.advance(0)
    assert [c.take() for c in plain + rev2] == ["* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n"] * 4
    assert late.take() == "* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))\r\n"  # its SELECT claimed it
    told = [c.take() for c in cond]
    assert told[0] == told[1] and "MODSEQ (" in told[0] and told[0].startswith("* 1 FETCH (UID 1 FLAGS (\\Seen)")
    deliver(store, account)
    clock.advance(0)
    assert [lines(c.take()) for c in rev2] == [["* 3 EXISTS"]] * 2
    assert lines(late.take()) + lines(plain[0].take()) + lines(plain[1].take()) == [
        "* 3 EXISTS", "* 3 RECENT", "* 3 EXISTS", "* 0 RECENT", "* 3 EXISTS", "* 0 RECENT"]
