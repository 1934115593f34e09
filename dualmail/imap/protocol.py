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

import zlib
from collections import Counter
from dataclasses import replace
from contextlib import contextmanager
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from twisted.internet import defer, interfaces, task, threads
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer  # type: ignore[import-untyped]

from dualmail import __version__
from dualmail.authguard import AuthGuard, is_loopback as _is_loopback
from dualmail.imap.config import ImapConfig
from dualmail.imap.session import (CheckPassword, Disconnect, Offload, Session, StartCompress,
                                   StartTLS)

#: what one inflate step may produce before the parser sees it (a small deflate stream can
#: expand a thousandfold; the parser's line and literal limits then apply as to plain input)
_INFLATE_CHUNK = 64 * 1024
#: seconds between ``* OK [INPROGRESS ("tag" NIL NIL)]`` while a command's work runs on a
#: worker thread (RFC 9585 §3: the counts are unknown, so NIL)
INPROGRESS_INTERVAL = 5.0
from dualmail.imap.states import State
from dualmail.store.credentials import CredentialCache

Authenticator = Callable[[str, str], "defer.Deferred[int | None]"]


# Twisted's TCP transport hands the kernel at most SEND_LIMIT (128 KiB) per reactor turn,
# and resumes a paused producer only once its buffer is empty: a 1 MB BODY[] or a
# 5 MB listing FETCH took one turn per 128 KiB.  Larger sends cut those turns (the kernel
# takes what its socket buffer holds; the rest waits for the next turn, as before).
_SEND_LIMIT = 1024 * 1024


