"""End to end, the real service on loopback: session A sits in IDLE with QRESYNC enabled
while session B changes flags, copies, moves and expunges and a JMAP-side write (the
store's keyword change, as Email/set makes it) changes keywords.  A receives FETCH with
MODSEQ and VANISHED at once; a fresh QRESYNC SELECT from A's HIGHESTMODSEQ before the
changes reports exactly the same changes (RFC 7162 §3.2.5, CONTRACT §4, §5)."""

from __future__ import annotations

import imaplib
import re
import socket
from typing import Any, Callable

import pytest
import pytest_twisted
from imapclient import IMAPClient
from twisted.internet import reactor
from twisted.internet.threads import blockingCallFromThread, deferToThread

from imap_e2e import PASSWORD, USER, running
from imap_util import message
from dualmail.imap.wire.sequence import SequenceSet

pytestmark = pytest.mark.e2e


def _uids(value: Any) -> set[int]:
    text = value.decode() if isinstance(value, bytes) else str(value)
    return set(SequenceSet.parse(text).resolve(2**32 - 1))


def _flags(flags: Any) -> set[bytes]:
    return {f.lower() for f in flags if f != b"\\Recent"}


def _jmap_set_keywords(store: Any, account: int, uid: int, keywords: list[str]) -> int:
    """What JMAP Email/set {keywords} does to the store: one transaction; the Email state."""
    with store.write(account) as tx:
        m = tx.mailbox_by_path(["INBOX"])
        tx.set_keywords(tx.email_at(m, uid), keywords)
    with store.read(account) as v:
        return v.state("Email")


def _scenario(port: int, jmap_write: Callable[[int, list[str]], int]) -> dict[str, Any]:
    a = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=30)
    b = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=30)
    try:
        a.login(USER, PASSWORD)
        b.login(USER, PASSWORD)
        for i in range(6):
            b.append("INBOX", message(f"m{i}"))
        assert a.enable("QRESYNC") == [b"QRESYNC"]
        sel = a.select_folder("INBOX")
        uidvalidity, hms0 = sel[b"UIDVALIDITY"], sel[b"HIGHESTMODSEQ"]
        b.select_folder("INBOX")
        a.idle()
        seen: list = []

        def wait_for(pred: Callable[[], bool]) -> None:
            for _ in range(20):
                seen.extend(a.idle_check(timeout=5))
                if pred():
                    return
            raise AssertionError(seen)

        def fetched(uid: int) -> Callable[[], bool]:
            return lambda: any(r[1] == b"FETCH" and r[2][1] == uid for r in seen
                               if isinstance(r[0], int) and len(r) > 2)

        def vanished(uid: int) -> Callable[[], bool]:
            return lambda: any(r[0] == b"VANISHED" and uid in _uids(r[1]) for r in seen)

        b.add_flags([1], [b"\\Flagged"])
        wait_for(fetched(1))
        b.copy([2], "INBOX")  # a new Email in INBOX (CONTRACT §2): EXISTS
        wait_for(lambda: (6, b"EXISTS") in seen or (7, b"EXISTS") in seen)
        b.move([3], "Archive")
        wait_for(vanished(3))
        b.delete_messages([4])
        b.expunge()
        wait_for(vanished(4))
        b.remove_flags([1], [b"\\Flagged"])
        b.add_flags([1], [b"\\Answered"])
        state = jmap_write(5, ["$seen", "$flagged", "custom"])
        wait_for(fetched(5))
        a.idle_done()
        # A fresh connection resynchronises from A's HIGHESTMODSEQ before the changes
        c = imaplib.IMAP4("127.0.0.1", port)
        c.login(USER, PASSWORD)
        c._simple_command("ENABLE", "QRESYNC")
        typ, _ = c._simple_command("SELECT", f"INBOX (QRESYNC ({uidvalidity} {hms0}))")
        assert typ == "OK"
        resync = {"vanished": c.untagged_responses.get("VANISHED", []),
                  "fetch": c.untagged_responses.get("FETCH", []),
                  "hms": c.untagged_responses.get("HIGHESTMODSEQ", [])}
        c.logout()
        return {"seen": seen, "resync": resync, "state": state}
    finally:
        for cl in (a, b):
            try:
                cl.logout()
            except Exception:
                pass


