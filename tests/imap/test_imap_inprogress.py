"""INPROGRESS (RFC 9585) for long FETCH, STORE, COPY, MOVE and EXPUNGE.

§3: ``* OK [INPROGRESS ("tag" progress goal)]`` while a command runs; progress and goal
are NIL when unknown and the goal, when given, is above zero.  A streaming FETCH knows
both (messages sent so far, messages asked for); a STORE/COPY/MOVE/EXPUNGE of many
messages runs its one write on a worker thread (other clients go on) and says NIL NIL.
"""

from __future__ import annotations

import dataclasses
import imaplib
import re
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from dualmail.imap.config import ImapConfig
from dualmail.imap.wire import responses as r
from imap_e2e import PASSWORD, USER, Gate, raw_selected, running
from imap_util import Client, deliver, lines, message


def test_inprogress_code_shapes() -> None:
    enc = r.serialize(r.UntaggedStatus("OK", "x", r.code_inprogress("a1", 3, 10)))
    assert enc == b'* OK [INPROGRESS ("a1" 3 10)] x\r\n'
    enc = r.serialize(r.UntaggedStatus("OK", "x", r.code_inprogress("a1")))
    assert enc == b'* OK [INPROGRESS ("a1" NIL NIL)] x\r\n'
    # a tag with "]" goes as NIL; a zero goal is not a goal (§3)
    enc = r.serialize(r.UntaggedStatus("OK", "x", r.code_inprogress("a]1", 0, 0)))
    assert enc == b'* OK [INPROGRESS (NIL 0 NIL)] x\r\n'


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        self.t += 1.0  # every look at the clock is a second later
        return self.t


@pytest.mark.parametrize("items", ["(FLAGS RFC822.SIZE)", "(BODY.PEEK[HEADER])"])
def test_long_fetch_says_how_far_it_got(store: Any, account: int, items: str) -> None:
    for i in range(7):
        deliver(store, account, raw=message(f"s{i}"))
    cfg = ImapConfig(failed_login_delay=0, fetch_batch=2, inprogress_interval=2.5)
    cl = Client(store, cfg, now=_Clock())
    cl.login()
    cl.ok("s SELECT INBOX")
    out = cl.ok(f"f UID FETCH 1:* {items}")
    ticks = re.findall(r'^\* OK \[INPROGRESS \("f" (\d+) (\d+)\)\] Still working\r$', out, re.M)
    # batches of 2 of 7, one look at the clock per batch (each a second later), a tick at
    # most every 2.5 s: after some batch but not after each, never after the last one
    assert ticks and len(ticks) < 3, out
    assert all(goal == "7" and done in ("2", "4", "6") for done, goal in ticks), out
    assert [int(d) for d, _g in ticks] == sorted({int(d) for d, _g in ticks}), out
    body = [ln for ln in lines(out) if " FETCH " in ln and ln.startswith("* ")]
    assert len(body) == 7
    assert lines(out)[-1] == "f OK FETCH completed"
    # a short FETCH says nothing
    assert "INPROGRESS" not in cl.ok("g UID FETCH 1:2 (FLAGS)")


def _long_command(port: int, gate: Gate, command: str) -> tuple[bytes, bytes]:
    s, f = raw_selected(port)
    with s:
        s.sendall(f"x {command}\r\n".encode())
        first = f.readline()  # bounded by the socket timeout
        other = imaplib.IMAP4("127.0.0.1", port, timeout=30)  # answered meanwhile
        other.login(USER, PASSWORD)
        assert other.noop()[0] == "OK"
        other.logout()
        gate.release()
        rest = b""
        while not re.search(rb"^x (OK|NO|BAD)", rest, re.M):
            rest += f.readline()
        return first, rest


@pytest.mark.e2e
@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("command,done", [
    ("UID STORE 1:* +FLAGS (\\Flagged)", b"x OK STORE completed"),
    ("UID COPY 1:* Archive", b"x OK [COPYUID "),
    ("UID MOVE 1:* Archive", b"x OK MOVE completed"),
    ("EXPUNGE", b"x OK EXPUNGE completed"),
])
async def test_long_writes_run_off_the_reactor_with_inprogress(tmp_path, monkeypatch,
                                                              command, done) -> None:
    from dualmail.imap import protocol

    monkeypatch.setattr(protocol, "INPROGRESS_INTERVAL", 0.05)
    async with running(tmp_path) as srv:
        for i in range(3):
            deliver(srv.store, srv.account, raw=message(f"m{i}"), flags=("\\Deleted",))
        [port] = await srv.service.bound_ports("imap")
        port.factory.config = dataclasses.replace(port.factory.config, offload_min_messages=2)
        gate = Gate(srv.store.write_grouped_alone)
        monkeypatch.setattr(srv.store, "write_grouped_alone", gate)
        try:
            first, rest = await deferToThread(_long_command, srv.imap_port, gate, command)
        finally:
            gate.release()
        assert first == b'* OK [INPROGRESS ("x" NIL NIL)] Still working\r\n', (first, rest)
        assert done in rest, rest
        assert gate.outcome == {"released": True}, gate.outcome
