"""SelectedMailbox: one session's view of its selected mailbox (RFC 9051 §2.3.1, §7).

One job: keep the session's message-sequence-number <-> UID map and turn changes made by
anyone (this session, other sessions, JMAP, other processes) into the untagged responses
the client may be sent, when it may be sent them:

* changes are *absorbed* (read from the store's O(changes) indexes: ``changed_since``,
  ``expunged_since`` and ``uid_items`` above the last known UID; the mailbox is never
  rescanned) into pending sets, and *emitted* later;
* EXISTS and FETCH (FLAGS) may be emitted at any time; EXPUNGE only when the command
  allows it (not during FETCH, STORE or SEARCH, RFC 9051 §7.5.1; their UID forms allow
  it).  Until then an expunged message stays in the map as a "ghost" (RFC 2180 §4.1):
  its sequence number stays valid, it is skipped by FETCH and STORE;
* sequence numbers change only by emitted EXPUNGE/EXISTS, so they stay consistent with
  what the client was told.

CONDSTORE / QRESYNC (RFC 7162): ``seen`` is the mailbox modseq up to which changes were
absorbed; ``reported`` the HIGHESTMODSEQ the client may hold, i.e. everything at or below
it has been told.  While expunges are held back (ghosts) ``reported`` stays below their
modseq (RFC 7162 §3.2).  Once CONDSTORE is enabled every untagged FETCH carries UID and
MODSEQ (§3.2.4); once QRESYNC is enabled expunges go out as ``* VANISHED uid-set``
(§3.2.10.2) and a changed HIGHESTMODSEQ follows them as ``* OK [HIGHESTMODSEQ n]``.
Imports no twisted.
"""

from __future__ import annotations

import bisect
from array import array
from typing import Any

from dualmail.imap.wire import responses as r
from dualmail.imap.wire.sequence import ResolvedSet, SequenceSet
from dualmail.mail.ops import imap_flags, membership_modseq
from dualmail.model.keywords import Spellings


SYSTEM_FLAGS = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"]


class MailboxGoneError(Exception):
    """The selected mailbox was deleted (by another session or protocol)."""


