"""IMAP THREAD (RFC 5256 §3): ORDEREDSUBJECT and REFERENCES over a search result.

``thread(view, scope, items, algorithm)`` takes ``search`` results of a
``MailboxScope`` -- ``(uid, email)`` pairs -- and returns a list of ``ThreadNode``
trees whose ``msg`` is the UID (``None`` for a dummy parent, which RFC 5256 allows
only at the top: ``((3)(5))``).  The IMAP session maps UIDs to sequence numbers if
needed and serialises; ``format_threads`` gives the RFC 5256 §4 text for tests and
for a session that wants it.

Sent dates follow RFC 5256 §2.2 (Date field in UTC, else INTERNALDATE; ties by UID),
subjects are compared as base subjects folded by ``collate.sort_key``.  Everything is
read from the search records (``srch``): Message-ID, In-Reply-To, References,
subject -- no MIME parsing.

Imports no twisted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..store import codec
from ..store import keys as K
from .collate import sort_key
from .engine import MailboxScope, Scope, _Engine, _sent_date

__all__ = ["ALGORITHMS", "ThreadNode", "format_threads", "is_reply_or_forward", "thread"]

ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")


@dataclass(slots=True)
class ThreadNode:
    msg: int | None
    children: list[ThreadNode] = field(default_factory=list)


def format_threads(nodes: Iterable[ThreadNode]) -> str:
    """RFC 5256 §4 thread-list text, e.g. ``(2)(3 6 (4 23)(44 7 96))``."""
    return "".join("(" + _fmt(n) + ")" for n in nodes)


def _fmt(n: ThreadNode) -> str:
    if n.msg is None:
        return "".join("(" + _fmt(c) + ")" for c in n.children)
    if not n.children:
        return str(n.msg)
    if len(n.children) == 1:
        return f"{n.msg} {_fmt(n.children[0])}"
    return f"{n.msg} " + "".join("(" + _fmt(c) + ")" for c in n.children)


_BLOBS = r"(?:\[[^\[\]]*\] *)*"
_REFWD = re.compile(r"^ *" + _BLOBS + r"(?:re|fwd?) *(?:\[[^\[\]]*\] *)?:", re.I | re.A)
_FWD_HDR = re.compile(r"^ *" + _BLOBS + r"\[fwd:", re.I | re.A)


def is_reply_or_forward(subject: str) -> bool:
    """RFC 5256 §3 REFERENCES: base subject extraction removes a subj-refwd, a "(fwd)"
    trailer, or a [fwd: ...] wrapper."""
    s = " ".join(subject.split())
    if s.lower().endswith("(fwd)") or _REFWD.match(s):
        return True
    return bool(_FWD_HDR.match(s)) and s.endswith("]")


class _Msg:
    __slots__ = ("uid", "date", "subject", "reply", "mid", "refs")

    def __init__(self, uid: int, date: int, subject: str, reply: bool, mid: str, refs: list[str]) -> None:
        self.uid, self.date, self.subject, self.reply, self.mid, self.refs = uid, date, subject, reply, mid, refs


def _messages(view: Any, scope: Scope, items: Iterable[Any]) -> list[_Msg]:
    """What threading needs of each message, from its search record alone: the Email
    record is read only for a message without a Date (its INTERNALDATE is the sent date)
    or without a search record.  Subjects repeat within threads, so their sort key and
    reply test are computed once per distinct subject."""
    eng = _Engine(view, scope, None)
    in_mailbox = isinstance(scope, MailboxScope)
    keys: dict[str, str] = {}
    replies: dict[str, bool] = {}
    out = []
    for item in items:
        if in_mailbox:
            u, e = int(item[0]), int(item[1])
        else:
            u, e = 0, int(item)
        raw = view.kv.get("srch", K.email(view.a, e))
        if raw is not None:
            s = codec.loads(raw)
            d = None
        else:  # an Email stored before search records existed (or gone)
            d = eng.doc(item)
            if d is None:
                continue
            s = eng.srch(d)
        date = s.get("d")
        if date is None:
            if d is None:
                d = eng.doc(item)
                if d is None:
                    continue
            date = _sent_date(s, d.rec)
        refs = [_norm_id(x) for x in s.get("refs") or () if x] if s.get("refs") else []
        if not refs and s.get("irt"):
            refs = [_norm_id(s["irt"])]
        base = s.get("s") or ""
        key = keys.get(base)
        if key is None:
            key = keys[base] = sort_key(base)
        subj = s.get("subj") or ""
        reply = replies.get(subj)
        if reply is None:
            reply = replies[subj] = is_reply_or_forward(subj)
        out.append(_Msg(u if in_mailbox else e, int(date), key, reply, _norm_id(s.get("mid") or ""), refs))
    out.sort(key=lambda x: x.uid)
    return out


def _norm_id(mid: str) -> str:
    """RFC 5256: ``"a b"@x`` and ``a b@x`` are one Message ID (quoting removed)."""
    if not mid:
        return mid
    mid = mid.strip().strip("<>")
    if '"' in mid or "\\" in mid:
        mid = re.sub(r"\\(.)", r"\1", mid.replace('"', ""))
    return mid


def thread(view: Any, scope: Scope, items: Iterable[Any], algorithm: str) -> list[ThreadNode]:
    """THREAD ``algorithm`` (ORDEREDSUBJECT or REFERENCES) over search results."""
    msgs = _messages(view, scope, items)
    alg = algorithm.upper()
    if alg == "ORDEREDSUBJECT":
        return _ordered_subject(msgs)
    if alg == "REFERENCES":
        return _references(msgs)
    raise ValueError(f"unknown threading algorithm {algorithm!r}")


def _ordered_subject(msgs: list[_Msg]) -> list[ThreadNode]:
    groups: dict[str, list[_Msg]] = {}
    for m in sorted(msgs, key=lambda x: (x.subject, x.date, x.uid)):
        groups.setdefault(m.subject, []).append(m)
    roots = []
    for group in groups.values():
        first = group[0]
        roots.append((first.date, first.uid, ThreadNode(first.uid, [ThreadNode(x.uid) for x in group[1:]])))
    roots.sort(key=lambda x: (x[0], x[1]))
    return [n for _d, _u, n in roots]


class _C:
    """A REFERENCES container: a message or a dummy."""

    __slots__ = ("msg", "parent", "children")

    def __init__(self, msg: _Msg | None = None) -> None:
        self.msg = msg
        self.parent: _C | None = None
        self.children: list[_C] = []


def _is_descendant(a: _C, b: _C) -> bool:
    """Is ``a`` ``b`` or below it?"""
    n: _C | None = a
    while n is not None:
        if n is b:
            return True
        n = n.parent
    return False


def _link(parent: _C, child: _C) -> None:
    child.parent = parent
    parent.children.append(child)


def _unlink(child: _C) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
        child.parent = None


def _first_date(c: _C) -> tuple[int, int]:
    if c.msg is not None:
        return c.msg.date, c.msg.uid
    return _first_date(c.children[0]) if c.children else (0, 0)


def _sort_tree(cs: list[_C]) -> None:
    """RFC 5256 step 6: children first (youngest set first), then siblings by date."""
    for c in cs:
        if c.children:
            _sort_tree(c.children)
    if len(cs) > 1:
        cs.sort(key=_first_date)


def _references(msgs: list[_Msg]) -> list[ThreadNode]:
    table: dict[str, _C] = {}
    unique = 0
    # (1) link references
    for m in msgs:
        mid = m.mid
        if not mid or (mid in table and table[mid].msg is not None):
            unique += 1
            mid = f"\x00{unique}"  # a Message ID no real one can equal
        c = table.get(mid)
        if c is None:
            c = table[mid] = _C(m)
        else:
            c.msg = m
        chain = []
        for ref in m.refs:
            rc = table.get(ref)
            if rc is None:
                rc = table[ref] = _C()
            chain.append(rc)
        # (A) first reference is the parent of the second, ...
        for p, ch in zip(chain, chain[1:]):
            if ch.parent is None and p is not ch and not _is_descendant(p, ch):
                _link(p, ch)
        # (B) the last reference is the parent of this message
        if c.parent is not None:
            _unlink(c)
        if chain:
            last = chain[-1]
            if last is not c and not _is_descendant(last, c):
                _link(last, c)
    # (2) the root set
    roots = [c for c in table.values() if c.parent is None]
    # (3) prune dummies
    roots = _prune(roots, True)
    # (4) sort the root set by sent date (a dummy by its first child)
    for c in roots:
        if c.msg is None:
            c.children.sort(key=_first_date)
    roots.sort(key=_first_date)
    # (5) gather roots with the same base subject
    roots = _merge_subjects(roots)
    # (6) sort every set of siblings
    _sort_tree(roots)
    return [_node(c) for c in roots]


def _prune(cs: list[_C], at_root: bool) -> list[_C]:
    out: list[_C] = []
    for c in cs:
        c.children = _prune(c.children, False)
        for ch in c.children:
            ch.parent = c
        if c.msg is None:
            if not c.children:
                continue
            if not at_root or len(c.children) == 1:
                for ch in c.children:
                    ch.parent = None
                out.extend(c.children)
                continue
        out.append(c)
    return out


def _thread_subject(c: _C) -> str:
    m = c.msg if c.msg is not None else (c.children[0].msg if c.children else None)
    return m.subject if m is not None else ""


def _merge_subjects(roots: list[_C]) -> list[_C]:
    subjects: dict[str, _C] = {}
    for c in roots:  # (B) one container per base subject
        s = _thread_subject(c)
        if not s:
            continue
        t = subjects.get(s)
        if t is None:
            subjects[s] = c
        elif t.msg is not None and (c.msg is None or (t.msg.reply and not (c.msg.reply))):
            subjects[s] = c
    # the root list with removals as holes and each container's place known: no
    # list.remove/index, which made this quadratic in the number of threads
    out: list[_C | None] = list(roots)
    place = {id(c): i for i, c in enumerate(roots)}

    def drop(c: _C) -> None:
        out[place.pop(id(c))] = None

    for c in roots:  # (C) merge
        s = _thread_subject(c)
        if not s:
            continue
        t = subjects[s]
        if t is c:
            continue
        if t.msg is None and c.msg is None:
            for ch in c.children:
                _link(t, ch)
            c.children = []
            drop(c)
        elif t.msg is None:
            drop(c)
            _link(t, c)
        elif c.msg is not None and c.msg.reply and not t.msg.reply:
            drop(c)
            _link(t, c)
        else:
            d = _C()
            i = place.pop(id(t))
            out[i] = d
            place[id(d)] = i
            drop(c)
            _link(d, t)
            _link(d, c)
            subjects[s] = d
    return [c for c in out if c is not None]


def _node(c: _C) -> ThreadNode:
    return ThreadNode(c.msg.uid if c.msg is not None else None, [_node(x) for x in c.children])
