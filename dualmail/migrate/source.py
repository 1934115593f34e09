"""The source IMAP server, read-only, through imapclient (docs/dependencies.md).

Every read of a message is ``BODY.PEEK[]`` (RFC 3501 §6.4.5: \\Seen is not set on the
source), every SELECT is ``EXAMINE`` (read-only).  Ranges are asked for as UID lists
found by ``UID SEARCH`` (``UID n:*``; ``MODSEQ n`` under CONDSTORE, RFC 7162 §3.1.5),
so a rerun's cost follows what changed, not the mailbox size.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator

from .names import SourceURL, source_path

_UID = re.compile(rb"UID (\d+)", re.I)

FETCH_META = ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]
META_CHUNK = 2000
BODY_CHUNK = 200
BODY_BYTES = 8 << 20


@dataclass(frozen=True, slots=True)
class SourceMailbox:
    name: str  # as the source names it (decoded from modified UTF-7)
    path: tuple[str, ...]  # dualmail path components
    flags: tuple[str, ...]  # LIST attributes, e.g. \\Sent, \\Noselect
    subscribed: bool

    @property
    def selectable(self) -> bool:
        low = {f.lower() for f in self.flags}
        return "\\noselect" not in low and "\\nonexistent" not in low


@dataclass(frozen=True, slots=True)
class Status:
    uidvalidity: int
    uidnext: int
    messages: int
    hms: int  # HIGHESTMODSEQ; 0 without CONDSTORE


@dataclass(frozen=True, slots=True)
class Meta:
    uid: int
    flags: tuple[str, ...]
    received: int  # INTERNALDATE, epoch seconds
    size: int
    modseq: int  # 0 without CONDSTORE


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _epoch(v: Any) -> int:
    if isinstance(v, datetime):
        return int(v.timestamp())
    return 0


class Source:
    """One logged-in connection to the source server."""

    def __init__(self, url: SourceURL, password: str, *, starttls: bool = False,
                 ssl_context: ssl.SSLContext | None = None, timeout: float = 120) -> None:
        import imapclient

        ctx = ssl_context or ssl.create_default_context()
        self.c = imapclient.IMAPClient(url.host, url.port, ssl=url.tls, ssl_context=ctx, timeout=timeout)
        self.c.normalise_times = False  # INTERNALDATE with its zone: exact epoch seconds
        if starttls:
            self.c.starttls(ctx)
        self.c.login(url.login, password)
        caps = {_s(c).upper() for c in self.c.capabilities()}
        self.condstore = "CONDSTORE" in caps or "QRESYNC" in caps
        self.qresync = "QRESYNC" in caps and "ENABLE" in caps
        if self.qresync:
            self.c.enable("QRESYNC")  # implies CONDSTORE (RFC 7162 §3.2.3)
        elif self.condstore and "ENABLE" in caps:
            self.c.enable("CONDSTORE")
        self._selected: str | None = None

    def close(self) -> None:
        try:
            self.c.logout()
        except Exception:
            pass

    def mailboxes(self) -> list[SourceMailbox]:
        subs = {name for _f, _d, name in self.c.list_sub_folders()}
        out = []
        for flags, delim, name in self.c.list_folders():
            name = _s(name)
            d = _s(delim) if delim else None
            out.append(SourceMailbox(name, tuple(source_path(name, d)), tuple(_s(f) for f in flags),
                                     name in subs or name.upper() == "INBOX"))
        out.sort(key=lambda b: (len(b.path), b.path))
        return out

    def status(self, name: str) -> Status:
        items = [b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES"] + ([b"HIGHESTMODSEQ"] if self.condstore else [])
        st = self.c.folder_status(name, items)
        return Status(int(st[b"UIDVALIDITY"]), int(st[b"UIDNEXT"]), int(st[b"MESSAGES"]),
                      int(st.get(b"HIGHESTMODSEQ", 0) or 0))

    def examine(self, name: str) -> Status:
        r = self.c.select_folder(name, readonly=True)
        self._selected = name
        return Status(int(r[b"UIDVALIDITY"]), int(r.get(b"UIDNEXT", 0) or 0), int(r[b"EXISTS"]),
                      int(r.get(b"HIGHESTMODSEQ", 0) or 0))

    def uids_from(self, lo: int) -> list[int]:
        """UIDs >= lo (``UID lo:*`` also names the last message when lo is above it)."""
        return sorted(u for u in self.c.search(["UID", f"{lo}:*"]) if u >= lo)

    def all_uids(self) -> list[int]:
        return sorted(self.c.search(["ALL"]))

    def changed_since(self, modseq: int) -> list[int]:
        """UIDs whose MODSEQ is above ``modseq`` (CONDSTORE SEARCH MODSEQ)."""
        return sorted(self.c.search(["MODSEQ", str(modseq + 1)]))

    def changes_since(self, modseq: int) -> tuple[list[Meta], list[int]]:
        """QRESYNC (RFC 7162 §3.2.6): ``UID FETCH 1:* (FLAGS) (CHANGEDSINCE m VANISHED)``
        in the selected mailbox: the messages changed since ``modseq`` (flags, MODSEQ)
        and the UIDs expunged since; O(changes) on the source too."""
        from imapclient.response_parser import parse_fetch_response

        imap = self.c._imap
        imap.untagged_responses.pop("VANISHED", None)
        typ, data = imap.uid("FETCH", "1:*", f"(FLAGS) (CHANGEDSINCE {int(modseq)} VANISHED)")
        if typ != "OK":
            raise OSError(f"FETCH CHANGEDSINCE failed: {data!r}")
        vanished: list[int] = []
        for v in imap.untagged_responses.pop("VANISHED", []) or []:
            text = _s(v).replace("(EARLIER)", "").strip()
            vanished += _uid_set(text)
        metas = []
        items = [d for d in data if d is not None]
        for u, d in parse_fetch_response(items, False, True).items():
            if b"FLAGS" not in d:
                continue
            ms = d.get(b"MODSEQ") or (0,)
            metas.append(Meta(int(u), tuple(_s(f) for f in d[b"FLAGS"]), 0, 0, int(ms[0])))
        metas.sort(key=lambda x: x.uid)
        return metas, sorted(set(vanished))

    def meta(self, uids: list[int], *, with_date: bool = True) -> Iterator[Meta]:
        items = (FETCH_META if with_date else ["FLAGS"]) + (["MODSEQ"] if self.condstore else [])
        for i in range(0, len(uids), META_CHUNK):
            chunk = uids[i:i + META_CHUNK]
            resp = self.c.fetch(chunk, items)
            for u in chunk:
                d = resp.get(u)
                if d is None:
                    continue  # expunged meanwhile
                ms = d.get(b"MODSEQ") or (0,)
                yield Meta(u, tuple(_s(f) for f in d.get(b"FLAGS", ())), _epoch(d.get(b"INTERNALDATE")),
                           int(d.get(b"RFC822.SIZE", 0) or 0), int(ms[0]))

    def bodies(self, metas: list[Meta]) -> Iterator[list[tuple[Meta, bytes]]]:
        """The messages' exact bytes, in groups of at most BODY_CHUNK / BODY_BYTES."""
        group: list[Meta] = []
        size = 0
        for m in metas:
            if group and (len(group) >= BODY_CHUNK or size + m.size > BODY_BYTES):
                yield self._bodies(group)
                group, size = [], 0
            group.append(m)
            size += m.size
        if group:
            yield self._bodies(group)

    def _bodies(self, group: list[Meta]) -> list[tuple[Meta, bytes]]:
        """One ``UID FETCH uids (BODY.PEEK[])``, read with imaplib directly: the literal
        comes back as bytes as it is, and imapclient's token-by-token parsing (several
        times the cost of the read) is not needed for one literal per message."""
        imap = self.c._imap
        uidset = ",".join(str(m.uid) for m in group)
        typ, data = imap.uid("FETCH", uidset, "(BODY.PEEK[])")
        if typ != "OK":
            raise OSError(f"FETCH failed: {data!r}")
        got: dict[int, bytes] = {}
        for item in data:
            if not isinstance(item, tuple) or len(item) != 2:
                continue  # the closing ")" or an unsolicited FETCH (FLAGS) without a literal
            head, raw = item
            found = _UID.search(head)
            if found is not None and b"BODY[]" in head.upper():
                got[int(found.group(1))] = bytes(raw)
        # expunged meanwhile: left out, the next run sees it gone
        return [(m, got[m.uid]) for m in group if m.uid in got]


def _uid_set(text: str) -> list[int]:
    """``1:3,7`` -> [1, 2, 3, 7] (a VANISHED UID set; ranges bounded by the mailbox)."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition(":")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            continue
        a, b = int(lo), int(hi or lo)
        if a > b:
            a, b = b, a
        if b - a > 10_000_000:
            raise OSError(f"VANISHED range too large: {part}")
        out.extend(range(a, b + 1))
    return out
