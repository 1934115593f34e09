"""The differential comparison of dualmail against Dovecot: corpus, loading, diffing.

Everything here is blocking (the test runs it in a thread while the reactor serves
dualmail).  A difference is a ``Diff(subject, item, dovecot, dualmail)``: ``subject`` is
a message name (``cpython/msg_07.txt``) or ``query``, ``item`` the FETCH item, SEARCH or
SORT command it came from.
"""

from __future__ import annotations

import mailbox
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from imap_raw import Client, IMAPError

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
FLAG_SETS: list[tuple[str, ...]] = [
    (),
    ("\\Seen",),
    ("\\Seen", "\\Flagged"),
    ("\\Answered", "$Forwarded"),
    ("\\Draft",),
    ("$Junk", "Custom"),
    ("\\Seen", "$MDNSent", "NonJunk", "$label1"),
    ("\\Deleted", "\\Seen"),
    ("$NotJunk", "$MailFlagBit0", "custom"),
]
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


@dataclass(frozen=True)
class Msg:
    name: str
    raw: bytes
    flags: tuple[str, ...]
    internaldate: str  # IMAP date-time


@dataclass(frozen=True)
class Diff:
    subject: str
    item: str
    dovecot: Any
    dualmail: Any

    def __str__(self) -> str:
        return f"{self.subject} {self.item}:\n  dovecot:  {_short(self.dovecot)}\n  dualmail: {_short(self.dualmail)}"


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) < 600 else s[:600] + "..."


def crlf(data: bytes) -> bytes:
    """What an IMAP client sends: every line ends with CRLF."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _cpython_data() -> Path | None:
    try:
        import test.test_email as t
    except ImportError:
        return None
    d = Path(t.__file__).parent / "data"
    return d if d.is_dir() else None


def corpus_sources() -> list[tuple[str, bytes]]:
    """(name, raw) of every corpus message, in a fixed order."""
    out: list[tuple[str, bytes]] = []
    cp = _cpython_data()
    if cp is not None:
        for p in sorted(cp.glob("msg_*.txt")):
            out.append(("cpython/" + p.name, p.read_bytes()))
    elif (HERE / "cpython").is_dir():  # pragma: no cover - a Python without its tests
        for p in sorted((HERE / "cpython").glob("msg_*.txt")):
            out.append(("cpython/" + p.name, p.read_bytes()))
    for p in sorted((ROOT / "tests" / "data" / "mime").glob("*.eml")):
        out.append(("mime/" + p.name, p.read_bytes()))
    for p in sorted((HERE / "data").glob("*.eml")):
        out.append(("dovecot/" + p.name, p.read_bytes()))
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import mailgen
    finally:
        sys.path.remove(str(ROOT / "bench"))
    for i, raw in enumerate(mailgen.generate(12, seed=11)):
        out.append((f"mailgen/{i:02d}", raw))
    return out


def corpus() -> list[Msg]:
    msgs = []
    for i, (name, raw) in enumerate(corpus_sources()):
        day, month, year = 1 + (i * 7) % 28, MONTHS[(i * 5) % 12], 2019 + i % 3
        date = f"{day:02d}-{month}-{year} 12:{i % 60:02d}:00 +0000"
        msgs.append(Msg(name, crlf(raw), FLAG_SETS[i % len(FLAG_SETS)], date))
    return msgs


def login(port: int, user: str, password: str) -> Client:
    c = Client(port)
    c.login(user, password)
    return c


def append_all(c: Client, msgs: Iterable[Msg], mailbox: str = "INBOX") -> None:
    for m in msgs:
        c.run(f'APPEND "{mailbox}" ({" ".join(m.flags)}) "{m.internaldate}" {{}}', m.raw)


# -- BODYSTRUCTURE -------------------------------------------------------------------


def _low(v: Any) -> Any:
    return v.lower() if isinstance(v, bytes) else v


def _params(p: Any) -> Any:
    if not isinstance(p, list):
        return p
    return [_low(x) if i % 2 == 0 else x for i, x in enumerate(p)]


def _disp(d: Any) -> Any:
    if not isinstance(d, list) or not d:
        return d
    return [_low(d[0]), _params(d[1]) if len(d) > 1 else None, *d[2:]]


def norm_body(b: Any) -> Any:
    """Case-fold what RFC 9051 says is case-insensitive (type, subtype, parameter
    names, encoding, disposition type); parameter values and the rest stay exact."""
    if not isinstance(b, list) or not b:
        return b
    if isinstance(b[0], list):
        n = 0
        while n < len(b) and isinstance(b[n], list):
            n += 1
        kids = [norm_body(x) for x in b[:n]]
        rest = list(b[n:])
        if rest:
            rest[0] = _low(rest[0])
        if len(rest) > 1:
            rest[1] = _params(rest[1])
        if len(rest) > 2:
            rest[2] = _disp(rest[2])
        return kids + rest
    out = list(b)
    out[0], out[1] = _low(out[0]), _low(out[1])
    out[2] = _params(out[2])
    if len(out) > 5:
        out[5] = _low(out[5])
    is_msg = out[0] == b"message" and out[1] in (b"rfc822", b"global") and len(out) > 9
    if is_msg:
        out[8] = norm_body(out[8])
        ext = 10
    elif out[0] == b"text":
        ext = 8
    else:
        ext = 7
    if len(out) > ext + 1:
        out[ext + 1] = _disp(out[ext + 1])
    return out


def sections(body: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(section, kind) for every part of a BODYSTRUCTURE: kind is leaf|multipart|message."""
    out: list[tuple[str, str]] = []
    if not isinstance(body, list) or not body:
        return out
    if isinstance(body[0], list):
        if prefix:
            out.append((prefix, "multipart"))
        i = 0
        while i < len(body) and isinstance(body[i], list):
            sec = (prefix + "." if prefix else "") + str(i + 1)
            out += _single_or_multi(body[i], sec)
            i += 1
        return out
    return _single_or_multi(body, prefix or "1")


