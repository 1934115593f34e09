"""DualmailService: opens the store, starts the notifier and the listeners; closes cleanly.

Built by ``tap.makeService``; everything is constructed here and passed down (no module
singletons).  SIGTERM stops twistd, which stops this service, which closes the store after
the listeners have stopped.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from .firstrun import ensure_demo_account
from .model.errors import AlreadyExistsError, DomainError, UnavailableError
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


def _split_endpoint(desc: str) -> list[str]:
    """``desc`` split at its unescaped colons (escapes kept, as Twisted's parser reads them)."""
    parts, cur, i = [], "", 0
    while i < len(desc):
        ch = desc[i]
        if ch == "\\" and i + 1 < len(desc):
            cur += desc[i : i + 2]
            i += 2
            continue
        if ch == ":":
            parts.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    return parts + [cur]


_OTHER_TLS_ARGS = ("extraCertChain", "dhParameters", "sslmethod", "caCertsDir")


def tls_over_tcp(desc: str, factory: Any) -> tuple[str, Any]:
    """An ``ssl:`` listener with ``privateKey=``/``certKey=`` becomes ``tcp:`` with TLS by
    ``TLSMemoryBIOFactory`` over ``tls_context_factory`` (the way ``--imaps`` works):
    Twisted's own ``ssl:`` parser hands pyOpenSSL the deprecated X509/PKey objects.
    Endpoints with other TLS arguments are left to Twisted."""
    if not desc.startswith("ssl:"):
        return desc, factory
    kept, files = [], {}
    for part in _split_endpoint(desc)[1:]:
        name, eq, value = part.partition("=")
        if eq and name in ("privateKey", "certKey"):
            files[name] = re.sub(r"\\(.)", r"\1", value)
        elif eq and name in _OTHER_TLS_ARGS:
            return desc, factory
        else:
            kept.append(part)
    if "privateKey" not in files:
        return desc, factory
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from .imap.protocol import tls_context_factory

    ctx = tls_context_factory(files.get("certKey", files["privateKey"]), files["privateKey"])
    return ":".join(["tcp", *kept]), TLSMemoryBIOFactory(ctx, False, factory)


class ParserService(Service):
    """The MIME parsing processes (``mail.parsers``) of the store's new mail: started
    with the service (the children themselves at the first parse), ended after the
    listeners have stopped (services stop in reverse order)."""

    def __init__(self, store: Store, n: int) -> None:
        self.store = store
        self.n = n

    def startService(self) -> None:
        super().startService()
        if self.n > 0:
            from .mail.parsers import Parsers

            self.store.parsers = Parsers(self.n)

    def stopService(self) -> Any:
        parsers, self.store.parsers = self.store.parsers, None
        if parsers is not None:
            parsers.close()
        return super().stopService()


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
        self.outbox: Any = None  # the OutboxRunner when --smarthost is set (dualmail.submission)

    def _open(self) -> Store:
        try:
            return open_store(self.options.get("store") or self.data_dir,
                              blobs=self.options.get("blobs"))
        except (DomainError, UnavailableError) as e:
            raise SystemExit(f"dualmail: {e.message}") from None

    def privilegedStartService(self) -> None:
        self.store = self._open()
        self._build_listeners(self.store)
        for svc in self:  # MultiService.privilegedStartService, naming a listener that fails
            try:
                svc.privilegedStartService()
            except CannotListenError as e:
                raise SystemExit(self._cannot_listen(svc, e)) from None

    def _cannot_listen(self, svc: Any, e: CannotListenError) -> str:
        """One line for a port that cannot be bound (in use, privileged): which listener, which
        address, what to change.  twistd prints it and exits 1; the store is closed."""
        kind = next((k for k, services in self.listeners.items() if svc in services), "listener")
        reason = getattr(e.socketError, "strerror", None) or str(e.socketError)
        if self.store is not None:
            self.store.close()
            self.store = None
        where = f"{e.interface or '*'}:{e.port}"
        label = {"imap": "IMAP", "imaps": "IMAPS", "jmap": "JMAP", "lmtp": "LMTP"}.get(kind, kind)
        hint = f"; choose another with --{kind}" if kind in self.listeners else ""
        return f"dualmail: cannot listen for {label} on {where}: {reason.lower()}{hint}"

    def startService(self) -> None:
        if self.store is None:
            self.store = self._open()
            self._build_listeners(self.store)
        self.log.info("dualmail store open at {path}", path=self.data_dir if not self.options.get("store")
                      else "PostgreSQL " + self.options["store"].split("@")[-1])
        if self.store.blobs is not None:
            self.log.info("message bytes in {where}", where=self.store.blobs.describe())
        self.reactor.callWhenRunning(self._announce)
        if not self.options.get("no-first-account"):
            hints = [f"  IMAP: {ep}" for ep in self.options["imap"]] + \
                    [f"  JMAP: {ep} (session at /.well-known/jmap)" for ep in self.options["jmap"]] + \
                    [f"  LMTP: {ep}" for ep in self.options.get("lmtp", [])]
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
        parsers = ParserService(store, int(self.options.get("parsers") or 0))
        parsers.setName("parsers")
        parsers.setServiceParent(self)
        watcher = ExternalCommitWatcher(store, self.reactor)
        watcher.setName("watcher")
        watcher.setServiceParent(self)
        indexer = SearchIndexer(store, self.reactor)
        indexer.setName("indexer")
        indexer.setServiceParent(self)
        self._build_outbox(store)
        factories = self._factories(store)
        for kind, factory in factories:
            for desc in self.options[kind]:
                if kind != "imaps":  # the imaps factory does its own TLS over tcp:
                    desc = with_shared_tls(desc, self.options.get("tls-cert"), self.options.get("tls-key"))
                desc, served = tls_over_tcp(desc, factory)
                svc = strports.service(desc, served, reactor=self.reactor)
                svc.setServiceParent(self)
                self.listeners[kind].append(svc)
        imap = [getattr(f, "wrappedFactory", f) for kind, f in factories if kind in ("imap", "imaps")]
        self._jmap_url_users = [f for f in imap if hasattr(f, "jmap_bound")]

    def _build_outbox(self, store: Store) -> None:
        """The queue runner relaying EmailSubmissions and vacation replies to
        ``--smarthost`` (without one nothing is sent: EmailSubmission/set
        answers forbiddenToSend)."""
        from .submission.config import from_options
        from .submission.relay import OutboxRunner

        config = self.options.get("submission") or from_options(self.options)
        if config.smarthost:
            self.outbox = OutboxRunner(store, config, self.reactor)
            self.outbox.setName("outbox")
            self.outbox.setServiceParent(self)

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
        from .lmtp.protocol import make_factories as make_lmtp_factories

        # looked up at each delivery, so a hook set on the service later is used
        out.extend(make_lmtp_factories(store, self.options, self.reactor,
                                       lambda *args: self.after_delivery(*args)))
        return out

    def after_delivery(self, account: int, email_id: int, raw: bytes, mail_from: str) -> None:
        """Called after each LMTP delivery into an account has committed (before its 250):
        the seam for vacation replies (RFC 3834).  Replace it (subclass, or assign
        ``service.after_delivery = fn``); see ``dualmail/lmtp/delivery.py``.

        Vacation replies (RFC 8621 §8, RFC 3834) go out through the outbound queue, so
        only where a ``--smarthost`` is set: without one, nothing can be sent (as
        EmailSubmission/set then answers forbiddenToSend) and nothing is queued."""
        if self.outbox is None:
            return
        from .submission.vacation import after_delivery as vacation_reply

        vacation_reply(self, account, email_id, raw, mail_from)

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