def _parse_fetch(line: bytes) -> tuple[int, set[bytes], int]:
    text = line.decode()
    uid = int(re.search(r"UID (\d+)", text).group(1))
    flags = set(re.search(r"FLAGS \(([^)]*)\)", text).group(1).lower().encode().split())
    modseq = int(re.search(r"MODSEQ \((\d+)\)", text).group(1))
    return uid, flags - {b"\\recent"}, modseq


@pytest_twisted.ensureDeferred
async def test_idle_qresync_and_resync_agree(tmp_path) -> None:
    async with running(tmp_path) as srv:
        def jmap_write(uid: int, keywords: list[str]) -> int:
            return blockingCallFromThread(reactor, _jmap_set_keywords, srv.store, srv.account,
                                          uid, keywords)

        out = await deferToThread(_scenario, srv.imap_port, jmap_write)
        seen = out["seen"]
        # what IDLE told: the final flags and modseq per UID, and the vanished UIDs
        told: dict[int, tuple[set[bytes], int]] = {}
        idle_vanished: set[int] = set()
        for r in seen:
            if r[0] == b"VANISHED":
                idle_vanished |= _uids(r[1])
            elif isinstance(r[0], int) and r[1] == b"FETCH":
                items = dict(zip(r[2][::2], r[2][1::2]))
                assert b"MODSEQ" in items and b"UID" in items, r  # RFC 7162 §3.2.4
                told[items[b"UID"]] = (_flags(items[b"FLAGS"]), items[b"MODSEQ"][0])
            assert r[1] != b"EXPUNGE" if isinstance(r[0], int) else True  # VANISHED instead
        assert idle_vanished == {3, 4}
        # the JMAP write reached IDLE as FETCH (FLAGS ...) MODSEQ (n), n == Email state
        assert told[5] == ({b"\\seen", b"\\flagged", b"custom"}, out["state"])
        assert told[1][0] == {b"\\answered"}
        # the QRESYNC resync reports exactly the same changes
        rs = out["resync"]
        assert len(rs["vanished"]) == 1 and rs["vanished"][0].startswith(b"(EARLIER) ")
        assert _uids(rs["vanished"][0].split(b" ", 1)[1]) == idle_vanished
        resynced = {uid: (flags, ms) for uid, flags, ms in map(_parse_fetch, rs["fetch"])}
        live = {u: v for u, v in told.items() if u not in idle_vanished}
        assert {u: resynced[u] for u in live} == live
        assert set(resynced) - set(live) == {7}  # the COPY, which IDLE announced by EXISTS
        with srv.store.read(srv.account) as v:
            m = v.mailbox_by_path(["INBOX"])
            assert int(rs["hms"][0]) == int(v.require_mailbox(m)["hms"])


def _jmapaccess(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(f"a LOGIN {USER} {PASSWORD}\r\nb GETJMAPACCESS\r\n".encode())
        found = b""
        while not (line := f.readline()).startswith(b"b "):
            if line.startswith(b"* JMAPACCESS "):
                found = line[len(b"* JMAPACCESS "):].strip()
        assert line.startswith(b"b OK"), line
        return found


@pytest_twisted.ensureDeferred
async def test_jmapaccess_names_the_bound_port(tmp_path) -> None:
    """RFC 9698 with ``--jmap tcp:0``: the URL carries the port the listener got."""
    async with running(tmp_path) as srv:
        [jmap] = await srv.service.bound_ports("jmap")
        url = await deferToThread(_jmapaccess, srv.imap_port)
        assert url == f'"http://127.0.0.1:{jmap.getHost().port}/.well-known/jmap"'.encode()
