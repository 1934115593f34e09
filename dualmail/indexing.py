"""SearchIndexer: keeps the full-text index (``dualmail.search.fts``) caught up on a running server.

The index is derived data, written outside the mail transactions so delivery and import
stay fast; searches are exact whether or not it has caught up (``docs/search.md``), and
cheap while it catches up (mail above the watermark is matched by its term record, made
at ingest).  After every commit that touched Emails (in this process or another), the
account is indexed ``LAG`` later -- a later commit does not push that back -- but no
sooner than ``INTERVAL`` after its last slice began, so a stream of APPENDs is indexed
in one slice per ``INTERVAL`` rather than one per commit (a slice rewrites the last
postings chunk of every term it adds to, and its commit is synced: sliced per commit,
indexing cost more than the APPENDs, 2026-12-05).  New mail is in the index well within
a second.  Slices hold at most ``SLICE`` Emails and ``SLICE_SECONDS`` of reading, each
its own short transaction on the reactor's thread pool (never on the reactor), one at a
time, one account after another.  When an account has caught up, an index made before
the gram dictionary is upgraded (``upgrade_grams``), and one made before the subject
postings is given them (``upgrade_subjects``), a slice at a time too.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from .search.fts import index_slice, upgrade_grams, upgrade_subjects
from .store.store import Store
from .store.txn import Commit

SLICE = 512  # emails per slice at most (from term records: ~30 µs each, plus the postings)
SLICE_SECONDS = 0.02  # reading stops after this long (old Emails without term records)
UPGRADE_SLICE = 5000  # fts keys per slice of the gram upgrade
SUBJECT_SLICE = 2000  # Emails per slice of the subject-postings upgrade (~10 µs each)
LAG = 0.05  # seconds from a commit to indexing its mail (not reset by later commits)
INTERVAL = 0.5  # at least this long between two slices of one account's new mail
GAP = 0.005  # between slices of a catch-up, so requests are served in between


class SearchIndexer(Service):
    """``offload(fn, *args)`` runs a slice and returns a Deferred of its result: on the
    reactor's thread pool when the reactor has one (a slice's synced commit never holds
    the reactor), else in place (a test clock)."""

    log = Logger()

    def __init__(self, store: Store, reactor: Any, offload: Callable[..., Any] | None = None) -> None:
        self.store = store
        self.reactor = reactor
        self.offload = offload or self._offload
        self._due: dict[int, float] = {}  # account -> when its next slice may run
        self._began: dict[int, float] = {}  # account -> when its last slice began
        self._done: dict[int, int] = {}  # account -> emails indexed in the current catch-up
        self._call: Any = None
        self._busy: Any = None  # the Deferred of the slice running (one at a time)
        self._last = 0  # the account of the last slice
        self._unsubscribe: Any = None

    def _offload(self, fn: Callable[..., Any], *args: Any) -> Any:
        pool = getattr(self.reactor, "getThreadPool", None)
        if pool is None:
            return maybeDeferred(fn, *args)
        return deferToThreadPool(self.reactor, pool(), fn, *args)

    def startService(self) -> None:
        super().startService()
        self._unsubscribe = self.store.subscribe(self._committed)
        now = self.reactor.seconds()
        for a, _address in self.store.list_accounts():
            self._due[a] = now
        self._schedule()

    def stopService(self) -> Any:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        super().stopService()
        if self._busy is None:
            return None
        # the store closes after this service stops: not under a slice's feet
        done: Deferred[None] = Deferred()
        self._busy.addBoth(lambda r: done.callback(None) or r)
        return done

    def _committed(self, commit: Commit) -> None:
        a = commit.account
        if "Email" in commit.kinds and a not in self._due:
            # a short wait gathers a burst of commits into one slice; while mail keeps
            # coming, an account's new mail is indexed once per INTERVAL, in one slice:
            # a slice rewrites the tail chunk of every term it adds to and syncs, so a
            # slice per commit would cost more than the commits themselves.  A due time
            # is never pushed back, so a stream of commits does not starve the index.
            now = self.reactor.seconds()
            self._due[a] = max(now + LAG, self._began.get(a, -INTERVAL) + INTERVAL)
            self._schedule()

    def _schedule(self) -> None:
        if not self.running or self._busy is not None or not self._due:
            return
        when = min(self._due.values())
        if self._call is not None and self._call.active():
            if self._call.getTime() <= when:
                return
            self._call.cancel()
        self._call = self.reactor.callLater(max(0.0, when - self.reactor.seconds()), self._run)

    def _run(self) -> None:
        self._call = None
        now = self.reactor.seconds()
        ready = [a for a, t in self._due.items() if t <= now]
        if not ready:
            self._schedule()
            return
        # round robin: one account's long catch-up does not hold back another's new mail
        account = min((a for a in ready if a > self._last), default=min(ready))
        self._last = account
        del self._due[account]
        self._began[account] = now
        self._busy = d = self.offload(self._slice, account)
        d.addBoth(self._sliced, account)

    def _slice(self, account: int) -> tuple[int, bool]:
        """(Emails indexed, is more of the backlog left)."""
        n, complete = index_slice(self.store, account, SLICE, SLICE_SECONDS)
        if complete and n == 0 and (upgrade_grams(self.store, account, UPGRADE_SLICE)
                                    or upgrade_subjects(self.store, account, SUBJECT_SLICE)):
            return 0, True
        return n, not complete

    def _sliced(self, result: Any, account: int) -> None:
        self._busy = None
        if isinstance(result, Failure):
            self.log.failure("search indexing failed for account {account}", result, account=account)
            result = (0, False)
        n, more = result
        if n:
            self._done[account] = self._done.get(account, 0) + n
        if more:  # a backlog (or the gram upgrade): the next slice soon
            self._due[account] = min(self._due.get(account, float("inf")), self.reactor.seconds() + GAP)
        else:
            if not n:  # an idle look does not space out the next new mail's slice
                self._began.pop(account, None)
            total = self._done.pop(account, 0)
            if total >= 1000:
                self.log.info("search index caught up for account {account}: {n} messages indexed",
                              account=account, n=total)
        self._schedule()
