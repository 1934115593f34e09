"""The one query engine: search, sort and collapse for IMAP and JMAP alike.

``search(view, scope, cond)`` answers a condition tree (``query``) over a scope:

* ``MailboxScope(m)`` -- IMAP: every membership of mailbox ``m``, ``\\Deleted`` ones
  included; results are ``(uid, email)`` pairs by ascending UID;
* ``JMAP`` (``AccountScope()``) -- the account's JMAP-visible Emails (CONTRACT §2);
  results are email numbers, ascending.

Plan: the planner (``_plan``) derives a superset of the matching Emails from the
cheapest indexes -- an Email or Thread id, the receivedAt indexes (``recv``/``recvall``:
JMAP-visible memberships, so also used for ``InMailbox``), the full-text index
(``fts``) for text conditions -- and a UID range restriction from ``UidIn`` in IMAP
scope.  Every candidate is then checked by the compiled predicate, cheapest tests first:
the Email record (keywords, memberships, size, dates), then the compact search record
(``srch``: decoded From/To/Cc/Bcc/Subject, first addresses, base subject, sentAt), then
the thread, and last the stored decoded text (``text``: one zlib block per Email).
No MIME is parsed at query time.  Text matching is exact: ``fold(value)`` is a
substring of the folded text (``collate``), whatever the index says.

``sort(view, scope, items, keys)`` orders search results (RFC 5256 SORT keys and RFC
8621 §4.4.2 sorts, ``query.SortKey``); ties fall back to ascending UID (IMAP: "sequence
number", RFC 5256 §3) or ascending Email number (JMAP: a stable order).
``collapse_threads`` keeps the first Email of each Thread (RFC 8621 §4.4.3).

Imports no twisted.
"""

from __future__ import annotations

import bisect
from itertools import islice, repeat
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Union

from ..mime.addresses import Group, Mailbox, parse_address_list
from ..store import codec, keys as K
from ..store.kv import prefix_end
from ..store.txn import SEARCH_FIELDS, search_record, visible
from . import fts
from .collate import fold, sort_key
from .query import (
    And, Contains, Cond, Context, Deleted, EmailId, HasAttachment, Header, InMailbox,
    InMailboxOtherThan, Keyword, ModSeq, Not, Or, Received, Recent, Saved, SentDay, Size, SortKey,
    ThreadId, ThreadKeyword, UidIn,
)

__all__ = ["JMAP", "AccountScope", "MailboxScope", "Page", "Scope", "collapse_threads", "query", "query_page",
           "search", "sort"]


@dataclass(frozen=True, slots=True)
class MailboxScope:
    """IMAP: all memberships of one mailbox, ``\\Deleted`` included."""

    mailbox: int


@dataclass(frozen=True, slots=True)
class AccountScope:
    """JMAP: the account's JMAP-visible Emails."""


JMAP = AccountScope()
Scope = Union[MailboxScope, AccountScope]
_NO_CONTEXT = Context()
# Stop narrowing an AND by further indexes once this few candidates remain.
_NARROW_ENOUGH = 500


# Candidates whose records are read in one batch (``get_many``: one round trip on a
# networked engine); their search records and texts are read per chunk too, when the
# first of them needs one.
_CHUNK = 200


class _Doc:
    """One candidate: its record and, on demand, its search record and folded text."""

    __slots__ = ("e", "uid", "rec", "srch", "text", "folded", "lines", "chunk")

    def __init__(self, e: int, uid: int, rec: dict[str, Any], chunk: list[_Doc] | None = None) -> None:
        self.e = e
        self.uid = uid
        self.rec = rec
        self.srch: dict[str, Any] | None = None
        self.text: tuple[str, str] | None = None
        self.folded: dict[str, str] = {}
        self.lines: list[tuple[str, str]] | None = None
        self.chunk = chunk  # the docs read in one batch with this one (None: alone)


Pred = Callable[[_Doc], bool]


