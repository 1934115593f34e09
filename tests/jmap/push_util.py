"""A push service for tests (RFC 8030's role, on loopback) and a user agent's
keys (RFC 8291) to decrypt what it receives. Import as ``tests.jmap.push_util``."""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twisted.internet import defer
from twisted.web import resource, server


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class UserAgent:
    """A subscription's private half: P-256 key and auth secret (RFC 8291 §2)."""

    key: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    def keys(self) -> dict[str, str]:
        point = self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                   serialization.PublicFormat.UncompressedPoint)
        return {"p256dh": b64url(point), "auth": b64url(self.auth)}

    def decrypt(self, body: bytes) -> dict[str, Any]:
        return json.loads(http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"))


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self, ua: UserAgent | None = None) -> dict[str, Any]:
        if ua is not None:
            assert self.headers.get("content-encoding") == "aes128gcm"
            return ua.decrypt(self.body)
        return json.loads(self.body)


class PushService(resource.Resource):
    """Records every POST; answers ``codes.pop(0)`` (201 when empty)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Received] = []
        self.stamps: list[float] = []  # time.monotonic() of each POST
        self.codes: list[int] = []
        self._waiters: list[tuple[int, defer.Deferred[Received]]] = []

    def render_POST(self, request: Any) -> bytes:
        headers = {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()}
        got = Received(request.path.decode(), headers, request.content.read())
        self.received.append(got)
        self.stamps.append(time.monotonic())
        request.setResponseCode(self.codes.pop(0) if self.codes else 201)
        for n, d in list(self._waiters):
            if len(self.received) >= n:
                self._waiters.remove((n, d))
                d.callback(self.received[n - 1])
        return b""

    def nth(self, n: int, timeout: float = 10.0) -> defer.Deferred[Received]:
        """Fires with the ``n``-th POST (1-based) once it has come."""
        from twisted.internet import reactor

        if len(self.received) >= n:
            return defer.succeed(self.received[n - 1])
        d: defer.Deferred[Received] = defer.Deferred()
        self._waiters.append((n, d))
        d.addTimeout(timeout, reactor)
        return d


def listen_push_service(reactor: Any) -> tuple[PushService, Any, str]:
    """A ``PushService`` on 127.0.0.1:0: (service, port, base URL)."""
    svc = PushService()
    site = server.Site(svc)
    site.displayTracebacks = False
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    return svc, port, f"http://127.0.0.1:{port.getHost().port}"
