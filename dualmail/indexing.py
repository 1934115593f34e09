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

SLICE = 64  # emails per slice: a few tens of milliseconds


class SearchIndexer(Service):
    log = Logger()

    def __init__(self, store: Store, reactor: Any) -> None:
        self.store = store
        self.reactor = reactor
        self._dirty: set[int] = set()
        self._call: Any = None
        self._unsubscribe: Any = None

    def startService(self) -> None:
        super().startService()
        self._unsubscribe = self.store.subscribe(self._committed)
        self._dirty.update(a for a, _address in self.store.list_accounts())
        self._schedule()

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
            self._schedule()

    def _schedule(self) -> None:
        if self.running and self._dirty and (self._call is None or not self._call.active()):
            self._call = self.reactor.callLater(0, self._run)

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
        if not done:
            self._dirty.discard(account)
        self._schedule()