class _Engine:
    def __init__(self, view: Any, scope: Scope, context: Context | None) -> None:
        self.v = view
        self.a = view.a
        self.scope = scope
        self.m = scope.mailbox if isinstance(scope, MailboxScope) else None
        self.mk = str(self.m) if self.m is not None else None
        self.ctx = context or _NO_CONTEXT
        self._thread_kw: dict[int, list[list[str]]] = {}
        self.want_srch = False  # a predicate reads search records: read them with the Emails
        self._took_mailbox = False  # the mailbox record went with a full-text first look

    # -- lazily loaded data --------------------------------------------------------

    def srch(self, d: _Doc) -> dict[str, Any]:
        if d.srch is None:
            todo = [x for x in (d.chunk or [d]) if x.srch is None]
            for x, raw in zip(todo, self.v.kv.get_many("srch", [K.email(self.a, x.e) for x in todo])):
                if raw is not None:
                    x.srch = codec.loads(raw)
            if d.srch is None:  # an Email stored before search records existed
                summary = dict(self.v.summary(d.e) or {})
                summary["header_text"] = self.text(d)[0]
                d.srch = search_record(summary)
        assert d.srch is not None
        return d.srch

    def text(self, d: _Doc) -> tuple[str, str]:
        if d.text is None:
            todo = [x for x in (d.chunk or [d]) if x.text is None]
            for x, t in zip(todo, self.v.texts([x.e for x in todo])):
                x.text = t
        assert d.text is not None
        return d.text

    def _docs(self, items: Iterable[tuple[int, int]]) -> Iterator[_Doc]:
        """The docs of (e, uid) ``items`` whose records exist, records read per chunk."""
        it = iter(items)
        while part := list(islice(it, _CHUNK)):
            chunk: list[_Doc] = []
            es = [e for e, _u in part]
            if self.want_srch:
                recs, srchs = self.v.emails_with(es, "srch")
            else:
                recs, srchs = self.v.emails(es), repeat(None)
            for (e, u), rec, raw in zip(part, recs, srchs):
                if rec is not None:
                    d = _Doc(e, u, rec, chunk)
                    if raw is not None:
                        d.srch = codec.loads(raw)
                    chunk.append(d)
            yield from chunk

    def folded(self, d: _Doc, part: str) -> str:
        """Folded "header"/"body" text or folded field ("from", "subject", ...)."""
        f = d.folded.get(part)
        if f is None:
            if part == "header":
                f = fold(self.text(d)[0])
            elif part == "body":
                f = fold(self.text(d)[1])
            elif part.startswith("addr:"):
                f = fold(_address_text(self.srch(d)["h"].get(part[5:], "")))
            else:
                f = fold(self.srch(d)["h"].get(part, ""))
            d.folded[part] = f
        return f

    def header_lines(self, d: _Doc) -> list[tuple[str, str]]:
        if d.lines is None:
            out = []
            for line in self.text(d)[0].split("\n"):
                name, sep, value = line.partition(":")
                if sep:
                    out.append((name.strip().lower(), value.strip(" ")))
            d.lines = out
        return d.lines

    def thread_keywords(self, t: int) -> list[list[str]]:
        kws = self._thread_kw.get(t)
        if kws is None:
            kws = []
            th = self.v.thread(t) or {"emails": []}
            for _r, e, vis in th["emails"]:
                if vis:
                    rec = self.v.email(e)
                    if rec is not None:
                        kws.append(rec["kw"])
            self._thread_kw[t] = kws
        return kws

    # -- predicates ------------------------------------------------------------------

    def compile(self, c: Cond) -> Pred:
        if isinstance(c, And):
            parts = [self.compile(x) for x in sorted(c.conds, key=_cost)]
            if not parts:
                return lambda d: True
            if len(parts) == 1:
                return parts[0]
            return lambda d: all(p(d) for p in parts)
        if isinstance(c, Or):
            parts = [self.compile(x) for x in sorted(c.conds, key=_cost)]
            if not parts:
                return lambda d: False
            return lambda d: any(p(d) for p in parts)
        if isinstance(c, Not):
            inner = self.compile(c.cond)
            return lambda d: not inner(d)
        return self._leaf(c)

    def _leaf(self, c: Cond) -> Pred:  # noqa: C901 - one branch per leaf type
        mk = self.mk
        if isinstance(c, Keyword):
            k = c.keyword.lower()
            return lambda d: k in d.rec["kw"]
        if isinstance(c, Deleted):
            if mk is None:
                return lambda d: False
            return lambda d: bool(d.rec["mbx"][mk][1])
        if isinstance(c, Recent):
            if mk is None:
                return lambda d: False
            recent = self.ctx.recent
            return lambda d: d.uid in recent
        if isinstance(c, Received):
            lo, hi = _bounds(c.lo, c.hi)
            return lambda d: lo <= int(d.rec["recv"]) < hi
        if isinstance(c, Size):
            lo, hi = _bounds(c.lo, c.hi)
            return lambda d: lo <= int(d.rec["size"]) < hi
        if isinstance(c, Saved):
            if self.m is None:
                return lambda d: False
            lo, hi = _bounds(c.lo, c.hi)
            m, view = self.m, self.v

            def saved(d: _Doc) -> bool:
                when = view.save_date(m, d.uid)
                return lo <= (int(d.rec["recv"]) if when is None else when) < hi
            return saved
        if isinstance(c, SentDay):
            lo, hi = _bounds(c.lo, c.hi)
            self.want_srch = True

            def sent_day(d: _Doc) -> bool:
                return lo <= _sent_day(self.srch(d), d.rec) < hi
            return sent_day
        if isinstance(c, UidIn):
            if mk is None:
                return lambda d: False
            ranges = c.ranges
            return lambda d: _in_ranges(ranges, d.uid)
        if isinstance(c, InMailbox):
            key = str(c.mailbox)
            return lambda d: key in d.rec["mbx"] and not d.rec["mbx"][key][1]
        if isinstance(c, InMailboxOtherThan):
            others = frozenset(str(m) for m in c.mailboxes)
            return lambda d: any(m not in others and not v[1] for m, v in d.rec["mbx"].items())
        if isinstance(c, ModSeq):
            n = c.modseq
            if mk is None:
                return lambda d: int(d.rec.get("modseq", 0)) >= n
            return lambda d: int(d.rec["mbx"][mk][2]) >= n
        if isinstance(c, EmailId):
            e = c.email
            return lambda d: d.e == e
        if isinstance(c, ThreadId):
            t = c.thread
            return lambda d: int(d.rec["thread"]) == t
        if isinstance(c, HasAttachment):
            want = bool(c.value)
            self.want_srch = True
            return lambda d: bool(self.srch(d).get("att")) == want
        if isinstance(c, ThreadKeyword):
            k, mode = c.keyword.lower(), c.mode

            def thread_kw(d: _Doc) -> bool:
                kws = self.thread_keywords(int(d.rec["thread"]))
                if mode == "all":
                    return all(k in x for x in kws)
                if mode == "some":
                    return any(k in x for x in kws)
                return not any(k in x for x in kws)
            return thread_kw
        if isinstance(c, Contains):
            return self._contains(c.field, fold(c.value))
        if isinstance(c, Header):
            name, q = c.name.strip().lower(), fold(c.value)
            if name in SEARCH_FIELDS:
                # the search record holds these fields' lines as the text does (one line
                # per instance, the same split): no read of the whole header text
                self.want_srch = True

                def header_field(d: _Doc) -> bool:
                    v = self.srch(d)["h"].get(name)
                    return v is not None and (not q or any(q in fold(x) for x in v.split("\n")))
                return header_field

            def header(d: _Doc) -> bool:
                for n, v in self.header_lines(d):
                    if n == name and (not q or q in fold(v)):
                        return True
                return False
            return header
        raise TypeError(f"not a search condition: {c!r}")

    def _contains(self, field: str, q: str) -> Pred:
        if not q:
            return lambda d: True
        if field in ("from", "to", "cc", "bcc", "subject", "jmaptext"):
            self.want_srch = True
        if field in ("from", "to", "cc", "bcc"):
            return lambda d: q in self.folded(d, field) or q in self.folded(d, "addr:" + field)
        if field in ("subject", "body"):
            return lambda d: q in self.folded(d, field)
        if field == "text":
            return lambda d: q in self.folded(d, "header") or q in self.folded(d, "body")
        if field == "jmaptext":
            fields = ("subject", "from", "to", "cc", "bcc", "body")
            return lambda d: any(q in self.folded(d, f) for f in fields)
        raise ValueError(f"unknown text field {field!r}")

    # -- planning ----------------------------------------------------------------------

    def plan(self, c: Cond) -> set[int] | None:
        """A superset of the Emails that can match ``c``; None: no index helps."""
        if isinstance(c, And):
            found: set[int] | None = None
            for x in sorted(c.conds, key=_plan_cost):
                if found is not None and len(found) <= _NARROW_ENOUGH:
                    break
                got = self.plan(x)
                if got is not None:
                    found = got if found is None else found & got
            return found
        if isinstance(c, Or):
            out: set[int] = set()
            for x in c.conds:
                got = self.plan(x)
                if got is None:
                    return None
                out |= got
            return out
        if isinstance(c, EmailId):
            return {c.email}
        if isinstance(c, ThreadId):
            th = self.v.thread(c.thread)
            return {int(x[1]) for x in th["emails"]} if th else set()
        if isinstance(c, InMailbox):
            if not 0 < c.mailbox < 2**32:
                return set()
            return set(self.v.received_order(c.mailbox, reverse=False))
        if isinstance(c, Received) and self.m is None:
            lo, hi = _bounds(c.lo, c.hi)
            p = K.acct(self.a)
            start = K.recvall(self.a, max(lo, 0), 0)
            stop = K.recvall(self.a, min(hi, 2**63), 0) if hi < 2**63 else prefix_end(p)
            return {K.un64(k, 12) for k, _v in self.v.kv.range("recvall", start, stop)}
        if isinstance(c, Contains):
            q = fold(c.value)
            cheap = c.field in ("from", "to", "cc", "bcc", "subject")
            return self._candidates(q, 3 if cheap else 1, c.field == "subject") if q else None
        if isinstance(c, Header) and c.value:
            return self._candidates(fold(c.value), 1)
        return None

    def _candidates(self, q: str, scan_terms: int, subject: bool = False) -> set[int] | None:
        """``fts.candidates`` (``subject``: of the Subject's postings); in a mailbox scope,
        the mailbox's record (which running the search reads) is read in the same round
        trip."""
        m = self.m
        if m is None or self._took_mailbox:
            return fts.candidates(self.v.kv, self.a, q, scan_terms=scan_terms, subject=subject)
        self._took_mailbox = True
        rows: list[Any] = []
        got = fts.candidates(self.v.kv, self.a, q, scan_terms=scan_terms,
                             also=[self.v.mailbox_scan(m)], also_out=rows, subject=subject)
        if rows:
            self.v.took_mailbox(m, rows[0])
        return got

    # -- running -------------------------------------------------------------------------

    def run(self, c: Cond) -> list[Any]:
        pred = self.compile(c)
        cands = self.plan(c)
        if self.m is None:
            return self._run_account(pred, cands)
        return self._run_mailbox(pred, cands, _uid_ranges(c))

    def _run_account(self, pred: Pred, cands: set[int] | None) -> list[Any]:
        source: Iterable[int] = sorted(cands) if cands is not None else sorted(
            self.v.received_order(None, reverse=False))
        out = []
        for d in self._docs([(e, 0) for e in source]):
            if visible(d.rec) and pred(d):
                out.append(d.e)
        return out

    def _run_mailbox(self, pred: Pred, cands: set[int] | None,
                     ranges: tuple[tuple[int, int], ...] | None) -> list[Any]:
        m, mk = self.m, self.mk
        assert m is not None and mk is not None
        box = self.v.require_mailbox(m)
        out = []
        if cands is not None and len(cands) < int(box["counts"]["msgs"]):
            for d in self._docs([(e, 0) for e in sorted(cands)]):
                ms = d.rec["mbx"].get(mk)
                if ms is None or (ranges is not None and not _in_ranges(ranges, int(ms[0]))):
                    continue
                d.uid = int(ms[0])
                if pred(d):
                    out.append((d.uid, d.e))
            out.sort()
            return out
        items = ((e, u) for u, e in self._uid_items(m, ranges) if cands is None or e in cands)
        for d in self._docs(items):
            if mk in d.rec["mbx"] and pred(d):
                out.append((d.uid, d.e))
        return out

    def _uid_items(self, m: int, ranges: tuple[tuple[int, int], ...] | None) -> Iterator[tuple[int, int]]:
        if ranges is None:
            yield from self.v.uid_items(m)
            return
        for lo, hi in ranges:
            yield from self.v.uid_items(m, lo, min(hi, 0xFFFFFFFF))

    # -- sorting -------------------------------------------------------------------------

    def doc(self, item: Any) -> _Doc | None:
        if self.m is None:
            e, u = int(item), 0
        else:
            u, e = int(item[0]), int(item[1])
        rec = self.v.email(e)
        return None if rec is None else _Doc(e, u, rec)

    def sort_value(self, key: SortKey) -> Callable[[_Doc], Any]:
        name = key.name
        if name == "received":
            return lambda d: int(d.rec["recv"])
        if name == "size":
            return lambda d: int(d.rec["size"])
        if name == "date":
            return lambda d: _sent_date(self.srch(d), d.rec)
        if name == "subject":
            return lambda d: sort_key(self.srch(d)["s"])
        if name in ("from", "to", "cc"):
            return lambda d: sort_key(_first_addr_mailbox(self.srch(d)["h"].get(name, "")))
        if name in ("displayfrom", "displayto"):
            which = name[len("display"):]
            return lambda d: sort_key(_display(self.srch(d)["a"].get(which, ["", ""])))
        if name in ("groupdisplayfrom", "groupdisplayto"):
            which = name[len("groupdisplay"):]
            return lambda d: sort_key(_group_display(self.srch(d), which))
        k = (key.keyword or "").lower()
        if name == "hasKeyword":
            return lambda d: k in d.rec["kw"]
        if name == "allInThreadHaveKeyword":
            return lambda d: all(k in x for x in self.thread_keywords(int(d.rec["thread"])))
        if name == "someInThreadHaveKeyword":
            return lambda d: any(k in x for x in self.thread_keywords(int(d.rec["thread"])))
        raise ValueError(f"unknown sort key {name!r}")


