"""The JMAP HTTP endpoints (RFC 8620 §2, §3.1, §6.1, §6.2, §7.3) as a Klein
app: authentication, CORS, request-level limits and errors, and the bridges
to the ``Authenticator`` and ``Backend`` protocols below.

Routes::

    GET  /.well-known/jmap   the Session object, served directly (no
                             redirect: clients then need no extra round trip
                             and never drop Authorization on a redirect)
    GET  /jmap/session       the Session object
    POST /jmap/api           a JMAP Request (application/json)
    POST /jmap/upload/{accountId}/                        -> Backend.upload
    GET  /jmap/download/{accountId}/{blobId}/{name}?accept={type}
                             -> Backend.download, with single-range Range
                                support (206/416), streamed in chunks by a
                                push producer (``BlobProducer``)
    GET  /jmap/eventsource/?types=&closeafter=&ping=       -> Backend.subscribe
                             (also ``&access_token=`` with a push token)
    POST /jmap/pushtoken     a push-only token for the EventSource URL
                             -> Backend.push_token (optional)
    GET  /jmap/ws            JMAP over WebSocket (RFC 8887; ``websocket.py``),
                             authenticated at the upgrade like any request
    OPTIONS anything         CORS preflight (no authentication)

Every error before methods run is a ``RequestError`` written by one handler
as ``application/problem+json`` (RFC 7807). Status codes: notJSON,
notRequest, unknownCapability and the maxCallsInRequest limit 400;
maxSizeRequest/maxSizeUpload 413; maxConcurrentRequests/maxConcurrentUpload
429; missing or wrong credentials 401 with ``WWW-Authenticate: Basic`` and
``Bearer`` challenges, the wrong-credentials answer delayed by
``failed_login_delay`` seconds on the injected clock.

This is the only module of the package that imports ``twisted.internet`` or
``klein``. It must not import the store.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from typing import IO, Any, Protocol, Union
from urllib.parse import quote

import orjson
from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.iweb import IRequest
from werkzeug.exceptions import HTTPException
from zope.interface import implementer

from ..authguard import is_loopback as _is_loopback
from ..model.errors import UnavailableError
from .dispatch import Dispatcher, Method, core_methods
from .errors import ERROR_NS, RequestError
from .request import Request, parse_request
from .session import CoreLimits, SessionInfo, build_session, server_capabilities, session_state

Principal = Any
MaybeDeferred = Union[Any, Deferred]

REALM = "dualmail"
WEBSOCKET = "urn:ietf:params:jmap:websocket"


# -- what the lead implements ------------------------------------------------


class Authenticator(Protocol):
    """Checks credentials. Each method returns the principal (any object the
    Backend understands) or None, directly or as a Deferred/coroutine.

    Optional: ``verify_push_token(token)``, checking a push-only token given
    as ``?access_token=`` on the EventSource URL (and nowhere else)."""

    def verify_basic(self, username: str, password: str) -> MaybeDeferred: ...

    def verify_bearer(self, token: str) -> MaybeDeferred: ...


class Blob(Protocol):
    """Random access to an immutable blob (for Range requests)."""

    size: int

    def read(self, offset: int, length: int) -> bytes: ...


class Backend(Protocol):
    """What the HTTP layer needs from the rest of dualmail."""

    def capabilities(self) -> Mapping[str, Mapping[str, Any]]:
        """Capabilities besides core (the app adds core from its limits),
        e.g. ``{"urn:ietf:params:jmap:mail": {}}``."""
        ...

    def session_info(self, principal: Principal) -> SessionInfo:
        """Username, accounts and primary accounts of an authenticated
        principal (synchronous)."""
        ...

    def upload(self, principal: Principal, account_id: str, content_type: str, body: IO[bytes]) -> MaybeDeferred:
        """Store an upload (RFC 8620 §6.1); ``body`` is a file positioned at
        0 and within maxSizeUpload. Return ``{"accountId", "blobId", "type",
        "size"}`` (or a Deferred of it); raise ``RequestError`` to refuse."""
        ...

    def download(self, principal: Principal, account_id: str, blob_id: str) -> MaybeDeferred:
        """A ``Blob`` or ``bytes`` the principal may read, or None (404)."""
        ...

    def subscribe(
        self,
        principal: Principal,
        types: frozenset[str] | None,
        callback: Callable[[Mapping[str, Any]], None],
    ) -> Callable[[], None]:
        """Call ``callback(StateChange)`` (RFC 8620 §7.1 object) after each
        commit affecting the principal's accounts until the returned
        function is called. ``types`` None means all. May call ``callback``
        at once with the current states (to catch up a reconnecting
        client)."""
        ...

    # Optional hooks (looked up with getattr):
    #   session_push_token(principal) -> str | None: a push-only token put in
    #       the Session's eventSourceUrl (``&access_token=``) for browsers;
    #   push_catch_up(principal, types, push_state) -> StateChange | None: what
    #       changed since a WebSocket ``pushState`` (RFC 8887 §4.3.5.2);
    #       StateChanges given to ``subscribe``'s callback may carry
    #       ``pushState`` (sent on WebSockets only).


# -- helpers -----------------------------------------------------------------


def _json(obj: Any) -> bytes:
    """A response body: orjson, or the stdlib for what orjson refuses (same bytes else)."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # integers beyond 64 bits, non-string keys, lone surrogates
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            # a lone surrogate (e.g. in a summary stored before decoded text was made
            # valid): U+FFFD for it, a split pair joined again -- never a 500
            return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


