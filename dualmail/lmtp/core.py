"""The sans-I/O LMTP server core (RFC 2033): bytes in, reply bytes out; no sockets, no store.

``LMTPSession.receive(data)`` takes whatever the connection delivered (any split, any
amount of pipelining, RFC 2920) and returns the replies to write, in command order.  The
grammar and the state rules live here; every decision about addresses and delivery is the
``Handler``'s (policy in a separate object, as aiosmtpd does it), so this module is tested
with a fake handler and reused unchanged by any transport.

Rules, with the RFC that sets each:

- One method per verb (``do_LHLO`` …); an unknown verb is 500 5.5.1 (RFC 5321 §4.2.4),
  a known verb used out of order 503 5.5.1, bad arguments 501 5.5.4 (RFC 5321 §4.3.2).
  HELO and EHLO are refused: LMTP opens with LHLO (RFC 2033 §4.1).
- A command line is at most 512 octets with its CRLF (RFC 5321 §4.5.3.1.4); a longer one
  is read to its end and answered 500 5.5.2.  Only CRLF ends a line (RFC 5321 §2.3.8): a
  bare CR, bare LF or NUL in a command line makes it a 500 5.5.2 syntax error.
- MAIL FROM takes ``SIZE=n`` (RFC 1870) and ``BODY=7BIT|8BITMIME`` (RFC 6152); anything
  else 555 5.5.4 (RFC 5321 §4.1.1.11).  A SIZE over the limit is 552 5.3.4 (RFC 1870 §6).
- At most ``max_recipients`` accepted RCPTs per transaction, advertised as ``LIMITS
  RCPTMAX=`` (RFC 9422); the next ones get 452 4.5.3 (RFC 5321 §4.5.3.1.10), earlier ones
  stay accepted (§4.5.3.1.8).
- DATA without an accepted RCPT is 503 (RFC 2033 §4.2).  Message data ends only at
  CRLF "." CRLF (RFC 5321 §4.1.1.4); leading dots are removed (§4.5.2).  After the final
  "." there is one reply per accepted RCPT, in RCPT order (RFC 2033 §4.2).
- Data over the SIZE limit is discarded as it arrives (nothing is kept beyond the limit)
  and every recipient gets 552 5.3.4 (RFC 1870 §6.3).  Data with a bare CR or LF (RFC
  5321 §2.3.8: such a message is rejected rather than "repaired", so a bare-LF
  end-of-data can never be smuggled through), a NUL (8bit MIME data has none: RFC 6152
  §3 refers to RFC 2045, whose §2.8 excludes NUL; BINARYMIME is not offered), or a line
  over 1000 octets with its CRLF (RFC 5321 §4.5.3.1.6) gets 554 5.6.0 for every
  recipient.  Nothing is delivered in those cases.
- A connection lost before the final "." delivers nothing (``connection_lost``).

Imports nothing outside the standard library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Protocol, Sequence

CRLF = b"\r\n"


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply: code, RFC 3463 enhanced status (empty for 220/221/354 greetings), text."""

    code: int
    status: str = ""
    text: str = ""

    def to_bytes(self) -> bytes:
        lines = self.text.split("\n") or [""]
        out = []
        for i, line in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            body = f"{self.status} {line}" if self.status else line
            out.append(f"{self.code}{sep}{body}".rstrip().encode("ascii", "replace") + CRLF)
        return b"".join(out)

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