class SelectedMailbox:
    def __init__(self, mailbox: int, name: str, readonly: bool, uidvalidity: int,
                 uids: array[int], seen: int, recent_from: int | None = None,
                 recent_to: int | None = None) -> None:
        self.mailbox = mailbox
        self.name = name
        self.readonly = readonly
        self.uidvalidity = uidvalidity
        self.uids = uids  # array("I"), ascending: seq n is uids[n-1]; maybe shared
        self._own_uids = False  # (Store.uid_maps): copied before the first change
        self.seen = seen
        self.gone: set[int] = set()  # expunged in the store, not yet told (ghosts)
        self.pending_new: list[int] = []  # UIDs arrived, EXISTS not yet sent
        self.pending_flags: set[int] = set()  # UIDs whose flags changed, FETCH not yet sent
        # \Recent (IMAP4rev1): UID ranges this session claimed, [lo, hi)
        self.recent: list[tuple[int, int]] = []
        if recent_from is not None and uids:
            # [recent_from, recent_to): what the claim covered; a message that arrived after
            # the claim is in ``uids`` but was not claimed (another session may claim it)
            hi = uids[-1] + 1 if recent_to is None else min(uids[-1] + 1, recent_to)
            if hi > recent_from:
                self.recent.append((recent_from, hi))
        self.condstore = False  # untagged FETCH carries MODSEQ (RFC 7162 §3.1)
        self.qresync = False  # VANISHED instead of EXPUNGE (RFC 7162 §3.2.10.2)
        # RFC 9586: UIDFETCH instead of FETCH, VANISHED instead of EXPUNGE (§3.3, §3.4)
        self.uidonly = False
        # the mailbox's IMAP index is complete (``imapidx.ready``; once so, always so)
        self.index_ready = False
        self.reported = seen  # the HIGHESTMODSEQ the client may hold
        self.hms_told = seen  # the last HIGHESTMODSEQ sent
        self.held_from: int | None = None  # ``seen`` before the first held-back expunge
        # keywords this session has been told of in a FLAGS response; a FETCH showing a
        # new one is preceded by an updated ``* FLAGS`` (RFC 9051 §7.3.5)
        self.keywords: set[str] = set()
        self._new_keywords = False
        self.spell: Spellings | None = None  # the account's keyword spellings (select.py)
        # RFC 5267 §4.3 updating search contexts (contexts.py), by tag, and the UIDs whose
        # flags changed or that arrived since they were last matched (kept only while
        # there are contexts)
        self.contexts: dict[str, Any] = {}
        self.touched: set[int] = set()

    # -- the map ----------------------------------------------------------------

    @property
    def exists(self) -> int:
        return len(self.uids)

    @property
    def last_uid(self) -> int:
        if self.pending_new:
            return self.pending_new[-1]
        return self.uids[-1] if self.uids else 0

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i + 1
        return None

    def is_recent(self, uid: int) -> bool:
        return any(lo <= uid < hi for lo, hi in self.recent)

    def recent_count(self) -> int:
        """UIDs in the claimed ranges: two bisections per range, not a pass over the map."""
        return sum(bisect.bisect_left(self.uids, hi) - bisect.bisect_left(self.uids, lo)
                   for lo, hi in self.recent)

    def resolve(self, seqset: SequenceSet, uid: bool, saved: ResolvedSet | None) -> list[tuple[int, int]]:
        """(seq, uid) pairs named by ``seqset``, ascending.  Raises ValueError for a
        message sequence number beyond EXISTS (BAD, RFC 9051 §9); UID sets are clipped."""
        n = len(self.uids)
        if uid:
            if n == 0:
                return []
            if saved is not None:
                saved = ResolvedSet.from_ints(u for u in saved if self.seq_of(u) is not None)
            want = seqset.resolve(self.uids[-1], saved, clip=True)
            out: list[tuple[int, int]] = []
            uids = self.uids
            for lo, hi in want.ranges:
                i = bisect.bisect_left(uids, lo)
                j = bisect.bisect_right(uids, hi, i)
                out.extend(zip(range(i + 1, j + 1), uids[i:j]))
            return out
        if saved is not None:
            saved = ResolvedSet.from_ints(s for s in (self.seq_of(u) for u in saved) if s is not None)
        if n == 0:
            if seqset.uses_saved and all(item == "$" for item in seqset.items):
                return []
            raise ValueError("No messages")
        want = seqset.resolve(n, saved, clip=False)
        if want.max is not None and want.max > n:
            raise ValueError("Invalid message sequence number")
        out = []
        for lo, hi in want.ranges:
            out.extend(zip(range(lo, hi + 1), self.uids[lo - 1:hi]))
        return out

    # -- absorbing changes ------------------------------------------------------------

    def absorb(self, view: Any) -> None:
        """Read what changed in the store since ``seen`` into the pending sets."""
        rec = view.mailbox(self.mailbox)
        if rec is None:
            raise MailboxGoneError(self.name)
        hms = int(rec["hms"])
        known_top = self.last_uid
        if hms > self.seen:
            if self.seen < view.expunge_floor(self.mailbox):
                # the expunge log was compacted past what this session has seen: find what
                # is gone by comparing its map with the store (rare; O(messages))
                live = set(view.uids(self.mailbox))
                gone_now = [u for u in self.uids if u not in live]
            else:
                gone_now = view.expunged_since(self.mailbox, self.seen)
            for u in gone_now:
                if self.seq_of(u) is not None:
                    if self.held_from is None:
                        self.held_from = self.seen
                    self.gone.add(u)
                elif u in self.pending_new:
                    self.pending_new.remove(u)
            for u, _ms in view.changed_since(self.mailbox, self.seen):
                if u <= known_top and u not in self.gone:
                    self.pending_flags.add(u)
                    self.touch((u,))
            self.seen = hms
        if int(rec["uidnext"]) > known_top + 1:
            for u, _e in view.uid_items(self.mailbox, known_top + 1):
                self.pending_new.append(u)
                self.touch((u,))

    def touch(self, uids: Any) -> None:
        """These messages changed (also by this session): match them again against the
        updating search contexts."""
        if self.contexts:
            self.touched.update(uids)

    def own_write(self, hms_before: int, modseq: int | None) -> None:
        """This session committed ``modseq`` on top of ``hms_before``; if nothing else
        happened in between, its effects need no re-reporting."""
        if modseq is not None and hms_before == self.seen:
            self.seen = modseq

    def expunged(self, uids: list[int]) -> None:
        """This session removed ``uids`` (EXPUNGE, MOVE): report them as ghosts.
        Call before ``own_write``."""
        for u in uids:
            if self.seq_of(u) is not None:
                if self.held_from is None:
                    self.held_from = self.seen
                self.gone.add(u)
            self.pending_flags.discard(u)

    # -- emitting ---------------------------------------------------------------------

    def has_pending(self) -> bool:
        return bool(self.gone or self.pending_new or self.pending_flags)

    def settle(self) -> None:
        """Move ``reported`` up to what the client has now been told."""
        if self.gone:
            if self.held_from is not None:
                self.reported = max(self.reported, self.held_from)
        else:
            self.held_from = None
            self.reported = max(self.reported, self.seen)

    def emit(self, view: Any, *, allow_expunge: bool, rev2: bool,
             recent_first: int | None = None, announce_hms: bool = True) -> list[r.Response]:
        """The untagged responses for what was absorbed, updating the map as sent.
        ``announce_hms=False``: the tagged response will carry the HIGHESTMODSEQ."""
        out: list[r.Response] = []
        if allow_expunge and self.gone:
            gone = self.gone
            if self.qresync or self.uidonly:
                out.append(r.vanished(ResolvedSet.from_ints(gone)))
            else:
                seqs = sorted((s for s in (self.seq_of(u) for u in gone) if s is not None),
                              reverse=True)
                for n in seqs:
                    out.append(r.expunge(n))
            self.uids = array("I", (u for u in self.uids if u not in gone))
            self._own_uids = True
            self.pending_flags -= gone
            self.gone = set()
        if self.pending_new:
            if not self._own_uids:
                self.uids = array("I", self.uids)
                self._own_uids = True
            self.uids.extend(self.pending_new)
            if not rev2 and recent_first is not None and self.pending_new[-1] >= recent_first:
                self.recent.append((recent_first, self.pending_new[-1] + 1))
            self.pending_new = []
            out.append(r.exists(len(self.uids)))
            if not rev2:
                out.append(r.recent(self.recent_count()))
        if self.pending_flags:
            for u in sorted(self.pending_flags):
                seq = self.seq_of(u)
                if seq is None or u in self.gone:
                    continue
                e = view.email_at(self.mailbox, u)
                rec = view.email(e) if e is not None else None
                if rec is None:
                    continue
                out.extend(self.fetch(seq, self.flag_items(rec, u, rev2), u))
            self.pending_flags = set()
        self.settle()
        if out and announce_hms and self.qresync and self.reported != self.hms_told:
            out.append(self.highestmodseq_response())
        return out

    # -- fan-out: sessions in the same state are told the same ---------------------------

    def fanout_key(self) -> tuple[Any, ...] | None:
        """Everything but the UID map that decides what ``absorb`` then ``emit`` produce
        and leave behind (two sessions with equal keys and equal maps, updated from the
        same reads, are told the same bytes); None while updating search contexts are
        kept (their matching is per session)."""
        if self.contexts or self.touched:
            return None
        return (self.mailbox, self.readonly, self.condstore, self.qresync, self.seen, self.reported,
                self.hms_told, self.held_from, self._new_keywords, frozenset(self.gone),
                tuple(self.pending_new), frozenset(self.pending_flags), tuple(self.recent),
                frozenset(self.keywords))

    def map_before_update(self) -> array[int]:
        """The UID map as it is now, kept unchanged by the update to come (to match
        other sessions' maps against): the map itself when it is shared (an update
        replaces a shared map, never changes it), else a copy."""
        return array("I", self.uids) if self._own_uids else self.uids

    def same_map(self, uids: array[int]) -> bool:
        return self.uids is uids or self.uids == uids

    def outcome(self) -> tuple[Any, ...]:
        """The state an update left (``adopt`` gives it to another session); the UID map
        becomes shared (copied before its next change)."""
        self._own_uids = False
        return (self.uids, self.seen, frozenset(self.gone), tuple(self.pending_new),
                frozenset(self.pending_flags), tuple(self.recent), self.reported, self.hms_told,
                self.held_from, frozenset(self.keywords), self._new_keywords)

    def adopt(self, state: tuple[Any, ...]) -> None:
        (self.uids, self.seen, gone, new, flags, recent, self.reported, self.hms_told,
         self.held_from, keywords, self._new_keywords) = state
        self._own_uids = False
        self.gone, self.pending_new, self.pending_flags = set(gone), list(new), set(flags)
        self.recent, self.keywords, self.touched = list(recent), set(keywords), set()

    def highestmodseq_response(self) -> r.UntaggedStatus:
        """``* OK [HIGHESTMODSEQ n]`` with the value the client may hold now."""
        self.hms_told = self.reported
        return r.UntaggedStatus("OK", "Highest", r.code_highestmodseq(self.reported))

    def fetch(self, seq: int, items: list[tuple[str, bytes]], uid: int,
              keep_uid: bool = False) -> list[r.Response]:
        """``* seq FETCH (items)``, after a ``* FLAGS`` update if it shows a new keyword.
        UIDONLY (RFC 9586 §3.3): ``* uid UIDFETCH (items)``, whose UID item is left out
        unless the client asked for it (``keep_uid``) or nothing else is said."""
        out: list[r.Response] = []
        if self._new_keywords:
            self._new_keywords = False
            out.append(r.flags(SYSTEM_FLAGS + sorted(self.keywords)))
        if self.uidonly:
            if not keep_uid:
                items = [(n, v) for n, v in items if n != "UID"] or items
            out.append(r.uidfetch(uid, items))
        else:
            out.append(r.fetch(seq, items))
        return out

    def flags_of(self, rec: dict[str, Any], uid: int, rev2: bool) -> list[str]:
        flags = imap_flags(rec, self.mailbox, self.spell)
        for f in flags:
            if not f.startswith("\\") and f not in self.keywords:
                self.keywords.add(f)
                self._new_keywords = True
        if not rev2 and self.is_recent(uid):
            flags.append("\\Recent")
        return flags

    def flag_items(self, rec: dict[str, Any], uid: int, rev2: bool) -> list[tuple[str, bytes]]:
        items = [("UID", r.number(uid)), ("FLAGS", r.flag_list(self.flags_of(rec, uid, rev2)))]
        if self.condstore:
            items.append(("MODSEQ", b"(" + r.number(membership_modseq(rec, self.mailbox)) + b")"))
        return items
