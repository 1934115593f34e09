"""UidMaps: each mailbox's ascending UID list, kept in memory and brought up to date
incrementally, so an IMAP SELECT does not re-read every UID of a large mailbox.

An entry remembers the HIGHESTMODSEQ it reflects.  Given a read view, the list is brought
to that view's state from the store's O(changes) indexes: the expunge log (UIDs gone since
that modseq) and the UID index above the last known UID (UIDs added).  When the expunge log
no longer reaches back that far (compacted), the list is read again.  The caller gets a
shared array that nobody changes in place (an update makes a new one): every session
idle on a 100k mailbox holds the same 400 KB, not its own copy; a session copies it
before its first change (``SelectedMailbox``).  One instance per ``Store``;
single-threaded (the reactor thread).  Imports no lmdb and no twisted.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import OrderedDict
from typing import Any

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
        uids = view.uids(m)
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