def _bounds(lo: int | None, hi: int | None) -> tuple[int, int]:
    return (-(2**63) if lo is None else lo), (2**63 if hi is None else hi)


def _in_ranges(ranges: tuple[tuple[int, int], ...], n: int) -> bool:
    i = bisect.bisect_right(ranges, (n, 2**63))
    return i > 0 and ranges[i - 1][0] <= n <= ranges[i - 1][1]


def _uid_ranges(c: Cond) -> tuple[tuple[int, int], ...] | None:
    """UID ranges every match lies in (a top-level ``UidIn``), for IMAP scope."""
    if isinstance(c, UidIn):
        return c.ranges
    if isinstance(c, And):
        best = None
        for x in c.conds:
            if isinstance(x, UidIn) and (best is None or len(x.ranges) < len(best)):
                best = x.ranges
        return best
    return None


def _sent_day(s: dict[str, Any], rec: dict[str, Any]) -> int:
    """The calendar day (days since 1970-01-01) of the Date field in its own zone; of
    the internal date (UTC) when there is no parseable Date field, the fallback RFC 5256
    §2.2 gives SORT (DATE), so SENT* SEARCH and SORT agree about the same message."""
    d = s.get("d")
    if d is None:
        return int(rec["recv"]) // 86400
    return (int(d) + int(s.get("o") or 0) * 60) // 86400