def _single_or_multi(body: Any, sec: str) -> list[tuple[str, str]]:
    if isinstance(body[0], list):
        return sections(body, sec)
    t, st = _low(body[0]), _low(body[1])
    if t == b"message" and st in (b"rfc822", b"global") and len(body) > 8 and isinstance(body[8], list):
        inner = body[8]
        out = [(sec, "message")]
        if isinstance(inner[0], list):
            out += _children(inner, sec)
        else:
            out += _single_or_multi(inner, sec + ".1")
        return out
    return [(sec, "leaf")]


def _children(multi: Any, sec: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(multi) and isinstance(multi[i], list):
        out += _single_or_multi(multi[i], f"{sec}.{i + 1}")
        i += 1
    return out


# -- comparing -----------------------------------------------------------------------


def _key(item: str) -> str:
    """The response item name of a FETCH attribute: ``BODY.PEEK[1]`` -> ``BODY[1]``."""
    return " ".join(item.upper().replace(".PEEK[", "[").replace('"', "").split())


def _many(c: Client, seq: int, items: list[str], mailbox: str) -> dict[str, Any]:
    """Several FETCH items in one command; item by item if that fails or disconnects."""
    if not items:
        return {}
    try:
        reply = c.run(f"FETCH {seq} ({' '.join(items)})", ok=False)
    except IMAPError as e:
        if "connection closed" not in str(e):
            raise
        c.reconnect()
        c.run(f'EXAMINE "{mailbox}"')
        reply = None
    if reply is None or reply.status != "OK" or len(items) == 1:
        if len(items) == 1:
            if reply is None:
                return {items[0]: "DISCONNECTED"}
            if reply.status != "OK":
                return {items[0]: reply.status}
        else:
            out: dict[str, Any] = {}
            for i in items:
                out.update(_many(c, seq, [i], mailbox))
            return out
    got: dict[str, Any] = {}
    for r in reply.untagged:
        if len(r) >= 4 and str(r[2]).upper() == "FETCH":
            pairs = r[3]
            for i in range(0, len(pairs) - 1, 2):
                got[_key(str(pairs[i]))] = pairs[i + 1]
    return {i: got.get(_key(i)) for i in items}


def _flags(v: Any) -> Any:
    if not isinstance(v, list):
        return v
    return sorted(x for x in v if str(x).lower() != "\\recent")


HEADER_FIELDS = "(FROM TO CC SUBJECT DATE MESSAGE-ID CONTENT-TYPE X-EMPTY X-NOT-THERE)"


def compare_messages(dc: Client, dm: Client, msgs: list[Msg], mailbox: str = "INBOX",
                     what: tuple[str, ...] = ("all",)) -> list[Diff]:
    dc.run(f'EXAMINE "{mailbox}"')
    dm.run(f'EXAMINE "{mailbox}"')
    diffs: list[Diff] = []
    for seq, m in enumerate(msgs, 1):
        a = dc.fetch(str(seq), "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY)")[seq]
        b = dm.fetch(str(seq), "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY)")[seq]
        a["FLAGS"], b["FLAGS"] = _flags(a.get("FLAGS")), _flags(b.get("FLAGS"))
        for key in ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"):
            if a.get(key) != b.get(key):
                diffs.append(Diff(m.name, key, a.get(key), b.get(key)))
        for key in ("BODYSTRUCTURE", "BODY"):
            if norm_body(a.get(key)) != norm_body(b.get(key)):
                diffs.append(Diff(m.name, key, a.get(key), b.get(key)))
        items = ["BODY.PEEK[]", "BODY.PEEK[HEADER]", "BODY.PEEK[TEXT]",
                 f"BODY.PEEK[HEADER.FIELDS {HEADER_FIELDS}]",
                 "BODY.PEEK[HEADER.FIELDS.NOT (RECEIVED CONTENT-TYPE)]"]
        secs = dict(sections(a.get("BODYSTRUCTURE")))
        for s, kind in sections(b.get("BODYSTRUCTURE")):
            secs.setdefault(s, kind)
        for s, kind in secs.items():
            items += [f"BODY.PEEK[{s}]", f"BODY.PEEK[{s}.MIME]"]
            if kind == "leaf":
                items += [f"BINARY.PEEK[{s}]", f"BINARY.SIZE[{s}]"]
            if kind == "message":
                items += [f"BODY.PEEK[{s}.HEADER]", f"BODY.PEEK[{s}.TEXT]"]
        binary = [i for i in items if i.startswith("BINARY")]
        plain = [i for i in items if not i.startswith("BINARY")]
        va, vb = _many(dc, seq, plain, mailbox), _many(dm, seq, plain, mailbox)
        va.update(_many(dc, seq, binary, mailbox))
        vb.update(_many(dm, seq, binary, mailbox))
        for item in items:
            if va.get(item) != vb.get(item):
                diffs.append(Diff(m.name, item, va.get(item), vb.get(item)))
    return diffs


def compare_queries(dc: Client, dm: Client, queries: Iterable[tuple[str, tuple[bytes, ...]]],
                    mailbox: str = "INBOX") -> list[Diff]:
    dc.run(f'EXAMINE "{mailbox}"')
    dm.run(f'EXAMINE "{mailbox}"')
    diffs: list[Diff] = []
    for command, literals in queries:
        keyword = command.split()[0].upper()
        ra = dc.run(command, *literals, ok=False)
        rb = dm.run(command, *literals, ok=False)
        va, vb = _numbers(ra, keyword), _numbers(rb, keyword)
        if keyword == "SEARCH" and isinstance(va, list) and isinstance(vb, list):
            va, vb = sorted(va), sorted(vb)
        if va != vb:
            diffs.append(Diff("query", command, va, vb))
    return diffs


def _numbers(reply: Any, keyword: str) -> Any:
    if reply.status != "OK":
        return reply.status
    out: list[int] = []
    for r in reply.untagged:
        if len(r) >= 2 and str(r[1]).upper() == keyword:
            out += [int(x) for x in r[2:] if isinstance(x, str) and x.isdigit()]
    return out


# -- mbox ------------------------------------------------------------------------------


def mbox_safe(m: Msg) -> bool:
    """No body line an mbox writer would have to escape (the escaping is not the point)."""
    return not any(line.lstrip(b">").startswith(b"From ") for line in m.raw.split(b"\r\n"))


def python_mbox(path: str, msgs: list[Msg]) -> None:
    """An mbox written by Python's ``mailbox`` module with its Status/X-Status flags."""
    box = mailbox.mbox(path, create=True)
    box.lock()
    try:
        for m in msgs:
            mm = mailbox.mboxMessage(m.raw.replace(b"\r\n", b"\n"))
            letters = "O"
            letters += "R" if "\\Seen" in m.flags else ""
            letters += "A" if "\\Answered" in m.flags else ""
            letters += "F" if "\\Flagged" in m.flags else ""
            letters += "D" if "\\Deleted" in m.flags else ""
            mm.set_flags(letters)
            mm.set_from("MAILER-DAEMON", _struct_time(m.internaldate))
            box.add(mm)
        box.flush()
    finally:
        box.unlock()
        box.close()


def _struct_time(internaldate: str) -> time.struct_time:
    return time.strptime(internaldate[:20], "%d-%b-%Y %H:%M:%S")


def _asctime(internaldate: str) -> str:
    return time.asctime(_struct_time(internaldate))


def mutt_mbox(msgs: list[Msg]) -> bytes:
    """A mutt/Dovecot-style mbox: Status, X-Status, X-Keywords, X-UID, Content-Length,
    X-IMAPbase on the first message (the keyword list Dovecot reads)."""
    out = []
    # The keyword list in the order of first use, as Dovecot writes it.
    keywords = list(dict.fromkeys(f for m in msgs for f in m.flags if not f.startswith("\\")))
    for i, m in enumerate(msgs):
        body = m.raw.replace(b"\r\n", b"\n")
        head, sep, text = body.partition(b"\n\n")
        if not sep:
            head, text = body.rstrip(b"\n"), b""
        meta = []
        if i == 0:
            meta.append(b"X-IMAPbase: 1234567890 %d %s" % (len(msgs) + 1, " ".join(keywords).encode()))
        status = b"R" if "\\Seen" in m.flags else b""
        meta.append(b"Status: " + status + b"O")
        xs = b"".join(letter for flag, letter in (("\\Answered", b"A"), ("\\Flagged", b"F"),
                                                  ("\\Deleted", b"D"), ("\\Draft", b"T")) if flag in m.flags)
        if xs:
            meta.append(b"X-Status: " + xs)
        kws = [f for f in m.flags if not f.startswith("\\")]
        meta.append(b"X-Keywords: " + " ".join(kws).encode())
        meta.append(b"Content-Length: %d" % len(text))
        meta.append(b"X-UID: %d" % (i + 1))
        out.append(b"From MAILER-DAEMON " + _asctime(m.internaldate).encode() + b"\n" + head + b"\n"
                   + b"\n".join(meta) + b"\n\n" + text + (b"" if text.endswith(b"\n") else b"\n") + b"\n")
    return b"".join(out)