@dataclass(frozen=True, slots=True)
class Limits:
    """Every limit the core enforces (constructor arguments, not constants)."""

    max_message_size: int = 50 * 1024 * 1024  # SIZE (RFC 1870); = IMAP APPENDLIMIT
    max_recipients: int = 100  # RCPTMAX; RFC 5321 §4.5.3.1.8 asks for at least 100
    max_command_line: int = 512  # with CRLF, RFC 5321 §4.5.3.1.4
    max_text_line: int = 1000  # with CRLF, RFC 5321 §4.5.3.1.6
    max_path: int = 256  # RFC 5321 §4.5.3.1.3


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed forward- or reverse-path.  ``local`` is the local part with any quoting
    removed; ``dot_string`` says whether it was (or is equivalent to) a plain Dot-string.
    The null reverse-path ``<>`` has ``local == domain == ""``."""

    local: str
    domain: str
    dot_string: bool = True

    @property
    def null(self) -> bool:
        return not self.local and not self.domain

    def __str__(self) -> str:
        if self.null:
            return ""
        local = self.local if self.dot_string else '"' + re.sub(r'(["\\])', r"\\\1", self.local) + '"'
        return f"{local}@{self.domain}"


@dataclass(frozen=True, slots=True)
class Recipient:
    """An accepted RCPT: its address and the handler's token for it (e.g. account, mailbox)."""

    address: Address
    token: Any = None


@dataclass(slots=True)
class Envelope:
    lhlo: str = ""
    sender: Address | None = None
    recipients: list[Recipient] = field(default_factory=list)
    declared_size: int | None = None
    body: str = "7BIT"


class Handler(Protocol):
    """The policy the core asks; every method runs synchronously."""

    def rcpt(self, address: Address) -> Reply | Recipient:
        """Accept the recipient (a ``Recipient`` carrying a token) or refuse it (a ``Reply``)."""

    def deliver(self, envelope: Envelope, data: bytes) -> Sequence[Reply]:
        """Deliver ``data`` (unstuffed, CRLF lines); one reply per accepted recipient, in order."""


# -- RFC 5321 §4.1.2 paths ---------------------------------------------------------------

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'
_SUBDOMAIN = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = rf"{_SUBDOMAIN}(?:\.{_SUBDOMAIN})*"
_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]+\]"
_AT_DOMAIN = rf"@{_DOMAIN}"
_PATH = re.compile(
    rf"<(?:{_AT_DOMAIN}(?:,{_AT_DOMAIN})*:)?(?P<local>{_DOT_STRING}|{_QUOTED})@(?P<domain>{_DOMAIN}|{_LITERAL})>"
)
_DOT_STRING_RE = re.compile(_DOT_STRING)
_PARAM = re.compile(r"(?P<key>[A-Za-z0-9][A-Za-z0-9-]*)(?:=(?P<value>[\x21-\x3c\x3e-\x7e]+))?")
_VERB = re.compile(rb"[A-Za-z]{1,16}")


class PathError(ValueError):
    pass


def parse_path(text: str, limits: Limits, *, allow_null: bool) -> tuple[Address, list[tuple[str, str | None]]]:
    """``<path> [SP params]`` (source routes accepted and ignored, RFC 5321 §4.1.2/§C).

    Raises ``PathError`` for bad syntax, ``ValueError`` for bad parameters."""
    if allow_null and text.startswith("<>"):
        addr, rest = Address("", ""), text[2:]
    else:
        m = _PATH.match(text)
        if m is None:
            raise PathError("bad path")
        if m.end() > limits.max_path:
            raise PathError("path too long")
        local = m.group("local")
        quoted = local.startswith('"')
        if quoted:
            local = re.sub(r"\\(.)", r"\1", local[1:-1])
        if len(local) > 64 or len(m.group("domain")) > 255:
            raise PathError("path too long")
        addr = Address(local, m.group("domain"), _DOT_STRING_RE.fullmatch(local) is not None)
        rest = text[m.end():]
    params: list[tuple[str, str | None]] = []
    if rest:
        if not rest.startswith(" "):
            raise PathError("bad path")
        for word in rest.split(" "):
            if not word:
                continue
            pm = _PARAM.fullmatch(word)
            if pm is None:
                raise ValueError(f"bad parameter {word!r}")
            params.append((pm.group("key").upper(), pm.group("value")))
    return addr, params


class Mode(Enum):
    COMMAND = "command"
    DATA = "data"
    CLOSED = "closed"


Verb = Callable[["LMTPSession", str], "list[Reply]"]