def _limit(name: str, status: int, detail: str) -> RequestError:
    return RequestError("limit", status, detail, limit=name)


class BytesBlob:
    """``Blob`` over bytes in memory."""

    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]


_RANGE = re.compile(r"bytes=(\d*)-(\d*)\Z")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;[\x20-\x7e]*)?\Z")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """One ``bytes=`` range (RFC 9110 §14.1.2) -> (first, last) inclusive;
    None: serve the whole blob (no/ignored header); ``"unsatisfiable"``."""
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None or match.group(0) == "bytes=-":
        return None  # syntax we do not handle (e.g. multiple ranges): ignore
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    start = int(first)
    if last != "" and int(last) < start:
        return None  # invalid: ignore (RFC 9110 §14.1.1)
    if start >= size:
        return "unsatisfiable"
    return start, size - 1 if last == "" else min(int(last), size - 1)


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback and RFC 6266/8187 ``filename*``."""
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in name) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


_log = Logger()


class BoundedRequest(server.Request):
    """A ``twisted.web`` request that refuses a body over its route's limit at
    once: ``max_upload`` for ``/jmap/upload/``, ``max_body`` for the rest.

    A ``Content-Length`` over the limit is answered 413 (RFC 8620 §3.6.1,
    ``maxSizeRequest``/``maxSizeUpload``) as soon as the headers are in,
    before any of the body; a chunked body is cut off the moment it passes
    the limit.  The connection is then closed (the client is still sending)
    and the request never reaches a route.  Use via ``make_site``."""

    max_body = 2**31
    max_upload = 2**31
    body_too_large = False
    _received = 0
    _refused = False

    def __init__(self, channel: Any, *args: Any, **kwargs: Any) -> None:
        # JMAP takes no HTML form posts: a POST body is JSON or an upload's raw bytes,
        # whatever its Content-Type.  Twisted would otherwise parse a form-typed body into
        # ``args``, and parse every POST's Content-Type with the ``email`` package to find
        # out (about a tenth of a JMAP request's CPU).  Twisted sets the flag per instance
        # from the Site unless it is given here, so a class attribute does not do it.
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(channel, *args, **kwargs)

    def _limit_for_path(self) -> tuple[int, str]:
        # the channel has parsed the request line; the request learns its path
        # only when the whole body is in, which is too late here
        path = getattr(self.channel, "_path", b"") or b""
        if path.startswith(b"/jmap/upload/"):
            return self.max_upload, "maxSizeUpload"
        return self.max_body, "maxSizeRequest"

    def gotLength(self, length: int | None) -> None:
        limit, name = self._limit_for_path()
        if length is not None and length > limit:
            self._refuse(limit, name)
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        limit, name = self._limit_for_path()
        if self._received > limit:
            self._refuse(limit, name)
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            return  # answered already; the connection is closing
        super().requestReceived(command, path, version)

    def _refuse(self, limit: int, name: str) -> None:
        self.body_too_large = self._refused = True
        peer = getattr(self.channel.transport.getPeer(), "host", "?")
        _log.info("JMAP request body over {name} ({limit} octets) from {peer}: 413, closing",
                  name=name, limit=limit, peer=peer)
        self.content = _DiscardedBody()
        # no "100 Continue" after this answer (HTTPChannel sends it after gotLength)
        self.requestHeaders.removeHeader(b"expect")
        body = _json(_limit(name, 413, f"the request body is larger than {limit} octets").to_problem())
        head = [b"HTTP/1.1 413 Content Too Large", b"content-type: application/problem+json",
                b"content-length: %d" % len(body), b"connection: close"]
        head += [k + b": " + v for k, v in JMAPApp.CORS_HEADERS.items()]
        self.channel.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.channel.loseConnection()


class _DiscardedBody:
    """``request.content`` of a refused request: holds nothing."""

    def write(self, data: bytes) -> None:
        pass

    def seek(self, *args: Any) -> int:
        return 0

    def read(self, *args: Any) -> bytes:
        return b""

    def close(self) -> None:
        pass


_TOKEN_IN_LINE = re.compile(r"(access_token=)[^&\s\"]*")


