"""SELECT / EXAMINE (RFC 9051 §6.3.2, RFC 3501 §6.3.1), CLOSE and UNSELECT (RFC 3691).

SELECT builds the sequence map from the UID index (the one O(mailbox) read a session
makes); everything after that is incremental (``selected.py``).  IMAP4rev1 sessions
claim \\Recent and get RECENT and [UNSEEN n]; IMAP4rev2 sessions get a LIST response
instead (RFC 9051 §6.3.2).  Every answer carries [MAILBOXID] (RFC 8474 §4.2), and
[HIGHESTMODSEQ] once CONDSTORE is on (RFC 7162 §3.1.2.1).  Selecting while a mailbox is
selected first says ``* OK [CLOSED]`` (§3.2.11).

QRESYNC (RFC 7162 §3.2.5) is answered from the same read view as the sequence map:
``VANISHED (EARLIER)`` from the mailbox's expunge log and ``FETCH (UID FLAGS MODSEQ)`` from
its modseq index, both O(changes since the client's modseq).  When the expunge log was
compacted past that modseq every UID of the client's known set that no longer exists is
reported instead, trimmed by the sequence match data (§3.2.5.2).
Imports no twisted.internet.
"""

from __future__ import annotations

import bisect
from itertools import islice
from typing import TYPE_CHECKING, Any, Generator

from dualmail.imap.errors import ImapBad
from dualmail.imap.ops import names
from dualmail.imap.selected import SYSTEM_FLAGS, SelectedMailbox
from dualmail.imap.states import State
from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r
from dualmail.imap.wire.sequence import ResolvedSet
from dualmail.model import ids
from dualmail.model.keywords import Spellings
from dualmail.store import imapidx

if TYPE_CHECKING:
    from dualmail.imap.session import Session

Gen = Generator[Any, None, "r.Tagged | None"]

UNSEEN_SCAN_LIMIT = 5000  # [UNSEEN n] is looked for among this many messages at most


def select(s: Session, cmd: c.Select | c.Examine) -> Gen:
    readonly = isinstance(cmd, c.Examine)
    if cmd.qresync is not None and not s.qresync:
        # RFC 7162 §3.2.5: BAD, and nothing changes (the current mailbox stays selected)
        raise ImapBad("QRESYNC parameter needs ENABLE QRESYNC first")
    name = names.decode(s.utf8, cmd.mailbox)
    assert s.account is not None
    # A failed SELECT leaves no mailbox selected (RFC 9051 §6.3.2).
    if s.selected is not None:
        s.selected = None
        s.state = State.AUTHENTICATED
        yield r.UntaggedStatus("OK", "Previous mailbox closed", r.code_closed())
    if cmd.condstore or cmd.qresync is not None:
        s.enable_condstore()  # RFC 7162 §3.1.8 (QRESYNC is already on)
    with s.store.read(s.account) as view:
        m = names.require(view, name)
        rec = view.require_mailbox(m)
        recent_from: int | None = int(rec.get("recent", 1))
        recent_to = int(rec["uidnext"])  # the claim covers what existed then, no more
        # \Recent goes to the first session that sees a message (RFC 3501 §2.3.2): a claim
        # is a write, and the mailbox is read again after it; else this one view serves
        claim = not s.rev2 and not readonly and recent_from < recent_to
        if not claim:
            built = _build(s, cmd, view, m, rec, readonly, None if s.rev2 else recent_from, recent_to)
    if claim:
        with s.store.write(s.account) as tx:
            recent_from = int(tx.claim_recent(m, recent_to))
        with s.store.read(s.account) as view:
            built = _build(s, cmd, view, m, view.require_mailbox(m), readonly, recent_from, recent_to)
    sel, rec, path, first_unseen, resync = built
    s.selected = sel
    s.state = State.SELECTED
    yield r.flags(SYSTEM_FLAGS)
    yield r.UntaggedStatus("OK", "Flags permitted", r.code_permanentflags(
        [] if readonly else SYSTEM_FLAGS + ["\\*"]))
    yield r.exists(sel.exists)
    if not s.rev2:
        yield r.recent(sel.recent_count())
        if first_unseen is not None:
            yield r.UntaggedStatus("OK", "First unseen", r.code("UNSEEN", first_unseen))
    else:
        yield r.list_response(names.attributes(rec, False)[1:], names.SEP, path, utf8=s.utf8)
    yield r.UntaggedStatus("OK", "UIDs valid", r.code_uidvalidity(sel.uidvalidity))
    yield r.UntaggedStatus("OK", "Predicted next UID", r.code_uidnext(int(rec["uidnext"])))
    yield r.UntaggedStatus("OK", "Mailbox id", r.code_mailboxid(ids.format_id(ids.MAILBOX, m)))
    if s.condstore:
        yield r.UntaggedStatus("OK", "Highest", r.code_highestmodseq(sel.reported))
    yield from resync
    mode = "READ-ONLY" if readonly else "READ-WRITE"
    return r.Tagged(cmd.tag, "OK", f"{type(cmd).__name__.upper()} completed", r.code(mode))


