"""The thin Twisted adapter: bytes -> Session -> transport, plus TLS, timers and flow.

One job: carry out what the sans-I/O ``Session`` asks for.  It feeds received bytes,
pulls responses lazily (a big FETCH is written batch by batch, pausing while the
transport's buffer is full: this protocol is the transport's push producer), runs
password checks off the reactor thread (argon2) and delays failed ones, starts TLS
(STARTTLS, RFC 9051 §6.2.1; implicit TLS, RFC 8314), enforces the autologout timers
(RFC 9051 §5.4) with the injected reactor clock, and pushes updates to sessions in IDLE
as soon as a commit touches their mailbox (RFC 2177).  Unexpected exceptions are logged
and answered by the session with NO [SERVERBUG]; the connection survives.

``make_factories(store, options, reactor)`` is what ``DualmailService`` calls.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from contextlib import contextmanager
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from twisted.internet import defer, interfaces, task, threads
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer  # type: ignore[import-untyped]

from dualmail import __version__
from dualmail.imap.config import ImapConfig
from dualmail.imap.session import CheckPassword, Disconnect, Offload, Session, StartTLS
from dualmail.imap.states import State
from dualmail.store.credentials import CredentialCache

Authenticator = Callable[[str, str], "defer.Deferred[int | None]"]


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost",)


@implementer(interfaces.IPushProducer)
class IMAPServerProtocol(Protocol):
    log = Logger()
    transport: Any

    def __init__(self, factory: IMAPFactory) -> None:
        self.factory = factory
        self.session: Session | None = None
        self._current: Iterator[Any] | None = None
        self._paused = False
        self._waiting = False  # a password check is under way
        self._closing = False
        self._timer: Any = None
        self._unsubscribe: Callable[[], None] | None = None
        self._push_scheduled = False
        self._reading_paused = False
        self.peer = ""

    # -- connection ---------------------------------------------------------------

    def connectionMade(self) -> None:
        f = self.factory
        peer = self.transport.getPeer()
        host = getattr(peer, "host", "")
        self.peer = f"{host}:{getattr(peer, 'port', '')}"
        secure = interfaces.ISSLTransport.providedBy(self.transport) or f.implicit_tls
        self.session = Session(f.store, f.config, secure=secure, loopback=_is_loopback(host),
                               now=f.reactor.seconds, peer=self.peer)
        # Responses go out in several writes (untagged lines, then the tagged one, and FETCH
        # in batches): without TCP_NODELAY, Nagle holds the last segment until the client's
        # delayed ACK (~40 ms per command).
        set_nodelay = getattr(self.transport, "setTcpNoDelay", None)
        if set_nodelay is not None:
            try:
                set_nodelay(True)
            except OSError:
                pass
        self.transport.registerProducer(self, True)
        self._unsubscribe = f.store.subscribe(self._on_commit)
        f.connections.add(self)
        self.log.info("IMAP connection from {peer}", peer=self.peer)
        self.transport.write(self.session.greeting())
        self._reset_timer()

    def connectionLost(self, reason: Any = None) -> None:
        self._closing = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.factory.connections.discard(self)
        self._current = None
        self.log.info("IMAP connection from {peer} closed", peer=self.peer)

    def dataReceived(self, data: bytes) -> None:
        if self._closing or self.session is None:
            return
        self.session.feed(data)
        self._reset_timer()
        self._pump()
        blocked = self._paused or self._waiting or self._current is not None
        if blocked and not self._reading_paused and \
                self.session.parser.buffered > self.factory.config.max_buffered_input:
            # a client pipelining faster than we answer: stop reading until we catch up
            self._reading_paused = True
            self.transport.pauseProducing()

    # -- producing output -------------------------------------------------------------

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._pump()

    def stopProducing(self) -> None:
        self._closing = True
        self._current = None

    def _pump(self) -> None:
        session = self.session
        if session is None:
            return
        while not (self._paused or self._waiting or self._closing):
            if self._current is None:
                try:
                    self._current = session.step()
                except Exception:
                    self.log.failure("IMAP session step failed for {peer}", peer=self.peer)
                    self._abort()
                    return
                if self._current is None:
                    if self._reading_paused and not self._closing:
                        self._reading_paused = False
                        self.transport.resumeProducing()
                    return
            try:
                item = next(self._current)
            except StopIteration:
                self._current = None
                continue
            except Exception:
                self.log.failure("IMAP output failed for {peer}", peer=self.peer)
                self._current = None
                self._abort()
                return
            self._carry_out(item)

    def _carry_out(self, item: Any) -> None:
        if isinstance(item, bytes):
            self.transport.write(item)
        elif isinstance(item, CheckPassword):
            self._check_password(item)
        elif isinstance(item, StartTLS):
            self._start_tls()
        elif isinstance(item, Offload):
            self._offload(item)
        elif isinstance(item, Disconnect):
            self._closing = True
            self._current = None
            self.transport.loseConnection()

    def _abort(self) -> None:
        self._closing = True
        self.transport.loseConnection()

    # -- effects ------------------------------------------------------------------

    def _check_password(self, check: CheckPassword) -> None:
        self._waiting = True
        d = self.factory.authenticate(check.user, check.password)

        def checked(account: int | None) -> Any:
            if account is None:
                self.log.warn("IMAP authentication failed for {user} from {peer}",
                              user=check.user, peer=self.peer)
                delay = self.factory.config.failed_login_delay
                if delay > 0:
                    return task.deferLater(self.factory.reactor, delay, lambda: None)
            else:
                self.log.info("IMAP login {user} from {peer}", user=check.user, peer=self.peer)
            return account

        def done(account: int | None) -> None:
            self._waiting = False
            if self._closing or self.session is None:
                return
            for item in self.session.login_result(check, account):
                self._carry_out(item)
            self._reset_timer()
            self._pump()

        def failed(failure: Any) -> None:
            self.log.failure("IMAP password check failed", failure=failure)
            done(None)

        d.addCallback(lambda a: defer.maybeDeferred(checked, a).addCallback(lambda _r: a))
        d.addCallbacks(done, failed)

    def _offload(self, job: Offload) -> None:
        """Long work (SEARCH, SORT, THREAD) on a worker thread: this connection waits for
        it, every other one goes on; the command's generator resumes with the result."""
        self._waiting = True
        inline = True  # still inside this call: a clock without threads ran it at once

        def done(_ignored: Any) -> None:
            self._waiting = False
            if inline or self._closing or self.session is None:
                return  # (inline: the loop in _pump that carried it out goes on)
            self._reset_timer()
            self._pump()

        def failed(failure: Any) -> None:  # job.run never raises; the pool itself failed
            self.log.failure("IMAP worker failed for {peer}", failure=failure, peer=self.peer)
            self._abort()

        self.factory.offload(job.run).addCallbacks(done, failed)
        inline = False

    def _start_tls(self) -> None:
        ctx = self.factory.tls_context
        if ctx is None:
            self._abort()
            return
        self.transport.startTLS(ctx)
        assert self.session is not None
        self.session.tls_started()

    # -- timers --------------------------------------------------------------------------

    def _reset_timer(self) -> None:
        if self.session is None or self._closing:
            return
        cfg = self.factory.config
        timeout = (cfg.unauthenticated_timeout if self.session.state is State.NOT_AUTHENTICATED
                   else cfg.autologout)
        if self._timer is not None and self._timer.active():
            self._timer.reset(timeout)
        else:
            self._timer = self.factory.reactor.callLater(timeout, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        if self.session is None or self._closing:
            return
        self.log.info("IMAP autologout of {peer}", peer=self.peer)
        self._current = None
        for item in self.session.timed_out():
            self._carry_out(item)

    # -- notifications -----------------------------------------------------------------

    def _on_commit(self, commit: Any) -> None:
        s = self.session
        if s is None or self._closing or not s.wants_commit(commit.account, commit.mailboxes):
            return
        if not self._push_scheduled:
            self._push_scheduled = True
            self.factory.push_soon(self)

    def _push(self, shared: SharedReads | None = None) -> None:
        """Tell the IDLE client what changed; ``shared``: the reads of this fan-out,
        made once for every session in the same state."""
        self._push_scheduled = False
        s = self.session
        if s is None or self._closing or not s.idling or self._current is not None:
            return
        store = s.store
        if shared is not None:
            s.store = shared
        try:
            for item in s.pending_updates():
                self._carry_out(item)
        except Exception:
            self.log.failure("IMAP IDLE update failed for {peer}", peer=self.peer)
        finally:
            s.store = store


# ReadView methods whose answers, for the same arguments, are the same for every IDLE
# session updated in one fan-out (what ``SelectedMailbox.absorb``/``emit`` read).
_SHARED_READS = frozenset({"mailbox", "expunge_floor", "expunged_since", "changed_since", "uid_items",
                           "email_at", "email"})


class SharedReads:
    """The store as seen by the IDLE sessions updated in one fan-out: ``read(account)``
    gives a view whose ``_SHARED_READS`` are answered once per argument list for all of
    them (500 sessions on INBOX read the new message's record once, not 500 times); a
    read transaction is opened only on a miss.  Everything else (writes: \\Recent
    claims) goes to the store.  Lives for one reactor turn: what it answers is never
    older than the commit that caused the fan-out."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._memo: dict[int, dict[tuple[Any, ...], Any]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @contextmanager
    def read(self, account: int) -> Iterator[Any]:
        view = _SharedView(self._store, account, self._memo.setdefault(account, {}))
        try:
            yield view
        finally:
            view.close()


class _SharedView:
    def __init__(self, store: Any, account: int, memo: dict[tuple[Any, ...], Any]) -> None:
        self._store, self._account, self._memo = store, account, memo
        self._ctx: Any = None
        self._view: Any = None

    def _real(self) -> Any:
        if self._view is None:
            self._ctx = self._store.read(self._account)
            self._view = self._ctx.__enter__()
        return self._view

    def close(self) -> None:
        if self._ctx is not None:
            ctx, self._ctx, self._view = self._ctx, None, None
            ctx.__exit__(None, None, None)

    def __getattr__(self, name: str) -> Any:
        if name not in _SHARED_READS:
            return getattr(self._real(), name)

        def call(*args: Any) -> Any:
            key = (name, *args)
            try:
                return self._memo[key]
            except KeyError:
                pass
            value = getattr(self._real(), name)(*args)
            if name == "uid_items":
                value = list(value)  # an iterator: kept as a list to be read again
            self._memo[key] = value
            return value

        return call


class IMAPFactory(Factory):
    protocol = IMAPServerProtocol

    def __init__(self, store: Any, config: ImapConfig, reactor: Any, *,
                 tls_context: Any = None, implicit_tls: bool = False,
                 authenticate: Authenticator | None = None,
                 offload: Callable[[Callable[[], None]], defer.Deferred[None]] | None = None,
                 credentials: CredentialCache | None = None) -> None:
        self.store = store
        self.config = config
        self.reactor = reactor
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.connections: set[IMAPServerProtocol] = set()
        self._push_due: dict[IMAPServerProtocol, None] = {}  # IDLE sessions to update, in order
        self._push_call: Any = None
        self.authenticate = authenticate or self._authenticate_in_thread
        self.offload = offload or self._offload_to_thread
        self.credentials = credentials

    def _offload_to_thread(self, work: Callable[[], None]) -> defer.Deferred[None]:
        pool = getattr(self.reactor, "getThreadPool", None)
        if pool is None:  # a clock without threads (MemoryReactor): run it here
            return defer.maybeDeferred(work)
        return threads.deferToThreadPool(self.reactor, pool(), work)

    def _authenticate_in_thread(self, user: str, password: str) -> defer.Deferred[int | None]:
        """A login the credential cache knows is answered at once; else argon2 on a worker
        thread (never on the reactor), and a success is remembered (LOGIN storms)."""
        cache = self.credentials
        if cache is None:
            return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                             self.store.authenticate, user, password)
        account = cache.lookup(user, password)
        if account is not None:
            return defer.succeed(account)
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                         cache.verify, user, password)

    def push_soon(self, proto: IMAPServerProtocol) -> None:
        """Update ``proto`` (in IDLE) on the next reactor turn, with every other
        session a commit concerns: one call, one set of shared reads."""
        self._push_due[proto] = None
        if self._push_call is None:
            self._push_call = self.reactor.callLater(0, self._push_all)

    def _push_all(self) -> None:
        self._push_call = None
        due, self._push_due = self._push_due, {}
        shared = SharedReads(self.store)
        for proto in due:
            proto._push(shared)

    def buildProtocol(self, addr: Any) -> IMAPServerProtocol:
        p = IMAPServerProtocol(self)
        return p

    def jmap_bound(self, options: Any, port: int) -> None:
        """The first JMAP listener is bound to ``port``: use it in the JMAPACCESS URL when
        the endpoint asked for any port (``tcp:0``).  Later sessions see the new URL."""
        url = jmap_session_url(options, bound_port=port)
        if url != self.config.jmap_url:
            self.config = replace(self.config, jmap_url=url)


# -- building the listeners ---------------------------------------------------------------


def jmap_session_url(options: Any, bound_port: int | None = None) -> str | None:
    """RFC 9698: ``{base}/.well-known/jmap``, base from --base-url or the first --jmap;
    ``bound_port`` (the port that listener actually got) replaces a port of 0."""
    base = options.get("base-url") if hasattr(options, "get") else None
    if not base:
        endpoints = list(options.get("jmap") or []) if hasattr(options, "get") else []
        if not endpoints:
            return None
        parts = endpoints[0].split(":")
        kind = parts[0]
        if kind not in ("tcp", "ssl") or len(parts) < 2:
            return None
        port = parts[1]
        if port == "0" and bound_port:
            port = str(bound_port)
        host = "127.0.0.1"
        for p in parts[2:]:
            if p.startswith("interface="):
                host = p.split("=", 1)[1] or host
        if host in ("0.0.0.0", "::", ""):
            host = "localhost"
        if ":" in host:
            host = f"[{host}]"
        base = f"{'https' if kind == 'ssl' else 'http'}://{host}:{port}"
    if not urlsplit(base).scheme:
        return None
    return base.rstrip("/") + "/.well-known/jmap"


def tls_context_factory(cert_file: str, key_file: str) -> Any:
    """A server TLS context from PEM files: the first certificate of ``cert_file`` (a file
    may hold the key too) with the rest as its chain.  The key and certificates are
    ``cryptography`` objects: pyOpenSSL's own X509/PKey are deprecated there."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from twisted.internet import ssl

    with open(cert_file, "rb") as f:
        certs = x509.load_pem_x509_certificates(f.read())
    with open(key_file, "rb") as f:
        key = load_pem_private_key(f.read(), password=None)
    return ssl.CertificateOptions(privateKey=key, certificate=certs[0],  # type: ignore[arg-type]
                                  extraCertChain=certs[1:] or None)  # type: ignore[arg-type]


def make_factories(store: Any, options: Any, reactor: Any) -> list[tuple[str, Any]]:
    from twisted.protocols.tls import TLSMemoryBIOFactory

    get = options.get if hasattr(options, "get") else (lambda k, d=None: d)
    ctx = None
    if get("tls-cert") and get("tls-key"):
        ctx = tls_context_factory(get("tls-cert"), get("tls-key"))
    config = ImapConfig(
        allow_plaintext=bool(get("allow-plaintext")),
        tls_available=ctx is not None,
        jmap_url=jmap_session_url(options),
        server_version=__version__,
    )
    if get("max-message-size"):  # --max-message-size: the same limit as JMAP maxSizeUpload
        config = replace(config, appendlimit=int(get("max-message-size")))
    credentials = CredentialCache(store)  # one for every IMAP listener
    out: list[tuple[str, Any]] = [("imap", IMAPFactory(store, config, reactor, tls_context=ctx,
                                                      credentials=credentials))]
    if ctx is not None:
        inner = IMAPFactory(store, config, reactor, tls_context=None, implicit_tls=True,
                            credentials=credentials)
        out.append(("imaps", TLSMemoryBIOFactory(ctx, False, inner)))  # type: ignore[arg-type]
    return out