class LMTPSession:
    """One LMTP connection's state; ``receive`` drives it."""

    def __init__(self, handler: Handler, hostname: str = "localhost",
                 limits: Limits | None = None) -> None:
        self.handler = handler
        self.hostname = hostname
        self.limits = limits or Limits()
        self.mode = Mode.COMMAND
        self.lhlo: str | None = None
        self.envelope: Envelope | None = None
        self._buf = bytearray()
        self._discarding = False  # inside an over-long command line
        # DATA: the dot-stuffed data so far, after a CRLF sentinel (so the first line's
        # dot and an empty message's "." CRLF look like every other line's)
        self._data = bytearray()
        self._oversize = False
        self._dropped = 0  # octets discarded because of SIZE

    # -- I/O boundary -------------------------------------------------------------------

    def greeting(self) -> bytes:
        return Reply(220, "", f"{self.hostname} LMTP dualmail ready").to_bytes()

    def receive(self, data: bytes) -> bytes:
        """Feed received octets; the replies to send (possibly none yet)."""
        out: list[bytes] = []
        if self.closed:
            return b""
        self._buf += data
        while not self.closed:
            if self.mode is Mode.DATA:
                replies = self._receive_data()
                if replies is None:
                    break
                out.extend(r.to_bytes() for r in replies)
                continue
            line = self._next_line()
            if line is None:
                break
            out.extend(r.to_bytes() for r in line)
        return b"".join(out)

    @property
    def closed(self) -> bool:
        """True after QUIT: the adapter closes the connection once the replies are out."""
        return self.mode is Mode.CLOSED

    def connection_lost(self) -> None:
        """The peer went away: whatever transaction was open is dropped, nothing delivered."""
        self.mode = Mode.CLOSED
        self.envelope = None
        self._data = bytearray()
        self._buf = bytearray()

    def timeout_reply(self) -> bytes:
        self.connection_lost()
        return Reply(421, "4.4.2", f"{self.hostname} idle too long, closing").to_bytes()

    # -- command lines --------------------------------------------------------------------

    def _next_line(self) -> list[Reply] | None:
        buf = self._buf
        end = buf.find(CRLF)
        if self._discarding:
            if end < 0:
                keep = 1 if buf.endswith(b"\r") else 0
                del buf[:len(buf) - keep]
                return None
            del buf[:end + 2]
            self._discarding = False
            return [Reply(500, "5.5.2", "Line too long")]
        if end < 0:
            if len(buf) >= self.limits.max_command_line:  # no room left for a CRLF
                self._discarding = True
                return self._next_line()
            return None
        if end > self.limits.max_command_line - 2:
            del buf[:end + 2]
            return [Reply(500, "5.5.2", "Line too long")]
        line = bytes(buf[:end])
        del buf[:end + 2]
        return self.command(line)

    def command(self, line: bytes) -> list[Reply]:
        """One command line (without its CRLF)."""
        if any(c in line for c in (b"\r", b"\n", b"\x00")):
            return [Reply(500, "5.5.2", "Syntax error: bare CR, LF or NUL in command")]
        verb_bytes, _sp, rest_bytes = line.partition(b" ")
        if not _VERB.fullmatch(verb_bytes):
            return [Reply(500, "5.5.2", "Syntax error")]
        method: Verb | None = getattr(type(self), "do_" + verb_bytes.decode("ascii").upper(), None)
        if method is None:
            return [Reply(500, "5.5.1", "Command unrecognized")]
        try:
            rest = rest_bytes.decode("ascii")
        except UnicodeDecodeError:
            return [Reply(501, "5.5.4", "Non-ASCII argument (SMTPUTF8 is not offered)")]
        return method(self, rest)

    # -- verbs (RFC 2033 §4, RFC 5321 §4.1.1) ------------------------------------------------

    def do_LHLO(self, arg: str) -> list[Reply]:
        if not arg.strip() or " " in arg.strip():
            return [Reply(501, "5.5.4", "LHLO needs one domain or address literal")]
        self.lhlo = arg.strip()
        self.envelope = None
        lines = [self.hostname, "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME",
                 f"SIZE {self.limits.max_message_size}", f"LIMITS RCPTMAX={self.limits.max_recipients}"]
        return [Reply(250, "", "\n".join(lines))]

    def do_HELO(self, arg: str) -> list[Reply]:
        return [Reply(500, "5.5.1", "This is LMTP: say LHLO (RFC 2033 section 4.1)")]

    do_EHLO = do_HELO

    def do_MAIL(self, arg: str) -> list[Reply]:
        if self.lhlo is None:
            return [Reply(503, "5.5.1", "Say LHLO first")]
        if self.envelope is not None:
            return [Reply(503, "5.5.1", "Sender already given")]
        parsed = self._path_argument(arg, "MAIL FROM", "5.1.7", "sender")
        if isinstance(parsed, Reply):
            return [parsed]
        sender, params = parsed
        env = Envelope(lhlo=self.lhlo, sender=sender)
        seen: set[str] = set()
        for key, value in params:
            if key in seen:
                return [Reply(501, "5.5.4", f"Duplicate {key} parameter")]
            seen.add(key)
            if key == "SIZE":
                if value is None or not value.isdigit() or len(value) > 20:
                    return [Reply(501, "5.5.4", "Bad SIZE value")]
                if int(value) > self.limits.max_message_size:
                    return [Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")]
                env.declared_size = int(value)
            elif key == "BODY":
                if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                    return [Reply(555, "5.5.4", "BODY must be 7BIT or 8BITMIME")]
                env.body = value.upper()
            else:
                return [Reply(555, "5.5.4", f"MAIL FROM parameter {key} not recognized")]
        self.envelope = env
        return [Reply(250, "2.1.0", "Sender ok")]

    def do_RCPT(self, arg: str) -> list[Reply]:
        env = self.envelope
        if env is None:
            return [Reply(503, "5.5.1", "Need MAIL before RCPT")]
        parsed = self._path_argument(arg, "RCPT TO", "5.1.3", "recipient")
        if isinstance(parsed, Reply):
            return [parsed]
        address, params = parsed
        if params:
            return [Reply(555, "5.5.4", f"RCPT TO parameter {params[0][0]} not recognized")]
        if len(env.recipients) >= self.limits.max_recipients:
            return [Reply(452, "4.5.3", "Too many recipients")]
        got = self.handler.rcpt(address)
        if isinstance(got, Reply):
            return [got]
        env.recipients.append(got)
        return [Reply(250, "2.1.5", "Recipient ok")]

    def _path_argument(self, arg: str, command: str, bad_path: str,
                       role: str) -> Reply | tuple[Address, list[tuple[str, str | None]]]:
        """``FROM:<path> params`` / ``TO:<path> params`` (one space after the colon is
        tolerated, as most servers do), or the 501 for its syntax (RFC 3463 §3.2: 5.1.7
        bad sender, 5.1.3 bad recipient address syntax)."""
        keyword = command.split(" ")[1] + ":"
        if arg[:len(keyword)].upper() != keyword:
            return Reply(501, "5.5.4", f"Syntax: {command}:<address>")
        try:
            return parse_path(arg[len(keyword):].lstrip(" "), self.limits, allow_null=command == "MAIL FROM")
        except PathError:
            return Reply(501, bad_path, f"Bad {role} address syntax")
        except ValueError:
            return Reply(501, "5.5.4", f"Bad {command} parameter syntax")

    def do_DATA(self, arg: str) -> list[Reply]:
        if arg:
            return [Reply(501, "5.5.4", "DATA takes no argument")]
        env = self.envelope
        if env is None:
            return [Reply(503, "5.5.1", "Need MAIL before DATA")]
        if not env.recipients:
            return [Reply(503, "5.5.1", "No valid recipients")]
        self.mode = Mode.DATA
        self._data = bytearray(CRLF)
        self._oversize = False
        self._dropped = 0
        return [Reply(354, "", "Start mail input; end with <CRLF>.<CRLF>")]

    def do_RSET(self, arg: str) -> list[Reply]:
        if arg:
            return [Reply(501, "5.5.4", "RSET takes no argument")]
        self.envelope = None
        return [Reply(250, "2.0.0", "Ok")]

    def do_NOOP(self, arg: str) -> list[Reply]:
        return [Reply(250, "2.0.0", "Ok")]  # RFC 5321 §4.1.1.9: a parameter is ignored

    def do_VRFY(self, arg: str) -> list[Reply]:
        if not arg:
            return [Reply(501, "5.5.4", "VRFY needs an argument")]
        return [Reply(252, "2.5.0", "Cannot VRFY user; try RCPT")]  # RFC 5321 §3.5.3

    def do_EXPN(self, arg: str) -> list[Reply]:
        return [Reply(502, "5.5.1", "EXPN not implemented")]

    def do_HELP(self, arg: str) -> list[Reply]:
        return [Reply(214, "2.0.0", "LHLO MAIL RCPT DATA RSET NOOP QUIT VRFY")]

    def do_QUIT(self, arg: str) -> list[Reply]:
        if arg:
            return [Reply(501, "5.5.4", "QUIT takes no argument")]
        self.connection_lost()
        return [Reply(221, "2.0.0", f"{self.hostname} closing connection")]

    # -- message data ---------------------------------------------------------------------

    def _receive_data(self) -> list[Reply] | None:
        """Move buffered octets into the message; at CRLF "." CRLF, the replies."""
        data = self._data
        start = max(len(data) - 4, 0)  # the marker may straddle two reads
        data += self._buf
        self._buf = bytearray()
        end = data.find(b"\r\n.\r\n", start)
        if end >= 0:
            self._buf = bytearray(data[end + 5:])
            del data[end + 2:]
        self._check_size(final=end >= 0)
        if end < 0:
            return None
        self.mode = Mode.COMMAND
        return self._finish_data()

    def _check_size(self, final: bool) -> None:
        """Past the SIZE limit, drop what was received but a tail long enough to find the
        end marker in; the limit counts octets without the doubled dots (RFC 1870 §5).  Until the end
        marker is found, the last 3 octets may be its start ("CRLF." is counted as a
        dot-stuffed line, "." CR as content): they get the benefit of the doubt."""
        data, limit = self._data, self.limits.max_message_size + (0 if final else 3)
        if self._dropped + len(data) - 2 <= limit:
            return
        if not self._oversize and len(data) - 2 - data.count(b"\r\n.") <= limit:
            return
        self._oversize = True
        cut = len(data) - 4
        if cut > 0:
            del data[:cut]
            self._dropped += cut

    def _finish_data(self) -> list[Reply]:
        env = self.envelope
        assert env is not None
        self.envelope = None
        n = len(env.recipients)
        data = bytes(self._data)
        self._data = bytearray()
        if self._oversize:
            return [Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")] * n
        raw = data.replace(b"\r\n.", b"\r\n")[2:]
        problem = data_problem(raw, self.limits)
        if problem:
            return [Reply(554, "5.6.0", problem)] * n
        replies = list(self.handler.deliver(env, raw))
        if len(replies) != n:  # a handler bug must not desynchronize the client
            return [Reply(451, "4.3.0", "Local error in processing")] * n
        return replies


def data_problem(raw: bytes, limits: Limits) -> str:
    """Why unstuffed message data is refused, or "" (RFC 5321 §2.3.8, §4.5.3.1.6; RFC 6152)."""
    if not raw:
        return "Empty message"
    if b"\x00" in raw:
        return "Message contains NUL octets (8BITMIME data has none)"
    crlf = raw.count(CRLF)
    if raw.count(b"\n") != crlf or raw.count(b"\r") != crlf:
        return "Message contains a bare CR or LF (RFC 5321 section 2.3.8)"
    if len(raw) > limits.max_text_line - 2 and max(map(len, raw.split(CRLF))) > limits.max_text_line - 2:
        return f"Message has a line over {limits.max_text_line} octets (RFC 5321 section 4.5.3.1.6)"
    return ""