def access_log_line(timestamp: str, request: IRequest) -> str:
    """The access log's combined-format line with every ``access_token=``
    value (push-only tokens in EventSource and WebSocket URLs) blanked: a
    credential never reaches the log."""
    from twisted.web.http import combinedLogFormatter

    return _TOKEN_IN_LINE.sub(r"\1-", combinedLogFormatter(timestamp, request))


def make_site(jmap: JMAPApp, site_class: type[server.Site] = server.Site, **kwargs: Any) -> server.Site:
    """A ``Site`` (``site_class(resource, **kwargs)``) serving ``jmap`` whose
    requests are ``BoundedRequest``s, logged by ``access_log_line``."""
    kwargs.setdefault("logFormatter", access_log_line)
    request_class = type("JMAPRequest", (BoundedRequest,), {
        "max_body": jmap.limits.max_size_request, "max_upload": jmap.limits.max_size_upload})
    site = site_class(jmap.app.resource(), **kwargs)
    site.requestFactory = request_class
    return site


def filter_state_change(change: Mapping[str, Any], accounts: frozenset[str],
                        types: frozenset[str] | None) -> dict[str, dict[str, str]]:
    """The ``changed`` map of a StateChange kept to ``accounts`` and ``types``
    (None: every type); empty when nothing is left to tell."""
    changed: dict[str, dict[str, str]] = {}
    for account_id, states in dict(change.get("changed", {})).items():
        if account_id not in accounts:
            continue
        kept = {t: s for t, s in states.items() if types is None or t in types}
        if kept:
            changed[account_id] = kept
    return changed


# The StateChange being fanned out and its encodings, one per (accounts, types,
# form): every listener with the same filter shares one encoded frame.
_ENCODED: list[Any] = [None, {}]


def _change_memo(change: Mapping[str, Any]) -> dict[Any, Any]:
    """What is worked out once per StateChange being fanned out (its encodings, the
    liveness of each token streaming it), dropped when the next change comes."""
    if _ENCODED[0] is not change:
        _ENCODED[0], _ENCODED[1] = change, {}
    return _ENCODED[1]  # type: ignore[no-any-return]


def encoded_state_change(change: Mapping[str, Any], accounts: frozenset[str],
                         types: frozenset[str] | None, *, websocket: bool = False) -> bytes | None:
    """``change`` filtered for one listener and encoded: an EventSource
    ``state`` event (RFC 8620 §7.3), or the JSON object of a WebSocket push
    (with ``pushState``, RFC 8887 §4.3.5.1); None when nothing is left. The
    same change object given with the same filter is encoded once."""
    key = (accounts, types, websocket)
    memo = _change_memo(change)
    if key in memo:
        return memo[key]  # type: ignore[no-any-return]
    changed = filter_state_change(change, accounts, types)
    data: bytes | None = None
    if changed:
        obj: dict[str, Any] = {"@type": "StateChange", "changed": changed}
        if websocket:
            if change.get("pushState") is not None:
                obj["pushState"] = change["pushState"]
            data = _json(obj)
        else:
            data = b"event: state\ndata: " + _json(obj) + b"\n\n"
    memo[key] = data
    return data


class EventStream:
    """One EventSource response (RFC 8620 §7.3): ``state`` events carrying
    StateChange objects filtered to ``types``, ``ping`` events every
    ``ping`` seconds since the previous event (0: none), and the end after
    the first state event when ``close_after_state``."""

    def __init__(
        self,
        write: Callable[[bytes], None],
        clock: IReactorTime,
        ping: int,
        close_after_state: bool,
        types: frozenset[str] | None,
        accounts: frozenset[str],
        alive: Callable[[], bool] | None = None,
        alive_key: Any = None,
    ):
        self.alive = alive  # False once the credentials were revoked: the stream ends
        # streams with the same key (their token) share one ``alive()`` answer per change
        self.alive_key = alive_key
        self.write = write
        self.clock = clock
        self.ping = ping
        self.close_after_state = close_after_state
        self.types = types
        self.accounts = accounts
        self.done: Deferred[bytes] = Deferred(lambda _: self.stop())
        self._timer: IDelayedCall | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._stopped = False

    def start(self, subscribe: Callable[[Callable[[Mapping[str, Any]], None]], Callable[[], None]]) -> Deferred[bytes]:
        """Begin streaming; the Deferred fires (b"") when the stream ends
        by itself and is cancelled when the client goes away."""
        self.write(b": jmap event stream\n\n")
        self._schedule_ping()
        unsubscribe = subscribe(self.on_state_change)
        if self._stopped:
            unsubscribe()
        else:
            self._unsubscribe = unsubscribe
        return self.done

    def on_state_change(self, change: Mapping[str, Any]) -> None:
        if self._stopped:
            return
        if self.alive is not None and not self._alive_for(change):  # its token was revoked: the stream ends
            self.stop()
            if not self.done.called:
                self.done.callback(b"")
            return
        data = encoded_state_change(change, self.accounts, self.types)
        if data is None:
            return
        self.write(data)
        self._schedule_ping()
        if self.close_after_state:
            self.stop()
            self.done.callback(b"")

    def _alive_for(self, change: Mapping[str, Any]) -> bool:
        """``alive()``, asked once per change for all streams of one token (500
        EventSources of one account read the token record once per commit, not 500
        times)."""
        assert self.alive is not None
        if self.alive_key is None:
            return self.alive()
        memo, key = _change_memo(change), ("alive", self.alive_key)
        if key not in memo:
            memo[key] = self.alive()
        return bool(memo[key])

    def _event(self, name: str, data: Any) -> None:
        if self.alive is not None and not self.alive():
            self.stop()
            if not self.done.called:
                self.done.callback(b"")
            return
        self.write(b"event: " + name.encode() + b"\ndata: " + _json(data) + b"\n\n")
        self._schedule_ping()

    def _schedule_ping(self) -> None:
        if self.ping <= 0 or self._stopped:
            return
        if self._timer is not None and self._timer.active():
            self._timer.reset(self.ping)
        else:
            self._timer = self.clock.callLater(self.ping, self._send_ping)

    def _send_ping(self) -> None:
        self._timer = None
        self._event("ping", {"interval": self.ping})

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._unsubscribe is not None:
            unsubscribe, self._unsubscribe = self._unsubscribe, None
            unsubscribe()


