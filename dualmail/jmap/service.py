"""The JMAP listener of ``twistd dualmail``: ``make_site(store, options,
reactor)`` joins the HTTP layer (``app.JMAPApp``) to the store.

- ``StoreAuthenticator``: HTTP Basic against the account store (argon2 runs
  in a thread), Bearer tokens made by ``dualmail token create`` (kind
  ``app``), and push-only tokens (kind ``push``) accepted only as
  ``?access_token=`` on the EventSource URL.
- ``StoreBackend``: one account per user (accountId ``A<n>``), uploads and
  downloads of that account's blobs, push from the store's commit stream
  (one store subscription fanned out per account), push tokens.
- ``UploadJanitor``: hourly, removes upload marks older than a day (a blob
  nothing references goes with its mark) and expired tokens.

Like ``imap/protocol.py`` this is glue and may import ``twisted.internet``;
the methods themselves live in ``dualmail.jmap.types``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import IO, Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.web import server

from ..authguard import is_loopback as _loopback
from ..model import errors, ids
from ..push.runner import PushRunner
from ..push.webpush import VAPID_CAPABILITY, VapidKey
from ..store.credentials import CredentialCache
from ..store.store import SCOPE_JMAP, SCOPE_JMAP_READ, Store
from ..store.txn import KINDS, Commit
from ..submission.config import SubmissionConfig, from_options as submission_config
from .app import JMAPApp, make_site as make_app_site
from .dispatch import Method, ReadOnlyPrincipal, core_methods
from .errors import MethodError, RequestError
from .session import Account, CoreLimits, SessionInfo
from .standard import set_, set_grouped
from .state import parse_state, to_state
from .types import MAIL, QUOTA, SORT_OPTIONS, SUBMISSION, VACATION, store_methods
from .types.base import account_number
from .types.email_import import email_import_grouped
from .types.email_blobs import resolve_blob, stored_sha
from .types.push_subscription import PushConfig, push_subscription_methods

# Seconds a wrong password or token waits before its 401 (the IMAP login
# delay is the same figure).
FAILED_LOGIN_DELAY = 1.0
PUSH_TOKEN_TTL = 300  # seconds
# The push-only token in the Session's eventSourceUrl: valid this long, replaced by a
# new one when a third of that is left, so a URL just handed out works >= 10 minutes.
SESSION_PUSH_TOKEN_TTL = 1800
SESSION_PUSH_TOKEN_RENEW = 600
UPLOAD_QUOTA_FACTOR = 4  # the upload quota, in multiples of maxSizeUpload
UPLOAD_TTL = 24 * 3600  # an upload nothing references is removed after this
JANITOR_INTERVAL = 3600.0
MAX_SIZE_MAILBOX_NAME = 255
DEFAULT_HTTP_PER_IP = 200  # open HTTP connections per non-loopback address (--max-connections-per-ip)


class StoreAuthenticator:
    """``app.Authenticator`` over the store. Principals are account numbers."""

    log = Logger()

    def __init__(self, store: Store, run_blocking: Callable[..., Deferred[Any]],
                 credentials: CredentialCache | None = None):
        self.store = store
        self.run_blocking = run_blocking
        self.credentials = credentials if credentials is not None else CredentialCache(store)

    def verify_basic(self, username: str, password: str) -> Deferred[int | None] | int | None:
        # an app token of a JMAP scope as the password (one read; never cached, so its
        # revocation is seen by the next request)
        token = self._app_token(password)
        if token is not None:
            return token if self.store.account_id(username) == token else None
        # Basic sends the password with every request: verified once by argon2 (~30 ms,
        # never on the reactor thread), then taken from the credential cache
        account = self.credentials.lookup(username, password)
        if account is not None:
            return account
        return self.run_blocking(self.credentials.verify, username, password)

    def _app_token(self, token: str) -> int | None:
        """The principal of a live app token of scope jmap (an int) or jmap-read (a
        ``ReadOnlyPrincipal``); None for anything else."""
        if len(token) < 40:
            return None
        rec = self.store.token_record(token)
        if rec is None or rec.get("kind") != "app" or rec["scope"] not in (SCOPE_JMAP, SCOPE_JMAP_READ):
            return None
        account = int(rec["account"])
        return ReadOnlyPrincipal(account) if rec["scope"] == SCOPE_JMAP_READ else account

    def verify_bearer(self, token: str) -> int | None:
        return self._app_token(token)

    def token_live(self, token: str) -> bool:
        """Whether ``token`` is a live token (an open EventSource ends once it is not)."""
        return len(token) >= 40 and self.store.token_record(token) is not None

    def verify_push_token(self, token: str) -> int | None:
        return self.store.verify_token(token, kind="push")


class StoredBlob:
    """``app.Blob`` over a blob in an external store (S3): ``want`` (the octets the response
    needs, told by the download route) bounds what is fetched, in windows of at most
    ``WINDOW`` octets, one ranged GET each."""

    WINDOW = 4 << 20

    def __init__(self, store: Store, account: int, sha: str, size: int) -> None:
        self.store, self.account, self.sha, self.size = store, account, sha, size
        self._end = size
        self._start = 0
        self._data = b""

    def want(self, first: int, length: int) -> None:
        self._end = min(self.size, first + length)

    def read(self, offset: int, length: int) -> bytes:
        if not (self._start <= offset and offset + length <= self._start + len(self._data)):
            n = max(length, min(self.WINDOW, self._end - offset))
            with self.store.read(self.account) as r:
                self._data = r.blob_range(self.sha, offset, n) or b""
            self._start = offset
        i = offset - self._start
        return self._data[i:i + length]


class StoreBackend:
    """``app.Backend`` over the store."""

    log = Logger()

    def __init__(self, store: Store, now: Callable[[], float], limits: CoreLimits, submission: Any = None):
        self.store = store
        self.now = now
        self.limits = limits
        self.submission = submission or SubmissionConfig()
        self._listeners: dict[int, list[Callable[[Mapping[str, Any]], None]]] = {}
        self._unsubscribe_store: Callable[[], None] | None = None
        self.application_server_key: str | None = None  # VAPID (RFC 9749 §3), set by build_app
        # pending (unreferenced) uploads an account may hold (RFC 8620 §6.1): room for
        # UPLOAD_QUOTA_FACTOR uploads of the largest size; older ones are dropped first
        self.upload_quota = UPLOAD_QUOTA_FACTOR * limits.max_size_upload
        self._session_tokens: dict[int, tuple[str, float]] = {}  # account -> (token, expires)

    def capabilities(self) -> Mapping[str, Mapping[str, Any]]:
        caps: dict[str, Mapping[str, Any]] = {MAIL: {}, SUBMISSION: {}, VACATION: {}, QUOTA: {}}
        if self.application_server_key:
            caps[VAPID_CAPABILITY] = {"applicationServerKey": self.application_server_key}
        return caps

    def _account_capabilities(self) -> dict[str, dict[str, Any]]:
        return {
            MAIL: {
                "maxMailboxesPerEmail": None,
                "maxMailboxDepth": None,
                "maxSizeMailboxName": MAX_SIZE_MAILBOX_NAME,
                "maxSizeAttachmentsPerEmail": self.limits.max_size_upload,
                "emailQuerySortOptions": list(SORT_OPTIONS),
                "mayCreateTopLevelMailbox": True,
            },
            # RFC 8621 §1.3.2; maxRecipients: the per-message limit (tooManyRecipients)
            SUBMISSION: {"maxDelayedSend": 0, "submissionExtensions": {},
                         "maxRecipients": self.submission.limits.max_recipients},
            VACATION: {},
            QUOTA: {},  # RFC 9425 §2.1: an empty object
        }

    def _address(self, principal: int) -> str:
        record = self.store.account_record(principal)
        if record is None:  # deleted while a token or connection was still around
            raise RequestError("about:blank", 401, "the account no longer exists")
        return str(record["address"])

    def session_info(self, principal: int) -> SessionInfo:
        address = self._address(principal)
        account_id = ids.format_id(ids.ACCOUNT, principal)
        account = Account(name=address, capabilities=self._account_capabilities())
        return SessionInfo(
            username=address,
            accounts={account_id: account},
            primary_accounts={uri: account_id for uri in (MAIL, SUBMISSION, VACATION, QUOTA)},
        )

    def _own(self, principal: int, account_id: str) -> bool:
        return ids.parse_id(ids.ACCOUNT, account_id) == principal

    # -- blobs --

    def upload(self, principal: int, account_id: str, content_type: str, body: IO[bytes]) -> dict[str, Any]:
        if not self._own(principal, account_id):
            raise RequestError("about:blank", 404, f"no account {account_id!r}")
        data = body.read()
        sha = self.store.stage_blob(principal, data)  # S3 blobs: uploaded before the transaction
        try:
            with self.store.write(principal) as tx:
                # An upload that could never become an Email of this account is refused
                # (its storage quota, RFC 9425); RFC 8620 §5.3 names the error overQuota.
                tx.check_quota(len(data), 0)
                # the per-account upload quota (RFC 8620 §6.1): oldest unreferenced uploads go
                tx.make_upload_room(len(data), self.upload_quota, keep=sha.hex())
                sha = tx.put_blob(data, content_type=content_type, uploaded=int(self.now()))
        except errors.OverQuotaError as e:
            raise RequestError("overQuota", 403, e.message) from None
        return {"accountId": account_id, "blobId": ids.blob_id(sha), "type": content_type, "size": len(data)}

    def download(self, principal: int, account_id: str, blob_id: str) -> bytes | None:
        """A stored blob, or a body part of one, decoded (``types.email_blobs``)."""
        if not self._own(principal, account_id):
            return None
        sha = stored_sha(blob_id)
        if sha is not None and self.store.blobs is not None:
            # a whole stored blob in S3: read lazily, so a Range request fetches its range
            with self.store.read(principal) as r:
                info = r.blob_info(sha)
            if info is not None and info.get("size") is not None:
                return StoredBlob(self.store, principal, sha, int(info["size"]))
        with self.store.read(principal) as r:
            data: bytes | None = resolve_blob(r, blob_id)
        return data

    # -- push --

    def subscribe(
        self,
        principal: int,
        types: frozenset[str] | None,
        callback: Callable[[Mapping[str, Any]], None],
    ) -> Callable[[], None]:
        if self._unsubscribe_store is None:
            self._unsubscribe_store = self.store.subscribe(self._on_commit)
        self._listeners.setdefault(principal, []).append(callback)

        def unsubscribe() -> None:
            callbacks = self._listeners.get(principal, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                self._listeners.pop(principal, None)
            if not self._listeners and self._unsubscribe_store is not None:
                self._unsubscribe_store()
                self._unsubscribe_store = None

        return unsubscribe

    def _on_commit(self, commit: Commit) -> None:
        """Every commit, from any process or protocol (CONTRACT §5): the
        types it changed now have the commit's modseq as their state."""
        callbacks = self._listeners.get(commit.account)
        if not callbacks or not commit.kinds:
            return
        state = to_state(commit.modseq)
        change = {
            "@type": "StateChange",
            "changed": {ids.format_id(ids.ACCOUNT, commit.account): {kind: state for kind in sorted(commit.kinds)}},
            # RFC 8887 §4.3.5.1: the whole visible state is the one account's modseq
            "pushState": state,
        }
        for callback in list(callbacks):
            try:
                callback(change)
            except Exception:
                self.log.failure("JMAP push to account {account} failed", account=commit.account)

    def push_catch_up(self, principal: int, types: frozenset[str] | None, push_state: str) -> dict[str, Any] | None:
        """RFC 8887 §4.3.5.2: the types whose state moved past ``push_state``
        (a modseq of the principal's one account) with their states now; a
        pushState that is not ours (or from the future) gets every type."""
        try:
            since = parse_state(push_state)
        except MethodError:
            since = -1
        with self.store.read(principal) as r:
            now = r.highest_modseq
            states = {kind: r.state(kind) for kind in KINDS if types is None or kind in types}
        if since > now:
            since = -1
        changed = {kind: to_state(s) for kind, s in states.items() if s > since}
        if not changed:
            return None
        return {"@type": "StateChange", "changed": {ids.format_id(ids.ACCOUNT, principal): changed},
                "pushState": to_state(now)}

    def session_push_token(self, principal: int) -> str:
        """The push-only token of the Session's eventSourceUrl (kind ``push``, like
        ``POST /jmap/pushtoken``'s): one per account, kept in memory, replaced
        SESSION_PUSH_TOKEN_RENEW seconds before it expires or once revoked."""
        now = self.now()
        held = self._session_tokens.get(principal)
        if held is not None and held[1] - now > SESSION_PUSH_TOKEN_RENEW \
                and self.store.verify_token(held[0], kind="push") == principal:
            return held[0]
        token = self.store.create_token(self._address(principal), kind="push", ttl=SESSION_PUSH_TOKEN_TTL,
                                        note="JMAP session eventSourceUrl")
        self._session_tokens[principal] = (token, now + SESSION_PUSH_TOKEN_TTL)
        return token

    def push_token(self, principal: int) -> tuple[str, int]:
        token = self.store.create_token(self._address(principal), kind="push", ttl=PUSH_TOKEN_TTL,
                                        note="JMAP EventSource")
        return token, PUSH_TOKEN_TTL


