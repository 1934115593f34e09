"""Notifier: every commit, from this process or another, reaches subscribers at once.

In-process commits are published by the store right after they commit.  Commits made by
another process (the ``dualmail`` CLI) are noticed through inotify on the LMDB data file
and read from the store's global commit log (``Store.poll_external``): nothing polls on a
timer where inotify exists.  On platforms without inotify a slow timer is the fallback.
A shared engine (PostgreSQL) has its own signal instead: ``kv.listen`` calls back after
every commit of any node (``NOTIFY``) and after each reconnection, and the same commit
log read (``poll_external``) publishes what other nodes did.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet import task
from twisted.logger import Logger
from twisted.python import filepath

from .store.store import Store


class ExternalCommitWatcher(Service):
    """Watches the store's data file and publishes other processes' commits."""

    log = Logger()

    def __init__(self, store: Store, reactor: Any, fallback_interval: float = 1.0) -> None:
        self.store = store
        self.reactor = reactor
        self.fallback_interval = fallback_interval
        self._notifier: Any = None
        self._loop: task.LoopingCall | None = None
        self._pending: Any = None  # the scheduled look at the commit log, if any
        self._stop_listening: Any = None

    def startService(self) -> None:
        super().startService()
        listen = getattr(self.store.kv, "listen", None)
        self._stop_listening = listen(self._signal_from_thread) if listen is not None else None
        if self._stop_listening is not None:  # a shared engine's own signal (PostgreSQL NOTIFY)
            self.log.info("listening for commits of other nodes")
            return
        path = self.store.kv.changed_path()
        try:
            from twisted.internet import inotify

            self._notifier = inotify.INotify(reactor=self.reactor)
            self._notifier.startReading()
            self._notifier.watch(filepath.FilePath(path), mask=inotify.IN_MODIFY | inotify.IN_CLOSE_WRITE,
                                 callbacks=[self._changed])
        except Exception as e:  # no inotify (not Linux) or an in-memory reactor
            self.log.info("inotify unavailable ({err}); checking for external commits every {n}s",
                          err=str(e), n=self.fallback_interval)
            self._notifier = None
            self._loop = task.LoopingCall(self.check)
            self._loop.clock = self.reactor
            self._loop.start(self.fallback_interval, now=False)

    def _signal_from_thread(self) -> None:
        # Called on the engine's listener thread: hop to the reactor, then coalesce.
        self.reactor.callFromThread(self._changed, None, None, 0)

    def _changed(self, _watch: Any, _path: Any, _mask: int) -> None:
        # Coalesce a burst of modify events into one look at the commit log.
        if self._pending is None and self.running:
            self._pending = self.reactor.callLater(0, self.check)

    def check(self) -> None:
        self._pending = None
        try:
            self.store.poll_external()
        except Exception:
            self.log.failure("reading external commits failed")

    def stopService(self) -> None:
        if self._pending is not None:  # a look scheduled as the store closes: not run
            self._pending.cancel()
            self._pending = None
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        if self._notifier is not None:
            self._notifier.loseConnection()
            self._notifier = None
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return super().stopService()
