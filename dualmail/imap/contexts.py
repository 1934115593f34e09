"""Updating search contexts: ``RETURN (UPDATE)`` of SEARCH and SORT (RFC 5267 §4.3).

One job: keep, per selected mailbox, the result list of each searching command that asked
for UPDATE, and turn the changes the session absorbs (``SelectedMailbox.touched``: flag
changes and arrivals from this session, other sessions, JMAP, LMTP; ``gone``: expunges)
into ``* ESEARCH (TAG t) [UID] ADDTO (pos set)`` / ``REMOVEFROM (pos set)`` responses.

* Only the touched messages are matched again (the context's compiled condition ANDed
  with their UIDs, one engine call per context): never a mailbox rescan.  A SORT context
  is re-ordered over its result list when messages join it (the sort keys of a message
  never change, so only additions move positions).
* SEARCH contexts use context position 0 and mailbox order (§4.3.3: MAY be zero); SORT
  contexts give the real positions, runs of consecutive positions in one pair.
* REMOVEFROM for expunged messages goes out *before* the EXPUNGE responses with the
  sequence numbers still valid (§4.3.4); ADDTO for arrivals *after* EXISTS (§4.3.3).
* Sequence numbers in the search program were resolved when the command ran (§4.3, the
  RFC 3501 erratum): the stored condition holds UIDs.
* At most ``MAX_CONTEXTS`` per session; beyond, ``* NO [NOUPDATE "tag"]`` (§4.3.1).
  Contexts end with the selection or CANCELUPDATE (§4.3.5).

Imports no twisted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dualmail.imap.wire import responses as r
from dualmail.search import engine
from dualmail.search.query import And, Cond, SortKey, UidIn

#: updating contexts one session may hold (RFC 5267 §4.3.1: at least one)
MAX_CONTEXTS = 8


@dataclass(slots=True)
class SearchContext:
    tag: str
    uid: bool
    cond: Cond
    sort: list[SortKey] | None  # None: a SEARCH context (mailbox order)
    items: list[tuple[int, int]]  # (uid, email) in the requested order
    members: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.members = {u for u, _e in self.items}


def _runs(positions: list[int]) -> list[tuple[int, int]]:
    """[(start index, length)] of consecutive indexes."""
    out: list[tuple[int, int]] = []
    for p in positions:
        if out and out[-1][0] + out[-1][1] == p:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((p, 1))
    return out


def _num(sel: Any, ctx: SearchContext, uid: int) -> int:
    return uid if ctx.uid else (sel.seq_of(uid) or 0)


def _removefrom(sel: Any, ctx: SearchContext, gone: set[int]) -> list[tuple[str, int, list[int]]]:
    """Drop ``gone`` from ``ctx``; the REMOVEFROM pairs (numbers valid before removal)."""
    if ctx.sort is None:
        removed = [u for u, _e in ctx.items if u in gone]
        if not removed:
            return []
        pairs = [("REMOVEFROM", 0, [_num(sel, ctx, u) for u in removed])]
    else:
        idx = [i for i, (u, _e) in enumerate(ctx.items) if u in gone]
        if not idx:
            return []
        pairs = []
        shift = 0
        for start, n in _runs(idx):
            nums = [_num(sel, ctx, u) for u, _e in ctx.items[start:start + n]]
            pairs.append(("REMOVEFROM", start + 1 - shift, nums))
            shift += n
    ctx.items = [(u, e) for u, e in ctx.items if u not in gone]
    ctx.members -= gone
    return pairs


def before_emit(sel: Any, allow_expunge: bool) -> list[r.Response]:
    """REMOVEFROM for the expunges about to be told (call before ``sel.emit``)."""
    if not sel.contexts or not (allow_expunge and sel.gone):
        return []
    gone = set(sel.gone)
    sel.touched -= gone
    out: list[r.Response] = []
    for ctx in sel.contexts.values():
        pairs = _removefrom(sel, ctx, gone)
        if pairs:
            out.append(r.esearch(ctx.tag, ctx.uid, updates=pairs))
    return out


def after_emit(sel: Any, view: Any) -> list[r.Response]:
    """ADDTO / REMOVEFROM for the touched messages (call after ``sel.emit``)."""
    if not sel.contexts:
        sel.touched = set()
        return []
    touched = {u for u in sel.touched if u not in sel.gone and sel.seq_of(u) is not None}
    sel.touched = set()
    if not touched:
        return []
    scope = engine.MailboxScope(sel.mailbox)
    probe = UidIn.of(touched)
    out: list[r.Response] = []
    for ctx in sel.contexts.values():
        found = engine.search(view, scope, And((ctx.cond, probe)))
        now = {u for u, _e in found}
        leaving = {u for u in touched if u in ctx.members and u not in now}
        joining = [(u, e) for u, e in found if u not in ctx.members]
        pairs = _removefrom(sel, ctx, leaving) if leaving else []
        if joining:
            pairs += _addto(sel, view, ctx, joining)
        if pairs:
            out.append(r.esearch(ctx.tag, ctx.uid, updates=pairs))
    return out


def _addto(sel: Any, view: Any, ctx: SearchContext,
           joining: list[tuple[int, int]]) -> list[tuple[str, int, list[int]]]:
    new = {u for u, _e in joining}
    ctx.members |= new
    if ctx.sort is None:
        ctx.items = sorted(ctx.items + joining)
        return [("ADDTO", 0, [_num(sel, ctx, u) for u, _e in sorted(joining)])]
    ctx.items = engine.sort(view, engine.MailboxScope(sel.mailbox), ctx.items + joining, ctx.sort)
    idx = [i for i, (u, _e) in enumerate(ctx.items) if u in new]
    return [("ADDTO", start + 1, [_num(sel, ctx, u) for u, _e in ctx.items[start:start + n]])
            for start, n in _runs(idx)]
