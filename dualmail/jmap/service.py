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

from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import IO, Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.web import server

from ..model import ids
from ..store.credentials import CredentialCache
from ..store.store import Store
from ..store.txn import KINDS, Commit
from ..submission.config import SubmissionConfig, from_options as submission_config
from .app import JMAPApp, make_site as make_app_site
from .dispatch import Method, core_methods
from .errors import MethodError, RequestError
from .session import Account, CoreLimits, SessionInfo
from .state import parse_state, to_state
from .types import MAIL, SORT_OPTIONS, SUBMISSION, VACATION, store_methods
from .types.email_blobs import resolve_blob

# Seconds a wrong password or token waits before its 401 (the IMAP login
# delay is the same figure).
FAILED_LOGIN_DELAY = 1.0
PUSH_TOKEN_TTL = 300  # seconds
# The push-only token in the Session's eventSourceUrl: valid this long, replaced by a
# new one when a third of that is left, so a URL just handed out works >= 10 minutes.
SESSION_PUSH_TOKEN_TTL = 1800
SESSION_PUSH_TOKEN_RENEW = 600
UPLOAD_TTL = 24 * 3600  # an upload nothing references is removed after this
JANITOR_INTERVAL = 3600.0
MAX_SIZE_MAILBOX_NAME = 255


class StoreAuthenticator:
    """``app.Authenticator`` over the store. Principals are account numbers."""

    log = Logger()

    def __init__(self, store: Store, run_blocking: Callable[..., Deferred[Any]],
                 credentials: CredentialCache | None = None):
        self.store = store
        self.run_blocking = run_blocking
        self.credentials = credentials if credentials is not None else CredentialCache(store)

    def verify_basic(self, username: str, password: str) -> Deferred[int | None] | int:
        # Basic sends the password with every request: verified once by argon2 (~30 ms,
        # never on the reactor thread), then taken from the credential cache
        account = self.credentials.lookup(username, password)
        if account is not None:
            return account
        return self.run_blocking(self.credentials.verify, username, password)

    def verify_bearer(self, token: str) -> int | None:
        return self.store.verify_token(token, kind="app")

    def verify_push_token(self, token: str) -> int | None:
        return self.store.verify_token(token, kind="push")


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
        self._session_tokens: dict[int, tuple[str, float]] = {}  # account -> (token, expires)

    def capabilities(self) -> Mapping[str, Mapping[str, Any]]:
        return {MAIL: {}, SUBMISSION: {}, VACATION: {}}

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
            primary_accounts={uri: account_id for uri in (MAIL, SUBMISSION, VACATION)},
        )

    def _own(self, principal: int, account_id: str) -> bool:
        return ids.parse_id(ids.ACCOUNT, account_id) == principal

    # -- blobs --

    def upload(self, principal: int, account_id: str, content_type: str, body: IO[bytes]) -> dict[str, Any]:
        if not self._own(principal, account_id):
            raise RequestError("about:blank", 404, f"no account {account_id!r}")
        data = body.read()
        with self.store.write(principal) as tx:
            sha = tx.put_blob(data, content_type=content_type, uploaded=int(self.now()))
        return {"accountId": account_id, "blobId": ids.blob_id(sha), "type": content_type, "size": len(data)}

    def download(self, principal: int, account_id: str, blob_id: str) -> bytes | None:
        """A stored blob, or a body part of one, decoded (``types.email_blobs``)."""
        if not self._own(principal, account_id):
            return None
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


class JMAPSite(server.Site):
    """The Site of the JMAP endpoints; runs the janitor while it listens
    (``startFactory``/``stopFactory`` follow the first and last port)."""

    def __init__(self, resource: Any, janitor: UploadJanitor, **kwargs: Any):
        super().__init__(resource, **kwargs)  # type: ignore[no-untyped-call]
        self.janitor = janitor

    def startFactory(self) -> None:
        super().startFactory()
        self.janitor.start()

    def stopFactory(self) -> None:
        self.janitor.stop()
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


def build_app(
    store: Store,
    reactor: Any,
    *,
    base_url: str | None = None,
    limits: CoreLimits | None = None,
    run_blocking: Callable[..., Deferred[Any]] | None = None,
    failed_login_delay: float = FAILED_LOGIN_DELAY,
    submission: SubmissionConfig | None = None,
) -> JMAPApp:
    """The JMAP app over ``store``; ``reactor`` is the clock (and thread pool
    for password checks unless ``run_blocking`` is given)."""
    limits = limits or CoreLimits()
    if run_blocking is None:
        def run_blocking(f: Callable[..., Any], *args: Any) -> Deferred[Any]:
            return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)

    backend = StoreBackend(store, reactor.seconds, limits, submission)
    return JMAPApp(
        StoreAuthenticator(store, run_blocking),
        backend,
        methods=offload_searches({**core_methods(), **store_methods(store, reactor.seconds, submission)},
                                 run_blocking),
        limits=limits,
        clock=reactor,
        failed_login_delay=failed_login_delay,
        base_url=base_url,
    )


def make_site(store: Store, options: Mapping[str, Any], reactor: Any) -> server.Site:
    """The factory ``DualmailService`` puts on every ``--jmap`` endpoint.

    TLS comes from the endpoint string (``ssl:8443:privateKey=key.pem:
    certKey=cert.pem``); ``--base-url`` sets the public URL in the Session
    object (behind a reverse proxy)."""
    limits = CoreLimits()
    if options.get("max-message-size"):  # --max-message-size: the same limit as IMAP APPENDLIMIT
        limits = replace(limits, max_size_upload=int(options["max-message-size"]))
    jmap = build_app(store, reactor, base_url=options.get("base-url") or None, limits=limits,
                     submission=options.get("submission") or submission_config(options))
    janitor = UploadJanitor(store, reactor)
    return make_app_site(jmap, JMAPSite, janitor=janitor)


__all__ = ["JMAPSite", "StoreAuthenticator", "StoreBackend", "UploadJanitor", "build_app", "make_site"]
