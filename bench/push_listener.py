"""A listener process for ``bench/ws_latency.py``: holds IMAP IDLE sessions, EventSource
streams and JMAP WebSockets on plain non-blocking sockets and one ``select.epoll`` loop
(no Twisted, no line parsing after setup), so what it adds to a measured latency is a
``recv`` and a substring test per notification, not a client framework's per-read cost.

Driven over stdin/stdout by the bench process (one line each way):

- first stdin line: JSON ``{"imap": port, "jmap": port, "listeners": [[kind, account,
  address, token], ...]}``; it connects and sets every listener up, then prints
  ``ready``;
- ``L label``: the next commits are of kind ``label``: every listener is waiting for one
  notification; prints ``k`` (the bench starts its clocks after this), then ``d`` once
  every listener has had its notification;
- ``q``: prints one JSON line ``{label: [[kind, account, arrival], ...]}`` and exits.

Arrival times are ``time.monotonic()`` (CLOCK_MONOTONIC, one clock for every process of
the machine): the bench process stamps each commit with the same clock.
"""

from __future__ import annotations

import base64
import json
import os
import select
import socket
import sys
import time

PASSWORD = "secret"
MARKERS = {"IMAP IDLE": (b" EXISTS\r\n", b" FETCH ("), "EventSource": (b"event: state",),
           "WebSocket": (b'"StateChange"',)}


def _read_until(sock: socket.socket, token: bytes, buf: bytes = b"") -> bytes:
    while token not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit(f"listener connection closed waiting for {token!r}: {buf[-200:]!r}")
        buf += chunk
    return buf


def _tagged(s: socket.socket, tag: bytes) -> None:
    """Read up to the tagged response of ``tag``; anything but OK ends the bench."""
    buf = b"\r\n"
    while b"\r\n" + tag + b" " not in buf or not buf.endswith(b"\r\n"):
        buf = _read_until(s, b"\r\n", buf + s.recv(65536))
    line = buf[buf.index(b"\r\n" + tag + b" ") + 2:].split(b"\r\n", 1)[0]
    if not line.startswith(tag + b" OK"):
        raise SystemExit(f"IMAP listener: {line!r}")


def _imap(port: int, address: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    _read_until(s, b"\r\n")
    s.sendall(f"a LOGIN {address} {PASSWORD}\r\n".encode())
    _tagged(s, b"a")
    s.sendall(b"b SELECT INBOX\r\n")
    _tagged(s, b"b")
    s.sendall(b"c IDLE\r\n")
    _read_until(s, b"+ ")
    return s


def _eventsource(port: int, token: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET /jmap/eventsource/?types=*&closeafter=no&ping=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              f"Authorization: Bearer {token}\r\n\r\n".encode())
    buf = _read_until(s, b"\r\n\r\n")
    if not buf.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"EventSource refused: {buf[:200]!r}")
    return s


def _ws_frame(payload: bytes) -> bytes:
    """A masked text frame (RFC 6455 §5.2: a client masks every frame)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _websocket(port: int, token: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET /jmap/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: jmap\r\n"
              f"Authorization: Bearer {token}\r\n\r\n".encode())
    buf = _read_until(s, b"\r\n\r\n")
    if not buf.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"WebSocket refused: {buf[:200]!r}")
    s.sendall(_ws_frame(json.dumps({"@type": "WebSocketPushEnable", "dataTypes": None}).encode()))
    s.sendall(_ws_frame(json.dumps({"@type": "Request", "id": "ready", "using": ["urn:ietf:params:jmap:core"],
                                    "methodCalls": [["Core/echo", {}, "0"]]}).encode()))
    _read_until(s, b'"ready"', buf.split(b"\r\n\r\n", 1)[1])
    return s


def main() -> None:
    spec = json.loads(sys.stdin.readline())
    socks: dict[int, tuple[socket.socket, str, int]] = {}
    for kind, account, address, token in spec["listeners"]:
        if kind == "IMAP IDLE":
            s = _imap(spec["imap"], address)
        elif kind == "EventSource":
            s = _eventsource(spec["jmap"], token)
        else:
            s = _websocket(spec["jmap"], token)
        s.setblocking(False)
        socks[s.fileno()] = (s, kind, account)
    ep = select.epoll()
    for fd in socks:
        ep.register(fd, select.EPOLLIN)
    stdin = sys.stdin.fileno()
    ep.register(stdin, select.EPOLLIN)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    samples: dict[str, list[list]] = {}
    label, pending, tails = "", set(), dict.fromkeys(socks, b"")
    cmd = b""
    while True:
        for fd, _ev in ep.poll():
            if fd == stdin:
                cmd += os.read(stdin, 4096)
                while b"\n" in cmd:
                    line, cmd = cmd.split(b"\n", 1)
                    if line.startswith(b"L "):
                        label, pending = line[2:].decode(), set(socks)
                        out.write("k\n")
                        out.flush()
                    elif line == b"q":
                        out.write(json.dumps(samples) + "\n")
                        out.flush()
                        return
                continue
            s, kind, account = socks[fd]
            data = s.recv(65536)
            if not data:
                raise SystemExit(f"{kind} listener of account {account} was closed")
            now = time.monotonic()
            seen = tails[fd] + data
            tails[fd] = data[-16:]
            if fd in pending and any(m in seen for m in MARKERS[kind]):
                pending.discard(fd)
                samples.setdefault(label, []).append([kind, account, now])
                if not pending:
                    out.write("d\n")
                    out.flush()


if __name__ == "__main__":
    main()
