"""A small blocking IMAP client that returns responses parsed but otherwise untouched.

The differential test needs the servers' exact data (literal or quoted makes no
difference, everything else does), which imaplib/imapclient reshape.  ``Client.run``
sends one command and returns its untagged responses as parsed values:

    atom          -> str   (``FLAGS``, ``\\Seen``, ``BODY[1.MIME]``, numbers as str)
    quoted/literal-> bytes
    NIL           -> None
    (...)         -> list
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

TIMEOUT = 20.0


class IMAPError(AssertionError):
    pass


@dataclass
class Reply:
    untagged: list[list]
    status: str
    text: bytes


def parse(data: bytes, pos: int = 0) -> tuple[list, int]:
    """Parse one response line (literals inlined) into a list of values."""
    out, pos = _items(data, pos, None)
    return out, pos


def _items(data: bytes, pos: int, close: bytes | None) -> tuple[list, int]:
    items: list = []
    n = len(data)
    while pos < n:
        c = data[pos : pos + 1]
        if c == b" ":
            pos += 1
        elif c in (b"\r", b"\n"):
            pos += 1
        elif close is not None and c == close:
            return items, pos + 1
        elif c == b"(":
            sub, pos = _items(data, pos + 1, b")")
            items.append(sub)
        elif c == b'"':
            j = pos + 1
            buf = bytearray()
            while j < n and data[j : j + 1] != b'"':
                if data[j : j + 1] == b"\\":
                    j += 1
                buf += data[j : j + 1]
                j += 1
            items.append(bytes(buf))
            pos = j + 1
        elif c == b"{" or (c == b"~" and data[pos + 1 : pos + 2] == b"{"):
            pos += 1 if c == b"~" else 0
            j = data.index(b"}", pos)
            size = int(data[pos + 1 : j].rstrip(b"+"))
            start = data.index(b"\n", j) + 1
            items.append(data[start : start + size])
            pos = start + size
        else:
            j = pos
            depth = 0
            while j < n:
                ch = data[j : j + 1]
                if ch == b"[":
                    depth += 1
                elif ch == b"]" and depth:
                    depth -= 1
                elif depth == 0 and (ch in b" ()\r\n" or (close is not None and ch == close)):
                    break
                j += 1
            if j == pos:  # a stray ")" or the like: skip it
                pos += 1
                continue
            atom = data[pos:j].decode("latin-1")
            items.append(None if atom.upper() == "NIL" else atom)
            pos = j
    return items, pos


def fetch_items(resp: list) -> dict[str, object]:
    """``['*', '3', 'FETCH', [k, v, ...]]`` -> {K: v} (item names upper-cased)."""
    pairs = resp[3]
    return {str(pairs[i]).upper(): pairs[i + 1] for i in range(0, len(pairs) - 1, 2)}


class Client:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.address = (host, port)
        self.credentials: tuple[str, str] | None = None
        self.tag = 0
        self._connect()

    def _connect(self) -> None:
        self.sock = socket.create_connection(self.address, timeout=TIMEOUT)
        self.buf = b""
        greeting = self._line()
        if not greeting.startswith(b"* OK"):
            raise IMAPError(greeting)

    def reconnect(self) -> None:
        """A new connection, logged in again with the same credentials."""
        self.sock.close()
        self._connect()
        if self.credentials is not None:
            self.login(*self.credentials)

    def close(self) -> None:
        try:
            self.run("LOGOUT")
        except (OSError, IMAPError):
            pass
        self.sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise IMAPError("connection closed")
        self.buf += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _response(self) -> bytes:
        """One response with its literals inlined (``{n}\\r\\n`` + n octets)."""
        out = b""
        while True:
            line = self._line()
            out += line + b"\r\n"
            if line.endswith(b"}") and b"{" in line:
                size = int(line[line.rindex(b"{") + 1 : -1].rstrip(b"+"))
                while len(self.buf) < size:
                    self._fill()
                out += self.buf[:size]
                self.buf = self.buf[size:]
                continue
            return out

    def run(self, command: str | bytes, *literals: bytes, ok: bool = True) -> Reply:
        """Send ``command``; each ``{}`` in it is replaced by a synchronizing literal."""
        self.tag += 1
        tag = b"T%d" % self.tag
        text = command.encode() if isinstance(command, str) else command
        pieces = text.split(b"{}")
        if len(pieces) != len(literals) + 1:
            raise ValueError("one literal per {}")
        self.sock.sendall(tag + b" " + pieces[0])
        for lit, rest in zip(literals, pieces[1:]):
            self.sock.sendall(b"{%d}\r\n" % len(lit))
            line = self._line()
            if not line.startswith(b"+"):
                raise IMAPError(line)
            self.sock.sendall(lit + rest)
        self.sock.sendall(b"\r\n")
        untagged: list[list] = []
        while True:
            raw = self._response()
            if raw.startswith(tag + b" "):
                words = raw[len(tag) + 1 :].split(b" ", 1)
                status = words[0].decode()
                reply = Reply(untagged, status, words[1] if len(words) > 1 else b"")
                if ok and status != "OK":
                    raise IMAPError(f"{text!r}: {raw!r}")
                return reply
            if raw.startswith(b"+"):
                continue
            untagged.append(parse(raw)[0])

    def login(self, user: str, password: str) -> None:
        self.credentials = (user, password)
        self.run(f'LOGIN "{user}" "{password}"')

    def fetch(self, seq: str, items: str) -> dict[int, dict[str, object]]:
        reply = self.run(f"FETCH {seq} {items}")
        out: dict[int, dict[str, object]] = {}
        for r in reply.untagged:
            if len(r) >= 4 and str(r[2]).upper() == "FETCH":
                out.setdefault(int(r[1]), {}).update(fetch_items(r))
        return out
