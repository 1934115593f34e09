"""Helpers for the submission tests: a JMAP client whose app has a smarthost
configured, a real SMTP server (aiosmtpd) as the smarthost, and store
snapshots for "nothing changed" checks. Import as
``tests.submission.submission_util``."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import maybeDeferred

from dualmail.jmap.service import build_app
from dualmail.store import outbox
from dualmail.submission.config import Limits, SubmissionConfig
from tests.jmap.jmap_store_util import BASE, Client, basic

ALICE_ADDRESS = "alice@example.org"


def config(port: int = 25, **kw: Any) -> SubmissionConfig:
    limits = kw.pop("limits", Limits())
    return SubmissionConfig(smarthost=f"tcp:127.0.0.1:{port}", hostname="dualmail.test", limits=limits,
                            starttls=kw.pop("starttls", "no"), **kw)


class SubmissionClient(Client):
    """``tests.jmap.jmap_store_util.Client`` over an app with ``submission``."""

    def __init__(self, store, clock, submission: SubmissionConfig | None, auth=("alice@example.org", "secret")):
        self.store = store
        self.clock = clock
        self.app = build_app(store, clock, base_url=BASE, run_blocking=lambda f, *a: maybeDeferred(f, *a),
                             failed_login_delay=0, submission=submission)
        self.stub = StubTreq(self.app.app.resource())
        self.headers = basic(*auth)


def draft(subject: str = "Lunch?", *, sender: str = "Alice <alice@example.org>", to: str = "Bob <bob@example.net>",
          cc: str = "", bcc: str = "", extra: str = "", body: str = "Shall we?") -> bytes:
    lines = [f"From: {sender}", f"To: {to}"]
    if cc:
        lines.append(f"Cc: {cc}")
    if bcc:
        lines.append(f"Bcc: {bcc}")
    lines += [f"Subject: {subject}", "Date: Thu, 03 Dec 2026 12:00:00 +0000",
              f"Message-ID: <{abs(hash((subject, to, cc, bcc, extra, body)))}@example.org>"]
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n" + body + "\r\n").encode()


def snapshot(store, account: int, now: int = 1_800_000_000) -> dict[str, Any]:
    """Everything a refused submission must leave as it was."""
    with store.read(account) as r:
        return {
            "modseq": r.highest_modseq,
            "states": {k: r.state(k) for k in ("Email", "Mailbox", "EmailSubmission", "Identity")},
            "counts": {int(m["id"]): dict(m["counts"]) for m in r.mailboxes()},
            "emails": {e: r.email(e) for e in r.received_order(None)},
            "submissions": r.objects("EmailSubmission"),
            "queue": outbox.entries(r),
            "sent": outbox.sent_recently(r, now),
        }


# -- a real SMTP server as the smarthost -------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class Sink:
    """aiosmtpd handler: keeps every message; ``rcpt_replies`` refuses some
    recipients, ``data_reply`` answers DATA."""

    messages: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str = "250 2.0.0 Ok: queued as 4711"
    changed: threading.Condition = field(default_factory=threading.Condition)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply.startswith("250"):
            with self.changed:
                self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
                self.changed.notify_all()
        return self.data_reply


class Smarthost:
    """aiosmtpd's SMTP server on 127.0.0.1 (``port`` 0: chosen by the OS) in
    its own thread with its own event loop; ``stop()`` closes the port."""

    def __init__(self, sink: Sink | None = None, port: int = 0, **smtp_kwargs: Any) -> None:
        self.sink = sink or Sink()
        self.port = port
        self.smtp_kwargs = smtp_kwargs
        self.loop = asyncio.new_event_loop()
        self.thread: threading.Thread | None = None
        self.server: Any = None

    def start(self) -> "Smarthost":
        from aiosmtpd.smtp import SMTP

        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            self.server = self.loop.run_until_complete(self.loop.create_server(
                lambda: SMTP(self.sink, hostname="smarthost.test", **self.smtp_kwargs), sock=sock))
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(10), "the smarthost did not start"
        return self

    def stop(self) -> None:
        if self.thread is None:
            return

        async def close() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.thread = None
        self.loop = asyncio.new_event_loop()

    @property
    def messages(self) -> list[Received]:
        return self.sink.messages


class ScriptedServer:
    """A misbehaving SMTP server on 127.0.0.1:0: answers each line from
    ``replies`` in order (bytes, sent as they are) and closes the connection
    when they run out -- e.g. in the middle of DATA."""

    def __init__(self, greeting: bytes, replies: list[bytes]) -> None:
        self.greeting = greeting
        self.replies = replies
        self.received: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        self.conn = conn
        with conn:
            conn.sendall(self.greeting)
            replies = list(self.replies)
            buffer = b""
            while replies:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
                self.received.append(data)
                while b"\r\n" in buffer and replies:
                    _line, buffer = buffer.split(b"\r\n", 1)
                    reply = replies.pop(0)
                    if reply:
                        conn.sendall(reply)

    def stop(self) -> None:
        """Close everything now (a client may still hold the connection open)."""
        conn = getattr(self, "conn", None)
        if conn is not None:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)
