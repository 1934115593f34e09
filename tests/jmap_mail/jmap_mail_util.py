"""Helpers for the JMAP Email tests: deliver messages as LMTP/IMAP APPEND would
(``mail.ops.deliver``), read store state for "nothing changed" checks.
Import as ``tests.jmap_mail.jmap_mail_util``."""

from __future__ import annotations

import os
from typing import Any

from dualmail.mail.ops import deliver
from dualmail.model import ids
from tests.jmap.jmap_store_util import ARCHIVE, DRAFTS, INBOX, JUNK, SENT, TRASH, aid, mid  # noqa: F401

MIME_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "mime")


def eml(name: str) -> bytes:
    with open(os.path.join(MIME_DIR, name + ".eml"), "rb") as f:
        return f.read()


def message(subject: str = "Hello", body: str = "Hi there", *, sender: str = "joe@example.com",
            to: str = "alice@example.org", message_id: str | None = None, extra: str = "",
            date: str = "Tue, 01 Jul 2003 10:52:37 +0200") -> bytes:
    mid_ = message_id or f"{abs(hash((subject, body, extra)))}@example.com"
    return (f"From: Joe Bloggs <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n"
            f"Message-ID: <{mid_}>\r\n{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{body}\r\n").encode()


def add(store, account: int, raw: bytes, mailbox: int = INBOX, flags=(), received: int = 1_700_000_000) -> str:
    e, _uid = deliver(store, account, raw, mailbox, flags, received)
    return ids.format_id(ids.EMAIL, e)


def eid(wire: str) -> int:
    n = ids.parse_id(ids.EMAIL, wire)
    assert n is not None
    return n


def snapshot(store, account: int) -> dict[str, Any]:
    """What an error must leave unchanged: modseq, states, counts, emails."""
    with store.read(account) as r:
        return {
            "modseq": r.highest_modseq,
            "states": {k: r.state(k) for k in ("Email", "Mailbox", "Thread")},
            "counts": {int(m["id"]): dict(m["counts"]) for m in r.mailboxes()},
            "emails": list(r.received_order(None)),
        }
