"""Helpers and a hand-written corpus for the search tests: RFC 2047 headers, legacy charsets, HTML
only, attachments, CJK, missing headers, a thread, a \\Deleted membership."""

from __future__ import annotations

from datetime import date
from typing import Any

from dualmail.imap.wire.parser import CommandParser
from dualmail.mail.ops import prepare, store_prepared
from dualmail.search import fts
from dualmail.search.imap_keys import from_imap_keys

INBOX, ARCHIVE, TRASH = 1, 6, 4
BASE = 1704067200  # 2024-01-01T00:00:00Z
NOW = BASE + 40 * 86400


def msg(headers: str, body: str = "hello\r\n") -> bytes:
    return (headers.strip("\n").replace("\n", "\r\n") + "\r\n\r\n" + body.replace("\n", "\r\n")).encode("utf-8")


MESSAGES: list[dict[str, Any]] = [
    dict(  # 1
        raw=msg("""From: Alice Example <alice@example.org>
To: Bob <bob@example.net>
Subject: Quarterly report
Date: Mon, 01 Jan 2024 10:00:00 +0000
Message-ID: <m1@example.org>""", "Please find the quarterly numbers attached.\nRevenue grew strongly.\n"),
        flags=["\\Seen"], day=0),
    dict(  # 2
        raw=msg("""From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <joerg@example.de>
To: alice@example.org
Cc: Carol <carol@example.com>
Subject: =?UTF-8?B?UsOpdW5pb24gZCfDqXF1aXBlIOKAkyDDqXTDqQ==?=
Date: Sun, 31 Dec 2023 23:30:00 -0800
Message-ID: <m2@example.de>
MIME-Version: 1.0
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable""", "Gr=FC=DFe aus M=FCnchen. Die Stra=DFe ist nass.\n"),
        flags=[], day=1),
    dict(  # 3
        raw=msg("""From: Bob <bob@example.net>
To: Alice Example <alice@example.org>
Subject: Re: Quarterly report
Date: Tue, 02 Jan 2024 09:00:00 +0000
Message-ID: <m3@example.net>
In-Reply-To: <m1@example.org>
References: <m1@example.org>""", "> Please find the quarterly numbers\nThanks Alice, looks great.\n"),
        flags=["\\Answered", "\\Flagged", "\\Seen"], day=2),
    dict(  # 4
        raw=msg("""From: billing@shop.example
To: alice@example.org
Bcc: secret@example.org
Subject: Your invoice
Date: Wed, 03 Jan 2024 12:00:00 +0100
Message-ID: <m4@shop.example>
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8""",
                "<html><head><style>.x{color:red}</style></head><body><p>Invoice <b>#4711</b> is"
                " due</p><p>Total: 42&nbsp;EUR</p></body></html>\n"),
        flags=[], day=3),
    dict(  # 5
        raw=msg("""From: Carol <carol@example.com>
To: team@lists.example.org
Subject: [list] Fwd: Travel plans
Date: Thu, 04 Jan 2024 08:00:00 +0000
Message-ID: <m5@example.com>
X-Priority: 1
List-Id: <list.example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1\"""", """--b1
Content-Type: text/plain; charset=utf-8

See the attached itinerary for Zürich.
--b1
Content-Type: application/pdf; name="plan.pdf"
Content-Disposition: attachment; filename="plan.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K
--b1--
"""),
        flags=["$label1"], day=4),
    dict(  # 6
        raw=msg("""From: Tanaka Taro <tanaka@example.jp>
To: alice@example.org
Subject: =?UTF-8?B?5Lya6K2w44Gu6K2w5LqL6Yyy?=
Date: Fri, 05 Jan 2024 01:00:00 +0900
Message-ID: <m6@example.jp>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64""", "5pys5pel44Gu5Lya6K2w44Gu6K2w5LqL6Yyy44KS6YCB44KK44G+44GZ44CC77yh77yi77yj5YWo6KeS\n"),
        flags=["\\Seen"], day=5),
    dict(  # 7: no Date, no Message-ID, no Subject
        raw=msg("""From: nobody@example.org
X-Note: headerless""", "no headers here at all\n"),
        flags=[], day=6),
    dict(  # 8
        raw=msg("""From: Dave <dave@example.org>
To: Alice Example <alice@example.org>
Subject: RE: [list] re: Quarterly report (fwd)
Date: Wed, 03 Jan 2024 10:00:00 +0000
Message-ID: <m8@example.org>
References: <m1@example.org> <m3@example.net>""", "Forwarding for the record.\n"),
        flags=[], day=7),
    dict(  # 9: big
        raw=msg("""From: Eve <eve@example.org>
To: alice@example.org
Subject: Lorem
Date: Sat, 06 Jan 2024 10:00:00 +0000
Message-ID: <m9@example.org>""", "lorem ipsum dolor sit amet\n" * 800),
        flags=[], day=8),
    dict(  # 10: INBOX and Archive
        raw=msg("""From: Alice Example <alice@example.org>
To: Frank <frank@example.org>
Subject: Lunch?
Date: Sun, 07 Jan 2024 11:00:00 +0000
Message-ID: <m10@example.org>""", "Shall we have lunch on Friday?\n"),
        flags=["\\Seen"], day=9, mailboxes=[INBOX, ARCHIVE]),
    dict(  # 11: \Deleted in INBOX
        raw=msg("""From: Spam <spam@junk.example>
To: alice@example.org
Subject: Deleted thing
Date: Mon, 08 Jan 2024 11:00:00 +0000
Message-ID: <m11@junk.example>""", "buy now\n"),
        flags=["\\Deleted"], day=10),
    dict(  # 12: draft with a keyword
        raw=msg("""From: Alice Example <alice@example.org>
To: Bob <bob@example.net>
Subject: Draft: plans
Date: Tue, 09 Jan 2024 11:00:00 +0000
Message-ID: <m12@example.org>""", "unfinished draft text\n"),
        flags=["\\Draft", "$label1"], day=11),
]


def load(store, account, messages=MESSAGES, indexed: int | None = None) -> dict[int, int]:
    """Store ``messages``; index the first ``indexed`` (None: all).  {position(1-based): email}."""
    out = {}
    with store.write(account) as tx:
        for i, m in enumerate(messages, 1):
            p = prepare(m["raw"], m["flags"], BASE + m["day"] * 86400 + 3600)
            e, _uids = store_prepared(tx, p, m.get("mailboxes", [INBOX]))
            out[i] = e
    if indexed is None:
        fts.index_all(store, account)
    elif indexed:
        fts.index_pending(store, account, indexed)
    return out


def parse_keys(text: str):
    p = CommandParser()
    if not text.isascii():  # 8-bit strings travel as literals, with a CHARSET
        parts = []
        for word in text.split(" "):
            if word.isascii():
                parts.append(word.encode())
            else:
                data = word.encode("utf-8")
                parts.append(b"{%d+}\r\n" % len(data) + data)
        wire = b"CHARSET UTF-8 " + b" ".join(parts)
    else:
        wire = text.encode()
    p.feed(b"a UID SEARCH " + wire + b"\r\n")
    ev = p.next_event()
    assert type(ev).__name__ == "Search", ev
    return ev


def imap_cond(text: str, *, now: int = NOW, max_uid: int = 10**6):
    cmd = parse_keys(text)

    def resolve(s):
        return s.resolve(max_uid).ranges

    return from_imap_keys(cmd.keys, uid_set=resolve, seq_set=resolve, now=now, charset=cmd.charset)


def day(d: date) -> int:
    return (d - date(1970, 1, 1)).days