def _sent_date(s: dict[str, Any], rec: dict[str, Any]) -> int:
    """RFC 5256 §2.2 sent date: the Date field in UTC, else the internal date."""
    d = s.get("d")
    return int(rec["recv"]) if d is None else int(d)


def _address_text(value: str) -> str:
    """An address field as parsed addresses, one per line: ``name <local@domain>``
    (group names on their own line).  Comments, quoting and folding whitespace
    inside the addr-spec are gone, so FROM/TO/CC/BCC "user@domain" also finds
    ``<user (comment)@ (comment) domain>`` (RFC 9051 §6.4.4 matches the field's
    contents, of which the comments are no part; Dovecot does the same)."""
    out: list[str] = []
    for line in value.split("\n"):
        for item in parse_address_list(line):
            mailboxes = (item,) if isinstance(item, Mailbox) else item.members
            if isinstance(item, Group):
                out.append(item.name)
            for mb in mailboxes:
                out.append(f"{mb.name} <{mb.email}>" if mb.name else mb.email)
    return "\n".join(out)


def _first_addr_mailbox(value: str) -> str:
    """RFC 5256 §3 SORT FROM/TO/CC key: the addr-mailbox of the first address of the
    first field instance.  A group comes first in the envelope as its start marker,
    whose addr-mailbox is the group name (RFC 9051 §7.5.2), so that is its key."""
    items = parse_address_list(value.split("\n", 1)[0])
    if not items:
        return ""
    first = items[0]
    return first.name if isinstance(first, Group) else first.local