DOWNLOAD_CHUNK = 64 * 1024  # octets per write of a download


@implementer(IPushProducer)
class BlobProducer:
    """Writes ``length`` octets of ``blob`` from ``offset`` to ``request``,
    one ``chunk`` per reactor turn (``clock.callLater(0)``), as a push
    producer registered on the request (the first chunk at once, the others
    on later turns): when the transport's buffer is full
    (the client is not reading) the channel pauses it and nothing more is
    read from the blob until it resumes, so at most about one chunk sits in
    the server's buffers per download, whatever the blob's size.

    ``start()`` returns a Deferred that fires (b"") once everything is
    written and the producer is unregistered; cancelling it (Klein does when
    the client goes away) or ``stopProducing`` stops it."""

    log = Logger()

    def __init__(self, request: IRequest, blob: Blob, offset: int, length: int, clock: IReactorTime,
                 chunk: int = DOWNLOAD_CHUNK):
        self.request = request
        self.blob = blob
        self.position = offset
        self.end = offset + length
        self.clock = clock
        self.chunk = chunk
        self.writes = 0
        self.done: Deferred[bytes] = Deferred(lambda _: self.stopProducing())
        self._call: IDelayedCall | None = None
        self._paused = False
        self._stopped = False

    def start(self) -> Deferred[bytes]:
        """Register, write the first chunk now (a small blob is done at
        once) and the others on later turns."""
        self.request.registerProducer(self, True)
        self._step()
        return self.done

    def _schedule(self) -> None:
        if self._call is None and not self._paused and not self._stopped:
            self._call = self.clock.callLater(0, self._step)

    def _cancel_call(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _step(self) -> None:
        self._call = None
        if self._paused or self._stopped:
            return
        size = min(self.chunk, self.end - self.position)
        try:
            data = self.blob.read(self.position, size)
            if len(data) != size:
                raise ValueError(f"blob read at {self.position} gave {len(data)} octets, not {size}")
        except Exception:
            # the headers (with Content-Length) are out: the only honest
            # answer left is to cut the connection (Klein then cancels us)
            self.log.failure("JMAP download failed at octet {position}", position=self.position)
            self._stopped = True
            self.request.unregisterProducer()
            transport = getattr(getattr(self.request, "channel", None), "transport", None)
            if transport is not None and hasattr(transport, "abortConnection"):
                transport.abortConnection()
            elif transport is not None:
                transport.loseConnection()
            return
        self.position += size
        self.writes += 1
        self.request.write(bytes(data))
        if self._stopped:  # the write found the connection gone
            return
        if self.position >= self.end:
            self._stopped = True
            self.request.unregisterProducer()
            self.done.callback(b"")
        else:
            self._schedule()

    # IPushProducer

    def pauseProducing(self) -> None:
        self._paused = True
        self._cancel_call()

    def resumeProducing(self) -> None:
        self._paused = False
        self._schedule()

    def stopProducing(self) -> None:
        self._stopped = True
        self._cancel_call()


def _peer(request: IRequest) -> str:
    address = request.getClientAddress()
    host = getattr(address, "host", None)
    return str(host) if host is not None else str(address)


async def _maybe(value: Any) -> Any:
    if isinstance(value, Deferred):
        return await value
    if hasattr(value, "__await__"):
        return await value
    return value


# -- the app -------------------------------------------------------------------


class JMAPApp:
    """The JMAP endpoints; ``JMAPApp(...).app.resource()`` is the resource.

    ``methods`` is the registry (default: Core/echo only); add data types
    with ``{**core_methods(), **standard_methods(MailboxType(store))}``.
    ``base_url`` (no trailing slash) is used in the Session URLs; None: taken
    from each request's scheme and Host header.
    """

    app = Klein()
    log = Logger()
    download_chunk = DOWNLOAD_CHUNK  # octets per write of a download (BlobProducer)

    CORS_HEADERS = {
        b"access-control-allow-origin": b"*",
        b"access-control-allow-methods": b"GET, POST, OPTIONS",
        b"access-control-allow-headers": b"Authorization, Content-Type, Accept, Last-Event-ID, Range",
        b"access-control-expose-headers": (
            b"WWW-Authenticate, Content-Disposition, Content-Range, Content-Length, Accept-Ranges"
        ),
    }

    def __init__(
        self,
        authenticator: Authenticator,
        backend: Backend,
        *,
        methods: Mapping[str, Method] | None = None,
        limits: CoreLimits | None = None,
        clock: IReactorTime | None = None,
        failed_login_delay: float = 1.0,
        base_url: str | None = None,
        allow_plaintext: bool = True,
        guard: Any = None,
    ):
        if clock is None:
            from twisted.internet import reactor as clock  # type: ignore[assignment]
        self.authenticator = authenticator
        self.backend = backend
        self.limits = limits or CoreLimits()
        self.clock = clock
        self.failed_login_delay = failed_login_delay
        # HTTP Basic in the clear off loopback is refused unless allowed (--allow-plaintext)
        self.allow_plaintext = allow_plaintext
        # failed-login backoff per IP and account (dualmail.authguard.AuthGuard); None: the
        # fixed ``failed_login_delay``
        self.guard = guard
        self.base_url = base_url.rstrip("/") if base_url else None
        self.dispatcher = Dispatcher(methods if methods is not None else core_methods(), self.limits)
        self._requests: Counter[str] = Counter()
        self._states: dict[tuple[Any, str], tuple[Any, SessionInfo, Mapping[str, Any], str]] = {}
        self._uploads: Counter[str] = Counter()

    # -- plumbing --

    def _cors(self, request: IRequest) -> None:
        for name, value in self.CORS_HEADERS.items():
            request.setHeader(name, value)

    def _base_url(self, request: IRequest) -> str:
        if self.base_url:
            return self.base_url
        host = (request.getHeader(b"host") or b"localhost").decode("latin-1")
        return ("https://" if request.isSecure() else "http://") + host

    def _capabilities(self) -> dict[str, Any]:
        return server_capabilities(self.limits, self.backend.capabilities())

    def _session_capabilities(self, base_url: str) -> dict[str, Any]:
        """The capabilities with ``urn:ietf:params:jmap:websocket`` (RFC 8887
        §3: an absolute ws:// or wss:// URL, as the listener is)."""
        capabilities = self._capabilities()
        scheme, sep, rest = base_url.partition("://")
        ws_scheme = "wss" if scheme.lower() == "https" else "ws"
        capabilities[WEBSOCKET] = {"url": f"{ws_scheme}{sep}{rest}/jmap/ws", "supportsPush": True}
        return capabilities

    def _session(self, info: SessionInfo, base_url: str, capabilities: Mapping[str, Any],
                 token: str | None) -> dict[str, Any]:
        """The Session object; its eventSourceUrl carries the backend's push-only
        ``token`` (``_push_token``) so that a browser's EventSource, which cannot send
        an Authorization header, can use it as it is."""
        session = build_session(capabilities=capabilities, info=info, base_url=base_url)
        if token:
            session["eventSourceUrl"] += "&access_token=" + quote(token, safe="")
            session["state"] = session_state(session)
        return session

    def _push_token(self, principal: Principal) -> str | None:
        make_token = getattr(self.backend, "session_push_token", None)
        return make_token(principal) if make_token is not None else None

    def _session_state(self, principal: Principal, info: SessionInfo, base_url: str,
                       capabilities: Mapping[str, Any]) -> str:
        """The Session's ``state`` for an API Response's ``sessionState`` (RFC 8620 §3.4),
        remembered per principal and base URL while what it hashes is equal: building the
        Session and hashing its JSON was about 40 % of a small API request's own work."""
        token = self._push_token(principal)
        key = (principal, base_url)
        held = self._states.get(key)
        if held is not None and held[0] == token and held[1] == info and held[2] == capabilities:
            return held[3]
        state = str(self._session(info, base_url, capabilities, token)["state"])
        if len(self._states) >= 10_000:
            self._states.clear()
        self._states[key] = (token, info, capabilities, state)
        return state

    async def run_api_request(
        self,
        principal: Principal,
        info: SessionInfo,
        base_url: str,
        parse: Callable[[Mapping[str, Any]], Request],
        client: str,
    ) -> dict[str, Any]:
        """Run one JMAP Request (HTTP POST or a WebSocket message) within the
        principal's maxConcurrentRequests (shared by both, RFC 8887 §4.3.2):
        ``parse(capabilities)`` gives the validated Request or raises
        ``RequestError``; returns the Response object."""
        key = info.username
        if self._requests[key] >= self.limits.max_concurrent_requests:
            raise _limit("maxConcurrentRequests", 429, "too many concurrent requests")
        self._requests[key] += 1
        try:
            capabilities = self._session_capabilities(base_url)
            jmap_request = parse(capabilities)
            state = self._session_state(principal, info, base_url, capabilities)
            response: dict[str, Any] = await self.dispatcher.run(
                jmap_request, principal=principal, accounts=info.accounts, session_state=state,
                client=client,
            )
        finally:
            self._requests[key] -= 1
            if not self._requests[key]:
                del self._requests[key]
        return response

    async def _authenticate(self, request: IRequest, *, push: bool = False) -> Principal:
        """The principal of ``request``; ``push``: the URL may carry a push-only
        ``access_token`` instead of an Authorization header (EventSource)."""
        header = request.getHeader(b"authorization")
        scheme, _, credentials = (header or b"").decode("latin-1").strip().partition(" ")
        scheme = scheme.lower()
        principal = None
        bearer = False
        username = ""
        query_token = request.args.get(b"access_token", [b""])[0].decode("latin-1") if push else ""
        verify_push = getattr(self.authenticator, "verify_push_token", None)
        if header is None and query_token and verify_push is not None:
            bearer = True
            username = "(push token)"
            principal = await _maybe(verify_push(query_token))
        elif scheme == "basic":
            if not (self.allow_plaintext or request.isSecure() or _is_loopback(_peer(request))):
                raise RequestError("about:blank", 403,
                                   "HTTP Basic authentication needs TLS on this listener")
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = None
            if decoded is not None and ":" in decoded:
                username, _, password = decoded.partition(":")
                principal = await _maybe(self.authenticator.verify_basic(username, password))
                request.dualmail_token = password  # type: ignore[attr-defined]  (maybe an app token)
            else:
                username = "(malformed Basic credentials)"
        elif scheme == "bearer" and credentials.strip():
            bearer = True
            username = "(bearer token)"
            principal = await _maybe(self.authenticator.verify_bearer(credentials.strip()))
            request.dualmail_token = credentials.strip()  # type: ignore[attr-defined]
        else:
            raise RequestError("about:blank", 401, "authentication required")
        if principal is None:
            if self.guard is not None:  # logs the failure (the line fail2ban matches)
                delay = self.guard.failure(_peer(request), None if bearer else username, "jmap",
                                           "bearer" if bearer else "basic")
            else:
                self.log.info(
                    "JMAP authentication failed for {address} from {peer}",
                    address=username, peer=_peer(request), failed_login=True,
                )
                delay = self.failed_login_delay
            if delay > 0:
                await deferLater(self.clock, delay, lambda: None)
            error = RequestError("about:blank", 401, "authentication failed")
            error.bearer_error = bearer  # type: ignore[attr-defined]
            raise error
        return principal

    def _read_body(self, request: IRequest, limit: int, name: str) -> bytes:
        length = request.getHeader(b"content-length")
        def too_large() -> RequestError:
            return _limit(name, 413, f"the request body is larger than {limit} octets")

        if getattr(request, "body_too_large", False):
            raise too_large()
        if length is not None:
            try:
                if int(length) > limit:
                    raise too_large()
            except ValueError:
                pass
        request.content.seek(0)
        body = request.content.read(limit + 1)
        if len(body) > limit:
            raise too_large()
        return body

    def _account(self, info: SessionInfo, account_id: str, write: bool = False,
                 principal: Principal = None) -> None:
        account = info.accounts.get(account_id)
        if account is None:
            raise RequestError("about:blank", 404, f"no account {account_id!r}")
        if write and getattr(principal, "read_only", False):
            raise RequestError("about:blank", 403, "these credentials are read-only (a jmap-read token)")
        if write and account.is_read_only:
            raise RequestError("about:blank", 403, f"account {account_id!r} is read-only")

    # -- routes --

    @app.route("/", branch=True, methods=["OPTIONS"])
    def preflight(self, request: IRequest) -> bytes:
        self._cors(request)
        request.setHeader(b"access-control-max-age", b"86400")
        request.setResponseCode(204)
        return b""

    @app.route("/.well-known/jmap", methods=["GET"])
    @app.route("/jmap/session", methods=["GET"])
    async def session(self, request: IRequest) -> bytes:
        self._cors(request)
        principal = await self._authenticate(request)
        info = self.backend.session_info(principal)
        base_url = self._base_url(request)
        session = self._session(info, base_url, self._session_capabilities(base_url), self._push_token(principal))
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-cache, no-store, must-revalidate")
        return _json(session)

    @app.route("/jmap/api", methods=["POST"])
    async def api(self, request: IRequest) -> bytes:
        self._cors(request)
        principal = await self._authenticate(request)
        info = self.backend.session_info(principal)
        content_type = (request.getHeader(b"content-type") or b"").decode("latin-1")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise RequestError("notJSON", 400, "the request content type must be application/json")
        body = self._read_body(request, self.limits.max_size_request, "maxSizeRequest")
        response = await self.run_api_request(
            principal, info, self._base_url(request),
            lambda capabilities: parse_request(
                body,
                capabilities=capabilities.keys(),
                max_size_request=self.limits.max_size_request,
                max_calls_in_request=self.limits.max_calls_in_request,
            ),
            _peer(request),
        )
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-cache, no-store, must-revalidate")
        return _json(response)

    @app.route("/jmap/upload/<accountId>/", methods=["POST"])
    async def upload(self, request: IRequest, accountId: str) -> bytes:
        self._cors(request)
        principal = await self._authenticate(request)
        info = self.backend.session_info(principal)
        self._account(info, accountId, write=True, principal=principal)
        self._read_body(request, self.limits.max_size_upload, "maxSizeUpload")
        key = info.username
        if self._uploads[key] >= self.limits.max_concurrent_upload:
            raise _limit("maxConcurrentUpload", 429, "too many concurrent uploads")
        self._uploads[key] += 1
        try:
            content_type = (request.getHeader(b"content-type") or b"application/octet-stream").decode("latin-1")
            request.content.seek(0)
            result = await _maybe(self.backend.upload(principal, accountId, content_type, request.content))
        finally:
            self._uploads[key] -= 1
            if not self._uploads[key]:
                del self._uploads[key]
        request.setResponseCode(201)
        request.setHeader(b"content-type", b"application/json")
        return _json(result)

    @app.route("/jmap/download/<accountId>/<blobId>/<name>", methods=["GET"])
    async def download(self, request: IRequest, accountId: str, blobId: str, name: str) -> bytes:
        self._cors(request)
        principal = await self._authenticate(request)
        info = self.backend.session_info(principal)
        self._account(info, accountId)
        accept = request.args.get(b"accept", [b"application/octet-stream"])[0].decode("utf-8", "replace")
        if not _MEDIA_TYPE.match(accept):
            raise RequestError("about:blank", 400, "'accept' is not a media type")
        blob = await _maybe(self.backend.download(principal, accountId, blobId))
        if blob is None:
            raise RequestError("about:blank", 404, f"no blob {blobId!r}")
        if isinstance(blob, bytes):
            blob = BytesBlob(blob)
        size = blob.size
        request.setHeader(b"content-type", accept.encode("ascii"))
        request.setHeader(b"content-disposition", content_disposition(name).encode("ascii"))
        request.setHeader(b"cache-control", b"private, immutable, max-age=31536000")
        request.setHeader(b"accept-ranges", b"bytes")
        byte_range = parse_range((request.getHeader(b"range") or b"").decode("latin-1") or None, size)
        if byte_range == "unsatisfiable":
            request.setResponseCode(416)
            request.setHeader(b"content-range", f"bytes */{size}".encode())
            request.setHeader(b"content-type", b"application/problem+json")
            request.responseHeaders.removeHeader(b"content-disposition")
            return _json({"type": "about:blank", "status": 416, "detail": "range not satisfiable"})
        if byte_range is None:
            first, length = 0, size
        else:
            assert isinstance(byte_range, tuple)
            first, last = byte_range
            length = last - first + 1
            request.setResponseCode(206)
            request.setHeader(b"content-range", f"bytes {first}-{last}/{size}".encode())
        want = getattr(blob, "want", None)
        if want is not None:  # a lazily read blob (S3): fetch only these octets
            want(first, length)
        # an explicit length: no chunked encoding, and the client knows the size
        request.setHeader(b"content-length", str(length).encode())
        if length == 0:
            return b""
        return await BlobProducer(request, blob, first, length, self.clock, self.download_chunk).start()

    @app.route("/jmap/pushtoken", methods=["POST"])
    async def push_token(self, request: IRequest) -> bytes:
        """A short-lived token valid only as ``access_token`` on the
        EventSource URL, for browsers (EventSource cannot send an
        Authorization header). Backend hook ``push_token(principal)`` ->
        ``(token, seconds valid)``; without it, 404."""
        self._cors(request)
        principal = await self._authenticate(request)
        make = getattr(self.backend, "push_token", None)
        if make is None:
            raise RequestError("about:blank", 404, "push tokens are not supported")
        token, ttl = await _maybe(make(principal))
        url = self._base_url(request) + "/jmap/eventsource/?types=*&closeafter=no&ping=0&access_token=" + quote(
            token, safe=""
        )
        request.setResponseCode(201)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return _json({"token": token, "expiresIn": ttl, "eventSourceUrl": url})

    @app.route("/jmap/eventsource/", methods=["GET"])
    async def eventsource(self, request: IRequest) -> bytes:
        self._cors(request)
        principal = await self._authenticate(request, push=True)
        info = self.backend.session_info(principal)

        def arg(name: str, default: str) -> str:
            return request.args.get(name.encode(), [default.encode()])[0].decode("utf-8", "replace")

        types_arg, close_after, ping_arg = arg("types", "*"), arg("closeafter", "no"), arg("ping", "0")
        if close_after not in ("state", "no"):
            raise RequestError("about:blank", 400, "'closeafter' must be 'state' or 'no'")
        if not re.fullmatch(r"[0-9]{1,9}", ping_arg):
            raise RequestError("about:blank", 400, "'ping' must be a non-negative integer")
        ping = int(ping_arg)
        if ping:
            ping = min(max(ping, self.limits.ping_min), self.limits.ping_max)
        types = None if types_arg == "*" else frozenset(t for t in types_arg.split(",") if t)
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-accel-buffering", b"no")
        live = getattr(self.authenticator, "token_live", None)
        token = getattr(request, "dualmail_token", None)
        alive = (lambda: bool(live(token))) if live is not None and token and live(token) else None
        stream = EventStream(request.write, self.clock, ping, close_after == "state", types, frozenset(info.accounts),
                             alive, alive_key=(live, token))
        return await stream.start(lambda callback: self.backend.subscribe(principal, types, callback))

    @app.route("/jmap/ws", methods=["GET"])
    async def websocket(self, request: IRequest) -> Any:
        """JMAP over WebSocket (RFC 8887): authenticated here exactly as the
        other routes (§4.1), then the connection is handed to
        ``websocket.JMAPWebSocketProtocol``. A browser (no headers on a
        WebSocket) may give a push-only token as ``?access_token=``: that
        socket can only push (WebSocketPushEnable/Disable)."""
        from .websocket import websocket_resource

        principal = await self._authenticate(request, push=True)
        # no Authorization header and still authenticated: it was the push-only token
        push_only = request.getHeader(b"authorization") is None
        info = self.backend.session_info(principal)
        return websocket_resource(request, self, principal, info, self._base_url(request), push_only, _peer(request))

    # -- errors --

    @app.handle_errors(RequestError)
    def request_error(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        self._cors(request)
        request.setResponseCode(error.status)
        if error.status == 401:
            bearer = 'Bearer realm="dualmail"'
            if getattr(error, "bearer_error", False):
                bearer += ', error="invalid_token"'
            request.responseHeaders.setRawHeaders(
                b"www-authenticate", [f'Basic realm="{REALM}", charset="UTF-8"'.encode(), bearer.encode()]
            )
        request.setHeader(b"content-type", b"application/problem+json")
        return _json(error.to_problem())

    @app.handle_errors(HTTPException)
    def http_error(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        code = error.code
        allowed = set(getattr(error, "valid_methods", None) or ())
        if code == 405 and allowed <= {"OPTIONS"}:
            code = 404  # only the catch-all CORS preflight route matched
        elif code == 405:
            request.setHeader(b"allow", ", ".join(sorted(allowed)).encode())
        self._cors(request)
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"application/problem+json")
        detail = "not found" if code == 404 else error.name
        return _json({"type": "about:blank", "status": code, "detail": detail})

    @app.handle_errors(Exception)
    def unexpected_error(self, request: IRequest, failure: Failure) -> bytes:
        self._cors(request)
        if failure.check(UnavailableError):  # the shared database is away (before any method ran)
            self.log.warn("JMAP request refused: {err}", err=failure.value.message)
            request.setResponseCode(503)
            request.setHeader(b"retry-after", b"5")
            request.setHeader(b"content-type", b"application/problem+json")
            return _json({"type": ERROR_NS + "serverUnavailable", "status": 503,
                          "detail": "the mail store is temporarily unavailable"})
        self.log.failure("JMAP request failed", failure)
        request.setResponseCode(500)
        request.setHeader(b"content-type", b"application/problem+json")
        return _json({"type": "about:blank", "status": 500, "detail": "internal server error"})


__all__ = [
    "Authenticator",
    "Backend",
    "Blob",
    "BlobProducer",
    "BoundedRequest",
    "BytesBlob",
    "EventStream",
    "JMAPApp",
    "core_methods",
    "make_site",
]