def _build(s: Session, cmd: c.Select | c.Examine, view: Any, m: int, rec: dict[str, Any],
           readonly: bool, recent_from: int | None, recent_to: int) -> tuple[Any, ...]:
    """The selected mailbox from one read view: its sequence map, first unseen, keyword
    spellings and a QRESYNC resync all agree."""
    uids = s.store.uid_maps.uids(view, m, rec)
    path = names.SEP.join(view.mailbox_path(m))  # (the records are this view's: no re-read)
    first_unseen = None
    if not s.rev2 and not s.uidonly and rec["counts"]["unseen"]:  # RFC 9586 §3
        first_unseen = _first_unseen(view, m, rec, uids, s.store.unseen_sets)
    sel = SelectedMailbox(m, path, readonly, int(rec["uidvalidity"]), uids, int(rec["hms"]),
                          recent_from, recent_to)
    sel.condstore = s.condstore
    sel.qresync = s.qresync
    sel.uidonly = s.uidonly
    sel.index_ready = imapidx.ready(rec)
    sel.spell = Spellings(_spellings_loader(s))
    resync: list[r.Response] = []
    q = cmd.qresync
    if q is not None and q.uidvalidity == sel.uidvalidity:
        resync = _qresync(s, sel, view, q, int(rec["uidnext"]))
    return sel, rec, path, first_unseen, resync


def _qresync(s: Session, sel: SelectedMailbox, view: Any, q: c.QResync,
             uidnext: int) -> list[r.Response]:
    """VANISHED (EARLIER) and FETCH for what changed since ``q.modseq`` among the client's
    known UIDs (RFC 7162 §3.2.5.1: as ``UID FETCH known (FLAGS) (CHANGEDSINCE m VANISHED)``)."""
    top = uidnext - 1
    if top < 1:
        return []  # never had a message: the known set is empty
    known = q.known_uids.resolve(top) if q.known_uids is not None else ResolvedSet(((1, top),))
    out: list[r.Response] = []
    gone = vanished_since(view, sel, q.modseq, known, top, q.seq_match)
    if gone:
        out.append(r.vanished(gone, earlier=True))
    for u, _ms in view.changed_since(sel.mailbox, q.modseq):
        seq = sel.seq_of(u)
        if seq is None or u not in known:
            continue
        e = view.email_at(sel.mailbox, u)
        rec = view.email(e) if e is not None else None
        if rec is not None:
            out.extend(sel.fetch(seq, sel.flag_items(rec, u, s.rev2), u))
    return out


