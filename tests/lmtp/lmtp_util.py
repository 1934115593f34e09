"""Helpers for the LMTP tests: a fake handler for the sans-I/O core, a transcript runner
that feeds a client script whole, line by line and byte by byte, and the real service on
loopback (tcp:0 or a unix socket) with smtplib.LMTP clients run in threads."""

from __future__ import annotations

import os
import smtplib
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Sequence

from dualmail.lmtp.core import Address, Envelope, Limits, LMTPSession, Recipient, Reply

USER = "alice@example.org"
OTHER = "bob@example.org"
PASSWORD = "secret"
TIMEOUT = 10


@dataclass
class FakeHandler:
    """Accepts every recipient but ``unknown@…``; records deliveries."""

    delivered: list[tuple[Envelope, bytes]] = field(default_factory=list)

    def rcpt(self, address: Address) -> Reply | Recipient:
        if address.local.lower() == "unknown":
            return Reply(550, "5.1.1", "no such user")
        return Recipient(address, str(address))

    def deliver(self, envelope: Envelope, data: bytes) -> list[Reply]:
        self.delivered.append((envelope, data))
        return [Reply(250, "2.0.0", f"<{r.token}> delivered") for r in envelope.recipients]


def session(handler: Any = None, **limits: Any) -> LMTPSession:
    return LMTPSession(handler if handler is not None else FakeHandler(), "mx.test", Limits(**limits))


def feed(s: LMTPSession, chunks: Sequence[bytes]) -> bytes:
    return b"".join(s.receive(c) for c in chunks)


def run_all_ways(script: bytes, make: Any = None, **limits: Any) -> tuple[bytes, list[LMTPSession]]:
    """Feed ``script`` whole, then split at every CRLF, then byte by byte, to fresh
    sessions; the replies must be the same octets every time.  (replies, sessions)"""
    make = make or (lambda: session(**limits))
    outs, sessions = [], []
    lines = [ln for ln in script.split(b"\r\n")]
    pieces = [ln + b"\r\n" for ln in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    for chunks in ([script], pieces, [script[i:i + 1] for i in range(len(script))]):
        s = make()
        outs.append(feed(s, chunks))
        sessions.append(s)
    assert outs[0] == outs[1] == outs[2], outs
    return outs[0], sessions


def codes(replies: bytes) -> list[str]:
    """'250 2.1.0' style heads of every final reply line (continuation lines skipped)."""
    out = []
    for line in replies.split(b"\r\n"):
        if len(line) >= 4 and line[3:4] == b" ":
            parts = line.decode().split(" ")
            out.append(" ".join(parts[:2]) if len(parts) > 1 and parts[1][:1].isdigit() and "." in parts[1]
                       else parts[0])
    return out


# -- the real service ------------------------------------------------------------------------


@dataclass
class Running:
    service: Any
    lmtp_port: int
    imap_port: int
    jmap_port: int
    unix_path: str | None
    data: str

    @property
    def store(self) -> Any:
        return self.service.store

    def lmtp(self) -> smtplib.LMTP:
        """A new smtplib LMTP client after LHLO (blocking: use in a thread)."""
        c = smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=TIMEOUT)
        c.ehlo("client.test")
        return c

    def lmtp_unix(self) -> smtplib.LMTP:
        assert self.unix_path is not None
        c = smtplib.LMTP(self.unix_path, timeout=TIMEOUT)
        c.ehlo("client.test")
        return c


def send(c: smtplib.LMTP, sender: str, rcpts: Sequence[str], msg: bytes) -> list[tuple[int, bytes]]:
    """MAIL, RCPTs, DATA and every per-recipient reply (smtplib.LMTP reads only the first,
    RFC 2033 §4.2 has one per accepted RCPT): [(code, text)] for RCPTs then the DATA replies."""
    out = [c.mail(sender)]
    accepted = 0
    for r in rcpts:
        got = c.rcpt(r)
        out.append(got)
        accepted += got[0] == 250
    if not accepted:
        c.rset()
        return out
    out.append(c.data(msg))
    for _ in range(accepted - 1):
        out.append(c.getreply())
    return out


def short_tmpdir() -> str:
    """A directory whose path is short enough for a unix socket (108 octets)."""
    return tempfile.mkdtemp(prefix="dm-lmtp-", dir="/tmp")


@asynccontextmanager
async def running(tmp_path: Any, *, unix: bool = False, accounts: Sequence[str] = (USER, OTHER),
                  extra: Sequence[str] = ()) -> AsyncIterator[Running]:
    """The real service (``tap.makeService``) with IMAP, JMAP and LMTP on tcp:0 loopback,
    optionally LMTP on a unix socket too."""
    from twisted.internet import reactor

    from dualmail.store.store import open_store
    from dualmail.tap import Options, makeService

    data = str(tmp_path / "data")
    setup = open_store(data, sync=False)
    for a in accounts:
        setup.create_account(a, PASSWORD)
    setup.close()
    args = ["--data", data, "--imap", "tcp:0:interface=127.0.0.1", "--jmap", "tcp:0:interface=127.0.0.1",
            "--lmtp", "tcp:0:interface=127.0.0.1", "--no-first-account", *extra]
    sock_dir = None
    unix_path = None
    if unix:
        sock_dir = short_tmpdir()
        unix_path = os.path.join(sock_dir, "lmtp.sock")
        args += ["--lmtp", f"unix:{unix_path}"]
    options = Options()
    options.parseOptions(args)
    service = makeService(options, reactor)
    service.startService()
    try:
        ports = await service.bound_ports("lmtp")
        [imap] = await service.bound_ports("imap")
        [jmap] = await service.bound_ports("jmap")
        yield Running(service, ports[0].getHost().port, imap.getHost().port, jmap.getHost().port,
                      unix_path, data)
    finally:
        await service.stopService()
        if sock_dir is not None:
            for name in os.listdir(sock_dir):
                os.unlink(os.path.join(sock_dir, name))
            os.rmdir(sock_dir)
