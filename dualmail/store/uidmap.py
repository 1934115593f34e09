"""UidMaps: each mailbox's ascending UID list, kept in memory and brought up to date
incrementally, so an IMAP SELECT does not re-read every UID of a large mailbox.

An entry remembers the HIGHESTMODSEQ it reflects.  Given a read view, the list is brought
to that view's state from the store's O(changes) indexes: the expunge log (UIDs gone since
that modseq) and the UID index above the last known UID (UIDs added).  When the expunge log
no longer reaches back that far (compacted), the list is read again.  The caller gets a
shared array that nobody changes in place (an update makes a new one): every session
idle on a 100k mailbox holds the same 400 KB, not its own copy; a session copies it
before its first change (``SelectedMailbox``).  One instance per ``Store``;
single-threaded (the reactor thread).  ``UnseenSets`` does the same for the unseen
memberships (SEARCH UNSEEN), on any thread.  Imports no lmdb and no twisted.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left
from collections import OrderedDict
from typing import Any

from . import imapidx, keys as K
from .txn import ReadView


class UidMaps:
    def __init__(self, max_mailboxes: int = 64, min_size: int = 1000) -> None:
        self.max_mailboxes = max_mailboxes
        self.min_size = min_size  # smaller mailboxes are cheap to read: not cached
        self._maps: OrderedDict[tuple[int, int], tuple[int, array]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def uids(self, view: ReadView, m: int, rec: dict[str, Any] | None = None) -> array:
        """The UIDs of mailbox ``m`` as of ``view``: an array the caller must not change
        (copy it first)."""
        rec = rec if rec is not None else view.require_mailbox(m)
        hms = int(rec["hms"])
        key = (view.a, m)
        entry = self._maps.get(key)
        if entry is not None and entry[0] <= hms and entry[0] >= view.expunge_floor(m):
            seen, uids = entry
            if seen < hms:
                # never changed in place: sessions hold this very array (copy on write)
                gone = view.expunged_since(m, seen)
                if gone:
                    drop = set(gone)
                    uids = array("I", (u for u in uids if u not in drop))
                top = uids[-1] if uids else 0
                new = array("I", (u for u, _e in view.uid_items(m, top + 1)))
                if new:
                    uids = uids + new
            self._maps[key] = (hms, uids)
            self._maps.move_to_end(key)
            self.hits += 1
            return uids
        self.misses += 1
        uids = view.uids(m, expect=int(rec["counts"]["msgs"]))
        if len(uids) >= self.min_size:
            self._maps[key] = (hms, uids)
            self._maps.move_to_end(key)
            while len(self._maps) > self.max_mailboxes:
                self._maps.popitem(last=False)
        else:
            self._maps.pop(key, None)
        return uids

    def forget(self, account: int, m: int | None = None) -> None:
        for key in [k for k in self._maps if k[0] == account and (m is None or k[1] == m)]:
            del self._maps[key]


class UnseenSets:
    """Each large mailbox's (UID, Email) pairs without ``$seen``, kept in memory and brought
    up to date from the O(changes) indexes as ``UidMaps`` does, so ``SEARCH UNSEEN`` (what
    every client sends after SELECT) is a copy of a list, not a read of every unseen row.

    An entry remembers the HIGHESTMODSEQ it reflects.  A read view at a higher one updates
    it: memberships changed since (``changed_since``: new messages and flag changes) are
    looked up in ``imapm`` (one get each), expunged ones dropped.  A view older than the
    entry, a compacted expunge log, or more than ``max_changes`` changes read the
    mailbox's ``unseen`` rows again.  Only for mailboxes whose IMAP index is built (the
    caller checks ``imapidx.ready``).  Safe on any thread (a lock around the entries)."""

    def __init__(self, max_mailboxes: int = 64, min_size: int = 1000, max_changes: int = 2000,
                 max_firsts: int = 4096) -> None:
        self.max_mailboxes = max_mailboxes
        self.min_size = min_size  # smaller mailboxes are cheap to read: not cached
        self.max_changes = max_changes
        self._sets: OrderedDict[tuple[int, int], tuple[int, list[tuple[int, int]]]] = OrderedDict()
        # (account, mailbox) -> (HIGHESTMODSEQ, its first unseen UID): 4096 entries of ~200 B
        self.max_firsts = max_firsts
        self._firsts: OrderedDict[tuple[int, int], tuple[int, int | None]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def pairs(self, view: ReadView, m: int, rec: dict[str, Any]) -> list[tuple[int, int]]:
        """(UID, Email) of ``m``'s memberships without ``$seen`` as of ``view``, ascending:
        a new list the caller may change."""
        return list(self._current(view, m, rec))

    def first(self, view: ReadView, m: int, rec: dict[str, Any]) -> int | None:
        """The lowest UID of ``m`` without ``$seen`` as of ``view`` (SELECT's [UNSEEN n]).

        From the kept set where there is one (no read while it is current); else from
        the first row of the ``unseen`` index (one cursor step), remembered with the
        HIGHESTMODSEQ it is of, so a SELECT of a mailbox unchanged since the last one
        (a client reconnecting) reads nothing for it.  Never builds a set: that reads
        every unseen row, which SELECT must not."""
        key = (view.a, m)
        hms = int(rec["hms"])
        with self._lock:
            kept = key in self._sets
            known = self._firsts.get(key)
            if known is not None and known[0] == hms:
                self._firsts.move_to_end(key)
        if kept and int(rec["counts"]["msgs"]) >= self.min_size:
            got = self._current(view, m, rec)
            return got[0][0] if got else None
        if known is not None and known[0] == hms:
            self.hits += 1
            return known[1]
        uid = imapidx.first_unseen(view.kv, view.a, m)
        self._keep(self._firsts, self.max_firsts, key, hms, uid)
        return uid

    def _keep(self, entries: OrderedDict[Any, Any], limit: int, key: tuple[int, int],
              hms: int, value: Any) -> None:
        """Remember ``value`` as of ``hms`` unless a newer one is kept (a thread with a
        newer view may have been first); the least recently used beyond ``limit`` go."""
        with self._lock:
            old = entries.get(key)
            if old is None or old[0] <= hms:
                entries[key] = (hms, value)
                entries.move_to_end(key)
            while len(entries) > limit:
                entries.popitem(last=False)

    def _current(self, view: ReadView, m: int, rec: dict[str, Any]) -> list[tuple[int, int]]:
        """The pairs as of ``view``: the entry itself where current (never changed in
        place: callers must not change it)."""
        hms = int(rec["hms"])
        key = (view.a, m)
        with self._lock:
            entry = self._sets.get(key)
        if entry is not None and entry[0] == hms:
            self.hits += 1
            return entry[1]
        got: list[tuple[int, int]] | None = None
        if entry is not None and entry[0] < hms and entry[0] >= view.expunge_floor(m):
            got = self._update(view, m, entry[0], entry[1])
        if got is None:
            self.misses += 1
            got = imapidx.unseen(view.kv, view.a, m, expect=int(rec["counts"]["unseen"]))
        else:
            self.hits += 1
        if int(rec["counts"]["msgs"]) >= self.min_size:
            self._keep(self._sets, self.max_mailboxes, key, hms, got)
        return got

    def _update(self, view: ReadView, m: int, seen: int,
                pairs: list[tuple[int, int]]) -> list[tuple[int, int]] | None:
        changed = view.changed_since(m, seen)
        if len(changed) > self.max_changes:
            return None
        drop = set(view.expunged_since(m, seen))
        drop.update(u for u, _ms in changed)
        out = [p for p in pairs if p[0] not in drop] if drop else list(pairs)
        if changed:
            uids = sorted({u for u, _ms in changed})
            rows = view.kv.get_many("imapm", [K.uid(view.a, m, u) for u in uids])
            add = [(u, imapidx.unpack(row).email) for u, row in zip(uids, rows)
                   if row is not None and not imapidx.has_seen(row)]
            if add:
                out = sorted(out + add)
        return out

    def forget(self, account: int, m: int | None = None) -> None:
        with self._lock:
            for d in (self._sets, self._firsts):
                for key in [k for k in d if k[0] == account and (m is None or k[1] == m)]:
                    del d[key]