def vanished_since(view: Any, sel: SelectedMailbox, modseq: int, want: ResolvedSet, top: int,
                   seq_match: tuple[Any, Any] | None = None) -> ResolvedSet:
    """UIDs in ``want`` expunged after ``modseq`` that this session's map does not hold
    (those it holds go out as plain VANISHED/EXPUNGE).  O(expunges) from the log; when the
    log was compacted past ``modseq`` (RFC 7162 §3.2.6 note), every UID of ``want`` up to
    ``top`` that is neither in the map nor arrived since, above the last matching
    sequence-match pair (§3.2.5.2)."""
    m = sel.mailbox
    if modseq >= view.expunge_floor(m):
        return ResolvedSet.from_ints(u for u in view.expunged_since(m, modseq)
                                     if u in want and sel.seq_of(u) is None)
    floor = _seq_match_floor(sel, seq_match) if seq_match is not None else 0
    # what this session holds (map, ghosts, unannounced arrivals) plus later arrivals:
    # ascending, since each part lies above the one before
    present = list(sel.uids) + sel.pending_new
    last = sel.last_uid
    if top > last:
        present += [u for u, _e in view.uid_items(m, last + 1, top)]
    ranges: list[tuple[int, int]] = []
    for lo, hi in want.ranges:
        lo, hi = max(lo, floor + 1), min(hi, top)
        if lo > hi:
            continue
        i = bisect.bisect_left(present, lo)
        cur = lo
        while i < len(present) and present[i] <= hi:
            if present[i] > cur:
                ranges.append((cur, present[i] - 1))
            cur = present[i] + 1
            i += 1
        if cur <= hi:
            ranges.append((cur, hi))
    return ResolvedSet.from_ranges(ranges)


def _seq_match_floor(sel: SelectedMailbox, seq_match: tuple[Any, Any]) -> int:
    """The UID of the last (sequence, UID) pair that still matches before the first one
    that does not: the client knows every expunge up to it (RFC 7162 §3.2.5.2)."""
    seqs, uids = seq_match
    top = 2**32 - 1
    floor = 0
    for seq, uid in zip(seqs.resolve(top, clip=False), uids.resolve(top, clip=False)):
        if seq > len(sel.uids) or sel.uids[seq - 1] != uid:
            break
        floor = uid
    return floor


def _spellings_loader(s: Any) -> Any:
    store, account = s.store, s.account

    def load() -> dict[str, str]:  # one record: its latest committed value, no read view
        return dict((store.account_record(account) or {}).get("kwspell") or {})
    return load


def _first_unseen(view: Any, m: int, rec: dict[str, Any], uids: Any, sets: Any) -> int | None:
    """The sequence number of the first unseen message: once the mailbox's IMAP index is
    built, ``UnseenSets.first`` (an unseen set in memory where one is kept, else the
    first row of the ``unseen`` index, remembered per HIGHESTMODSEQ: a SELECT of an
    unchanged mailbox reads nothing for it); before, records read in growing
    batches (16, 64, 256, ...: one round trip each on PostgreSQL) up to
    ``UNSEEN_SCAN_LIMIT``."""
    if imapidx.ready(rec):
        uid = sets.first(view, m, rec)
        if uid is None:
            return None
        i = bisect.bisect_left(uids, uid)  # the map and the index are of one read view
        return i + 1 if i < len(uids) and uids[i] == uid else None
    items = islice(view.uid_items(m), UNSEEN_SCAN_LIMIT)
    seq, size = 0, 16
    while es := [e for _u, e in islice(items, size)]:
        for rec in view.emails(es):
            seq += 1
            if rec is not None and "$seen" not in rec["kw"]:
                return seq
        size = min(size * 4, 1024)
    return None


def close(s: Session, cmd: c.Close) -> Gen:
    sel = s.selected
    assert sel is not None and s.account is not None
    if not sel.readonly:
        # RFC 9051 §6.4.1: expunge silently, no EXPUNGE responses
        with s.store.write(s.account) as tx:
            tx.expunge(sel.mailbox)
    s.selected = None
    s.state = State.AUTHENTICATED
    return r.Tagged(cmd.tag, "OK", "CLOSE completed")
    yield  # pragma: no cover


def unselect(s: Session, cmd: c.Unselect) -> Gen:
    s.selected = None
    s.state = State.AUTHENTICATED
    return r.Tagged(cmd.tag, "OK", "UNSELECT completed")
    yield  # pragma: no cover