class UploadJanitor:
    """Removes stale uploads and expired tokens every ``interval`` seconds."""

    log = Logger()

    def __init__(self, store: Store, clock: Any, ttl: int = UPLOAD_TTL, interval: float = JANITOR_INTERVAL):
        self.store = store
        self.clock = clock
        self.ttl = ttl
        self.interval = interval
        self._loop: task.LoopingCall | None = None

    def sweep(self) -> None:
        now = self.clock.seconds()
        try:
            uploads = self.store.expire_uploads(int(now - self.ttl))
            tokens = self.store.expire_tokens(now)
        except Exception:
            self.log.failure("JMAP upload cleanup failed")
            return
        if uploads or tokens:
            self.log.info("removed {uploads} stale uploads and {tokens} expired tokens", uploads=uploads,
                          tokens=tokens)

    def start(self) -> None:
        if self._loop is None:
            self._loop = task.LoopingCall(self.sweep)
            self._loop.clock = self.clock
            self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self._loop is not None:
            if self._loop.running:
                self._loop.stop()
            self._loop = None


class _Refuse(Protocol):
    """Answers 503 with Retry-After at once and closes: the address has its maximum of
    open HTTP connections (issue 17; RFC 9110 §15.6.4)."""

    def connectionMade(self) -> None:
        body = b'{"type":"about:blank","status":503,"detail":"too many connections from your address"}'
        self.transport.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 10\r\n"
                             b"Content-Type: application/problem+json\r\nConnection: close\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        self.transport.loseConnection()


