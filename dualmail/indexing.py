"""SearchIndexer: keeps the full-text index (``dualmail.search.fts``) caught up on a running server.

The index is derived data, written outside the mail transactions so delivery and import
stay fast; searches are exact whether or not it has caught up (``docs/search.md``).  After
every commit that touched Emails (in this process or another), the account is marked and
indexed in small slices, each its own short transaction, yielding to the reactor between
slices so IMAP and JMAP requests are never held up for long.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.logger import Logger

from .search.fts import index_pending
from .store.store import Store
from .store.txn import Commit

SLICE = 16  # emails per slice: ~10 ms of work plus one commit
QUIET = 1.0  # seconds after the last commit before new mail is indexed (a burst: one pass)
GAP = 0.005  # between slices of a catch-up, so requests are served in between


class SearchIndexer(Service):
    log = Logger()

    def __init__(self, store: Store, reactor: Any) -> None:
        self.store = store
        self.reactor = reactor
        self._dirty: set[int] = set()
        self._done: dict[int, int] = {}  # account -> emails indexed in the current catch-up
        self._call: Any = None
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
            # wait for the account to be quiet: a burst of deliveries is indexed in one pass
            if self._call is not None and self._call.active():
                self._call.reset(QUIET)
            else:
                self._schedule(QUIET)

    def _schedule(self, delay: float = GAP) -> None:
        if self.running and self._dirty and (self._call is None or not self._call.active()):
            self._call = self.reactor.callLater(delay, self._run)

    def _run(self) -> None:
        self._call = None
        if not self._dirty:
            return
        account = min(self._dirty)
        try:
            done = index_pending(self.store, account, SLICE)
        except Exception:
            self.log.failure("search indexing failed for account {account}", account=account)
            done = 0
        if done:
            self._done[account] = self._done.get(account, 0) + done
        else:
            self._dirty.discard(account)
            n = self._done.pop(account, 0)
            if n >= 1000:
                self.log.info("search index caught up for account {account}: {n} messages indexed",
                              account=account, n=n)
        self._schedule()