def _display(addr: list[str]) -> str:
    """RFC 5957 display name, else the address (also JMAP from/to, RFC 8621 §4.4.2)."""
    name = (addr[0] or "").strip()
    return name if name else (addr[1] or "")


def _group_display(s: dict[str, Any], which: str) -> str:
    """RFC 5957 §3.1 display-from/to where the first address may be a group: the group's
    display name (the field's text is parsed only when it can hold a group)."""
    raw = s["h"].get(which, "")
    if ";" in raw:
        items = parse_address_list(raw.split("\n", 1)[0])
        if items and isinstance(items[0], Group):
            return items[0].name
    return _display(s["a"].get(which, ["", ""]))


_CHEAP = (Keyword, Deleted, Recent, Received, Size, UidIn, InMailbox, InMailboxOtherThan, ModSeq,
          EmailId, ThreadId)


def _cost(c: Cond) -> int:
    """Rough evaluation cost, to test cheap conditions first."""
    if isinstance(c, (And, Or)):
        return max((_cost(x) for x in c.conds), default=0)
    if isinstance(c, Not):
        return _cost(c.cond)
    if isinstance(c, _CHEAP):
        return 1
    if isinstance(c, (SentDay, HasAttachment)):
        return 2
    if isinstance(c, Contains) and c.field in ("from", "to", "cc", "bcc", "subject"):
        return 3
    if isinstance(c, ThreadKeyword):
        return 4
    return 5


