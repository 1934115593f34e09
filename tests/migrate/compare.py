"""What an IMAP client sees of a mailbox tree, to compare two servers (source and dualmail).

``snapshot(client, sep)`` -> {dualmail-style path: Box}; the same messages means equal
UIDVALIDITY, UIDNEXT, and UID -> (bytes, flags, INTERNALDATE, MODSEQ); flags compared
case-insensitively, without \\Recent (session state, RFC 3501 §2.3.2).
"""

from __future__ import annotations

import imaplib
from dataclasses import dataclass
from typing import Any


@dataclass
class Box:
    uidvalidity: int
    uidnext: int
    hms: int
    messages: dict[int, tuple[bytes, frozenset[str], int, int]]


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def norm_flags(flags: Any) -> frozenset[str]:
    return frozenset(_s(f).lower() for f in flags if _s(f).lower() != "\\recent")


def snapshot(client: Any, sep: str, *, bodies: bool = True) -> dict[str, Box]:
    client.normalise_times = False
    if getattr(client, "_dm_condstore", False) is False:
        if client._imap.state == "SELECTED":
            client.unselect_folder()
        client.enable("CONDSTORE")  # HIGHESTMODSEQ in every SELECT (RFC 7162 §3.1.8)
        client._dm_condstore = True
    out = {}
    for flags, _d, name in client.list_folders():
        if any(_s(f).lower() == "\\noselect" for f in flags):
            continue
        r = client.select_folder(name, readonly=True)
        uids = client.search(["ALL"])
        items = ["FLAGS", "INTERNALDATE", "MODSEQ"] + (["BODY.PEEK[]"] if bodies else [])
        msgs = {}
        if uids:
            for u, d in client.fetch(uids, items).items():
                msgs[u] = (bytes(d.get(b"BODY[]") or b""), norm_flags(d[b"FLAGS"]),
                           int(d[b"INTERNALDATE"].timestamp()), int(d[b"MODSEQ"][0]))
        path = "/".join(_s(name).split(sep))
        out[path] = Box(int(r[b"UIDVALIDITY"]), int(r[b"UIDNEXT"]), int(r.get(b"HIGHESTMODSEQ", 0)), msgs)
    return out


def diff(a: dict[str, Box], b: dict[str, Box], *, modseqs: bool = True) -> list[str]:
    """Every difference, readable (empty: the same); ``modseqs=False``: without
    HIGHESTMODSEQ and MODSEQ."""
    out = []
    for path in sorted(set(a) | set(b)):
        if path not in a or path not in b:
            out.append(f"{path}: only on {'dualmail' if path in b else 'the source'}")
            continue
        x, y = a[path], b[path]
        for what in ("uidvalidity", "uidnext", "hms")[:3 if modseqs else 2]:
            if getattr(x, what) != getattr(y, what):
                out.append(f"{path}: {what} {getattr(x, what)} != {getattr(y, what)}")
        if set(x.messages) != set(y.messages):
            out.append(f"{path}: UIDs differ: {sorted(set(x.messages) ^ set(y.messages))[:10]}")
        for u in sorted(set(x.messages) & set(y.messages)):
            mx, my = x.messages[u], y.messages[u]
            for i, what in enumerate(("bytes", "flags", "INTERNALDATE", "MODSEQ")[:4 if modseqs else 3]):
                if mx[i] != my[i]:
                    out.append(f"{path} UID {u}: {what} {str(mx[i])[:60]} != {str(my[i])[:60]}")
    return out


def qresync_select(host: str, port: int, user: str, password: str, mailbox: str,
                   uidvalidity: int, hms: int) -> tuple[list[Any], list[Any], int]:
    """SELECT mailbox (QRESYNC (uidvalidity hms)) (RFC 7162 §3.2.5) with a client that
    kept that state: (VANISHED responses, FETCH responses, HIGHESTMODSEQ)."""
    c = imaplib.IMAP4(host, port, timeout=30)
    try:
        c.login(user, password)
        typ, _ = c._simple_command("ENABLE", "QRESYNC")
        assert typ == "OK"
        c.untagged_responses.clear()
        quoted = '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if any(ord(ch) > 127 for ch in mailbox):
            raise ValueError("ASCII mailbox names only here")
        typ, data = c._simple_command("SELECT", quoted, f"(QRESYNC ({uidvalidity} {hms}))")
        assert typ == "OK", data
        vanished = list(c.untagged_responses.get("VANISHED", []))
        fetches = list(c.untagged_responses.get("FETCH", []))
        hms_now = 0
        for ok in c.untagged_responses.get("OK", []):
            t = ok.decode() if isinstance(ok, bytes) else str(ok)
            if t.startswith("[HIGHESTMODSEQ "):
                hms_now = int(t.split()[1].rstrip("]"))
        return vanished, fetches, hms_now
    finally:
        try:
            c.logout()
        except Exception:
            pass