class JMAPSite(server.Site):
    """The Site of the JMAP endpoints; runs the janitor while it listens
    (``startFactory``/``stopFactory`` follow the first and last port), and caps the open
    connections per non-loopback address (``max_per_ip``, 0: none)."""

    _log = Logger()  # (``log`` is Site's access-log method)

    def __init__(self, resource: Any, janitor: UploadJanitor, push_runner: Any = None, max_per_ip: int = 0,
                 **kwargs: Any):
        super().__init__(resource, **kwargs)  # type: ignore[no-untyped-call]
        self.janitor = janitor
        self.push_runner = push_runner  # dualmail.push.runner.PushRunner: Web Push deliveries
        self.max_per_ip = max_per_ip
        self.per_ip: Counter[str] = Counter()
    def buildProtocol(self, addr: Any) -> Any:
        host = str(getattr(addr, "host", ""))
        limited = self.max_per_ip and not _loopback(host)
        if limited and self.per_ip[host] >= self.max_per_ip:
            self._log.info("JMAP connection from {host} refused: {cap} open", host=host, cap=self.max_per_ip)
            return _Refuse()
        channel = super().buildProtocol(addr)
        if not limited or channel is None:
            return channel
        self.per_ip[host] += 1
        lost = channel.connectionLost

        def connection_lost(reason: Any) -> None:
            self.per_ip[host] -= 1
            if self.per_ip[host] <= 0:
                del self.per_ip[host]
            lost(reason)

        channel.connectionLost = connection_lost
        return channel

    def startFactory(self) -> None:
        super().startFactory()
        self.janitor.start()
        if self.push_runner is not None:
            self.push_runner.start()

    def stopFactory(self) -> None:
        self.janitor.stop()
        if self.push_runner is not None:
            self.push_runner.stop()
        super().stopFactory()