def _plan_cost(c: Cond) -> int:
    """Which index to consult first inside an AND: the most selective, cheapest one."""
    if isinstance(c, (EmailId, ThreadId)):
        return 0
    if isinstance(c, (Contains, Header)):
        return 1
    if isinstance(c, (And, Or)):
        return 2
    return 3


# -- public API -------------------------------------------------------------------------


def search(view: Any, scope: Scope, cond: Cond, *, context: Context | None = None) -> list[Any]:
    """Matches of ``cond`` in ``scope``: ``(uid, email)`` pairs by UID (MailboxScope) or
    email numbers, ascending (JMAP).  ``view`` is a ``ReadView`` (``store.read(a)``)."""
    return _Engine(view, scope, context).run(cond)


def sort(view: Any, scope: Scope, items: Iterable[Any], keys: Iterable[SortKey], *,
         context: Context | None = None) -> list[Any]:
    """``items`` (search results of ``scope``) ordered by ``keys``, each ascending
    unless ``reverse``; ties by ascending UID (IMAP) or Email number (JMAP)."""
    eng = _Engine(view, scope, context)
    pairs = ((int(i), 0) for i in items) if eng.m is None else ((int(i[1]), int(i[0])) for i in items)
    docs = list(eng._docs(pairs))
    if eng.m is None:
        docs.sort(key=lambda d: d.e)
    else:
        docs.sort(key=lambda d: d.uid)
    for key in reversed(list(keys)):
        docs.sort(key=eng.sort_value(key), reverse=key.reverse)
    if eng.m is None:
        return [d.e for d in docs]
    return [(d.uid, d.e) for d in docs]


def collapse_threads(view: Any, items: Iterable[Any], *, limit: int | None = None) -> list[Any]:
    """Keep the first item of each Thread, in order (RFC 8621 §4.4.3); items are email
    numbers or (uid, email) pairs.  ``limit``: stop after that many."""
    seen: set[int] = set()
    out = []
    for item in items:
        e = item[1] if isinstance(item, tuple) else item
        rec = view.email(int(e))
        if rec is None:
            continue
        t = int(rec["thread"])
        if t in seen:
            continue
        seen.add(t)
        out.append(item)
        if limit is not None and len(out) >= limit:
            break
    return out


