"""JMAP over WebSocket (RFC 8887) with autobahn's Twisted protocol.

``JMAPApp.websocket`` (the ``GET /jmap/ws`` route) authenticates the upgrade
request exactly as every other request (§4.1: Basic, Bearer; or, for a
browser, a push-only ``?access_token=``) and returns ``websocket_resource``,
which hands the HTTP connection to one ``JMAPWebSocketProtocol``. From then on:

- the handshake must offer the ``jmap`` subprotocol (§4.2), else 400;
- every text message is one JSON object with ``@type`` (§4.3):
  ``Request`` (optional ``id``, echoed as ``requestId``) runs through the
  same path as ``POST /jmap/api`` (``JMAPApp.run_api_request``: the same
  maxSizeRequest, maxCallsInRequest and maxConcurrentRequests, the latter
  shared with HTTP, §4.3.2), several at once, each answered as soon as it is
  done (``Response``, §4.3.3) or refused with a ``RequestError`` problem
  object (§4.3.4); ``WebSocketPushEnable`` (``dataTypes``, ``pushState``) and
  ``WebSocketPushDisable`` (§4.3.5);
- StateChange objects are pushed as commits happen, with ``pushState``;
- a binary frame closes the connection with 1003 (§4.3.1); a message over
  maxSizeRequest gets the ``limit`` RequestError, and one over twice that
  is refused by autobahn while it arrives (close 1009), so memory stays bounded.

A socket opened with a push-only token (a browser's) can only push: its
Requests get a 403 RequestError. Everything the connection does is logged
with the peer and the user, never a credential.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import PreparedMessage
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from .errors import RequestError
from .request import loads_ijson, parse_request_object
from .session import SessionInfo

SUBPROTOCOL = "jmap"
PUSH_ONLY = RequestError("about:blank", 403, "this connection was opened with a push-only token: "
                         "requests need Basic or Bearer authentication at the upgrade")


class JMAPWebSocketProtocol(WebSocketServerProtocol):  # type: ignore[misc]
    """One authenticated JMAP WebSocket (the factory carries who it is)."""

    # Our own events go to ``events``: ``log`` is autobahn's (txaio) logger, whose debug
    # calls are no-ops below its level.  A Twisted ``Logger`` in its place made every frame
    # sent emit a debug event, which twistd's log observer formats and writes (a line per
    # socket per push, half the fan-out's CPU).
    events = Logger()
    factory: JMAPWebSocketFactory

    def __init__(self) -> None:
        super().__init__()
        self._open = False
        self._unsubscribe: Callable[[], None] | None = None
        self._types: frozenset[str] | None = None

    # -- connection --

    def onConnect(self, request: Any) -> str:
        if SUBPROTOCOL not in request.protocols:
            self.events.info("JMAP WebSocket from {peer} refused: no jmap subprotocol", peer=self.factory.peer)
            raise ConnectionDeny(400, "the jmap subprotocol is required (RFC 8887 section 4.2)")
        return SUBPROTOCOL

    def onOpen(self) -> None:
        self._open = True
        f = self.factory
        self.events.info("JMAP WebSocket from {peer} for {user}{how}", peer=f.peer, user=f.info.username,
                      how=" (push only)" if f.push_only else "")

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        was_open, self._open = self._open, False
        self._stop_push()
        if was_open:
            self.events.info("JMAP WebSocket from {peer} closed ({code})", peer=self.factory.peer, code=code)

    # -- messages --

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if isBinary:  # §4.3.1: the endpoint may close with 1003 (Unsupported Data)
            # (sendClose only takes application codes; 1003 is the protocol's own)
            self.sendCloseFrame(code=1003, reasonUtf8=b"JMAP messages are text frames")
            return
        limits = self.factory.app.limits
        if len(payload) > limits.max_size_request:
            self._error(None, RequestError("limit", 413, f"the request is larger than {limits.max_size_request} "
                                           "octets", limit="maxSizeRequest"))
            return
        try:
            data = loads_ijson(payload)
        except ValueError as e:
            self._error(None, RequestError("notJSON", 400, f"the message did not parse as I-JSON: {e}"))
            return
        if not isinstance(data, dict):
            self._error(None, RequestError("notRequest", 400, "the message is not a JSON object"))
            return
        request_id = data.get("id")
        kind = data.get("@type")
        if kind == "Request":
            if request_id is not None and not isinstance(request_id, str):
                self._error(None, RequestError("notRequest", 400, "'id' must be a string"))
                return
            ensureDeferred(self._request(data, request_id))
        elif kind == "WebSocketPushEnable":
            self._push_enable(data)
        elif kind == "WebSocketPushDisable":
            self._stop_push()
        else:
            self._error(request_id if isinstance(request_id, str) else None, RequestError(
                "notRequest", 400, "'@type' must be Request, WebSocketPushEnable or WebSocketPushDisable"))

    async def _request(self, data: dict[str, Any], request_id: str | None) -> None:
        f = self.factory
        if f.push_only:
            self._error(request_id, PUSH_ONLY)
            return
        limits = f.app.limits
        try:
            response = await f.app.run_api_request(
                f.principal, f.info, f.base_url,
                lambda capabilities: parse_request_object(
                    data, capabilities=capabilities.keys(), max_calls_in_request=limits.max_calls_in_request),
                f.peer,
            )
        except RequestError as e:
            self._error(request_id, e)
            return
        except Exception:
            self.events.failure("JMAP WebSocket request from {peer} failed", peer=f.peer)
            self._error(request_id, RequestError("about:blank", 500, "internal server error"))
            return
        out: dict[str, Any] = {"@type": "Response"}
        if request_id is not None:
            out["requestId"] = request_id
        out.update(response)
        self._send(out)

    def _error(self, request_id: str | None, error: RequestError) -> None:
        self._send({"@type": "RequestError", "requestId": request_id, **error.to_problem()})

    def _send(self, obj: Any) -> None:
        if self._open:
            from .app import _json

            self.sendMessage(_json(obj), isBinary=False)

    # -- push --

    def _push_enable(self, data: dict[str, Any]) -> None:
        data_types = data.get("dataTypes")
        push_state = data.get("pushState")
        if data_types is not None and not (isinstance(data_types, list)
                                           and all(isinstance(t, str) for t in data_types)):
            self._error(None, RequestError("notRequest", 400, "'dataTypes' must be null or an array of strings"))
            return
        if push_state is not None and not isinstance(push_state, str):
            self._error(None, RequestError("notRequest", 400, "'pushState' must be a string"))
            return
        f = self.factory
        self._stop_push()
        self._types = None if data_types is None else frozenset(data_types)
        self._unsubscribe = f.app.backend.subscribe(f.principal, self._types, self.on_state_change)
        catch_up = getattr(f.app.backend, "push_catch_up", None)
        if push_state is not None and catch_up is not None:
            # §4.3.5.2: everything since that pushState at once (subscribed first:
            # a commit now is told twice at worst, never lost)
            change = catch_up(f.principal, self._types, push_state)
            if change is not None:
                self.on_state_change(change)

    def on_state_change(self, change: Mapping[str, Any]) -> None:
        if not self._open:
            return
        from .app import encoded_state_change

        data = encoded_state_change(change, self.factory.accounts, self._types, websocket=True)
        if data is not None:
            self.sendPreparedMessage(_prepared(data))

    def _stop_push(self) -> None:
        if self._unsubscribe is not None:
            unsubscribe, self._unsubscribe = self._unsubscribe, None
            unsubscribe()


# The frame of the StateChange being fanned out: every socket with the same filter gets
# the same encoded bytes (``encoded_state_change``), framed once for all of them.
_FRAME: list[Any] = [None, None]


def _prepared(data: bytes) -> PreparedMessage:
    if _FRAME[0] is not data:
        _FRAME[0], _FRAME[1] = data, PreparedMessage(data, False, False, True)
    return _FRAME[1]  # type: ignore[no-any-return]


class JMAPWebSocketFactory(WebSocketServerFactory):  # type: ignore[misc]
    """The factory of one upgrade: who authenticated it, and the app."""

    protocol = JMAPWebSocketProtocol

    def __init__(self, app: Any, principal: Any, info: SessionInfo, base_url: str, push_only: bool,
                 peer: str) -> None:
        super().__init__()
        self.app = app
        self.principal = principal
        self.info = info
        self.accounts = frozenset(info.accounts)
        self.base_url = base_url
        self.push_only = push_only
        self.peer = peer
        size = app.limits.max_size_request
        self.setProtocolOptions(
            maxMessagePayloadSize=2 * size, maxFramePayloadSize=2 * size,
            webStatus=False,  # a plain GET gets an error, not autobahn's status page
            perMessageCompressionAccept=lambda offers: None,  # no permessage-deflate
        )


def websocket_resource(request: Any, app: Any, principal: Any, info: SessionInfo, base_url: str, push_only: bool,
                       peer: str) -> WebSocketResource:
    """The resource that takes over an authenticated upgrade request. The
    request autobahn is given has no credentials left (no Authorization
    header, no ``access_token``): its debug log quotes the handshake."""
    request.requestHeaders.removeHeader(b"authorization")
    request.uri = request.uri.split(b"?", 1)[0]  # the socket takes no query arguments
    return WebSocketResource(JMAPWebSocketFactory(app, principal, info, base_url, push_only, peer))


__all__ = ["JMAPWebSocketFactory", "JMAPWebSocketProtocol", "SUBPROTOCOL", "websocket_resource"]
