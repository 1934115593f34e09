"""The Twisted adapter on in-memory transports: StringTransport + MemoryReactorClock for
IDLE pushes, autologout, failed-login delay, backpressure and pipelining."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from imap_util import PASSWORD, USER, deliver, lines, message
from dualmail.imap.config import ImapConfig
from dualmail.imap.protocol import IMAPFactory, jmap_session_url, make_factories


class Conn:
    def __init__(self, factory: IMAPFactory, host: str = "127.0.0.1") -> None:
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", host, 40000))
        self.proto = factory.buildProtocol(None)
        self.proto.makeConnection(self.transport)

    def take(self) -> str:
        data = self.transport.value()
        self.transport.clear()
        return data.decode("utf-8", "replace")

    def send(self, text: str | bytes) -> str:
        self.proto.dataReceived(text.encode() if isinstance(text, str) else text)
        return self.take()


@pytest.fixture
def clock() -> MemoryReactorClock:
    return MemoryReactorClock()


def make_factory(store: Any, clock: MemoryReactorClock, **cfg: Any) -> IMAPFactory:
    cfg.setdefault("failed_login_delay", 2.0)
    return IMAPFactory(store, ImapConfig(**cfg), clock,
                       authenticate=lambda u, p: defer.succeed(store.authenticate(u, p)))


def login(conn: Conn) -> None:
    out = conn.send(f"a0 LOGIN {USER} {PASSWORD}\r\n")
    assert "a0 OK" in out, out


def test_greeting_login_and_failed_login_delay(store, account, clock) -> None:
    c = Conn(make_factory(store, clock))
    assert c.take().startswith("* OK [CAPABILITY IMAP4rev1")
    assert c.send(f"a LOGIN {USER} wrong\r\nb NOOP\r\n") == ""  # delayed, and b waits
    clock.advance(1.9)
    assert c.take() == ""
    clock.advance(0.2)
    assert lines(c.take()) == ["a NO [AUTHENTICATIONFAILED] Authentication failed",
                               "b OK NOOP completed"]
    login(c)


def test_logindisabled_for_remote_peers(store, account, clock) -> None:
    c = Conn(make_factory(store, clock), host="192.0.2.7")
    assert "LOGINDISABLED" in c.take()
    assert c.send(f"a LOGIN {USER} {PASSWORD}\r\n").startswith("a NO [PRIVACYREQUIRED]")


def test_autologout(store, account, clock) -> None:
    c = Conn(make_factory(store, clock))
    c.take()
    clock.advance(59)
    assert c.transport.connected and not c.transport.disconnecting
    clock.advance(2)
    assert c.take() == "* BYE Autologout; idle for too long\r\n"
    assert c.transport.disconnecting
    c2 = Conn(make_factory(store, clock))
    login(c2)
    clock.advance(29 * 60)
    c2.send("a NOOP\r\n")  # activity resets the timer
    clock.advance(29 * 60)
    assert not c2.transport.disconnecting
    clock.advance(61)
    assert c2.take().startswith("* BYE") and c2.transport.disconnecting


def test_idle_push_from_other_session_and_pipelining(store, account, clock) -> None:
    f = make_factory(store, clock)
    a, b = Conn(f), Conn(f)
    login(a)
    login(b)
    deliver(store, account)
    a.send("a1 SELECT INBOX\r\n")
    b.send("b1 SELECT INBOX\r\n")
    assert a.send("a2 IDLE\r\n") == "+ idling\r\n"
    b.send("b2 STORE 1 +FLAGS (\\Flagged)\r\n")
    clock.advance(0)
    assert a.take().startswith("* 1 FETCH (UID 1 FLAGS (\\Flagged")
    deliver(store, account)  # e.g. LMTP or JMAP: any commit
    clock.advance(0)
    assert lines(a.take()) == ["* 2 EXISTS", "* 2 RECENT"]
    b.send("b3 STORE 1 +FLAGS (\\Deleted)\r\nb4 EXPUNGE\r\n")
    clock.advance(0)
    assert a.take() == "* 1 EXPUNGE\r\n"
    # iOS Mail pipelines right after DONE
    out = a.send("DONE\r\na3 FETCH 1 (UID)\r\na4 NOOP\r\n")
    assert lines(out) == ["a2 OK IDLE terminated", "* 1 FETCH (UID 2)", "a3 OK FETCH completed",
                          "a4 OK NOOP completed"]
    # not idling: nothing is pushed; it comes with the next command
    b.send("b5 STORE 1 +FLAGS (\\Seen)\r\n")
    clock.advance(0)
    assert a.take() == ""
    assert "* 1 FETCH (UID 2 FLAGS" in a.send("a5 NOOP\r\n")


def test_output_backpressure(store, account, clock) -> None:
    f = make_factory(store, clock, fetch_batch=2)
    for i in range(6):
        deliver(store, account, raw=message(f"m{i}"))
    c = Conn(f)
    login(c)
    c.send("a SELECT INBOX\r\n")
    c.proto.pauseProducing()
    assert c.send("b FETCH 1:* (UID)\r\n") == ""
    c.proto.resumeProducing()
    c.proto.pauseProducing()  # the transport asks to pause between items
    c.proto.resumeProducing()
    out = c.take()
    assert [ln for ln in lines(out) if "FETCH (UID" in ln] == [f"* {i} FETCH (UID {i})" for i in range(1, 7)]
    assert out.endswith("b OK FETCH completed\r\n")


def test_connection_lost_unsubscribes(store, account, clock) -> None:
    f = make_factory(store, clock)
    c = Conn(f)
    login(c)
    c.send("a SELECT INBOX\r\na2 IDLE\r\n")
    subscribed = len(store._subscribers)
    c.proto.connectionLost(None)
    deliver(store, account)
    clock.advance(0)
    assert not f.connections
    assert len(store._subscribers) == subscribed - 1  # the factory's, with its last session


def test_commits_reach_their_accounts_sessions_only(store, account, clock) -> None:
    """One store subscription per factory, however many sessions; a commit is handed to
    the sessions logged in to its account (and, after UNAUTHENTICATE and a new login, to
    the new account's)."""
    other = store.create_account("bob@example.org", "secret")
    f = make_factory(store, clock)
    before = len(store._subscribers)
    a, b = Conn(f), Conn(f)
    login(a)
    login(b)
    assert len(store._subscribers) == before + 1
    a.send("a SELECT INBOX\r\n")
    assert a.send("a2 IDLE\r\n") == "+ idling\r\n"
    seen = []
    real = b.proto._on_commit
    b.proto._on_commit = lambda commit: (seen.append(commit.account), real(commit))
    deliver(store, other)
    clock.advance(0)
    assert a.take() == "" and seen == []
    deliver(store, account)
    clock.advance(0)
    assert lines(a.take()) == ["* 1 EXISTS", "* 1 RECENT"] and seen == [account]


def test_make_factories_and_jmap_url(store) -> None:
    opts = {"imap": ["tcp:0"], "imaps": [], "jmap": ["tcp:8080:interface=127.0.0.1"],
            "tls-cert": None, "tls-key": None, "allow-plaintext": False, "base-url": None}
    [(kind, factory)] = make_factories(store, opts, MemoryReactorClock())
    assert kind == "imap" and factory.config.jmap_url == "http://127.0.0.1:8080/.well-known/jmap"
    assert jmap_session_url({"base-url": "https://mail.example.org/", "jmap": []}) == \
        "https://mail.example.org/.well-known/jmap"


# -- connection caps (issue 17; RFC 9051 §7.1.5 BYE, RFC 5530 UNAVAILABLE) ---------------


def test_per_ip_cap_refuses_with_bye_unavailable(store, account, clock) -> None:
    f = make_factory(store, clock, max_connections_per_ip=2)
    a, b = Conn(f, "192.0.2.1"), Conn(f, "192.0.2.1")
    assert a.take().startswith("* OK") and b.take().startswith("* OK")
    c = Conn(f, "192.0.2.1")
    assert c.take() == "* BYE [UNAVAILABLE] Too many connections from your address\r\n"
    assert c.transport.disconnecting
    other = Conn(f, "198.51.100.7")  # another address is not affected
    assert other.take().startswith("* OK")
    local = [Conn(f, "127.0.0.1") for _ in range(3)]  # loopback is exempt by default
    assert all(x.take().startswith("* OK") for x in local)
    a.proto.connectionLost(None)  # a slot frees when a connection closes
    assert Conn(f, "192.0.2.1").take().startswith("* OK")
    assert f.per_ip["192.0.2.1"] == 2


def test_per_account_cap_refuses_the_login_only(store, account, clock) -> None:
    f = make_factory(store, clock, max_connections_per_account=1)
    a, b = Conn(f), Conn(f)
    a.take(), b.take()
    login(a)
    out = b.send(f"a0 LOGIN {USER} {PASSWORD}\r\n")
    assert lines(out) == ["a0 NO [UNAVAILABLE] Too many connections for this account"]
    assert "b1 OK" in b.send("b1 NOOP\r\n")  # still connected, still not authenticated
    assert "b2 BAD" in b.send("b2 SELECT INBOX\r\n")
    a.proto.connectionLost(None)
    login(b)


def test_slow_client_cannot_hold_a_slot(store, account, clock) -> None:
    """One byte a second resets the idle timer but not the command deadline (issue 17)."""
    c = Conn(make_factory(store, clock, command_deadline_unauthenticated=30.0))
    c.take()
    for ch in "a LOGIN alice":
        c.send(ch)
        clock.advance(1.0)
    assert c.take() == "" and not c.transport.disconnecting
    clock.advance(30.0 - len("a LOGIN alice") + 0.1)
    assert c.take() == "* BYE Command not completed in time\r\n"
    assert c.transport.disconnecting


def test_deadline_stops_when_the_command_is_complete(store, account, clock) -> None:
    c = Conn(make_factory(store, clock, command_deadline=5.0))
    c.take()
    login(c)
    c.send("b NOO")
    clock.advance(4.0)
    assert "b OK" in c.send("P\r\n")
    clock.advance(10.0)  # idle between commands: only the autologout applies
    assert not c.transport.disconnecting and "c OK" in c.send("c NOOP\r\n")