# Methods that may search a whole mailbox (a full-text filter, a sort the index cannot
# serve): they run on a worker thread, so the event loop serves other requests meanwhile.
# Each opens its own read view and only reads; the calls of one request still run in order.
OFFLOADED_METHODS = ("Email/query", "Email/queryChanges", "SearchSnippet/get")


def offload_searches(methods: dict[str, Method], run_blocking: Callable[..., Deferred[Any]]) -> dict[str, Method]:
    """``methods`` with the handlers of ``OFFLOADED_METHODS`` run through ``run_blocking``."""
    out = dict(methods)
    for name in OFFLOADED_METHODS:
        method = out.get(name)
        if method is not None:
            out[name] = Method(method.capability, partial(run_blocking, method.handler))
    return out


# Methods that decode, and sanitise (nh3), whole body parts when body values are asked
# for: a large or hostile HTML part then takes a worker thread, not the event loop.
BODY_VALUE_METHODS = ("Email/get", "Email/parse")
_FETCH_FLAGS = ("fetchTextBodyValues", "fetchHTMLBodyValues", "fetchAllBodyValues")


def offload_body_values(methods: dict[str, Method], run_blocking: Callable[..., Deferred[Any]]) -> dict[str, Method]:
    """``methods`` with ``BODY_VALUE_METHODS`` run through ``run_blocking`` when a call
    asks for body values (other calls stay on the event loop: no thread hop)."""
    out = dict(methods)
    for name in BODY_VALUE_METHODS:
        method = out.get(name)
        if method is None:
            continue

        def handler(ctx: Any, args: dict[str, Any], _inline: Any = method.handler) -> Any:
            if any(args.get(flag) is True for flag in _FETCH_FLAGS):
                return run_blocking(_inline, ctx, args)
            return _inline(ctx, args)

        out[name] = Method(method.capability, handler)
    return out


