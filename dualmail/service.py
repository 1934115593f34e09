"""DualmailService: opens the store, starts the notifier and the listeners; closes cleanly.

Built by ``tap.makeService``; everything is constructed here and passed down (no module
singletons).  SIGTERM stops twistd, which stops this service, which closes the store after
the listeners have stopped.
"""

from __future__ import annotations

from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.logger import Logger

from .firstrun import ensure_demo_account
from .model.errors import AlreadyExistsError, DomainError
from .indexing import SearchIndexer
from .notify import ExternalCommitWatcher
from .store.store import Store, open_store


def _escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def with_shared_tls(desc: str, cert: str | None, key: str | None) -> str:
    """An ``ssl:`` endpoint without its own certificate gets ``--tls-cert/--tls-key``."""
    if cert and key and desc.startswith("ssl:") and "certKey=" not in desc and "privateKey=" not in desc:
        return f"{desc}:certKey={_escape(cert)}:privateKey={_escape(key)}"
    return desc


class DualmailService(MultiService):
    log = Logger()

    def __init__(self, options: Any, reactor: Any) -> None:
        super().__init__()
        self.options = options
        self.reactor = reactor
        self.data_dir = options["data"]
        self.store: Store | None = None
        self.listeners: dict[str, list[Any]] = {"imap": [], "imaps": [], "jmap": [], "lmtp": []}
        self._jmap_url_users: list[Any] = []

    def _open(self) -> Store:
        try:
            return open_store(self.options.get("store") or self.data_dir)
        except DomainError as e:
            raise SystemExit(f"dualmail: {e.message}") from None

    def privilegedStartService(self) -> None:
        self.store = self._open()
        self._build_listeners(self.store)
        super().privilegedStartService()

    def startService(self) -> None:
        if self.store is None:
            self.store = self._open()
            self._build_listeners(self.store)
        self.log.info("dualmail store open at {path}", path=self.data_dir if not self.options.get("store")
                      else "PostgreSQL " + self.options["store"].split("@")[-1])
        self.reactor.callWhenRunning(self._announce)
        if not self.options.get("no-first-account"):
            hints = [f"  IMAP: {ep}" for ep in self.options["imap"]] + \
                    [f"  JMAP: {ep} (session at /.well-known/jmap)" for ep in self.options["jmap"]]
            try:
                text = ensure_demo_account(self.store, self.data_dir, hints)
            except AlreadyExistsError:  # another node on the same database made it first
                text = None
            if text:
                self.log.info("{text}", text=text)
        super().startService()
        self._tell_jmap_port()

    def _build_listeners(self, store: Store) -> None:
        if self.namedServices.get("watcher") is not None:
            return
        watcher = ExternalCommitWatcher(store, self.reactor)
        watcher.setName("watcher")
        watcher.setServiceParent(self)
        indexer = SearchIndexer(store, self.reactor)
        indexer.setName("indexer")
        indexer.setServiceParent(self)
        factories = self._factories(store)
        for kind, factory in factories:
            for desc in self.options[kind]:
                if kind != "imaps":  # the imaps factory does its own TLS over tcp:
                    desc = with_shared_tls(desc, self.options.get("tls-cert"), self.options.get("tls-key"))
                svc = strports.service(desc, factory, reactor=self.reactor)
                svc.setServiceParent(self)
                self.listeners[kind].append(svc)
        imap = [getattr(f, "wrappedFactory", f) for kind, f in factories if kind in ("imap", "imaps")]
        self._jmap_url_users = [f for f in imap if hasattr(f, "jmap_bound")]

    def _tell_jmap_port(self) -> None:
        """IMAP's JMAPACCESS URL (RFC 9698) names the first JMAP listener; once it is
        bound, the IMAP factories learn its real port (it matters for ``tcp:0``)."""
        if not self.listeners["jmap"] or self.listeners["jmap"][0]._waitingForPort is None:
            return
        targets = self._jmap_url_users

        def bound(port: Any) -> Any:
            number = getattr(port.getHost(), "port", None)
            if number:
                for f in targets:
                    f.jmap_bound(self.options, number)
            return port

        self.listeners["jmap"][0]._waitingForPort.addCallback(bound)

    def _factories(self, store: Store) -> list[tuple[str, Any]]:
        """(option name, protocol factory) for every listener kind that exists."""
        out: list[tuple[str, Any]] = []
        try:
            from .imap.protocol import make_factories
        except ImportError:
            make_factories = None
        if make_factories is not None:
            out.extend(make_factories(store, self.options, self.reactor))
        try:
            from .jmap.service import make_site
        except ImportError:
            make_site = None
        if make_site is not None:
            out.append(("jmap", make_site(store, self.options, self.reactor)))
        return out

    def bound_ports(self, kind: str) -> defer.Deferred:
        """The listening ports of one kind, once they are bound (tests, logging)."""
        waits = [svc._waitingForPort for svc in self.listeners[kind] if svc._waitingForPort is not None]
        return defer.gatherResults(waits)

    def _announce(self) -> None:
        for kind, services in self.listeners.items():
            for svc in services:
                d = svc._waitingForPort
                if d is None:
                    continue

                def bound(port: Any, kind: str = kind) -> Any:
                    host = port.getHost()
                    self.log.info("{kind} listening on {host}:{port}", kind=kind.upper(),
                                  host=getattr(host, "host", host), port=getattr(host, "port", ""))
                    return port

                d.addCallback(bound)
        self.log.info("dualmail ready")

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        yield super().stopService()
        if self.store is not None:
            self.store.close()
            self.store = None
            self.log.info("dualmail store closed")