def _large_sends(transport: Any) -> None:
    """Raise the send limit of the socket under ``transport`` (and under TLS wrapping)."""
    for _depth in range(4):
        if hasattr(type(transport), "SEND_LIMIT"):  # (a TLS wrapper forwards getattr)
            transport.SEND_LIMIT = _SEND_LIMIT
            return
        transport = getattr(transport, "transport", None)
        if transport is None:
            return


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
        self._push_scheduled = False
        self._reading_paused = False
        self.peer = ""
        self._deflate: Any = None  # COMPRESS=DEFLATE (RFC 4978): zlib streams once active
        self._inflate: Any = None
        self.host = ""
        self._counted_ip = False
        self._counted_account: int | None = None
        self._deadline: Any = None  # the running command's deadline (slow clients)

    # -- connection ---------------------------------------------------------------

    def connectionMade(self) -> None:
        f = self.factory
        peer = self.transport.getPeer()
        host = getattr(peer, "host", "")
        self.host = str(host)
        self.peer = f"{host}:{getattr(peer, 'port', '')}"
        secure = interfaces.ISSLTransport.providedBy(self.transport) or f.implicit_tls
        loopback = _is_loopback(host)
        self.session = Session(f.store, f.config, secure=secure, loopback=loopback,
                               now=f.reactor.seconds, peer=self.peer)
        cap = f.config.max_connections_per_ip
        if cap and (f.config.limit_loopback or not loopback) and f.per_ip[self.host] >= cap:
            # RFC 9051 §7.1.5 BYE at greeting time, RFC 5530 UNAVAILABLE: try again later
            self.log.info("IMAP connection from {peer} refused: {cap} connections from that address",
                          peer=self.peer, cap=cap)
            self._closing = True
            self.transport.write(b"* BYE [UNAVAILABLE] Too many connections from your address\r\n")
            self.transport.loseConnection()
            return
        f.per_ip[self.host] += 1
        self._counted_ip = True
        self.session.account_full = self._account_full
        # Responses go out in several writes (untagged lines, then the tagged one, and FETCH
        # in batches): without TCP_NODELAY, Nagle holds the last segment until the client's
        # delayed ACK (~40 ms per command).
        set_nodelay = getattr(self.transport, "setTcpNoDelay", None)
        if set_nodelay is not None:
            try:
                set_nodelay(True)
            except OSError:
                pass
        _large_sends(self.transport)
        self.transport.registerProducer(self, True)
        f.connections.add(self)
        self.log.info("IMAP connection from {peer}", peer=self.peer)
        self.transport.write(self.session.greeting())
        self._reset_timer()

    def connectionLost(self, reason: Any = None) -> None:
        self._closing = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        self.factory.connections.discard(self)
        f = self.factory
        if self._counted_ip:
            self._counted_ip = False
            f.per_ip[self.host] -= 1
            if f.per_ip[self.host] <= 0:
                del f.per_ip[self.host]
        if self._counted_account is not None:
            a, self._counted_account = self._counted_account, None
            f.per_account[a] -= 1
            if f.per_account[a] <= 0:
                del f.per_account[a]
            f.unlisten(self, a)
        self._current = None
        self.log.info("IMAP connection from {peer} closed", peer=self.peer)

    def dataReceived(self, data: bytes) -> None:
        if self._closing or self.session is None:
            return
        if self._inflate is not None:
            try:
                self._feed_inflated(data)
            except zlib.error:
                self.log.info("IMAP {peer}: bad or oversized DEFLATE data; closing", peer=self.peer)
                self._abort()
                return
        else:
            self.session.feed(data)
        self._reset_timer()
        self._pump()
        self._check_deadline()
        blocked = self._paused or self._waiting or self._current is not None
        if blocked and not self._reading_paused and \
                self.session.parser.buffered > self.factory.config.max_buffered_input:
            # a client pipelining faster than we answer: stop reading until we catch up
            self._reading_paused = True
            self.transport.pauseProducing()

    def _feed_inflated(self, data: bytes) -> None:
        """Inflate in bounded steps; more unparsed input than a literal at APPENDLIMIT
        plus the pipelining allowance is a bomb, not a client: raises zlib.error."""
        assert self.session is not None
        cfg = self.factory.config
        cap = cfg.appendlimit + cfg.max_buffered_input + cfg.max_line
        out = self._inflate.decompress(data, _INFLATE_CHUNK)
        while True:
            if out:
                self.session.feed(out)
                if self.session.parser.buffered > cap:
                    raise zlib.error("inflated input over the limit")
            tail = self._inflate.unconsumed_tail
            if not tail:
                return
            out = self._inflate.decompress(tail, _INFLATE_CHUNK)

    def _write(self, data: bytes) -> None:
        if self._deflate is not None:  # RFC 4978 §4: a sync flush after each write
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        self.transport.write(data)

    # -- producing output -------------------------------------------------------------

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._pump()
        if self.session is not None and self.session.notify is not None:
            self._schedule_push()  # what waited while the transport was full

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
                    self._check_deadline()
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
            self._write(item)
        elif isinstance(item, CheckPassword):
            self._check_password(item)
        elif isinstance(item, StartTLS):
            self._start_tls()
        elif isinstance(item, Offload):
            self._offload(item)
        elif isinstance(item, StartCompress):
            # raw DEFLATE both ways from the byte after the tagged OK (RFC 4978 §3)
            self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
            self._inflate = zlib.decompressobj(-15)
            left = self.session.parser.take_buffered() if self.session is not None else b""
            if left:  # the client sent compressed bytes behind COMPRESS at once
                self._feed_inflated(left)
        elif isinstance(item, Disconnect):
            self._closing = True
            self._current = None
            self._close()

    def _abort(self) -> None:
        self._closing = True
        self._close()

    def _close(self) -> None:
        """Close once what is written has gone out. The producer is released first: Twisted's
        drain path resumes a paused producer INSTEAD of finishing a pending close, so a
        close while the write buffer is full would otherwise leave the socket open forever."""
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    # -- effects ------------------------------------------------------------------

    def _check_password(self, check: CheckPassword) -> None:
        self._waiting = True
        if check.preverified:  # SCRAM, OAUTHBEARER: the session checked it
            d: defer.Deferred[int | None] = defer.succeed(check.account)
        else:
            d = self.factory.authenticate(check.user, check.password)

        def checked(account: int | None) -> Any:
            guard = self.factory.guard
            if account is None:
                # one line per failure, the format fail2ban matches (dualmail/authguard.py)
                delay = guard.failure(self.host, check.user, "imap", check.mechanism)
                if guard.base <= 0:  # no backoff configured: the fixed delay
                    delay = self.factory.config.failed_login_delay
                if delay > 0:
                    return task.deferLater(self.factory.reactor, delay, lambda: None)
            else:
                guard.success(check.user)
                self.log.info("IMAP login {user} from {peer} ({mechanism})", user=check.user,
                              peer=self.peer, mechanism=check.mechanism)
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

    def _account_full(self, account: int) -> bool:
        """The session's login check: False (and the session counted) when the account
        has room for one more session."""
        f = self.factory
        if self._counted_account == account:
            return False
        cap = f.config.max_connections_per_account
        if cap and f.per_account[account] >= cap:
            self.log.info("IMAP login of account {account} from {peer} refused: {cap} sessions",
                          account=account, peer=self.peer, cap=cap)
            return True
        if self._counted_account is not None:  # logged in again after UNAUTHENTICATE
            f.per_account[self._counted_account] -= 1
            f.unlisten(self, self._counted_account)
        f.per_account[account] += 1
        self._counted_account = account
        f.listen(self, account)  # this account's commits from now on
        return False

    def _offload(self, job: Offload) -> None:
        """Long work (SEARCH, SORT, THREAD) on a worker thread: this connection waits for
        it, every other one goes on; the command's generator resumes with the result."""
        self._waiting = True
        inline = True  # still inside this call: a clock without threads ran it at once
        ticker = self._progress(job.tag) if job.tag else None

        def done(_ignored: Any) -> None:
            self._waiting = False
            if ticker is not None and ticker.running:
                ticker.stop()
            if inline or self._closing or self.session is None:
                return  # (inline: the loop in _pump that carried it out goes on)
            self._reset_timer()
            self._pump()

        def failed(failure: Any) -> None:  # job.run never raises; the pool itself failed
            self.log.failure("IMAP worker failed for {peer}", failure=failure, peer=self.peer)
            self._abort()

        self.factory.offload(job.run).addCallbacks(done, failed)
        inline = False

    def _progress(self, tag: str) -> Any:
        """RFC 9585: tell the client every INPROGRESS_INTERVAL that ``tag`` still runs."""
        from dualmail.imap.wire import responses as r

        code = r.code_inprogress(tag)

        def tick() -> None:
            if not self._closing and self.session is not None:
                self._write(self.session.encode(r.UntaggedStatus("OK", "Still working", code)))

        ticker = task.LoopingCall(tick)
        ticker.clock = self.factory.reactor
        ticker.start(INPROGRESS_INTERVAL, now=False)
        return ticker

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

    def _check_deadline(self) -> None:
        """Start the command deadline when a command has begun arriving and we are waiting
        for the rest of it; stop it when nothing partial is left (or we are the slow one)."""
        s = self.session
        if s is None or self._closing:
            return
        blocked = self._paused or self._waiting or self._current is not None
        if s.parser.mid_command and not blocked:
            if self._deadline is None or not self._deadline.active():
                cfg = self.factory.config
                limit = (cfg.command_deadline_unauthenticated if s.state is State.NOT_AUTHENTICATED
                         else cfg.command_deadline)
                self._deadline = self.factory.reactor.callLater(limit, self._deadline_passed)
        elif self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.session is None or self._closing:
            return
        self.log.info("IMAP {peer}: a command did not arrive in time; closing", peer=self.peer)
        self._current = None
        self.session.state = State.LOGOUT
        self.transport.write(b"* BYE Command not completed in time\r\n")
        self._closing = True
        self._close()

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
        if s is None or self._closing:
            return
        s.note_commit(commit)  # NOTIFY (RFC 5465): what it touched, for later
        if not s.wants_commit(commit.account, commit.mailboxes):
            return
        self._schedule_push()

    def _schedule_push(self) -> None:
        if not self._push_scheduled:
            self._push_scheduled = True
            self.factory.push_soon(self)

    def _push(self, shared: SharedReads | None = None) -> None:
        """Tell the IDLE client what changed; ``shared``: the reads of this fan-out,
        made once for every session in the same state."""
        self._push_scheduled = False
        s = self.session
        if s is None or self._closing or self._current is not None:
            return
        store = s.store
        if shared is not None:
            s.store = shared
        try:
            if s.idling:
                for item in (s.idle_updates(shared) if shared is not None else s.pending_updates()):
                    self._carry_out(item)
            elif s.notify is not None and not (self._waiting or self._paused):
                # RFC 5465 §3.1: a NOTIFY client hears of changes between commands too;
                # while the transport is full they wait (and may overflow, §5.8)
                for item in s.between_commands():
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
        # what sessions in one state were told and left in (Session.idle_updates)
        self.outcomes: dict[tuple[Any, ...], list[Any]] = {}

    def claim_recent(self, account: int, mailbox: int, upto: int | None = None) -> int:
        """The \\Recent claim (IMAP4rev1) of the fan-out: the first session claims in
        the store (one write, up to ``upto``: the UIDs it read); every later one gets what
        a claim would answer then, the bound the first claim set (nothing recent for it),
        without a write.  Every session of one fan-out read the same view."""
        memo = self._memo.setdefault(account, {})
        key = ("claim_recent", mailbox)
        if key in memo:
            return int(memo[key])
        with self._store.write(account) as tx:
            first = int(tx.claim_recent(mailbox, upto))
            memo[key] = int(tx.require_mailbox(mailbox)["recent"])
        return first

    def claimed(self, account: int, mailbox: int) -> int | None:
        """What ``claim_recent`` answers now, if a session of this fan-out claimed."""
        return self._memo.get(account, {}).get(("claim_recent", mailbox))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def mailbox_record(self, account: int, m: int) -> Any:
        """The record as the fan-out's shared views see it (read once for every session)."""
        with self.read(account) as view:
            return view.mailbox(m)

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
                 credentials: CredentialCache | None = None, guard: AuthGuard | None = None) -> None:
        self.store = store
        # failed-login backoff (per IP and per account); its base delay is the IMAP one
        self.guard = guard or AuthGuard(reactor.seconds, base=config.failed_login_delay)
        self.config = config
        self.reactor = reactor
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.connections: set[IMAPServerProtocol] = set()
        self.per_ip: Counter[str] = Counter()  # open connections per peer address
        self.per_account: Counter[int] = Counter()  # authenticated sessions per account
        # logged-in connections by account: a commit reaches its account's sessions only
        # (one store subscription per factory, not one per connection)
        self._by_account: dict[int, dict[IMAPServerProtocol, None]] = {}
        self._unsubscribe_store: Callable[[], None] | None = None
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
        from dualmail.store.store import SCOPE_IMAP

        # an app token of scope "imap" as the password (one read, no argon2; never cached,
        # so a revocation is seen by the next login)
        token_account = self.store.authenticate_token(user, password, (SCOPE_IMAP,))
        if token_account is not None:
            return defer.succeed(token_account)
        cache = self.credentials
        if cache is None:
            return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                             self.store.authenticate, user, password)
        account = cache.lookup(user, password)
        if account is not None:
            return defer.succeed(account)
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                         cache.verify, user, password)

    def listen(self, proto: IMAPServerProtocol, account: int) -> None:
        self._by_account.setdefault(account, {})[proto] = None
        if self._unsubscribe_store is None:
            self._unsubscribe_store = self.store.subscribe(self._on_commit)

    def unlisten(self, proto: IMAPServerProtocol, account: int) -> None:
        protos = self._by_account.get(account)
        if protos is not None:
            protos.pop(proto, None)
            if not protos:
                del self._by_account[account]
        if not self._by_account and self._unsubscribe_store is not None:
            self._unsubscribe_store()
            self._unsubscribe_store = None

    def _on_commit(self, commit: Any) -> None:
        for proto in list(self._by_account.get(commit.account, ())):
            try:
                proto._on_commit(commit)
            except Exception:
                proto.log.failure("IMAP commit notification failed for {peer}", peer=proto.peer)

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