# Methods whose one write transaction goes through the store's group commit on a worker
# thread (as IMAP STORE/APPEND do): the synced commits of many clients' small changes
# share one fsync, and the event loop serves other requests while they are written.
GROUPED_METHODS = ("Email/set", "Mailbox/set")


def group_writes(methods: dict[str, Method], store: Store,
                 run_blocking: Callable[..., Deferred[Any]], now: Callable[[], float]) -> dict[str, Method]:
    """``methods`` with the /set handlers of ``GROUPED_METHODS`` and Email/import writing
    through ``Store.write_grouped`` (run by ``run_blocking``; Email/import also parses
    its blobs there); the commit is published on the event loop (``poll_external``)
    before the response goes out, so EventSource, IDLE and the caller's next call see it."""

    def run_write(account_id: str, fn: Callable[[Any], Any]) -> Deferred[Any]:
        d = run_blocking(store.write_grouped, account_number(account_id), fn)

        def published(result: Any) -> Any:
            store.poll_external()
            return result

        return d.addBoth(published)

    out = dict(methods)
    for name in GROUPED_METHODS:
        method = out.get(name)
        handler = getattr(method, "handler", None)
        if isinstance(handler, partial) and handler.func is set_:
            out[name] = Method(method.capability,  # type: ignore[union-attr]
                               partial(set_grouped, *handler.args, run_write=run_write))
    if "Email/import" in out:
        out["Email/import"] = Method(out["Email/import"].capability,
                                     partial(email_import_grouped, store, now,
                                             run_blocking=run_blocking, run_write=run_write))
    return out


