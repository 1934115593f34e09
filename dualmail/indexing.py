"""SearchIndexer: keeps the full-text index (``dualmail.search.fts``) caught up on a running server.

The index is derived data, written outside the mail transactions so delivery and import
stay fast; searches are exact whether or not it has caught up (``docs/search.md``), and
cheap while it catches up (mail above the watermark is matched by its term record, made
at ingest).  After every commit that touched Emails (in this process or another), the
account is marked and indexed ``LAG`` later -- a later commit does not push that back,
so new mail is in the index well within a second -- in slices of at most ``SLICE``
Emails and ``SLICE_SECONDS`` of reading, each its own short transaction, yielding to the
reactor between slices so IMAP and JMAP requests are never held up for long.  When an
account has caught up, an index made before the gram dictionary is upgraded
(``upgrade_grams``), a slice at a time too.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.logger import Logger

from .search.fts import index_pending, upgrade_grams
from .store.store import Store
from .store.txn import Commit

SLICE = 512  # emails per slice at most (from term records: ~30 µs each, plus the postings)
SLICE_SECONDS = 0.02  # reading stops after this long (old Emails without term records)
UPGRADE_SLICE = 5000  # fts keys per slice of the gram upgrade
LAG = 0.05  # seconds from a commit to indexing its mail (not reset by later commits)
GAP = 0.005  # between slices of a catch-up, so requests are served in between


class SearchIndexer(Service):
    log = Logger()

    def __init__(self, store: Store, reactor: Any) -> None:
        self.store = store
        self.reactor = reactor
        self._dirty: set[int] = set()
        self._done: dict[int, int] = {}  # account -> emails indexed in the current catch-up
        self._call: Any = None
        self._last = 0  # the account of the last slice
        self._unsubscribe: Any = None

    def startService(self) -> None:
        super().startService()
        self._unsubscribe = self.store.subscribe(self._committed)
        self._dirty.update(a for a, _address in self.store.list_accounts())
        self._schedule(0)

    def stopService(self) -> Any:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        return super().stopService()

    def _committed(self, commit: Commit) -> None:
        if "Email" in commit.kinds:
            self._dirty.add(commit.account)
            # a short wait gathers a burst of commits into one slice; a scheduled run is
            # never pushed back, so a steady stream of commits is indexed LAG behind it
            self._schedule(LAG)

    def _schedule(self, delay: float = GAP) -> None:
        if self.running and self._dirty and (self._call is None or not self._call.active()):
            self._call = self.reactor.callLater(delay, self._run)

    def _run(self) -> None:
        self._call = None
        if not self._dirty:
            return
        # round robin: one account's long catch-up does not hold back another's new mail
        account = min((a for a in self._dirty if a > self._last), default=min(self._dirty))
        self._last = account
        try:
            done = index_pending(self.store, account, SLICE, SLICE_SECONDS)
            if not done:
                done = upgrade_grams(self.store, account, UPGRADE_SLICE) and -1
        except Exception:
            self.log.failure("search indexing failed for account {account}", account=account)
            done = 0
        if done > 0:
            self._done[account] = self._done.get(account, 0) + done
        elif done == 0:  # (< 0: a slice of the gram upgrade was done)
            self._dirty.discard(account)
            n = self._done.pop(account, 0)
            if n >= 1000:
                self.log.info("search index caught up for account {account}: {n} messages indexed",
                              account=account, n=n)
        self._schedule()
