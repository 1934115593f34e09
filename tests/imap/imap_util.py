"""IMAP test helpers: a sans-I/O client driving a Session, messages, delivery."""

from __future__ import annotations

import re
from typing import Any

from dualmail.imap.config import ImapConfig
from dualmail.imap.session import CheckPassword, Disconnect, Session, StartTLS

PASSWORD = "secret"
USER = "alice@example.org"


def message(subject: str = "hello", body: str = "Hello world\r\n", frm: str = "bob@example.org",
            to: str = USER, extra: str = "", msgid: str | None = None) -> bytes:
    mid = msgid or f"<{abs(hash((subject, body))) % 10**12}@example.org>"
    return (f"From: Bob <{frm}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: {mid}\r\n{extra}"
            f"Content-Type: text/plain; charset=us-ascii\r\n\r\n{body}").encode()


class Client:
    """Drives a Session like a connection would; effects are carried out synchronously."""

    def __init__(self, store: Any, config: ImapConfig | None = None, **kw: Any) -> None:
        kw.setdefault("loopback", True)
        self.store = store
        self.session = Session(store, config or ImapConfig(failed_login_delay=0), **kw)
        self.greeting = self.session.greeting()
        self.closed = False
        self.tls_started = False
        self.log: list[bytes] = [self.greeting]

    def send(self, data: bytes | str) -> str:
        if isinstance(data, str):
            data = data.encode()
        self.session.feed(data)
        out: list[bytes] = []
        while not self.closed:
            it = self.session.step()
            if it is None:
                break
            self._run(it, out)
        text = b"".join(out)
        self.log.append(text)
        return text.decode("utf-8", "replace")

    def _run(self, it: Any, out: list[bytes]) -> None:
        for item in it:
            if isinstance(item, bytes):
                out.append(item)
            elif isinstance(item, CheckPassword):
                account = self.store.authenticate(item.user, item.password)
                self._run(self.session.login_result(item, account), out)
            elif isinstance(item, StartTLS):
                self.tls_started = True
                self.session.tls_started()
            elif isinstance(item, Disconnect):
                self.closed = True

    def cmd(self, line: str) -> str:
        return self.send(line + "\r\n")

    def ok(self, line: str) -> str:
        out = self.cmd(line)
        tag = line.split(" ", 1)[0]
        assert re.search(rf"^{re.escape(tag)} OK", out, re.M), out
        return out

    def login(self) -> str:
        return self.ok(f"a0 LOGIN {USER} {PASSWORD}")

    def push(self) -> str:
        """What an IDLE push would write now."""
        return b"".join(x for x in self.session.pending_updates() if isinstance(x, bytes)).decode()


def logged_in(store: Any, n: int = 2) -> list[Client]:
    """``n`` sessions of the test user on ``store``, logged in."""
    clients = [Client(store) for _ in range(n)]
    for c in clients:
        c.login()
    return clients


def deliver(store: Any, account: int, name: str = "INBOX", raw: bytes | None = None,
            flags: tuple[str, ...] = ()) -> int:
    from dualmail.mail.ops import deliver as _deliver

    with store.read(account) as v:
        m = v.mailbox_by_path(name.split("/"))
    _e, uid = _deliver(store, account, raw or message(), m, flags, received=760000000)
    return uid


def lines(text: str) -> list[str]:
    return [ln for ln in text.split("\r\n") if ln]