def build_app(
    store: Store,
    reactor: Any,
    *,
    base_url: str | None = None,
    limits: CoreLimits | None = None,
    run_blocking: Callable[..., Deferred[Any]] | None = None,
    failed_login_delay: float = FAILED_LOGIN_DELAY,
    submission: SubmissionConfig | None = None,
    sanitize_html: bool = True,
    push: PushConfig | None = None,
    application_server_key: str | None = None,
    allow_plaintext: bool = True,
    guard: Any = None,
) -> JMAPApp:
    """The JMAP app over ``store``; ``reactor`` is the clock (and thread pool
    for password checks unless ``run_blocking`` is given)."""
    limits = limits or CoreLimits()
    if run_blocking is None:
        def run_blocking(f: Callable[..., Any], *args: Any) -> Deferred[Any]:
            return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)

    backend = StoreBackend(store, reactor.seconds, limits, submission)
    backend.application_server_key = application_server_key
    return JMAPApp(
        StoreAuthenticator(store, run_blocking),
        backend,
        methods=group_writes(offload_body_values(offload_searches(
            {**core_methods(), **store_methods(store, reactor.seconds, submission, sanitize_html=sanitize_html),
             **push_subscription_methods(store, reactor.seconds, push or PushConfig())},
            run_blocking), run_blocking), store, run_blocking, reactor.seconds),
        limits=limits,
        clock=reactor,
        failed_login_delay=failed_login_delay,
        base_url=base_url,
        allow_plaintext=allow_plaintext,
        guard=guard,
    )


def make_site(store: Store, options: Mapping[str, Any], reactor: Any) -> server.Site:
    """The factory ``DualmailService`` puts on every ``--jmap`` endpoint.

    TLS comes from the endpoint string (``ssl:8443:privateKey=key.pem:
    certKey=cert.pem``); ``--base-url`` sets the public URL in the Session
    object (behind a reverse proxy)."""
    limits = CoreLimits()
    if options.get("max-message-size"):  # --max-message-size: the same limit as IMAP APPENDLIMIT
        limits = replace(limits, max_size_upload=int(options["max-message-size"]))
    runner, push = make_push(store, options, reactor)
    from ..authguard import AuthGuard

    jmap = build_app(store, reactor, base_url=options.get("base-url") or None, limits=limits,
                     submission=options.get("submission") or submission_config(options),
                     sanitize_html=not options.get("no-html-sanitize"), push=push,
                     application_server_key=runner.vapid.application_server_key if runner.vapid else None,
                     allow_plaintext=bool(options.get("allow-plaintext")),
                     guard=AuthGuard(reactor.seconds, base=FAILED_LOGIN_DELAY))
    janitor = UploadJanitor(store, reactor)
    cap = options.get("max-connections-per-ip")
    return make_app_site(jmap, JMAPSite, janitor=janitor, push_runner=runner,
                         max_per_ip=DEFAULT_HTTP_PER_IP if cap is None else int(cap))


VAPID_FILE = "vapid-private.pem"


def make_push(store: Store, options: Mapping[str, Any], reactor: Any) -> tuple[PushRunner, PushConfig]:
    """The Web Push runner and the PushSubscription settings of ``options``.
    The VAPID key is made on the first start and kept as ``vapid-private.pem``
    in the LMDB data directory; on a shared PostgreSQL store it is kept in the
    store (``meta`` ``vapid_key``), so every node signs with the same key."""
    import os
    import socket

    contact = options.get("push-contact") or f"mailto:postmaster@{socket.getfqdn()}"
    data = options.get("data") or ""
    if "://" in (options.get("store") or data):  # a database URL, not a directory
        with store.kv.write() as w:
            pem = w.get("meta", b"vapid_key")
            if pem is None:
                pem = VapidKey.new_pem()
                w.put("meta", b"vapid_key", pem)
        vapid = VapidKey.from_pem(bytes(pem), contact)
    elif data:
        os.makedirs(data, exist_ok=True)
        vapid = VapidKey.load_or_create(os.path.join(data, VAPID_FILE), contact)
    else:  # no data directory (a bare site in tests): pushes go unsigned, nothing advertised
        vapid = None
    loopback = bool(options.get("push-allow-http-loopback"))
    runner = PushRunner(store, reactor, vapid, allow_http_loopback=loopback)
    config = PushConfig(allow_http_loopback=loopback, vapid_fingerprint=vapid.fingerprint if vapid else None,
                        wake=runner.wake)
    return runner, config


__all__ = ["JMAPSite", "StoreAuthenticator", "StoreBackend", "UploadJanitor", "build_app", "make_site"]