def channel_binding(cert_file: str) -> bytes:
    """RFC 5929 §4 tls-server-end-point data of the first certificate in ``cert_file``."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from dualmail.store.scram import tls_server_end_point

    with open(cert_file, "rb") as f:
        cert = x509.load_pem_x509_certificates(f.read())[0]
    return tls_server_end_point(cert.public_bytes(Encoding.DER))


def make_factories(store: Any, options: Any, reactor: Any) -> list[tuple[str, Any]]:
    from twisted.protocols.tls import TLSMemoryBIOFactory

    get = options.get if hasattr(options, "get") else (lambda k, d=None: d)
    ctx = None
    if get("tls-cert") and get("tls-key"):
        ctx = tls_context_factory(get("tls-cert"), get("tls-key"))
    config = ImapConfig(
        allow_plaintext=bool(get("allow-plaintext")),
        tls_available=ctx is not None,
        tls_channel_binding=channel_binding(get("tls-cert")) if ctx is not None else None,
        jmap_url=jmap_session_url(options),
        server_version=__version__,
    )
    if get("literal-minus"):  # --literal-minus (RFC 7888 §5)
        config = replace(config, literal_minus=True)
    for option, field in (("max-connections-per-ip", "max_connections_per_ip"),
                          ("max-connections-per-account", "max_connections_per_account")):
        if get(option) is not None:
            config = replace(config, **{field: int(get(option))})
    if get("max-message-size"):  # --max-message-size: the same limit as JMAP maxSizeUpload
        config = replace(config, appendlimit=int(get("max-message-size")))
    credentials = CredentialCache(store)  # one for every IMAP listener
    guard = AuthGuard(reactor.seconds, base=config.failed_login_delay)  # and one backoff
    out: list[tuple[str, Any]] = [("imap", IMAPFactory(store, config, reactor, tls_context=ctx,
                                                      credentials=credentials, guard=guard))]
    if ctx is not None:
        inner = IMAPFactory(store, config, reactor, tls_context=None, implicit_tls=True,
                            credentials=credentials, guard=guard)
        inner.per_ip, inner.per_account = out[0][1].per_ip, out[0][1].per_account  # caps span both
        out.append(("imaps", TLSMemoryBIOFactory(ctx, False, inner)))  # type: ignore[arg-type]
    return out
