"""SEARCH, SORT and THREAD and their UID forms (RFC 9051 §6.4.4, RFC 4731 ESEARCH,
RFC 5182 SEARCHRES, RFC 5256 SORT/THREAD, RFC 5032 WITHIN).

The wire key tree is compiled by ``dualmail.search.imap_keys`` (the one engine shared with
JMAP Email/query); this module supplies what only the session knows -- sequence numbers,
``$``, \\Recent, the clock -- and shapes the answer: ``* SEARCH`` for IMAP4rev1 clients,
``* ESEARCH`` for IMAP4rev2 (RFC 9051 §7.3.4) or when RETURN is given.  Results are limited
to messages the client has been told about (not yet announced arrivals are left out).

MODSEQ (RFC 7162 §3.1.5) enables CONDSTORE; a non-empty result then ends ``(MODSEQ n)``
(SEARCH, SORT) or carries ``MODSEQ n`` (ESEARCH): the highest modseq of what is returned --
of the MIN and/or MAX message alone when only those were asked (RFC 4731 §3.2).  The entry
name and type are ignored: there is one modseq per message.  EMAILID / THREADID (RFC 8474
§6) match the JMAP ids.  The matching, sorting and threading run as an ``Offload`` (a worker
thread with its own read view), so a long one holds up no other connection; the answer is
shaped on the session's side.  Imports no twisted.internet.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any, Generator

from dualmail.imap import contexts
from dualmail.imap.errors import ImapBad, ImapNo
from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r
from dualmail.imap.wire.sequence import ResolvedSet, SequenceSet
from dualmail.mail.ops import membership_modseq
from dualmail.search import engine, imap_index
from dualmail.store import imapidx
from dualmail.search.thread import ALGORITHMS, thread as thread_messages
from dualmail.search.imap_keys import BadCharsetError, from_imap_keys, uses_modseq
from dualmail.search.query import And, Context, Not, Or, Recent, UnsupportedSortError, from_imap_sort
from dualmail.imap.session import Offload

if TYPE_CHECKING:
    from dualmail.imap.selected import SelectedMailbox
    from dualmail.imap.session import Session

Gen = Generator[Any, None, "r.Tagged | None"]
CHARSETS = ("UTF-8", "US-ASCII")


def _matches(s: Session, view: Any, keys: c.SearchKey, charset: str | None) -> tuple[list[tuple[int, int]], Any]:
    """(uid, email) pairs matching ``keys`` among the messages the client knows."""
    sel = s.selected
    assert sel is not None
    cond = _condition(s, keys, charset)
    context = Context(recent=_recent(sel)) if not s.rev2 and sel.recent and _uses_recent(cond) else None
    found = None
    if imap_index.is_unseen(cond):  # after SELECT, every client's first question
        box = view.mailbox(sel.mailbox)
        if imapidx.ready(box):
            found = s.store.unseen_sets.pairs(view, sel.mailbox, box)
    if found is None:
        found = imap_index.search(view, sel.mailbox, cond, context)  # the IMAP indexes, if they can
    if found is None:
        found = engine.search(view, engine.MailboxScope(sel.mailbox), cond, context=context)
    _note_record(s, view)
    return _known(sel, found), cond


def _note_record(s: Session, view: Any) -> None:
    """The selected mailbox's record as this view has it (usually read already): the
    session's check for changes after the command (``Session._updates``)."""
    assert s.selected is not None
    s.view_record = view.mailbox(s.selected.mailbox)


def _condition(s: Session, keys: c.SearchKey, charset: str | None) -> Any:
    """The search program as a ``search.query`` condition (BAD / NO [BADCHARSET] here)."""
    sel = s.selected
    assert sel is not None

    def uid_set(seqset: SequenceSet) -> list[tuple[int, int]]:
        top = sel.uids[-1] if sel.uids else 0
        if not top:
            return []
        return list(seqset.resolve(top, s.saved, clip=True).ranges)

    def seq_set(seqset: SequenceSet) -> list[tuple[int, int]]:
        n = sel.exists
        if not n:
            return []
        saved = None
        if s.saved is not None:
            saved = ResolvedSet.from_ints(x for x in (sel.seq_of(u) for u in s.saved) if x)
        seqs = seqset.resolve(n, saved, clip=True)
        return [(sel.uids[q - 1], sel.uids[q - 1]) for q in seqs]

    try:
        cond = from_imap_keys(keys, uid_set=uid_set, seq_set=seq_set, now=int(s.now()),
                              charset=charset)
    except BadCharsetError:
        raise ImapNo("Unsupported charset", r.code_badcharset(CHARSETS)) from None
    except ValueError as e:
        raise ImapBad(str(e)) from None
    return cond