@dataclass(frozen=True, slots=True)
class Page:
    """The leading ``items`` of a query's result and its ``total`` (None: not counted)."""

    items: list[Any]
    total: int | None


def query(view: Any, scope: Scope, cond: Cond, keys: Iterable[SortKey] = (), *,
          collapse: bool = False, context: Context | None = None,
          limit_hint: int | None = None) -> list[Any]:
    """search + sort (+ collapse_threads): the whole of Email/query or IMAP SORT.

    ``limit_hint``: only the first that many results are wanted (the list may stop
    there).  See ``query_page`` for the receivedAt fast path."""
    return query_page(view, scope, cond, keys, collapse=collapse, context=context,
                      limit_hint=limit_hint, need_total=False).items


def query_page(view: Any, scope: Scope, cond: Cond, keys: Iterable[SortKey] = (), *,
               collapse: bool = False, context: Context | None = None,
               limit_hint: int | None = None, need_total: bool = True) -> Page:
    """``query`` with a window: the first ``limit_hint`` results (None: all) and, when
    ``need_total`` (or when every result was built anyway), how many there are.

    A bare ``InMailbox(m)`` (or ``ALL``) sorted by receivedAt alone in JMAP scope is read
    lazily straight off the receivedAt index, whose values hold each Email's thread: no
    Email record is decoded, collapseThreads included, and the scan stops after
    ``limit_hint`` results unless a total is needed; the total of a bare ``InMailbox`` is
    the mailbox's exact ``total``/``threads`` counter, so that too stops early."""
    keys = list(keys)
    if _receivedat_only(scope, cond, keys):
        return _received(view, cond.mailbox if isinstance(cond, InMailbox) else None, keys[0].reverse,
                         collapse, limit_hint, need_total)
    items = sort(view, scope, search(view, scope, cond, context=context), keys, context=context)
    if collapse:
        items = collapse_threads(view, items, limit=None if need_total else limit_hint)
    total = len(items) if need_total or limit_hint is None or len(items) < limit_hint else None
    return Page(items if limit_hint is None else items[:limit_hint], total)


def _receivedat_only(scope: Scope, cond: Cond, keys: list[SortKey]) -> bool:
    """The receivedAt fast path applies: JMAP scope, a bare InMailbox or ALL, receivedAt."""
    return isinstance(scope, AccountScope) and len(keys) == 1 and keys[0].name == "received" and (
        isinstance(cond, InMailbox) or cond == And(()))


def _received(view: Any, m: int | None, reverse: bool, collapse: bool, limit_hint: int | None,
              need_total: bool) -> Page:
    """JMAP-visible Emails of ``m`` (None: the account) by receivedAt, ties by id."""
    if m is not None and not 0 < m < 2**32:
        return Page([], 0)
    total: int | None = None
    if need_total and m is not None:
        box = view.mailbox(m)
        total = int(box["counts"]["threads" if collapse else "total"]) if box is not None else 0
    stop = limit_hint if (total is not None or not need_total) else None
    out: list[int] = []
    seen: set[int] = set()
    n = 0
    # a page of ``stop`` reads stop + 1 entries (the run of equal receivedAt is closed by
    # the next one); with threads collapsed, how many is not known
    expect = stop + 2 if stop is not None and not collapse else None
    for e, t in _received_pairs(view, m, reverse, expect):
        if collapse:
            if t in seen:
                continue
            seen.add(t)
        n += 1
        if limit_hint is None or len(out) < limit_hint:
            out.append(e)
        elif stop is not None:
            break
    else:  # every entry was read: the count is exact
        total = n
    return Page(out, total)


def _received_pairs(view: Any, m: int | None, reverse: bool,
                    expect: int | None = None) -> Iterator[tuple[int, int]]:
    """(email, thread) by receivedAt (descending when ``reverse``), ties by ascending id,
    lazily."""
    entries = view.received_threads(m, reverse=reverse, expect=expect)
    if not reverse:
        for _r, e, t in entries:
            yield e, t
        return
    # the reversed index runs (receivedAt, id) both descending: flip each run of equal
    # receivedAt back to ascending ids
    run: list[tuple[int, int]] = []
    current = None
    for r, e, t in entries:
        if r != current:
            yield from reversed(run)
            run = []
            current = r
        run.append((e, t))
    yield from reversed(run)