def _known(sel: SelectedMailbox, found: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The results the client has been told about: not ghosts, not unannounced arrivals.
    UIDs ascend and are never reused, so every stored UID up to the session's last one
    is in its map, and one bisection finds where the unannounced ones begin."""
    if not sel.uids or not found:
        return []
    top = sel.uids[-1]
    gone = sel.gone
    if found[-1][0] > top:
        found = found[:bisect.bisect_right(found, (top, 2**64))]
    return [x for x in found if x[0] not in gone] if gone else list(found)


def _recent(sel: SelectedMailbox) -> frozenset[int]:
    """The \\Recent UIDs: a slice of the UID map per claimed range."""
    out: set[int] = set()
    for lo, hi in sel.recent:
        out.update(sel.uids[bisect.bisect_left(sel.uids, lo):bisect.bisect_left(sel.uids, hi)])
    return frozenset(out)


def _uses_recent(c: Any) -> bool:
    """Does the condition test \\Recent (RECENT, NEW, OLD)?  Only then is the set made."""
    if isinstance(c, (And, Or)):
        return any(_uses_recent(x) for x in c.conds)
    if isinstance(c, Not):
        return _uses_recent(c.cond)
    return isinstance(c, Recent)


def _highest_modseq(view: Any, sel: SelectedMailbox, items: list[tuple[int, int]]) -> int | None:
    best = 0
    for _u, e in items:
        rec = view.email(e)
        if rec is not None:
            best = max(best, membership_modseq(rec, sel.mailbox))
    return best or None


def _esearch_modseq(view: Any, sel: SelectedMailbox, found: list[tuple[int, int]],
                    want: set[str]) -> int | None:
    """RFC 4731 §3.2: MIN/MAX alone -> the modseq of those messages; else of all."""
    if not found:
        return None
    if want and want <= {"MIN", "MAX"}:
        ends = ([found[0]] if "MIN" in want else []) + ([found[-1]] if "MAX" in want else [])
        return _highest_modseq(view, sel, ends)
    return _highest_modseq(view, sel, found)


def _want(opts: tuple[str, ...] | None) -> set[str]:
    """The result options asked for: an empty RETURN () (or CONTEXT alone, a hint, RFC 5267
    §4.2) means ALL (RFC 4731 §3.1); SAVE or UPDATE alone return nothing."""
    want = set(opts or ()) - {"CONTEXT"}
    return want or {"ALL"}


def _check_update(s: Session, cmd: c.Search | c.Sort) -> None:
    """RFC 5267 §4.3: UPDATE with the tag of a live updating context is BAD (before any
    work, so nothing else changes)."""
    sel = s.selected
    if cmd.return_opts and "UPDATE" in cmd.return_opts and sel is not None \
            and cmd.tag in sel.contexts:
        raise ImapBad("Tag reuse: an updating context already has this tag")


def _partial(items: list[int], rng: tuple[int, int]) -> list[int]:
    """RFC 9394 §3.1: results ``lo:hi`` (1 is the first), or ``-lo:-hi`` counted from the
    last (-1 is the last), of ``items`` in their order."""
    lo, hi = rng
    n = len(items)
    if lo > 0:
        return items[lo - 1:hi]
    return items[max(0, n + hi):max(0, n + lo + 1)]


def _answer(s: Session, cmd: c.Search | c.Sort, ordered: list[tuple[int, int]],
            cond: Any, modseq: int | None, sort_keys: Any) -> Generator[Any, None, None]:
    """The ESEARCH answer to SEARCH/SORT with RETURN (RFC 4731, RFC 5267, RFC 9394), the
    SEARCHRES ``$`` (RFC 5182 §2, RFC 9394 §3.2) and a new updating context."""
    sel = s.selected
    assert sel is not None
    want = _want(cmd.return_opts)
    uids = [u for u, _e in ordered]
    numbers = uids if cmd.uid else [sel.seq_of(u) or 0 for u in uids]
    sorting = isinstance(cmd, c.Sort)
    part = _partial(numbers, cmd.partial) if cmd.partial is not None else None
    if "SAVE" in want:
        if "COUNT" in want or not want & {"MIN", "MAX", "PARTIAL"}:
            keep = uids
        else:
            keep = []
            if "PARTIAL" in want and cmd.partial is not None:
                keep += _partial(uids, cmd.partial)
            if uids and "MIN" in want:
                keep.append(uids[0] if sorting else min(uids))
            if uids and "MAX" in want:
                keep.append(uids[-1] if sorting else max(uids))
        s.saved = ResolvedSet.from_ints(keep)
    if "UPDATE" in want:
        if len(sel.contexts) >= contexts.MAX_CONTEXTS:
            yield r.UntaggedStatus("NO", "Too many updating contexts",
                                   r.code("NOUPDATE", r.Raw(r.string(cmd.tag))))
        else:
            sel.contexts[cmd.tag] = contexts.SearchContext(cmd.tag, cmd.uid, cond, sort_keys,
                                                           list(ordered))
    if want <= {"SAVE"}:
        return
    shown = want - {"SAVE", "UPDATE"}
    if not shown:  # RETURN (UPDATE): an empty ESEARCH (TAG t) (RFC 5267 §4.3 example)
        yield r.esearch(cmd.tag, cmd.uid)
        return
    if sorting:
        first, last = (numbers[0], numbers[-1]) if numbers else (None, None)
    else:
        first, last = (min(numbers), max(numbers)) if numbers else (None, None)
    yield r.esearch(
        cmd.tag, cmd.uid,
        min=first if "MIN" in shown else None,
        max=last if "MAX" in shown else None,
        all=ResolvedSet.from_ints(numbers) if "ALL" in shown and not sorting else None,
        ordered=numbers if "ALL" in shown and sorting else None,
        partial=(cmd.partial, part) if part is not None and cmd.partial is not None else None,
        count=len(numbers) if "COUNT" in shown else None,
        modseq=modseq,
    )


# A SEARCH or SORT the IMAP index answers with one range read runs where it was asked when
# the mailbox holds at most this many messages (a few ms at most): the hop to a worker
# thread and back cost more than the work (SEARCH UNSEEN at 10k: ~1 ms of 2.7).
QUICK_MESSAGES = 10_000


def _quick(s: Session, cmd: c.Search | c.Sort, sort_keys: Any = None) -> bool:
    sel = s.selected
    assert sel is not None
    if sel.exists > QUICK_MESSAGES:
        return False
    try:
        if not imap_index.cheap(_condition(s, cmd.keys, cmd.charset), sort_keys):
            return False
    except (ImapNo, ImapBad):
        return True  # the error is the answer: no worker needed
    assert s.account is not None
    if not sel.index_ready:  # before its index is built: the engine's scan
        with s.store.read(s.account) as view:
            sel.index_ready = imapidx.ready(view.mailbox(sel.mailbox))
    return sel.index_ready


def _run(s: Session, cmd: c.Search | c.Sort, work: Any, quick: bool = False) -> Generator[Any, None, Any]:
    """``work`` as an Offload (``quick``: here, see ``QUICK_MESSAGES``); its result.  A
    failed SEARCH/SORT ... RETURN (SAVE) empties ``$`` (RFC 5182 §2.1)."""
    try:
        if quick:
            return work()
        job = Offload(work, cmd.tag)
        yield job
        return job.result()
    except (ImapNo, ImapBad):
        if cmd.return_opts and "SAVE" in cmd.return_opts:
            s.saved = ResolvedSet()
        raise


def search(s: Session, cmd: c.Search) -> Gen:
    sel = s.selected
    assert sel is not None and s.account is not None
    _check_update(s, cmd)
    opts = cmd.return_opts
    want = _want(opts)

    def work() -> tuple[list[tuple[int, int]], Any, bool, int | None]:
        with s.store.read(s.account) as view:
            found, cond = _matches(s, view, cmd.keys, cmd.charset)
            with_modseq = uses_modseq(cond)
            if with_modseq:
                esearch = opts is not None or s.rev2
                modseq = (_esearch_modseq(view, sel, found, want - {"SAVE", "UPDATE"}) if esearch
                          else _highest_modseq(view, sel, found))
            else:
                modseq = None
        return found, cond, with_modseq, modseq

    found, cond, with_modseq, modseq = yield from _run(s, cmd, work, _quick(s, cmd))
    if with_modseq:
        yield from s.enable_condstore()
    if opts is None and not s.rev2:
        uids = [u for u, _e in found]
        yield r.search(uids if cmd.uid else [sel.seq_of(u) or 0 for u in uids], modseq)
        return r.Tagged(cmd.tag, "OK", "SEARCH completed")
    yield from _answer(s, cmd, found, cond, modseq, None)
    if want == {"SAVE"}:
        return r.Tagged(cmd.tag, "OK", "SEARCH completed, result saved")
    return r.Tagged(cmd.tag, "OK", "SEARCH completed")


def sort(s: Session, cmd: c.Sort) -> Gen:
    sel = s.selected
    assert sel is not None and s.account is not None
    _check_update(s, cmd)
    try:
        keys = from_imap_sort(cmd.criteria)
    except UnsupportedSortError as e:
        raise ImapBad(str(e)) from None
    want = _want(cmd.return_opts)

    def work() -> tuple[list[tuple[int, int]], Any, bool, int | None]:
        with s.store.read(s.account) as view:
            cond = _condition(s, cmd.keys, cmd.charset)
            whole = imap_index.sort_all(view, sel.mailbox, cond, keys)  # SORT ... ALL: one read
            if whole is not None:
                top, gone = (sel.uids[-1] if sel.uids else 0), sel.gone
                found = ordered = [x for x in whole if x[0] <= top and x[0] not in gone]
                _note_record(s, view)
            else:
                found, cond = _matches(s, view, cmd.keys, cmd.charset)
                ordered = imap_index.sort(view, sel.mailbox, found, keys)
                if ordered is None:  # sort keys never read \\Recent: no context
                    ordered = engine.sort(view, engine.MailboxScope(sel.mailbox), found, keys)
            with_modseq = uses_modseq(cond)
            modseq = None
            if with_modseq:
                modseq = (_highest_modseq(view, sel, found) if cmd.return_opts is None
                          else _esearch_modseq(view, sel, ordered, want - {"SAVE", "UPDATE"}))
        return ordered, cond, with_modseq, modseq

    ordered, cond, with_modseq, modseq = yield from _run(s, cmd, work, _quick(s, cmd, keys))
    if with_modseq:
        yield from s.enable_condstore()
    if cmd.return_opts is None:
        numbers = [u if cmd.uid else (sel.seq_of(u) or 0) for u, _e in ordered]
        yield r.sort(numbers, modseq)
        return r.Tagged(cmd.tag, "OK", "SORT completed")
    yield from _answer(s, cmd, ordered, cond, modseq, keys)
    return r.Tagged(cmd.tag, "OK", "SORT completed")


def cancelupdate(s: Session, cmd: c.CancelUpdate) -> Gen:
    """RFC 5267 §4.3.5: stop the updates of the named contexts.  A tag that names no
    updating context is BAD and none of the others is cancelled."""
    sel = s.selected
    assert sel is not None
    unknown = [t for t in cmd.tags if t not in sel.contexts]
    if unknown:
        raise ImapBad(f"No updating context with tag {unknown[0]}")
    for t in cmd.tags:
        del sel.contexts[t]
    if not sel.contexts:
        sel.touched = set()
    yield from ()
    return r.Tagged(cmd.tag, "OK", "No further updates")


def thread(s: Session, cmd: c.Thread) -> Gen:
    sel = s.selected
    assert sel is not None and s.account is not None
    algorithm = cmd.algorithm.upper()
    if algorithm not in ALGORITHMS:
        raise ImapBad(f"Unknown threading algorithm {cmd.algorithm}")

    def node(n: Any) -> Any:
        num = None if n.msg is None else (n.msg if cmd.uid else sel.seq_of(n.msg))
        return (num, [node(ch) for ch in n.children])

    def work() -> Any:
        with s.store.read(s.account) as view:
            found, _cond = _matches(s, view, cmd.keys, cmd.charset)
            roots = thread_messages(view, engine.MailboxScope(sel.mailbox), found, algorithm)
        return r.thread([node(n) for n in roots])

    job = Offload(work, cmd.tag)
    yield job
    yield job.result()
    return r.Tagged(cmd.tag, "OK", "THREAD completed")
