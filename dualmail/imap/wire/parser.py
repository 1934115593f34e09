"""Sans-I/O IMAP4 command parser: bytes in, command values and framing events out.

One job: turn the client's byte stream into ``commands.*`` values (RFC 9051 §9
grammar plus the extensions dualmail advertises) and tell the session when the
wire needs it: a "+" before a synchronising literal, a refused literal, a syntax
error.  No I/O, no clock; imports nothing outside ``dualmail.imap.wire``.

Rules of the framing state machine (``next_event`` pulls, ``feed`` only buffers):

* A command is lines joined by literals.  A line ending in ``{n}``, ``{n+}`` or
  ``~{n}`` announces a literal of n octets; the command ends at the first line
  that announces none.
* Before accepting a literal, the command so far is parsed as a prefix.  A syntax
  error there, a literal over ``max_literal``, the command's literals together over
  ``max_command_literals`` (MULTIAPPEND), or a non-synchronising one over
  ``max_nonsync_literal`` (LITERAL-, or before login), is
  reported without a "+": a synchronising literal then ends the command (the
  client will not send it, RFC 9051 §7.5), a non-synchronising one is swallowed
  with the rest of its command (RFC 7888 §4).  A non-synchronising literal over
  the limits is refused as ``LiteralTooLarge(sync=False)`` even when the prefix
  has a syntax error too, so the session can tell that the client is sending
  more than it may (and close the connection rather than swallow gigabytes).
* An accepted synchronising literal yields ``NeedContinuation``; the session must
  answer "+ ..." before the client sends the octets.
* ``max_line`` bounds the non-literal text of one command; a longer command is
  discarded to its end (without buffering) and reported as ``ParseError``
  with code TOOBIG.
* Every error is reported as soon as it is known, before the rest of the bad
  command (an unterminated line, a literal being swallowed) has arrived; the
  discarding goes on afterwards if the caller keeps feeding.
* After any error the parser is at the start of the next command: nothing is lost
  and nothing of the bad command is parsed as a new one.
* ``expect_line()`` (SASL, RFC 9051 §6.2.2) and ``expect_done()`` (IDLE, RFC 2177)
  make the next line raw: ``RawLine`` / ``Done``.  Bytes after it stay buffered.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from typing import Callable, Union

from dualmail.imap.wire import commands as c
from dualmail.imap.wire import ext_parse as _ext
from dualmail.imap.wire.sequence import MAX_NUMBER, SequenceSet

# -- events ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NeedContinuation:
    """A synchronising literal was accepted: send ``+ text`` now."""

    text: str = "Ready for literal data"
    tag: str | None = None
    size: int = 0
    command: str | None = None  # the command's name (first word after the tag), upper-cased


@dataclass(frozen=True, slots=True)
class ParseError:
    """The command was malformed; answer ``tag BAD`` (``* BAD`` if no tag)."""

    tag: str | None
    text: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class LiteralTooLarge:
    """A literal over the limits was refused (answer with [TOOBIG])."""

    tag: str | None
    size: int
    sync: bool = True  # False: a non-synchronising literal, its octets are on their way


@dataclass(frozen=True, slots=True)
class RawLine:
    """The line after ``expect_line()``, without its CRLF."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Done:
    """The DONE line that ends IDLE."""


Event = Union[c.Command, NeedContinuation, ParseError, LiteralTooLarge, RawLine, Done]

# -- character classes (RFC 9051 §9) -----------------------------------------

_ATOM = frozenset(range(0x21, 0x7F)) - frozenset(b'(){%*"\\]')
_ASTRING = _ATOM | {ord("]")}
_TAG = _ASTRING - {ord("+")}
_LIST = _ATOM | frozenset(b"%*]")
_ATT = _ATOM - frozenset(b"[<")  # fetch-att names stop at a section or partial
_DIGITS = frozenset(b"0123456789")
_SEQ = frozenset(b"0123456789*:,$")
_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")

_MARKER = re.compile(rb"(~?)\{([0-9]+)(\+?)\}\Z")
_TAG_RE = re.compile(rb"[\x21-\x7e]+")
_TIME_ZONE = re.compile(rb'([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"')
_OBJECTID = re.compile(rb"[A-Za-z0-9_-]{1,255}")
# quoted = DQUOTE *QUOTED-CHAR DQUOTE; only \" and \\ may be escaped (RFC 9051 §9)
_QUOTED = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_UNESCAPE = re.compile(rb'\\(["\\])')


def _class_re(allowed: frozenset[int]) -> re.Pattern[bytes]:
    return re.compile(b"[" + b"".join(re.escape(bytes([b])) for b in sorted(allowed)) + b"]*")


# ``[class]*`` for each character class, so runs are scanned in C, not per byte
_RUN_RES = {cls: _class_re(cls) for cls in (_ATOM, _ASTRING, _TAG, _LIST, _ATT, _DIGITS, _SEQ, _B64)}
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
    )
}
_SYSTEM_FLAGS = {f.upper(): f for f in ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent")}
_MAX_NUMBER64 = 2**63 - 1
_MARKER_TAIL = 32  # enough to recognise "{<19 digits>+}" at the end of a dropped line

_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_SIMPLE_ATTS = frozenset(
    "ENVELOPE FLAGS INTERNALDATE RFC822.SIZE BODYSTRUCTURE UID RFC822 RFC822.HEADER "
    "RFC822.TEXT MODSEQ EMAILID THREADID PREVIEW SAVEDATE".split()
)
_STATUS_ITEMS = frozenset(
    "MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ MAILBOXID "
    "APPENDLIMIT DELETED-STORAGE".split()
)
_SEARCH_RETURN = frozenset("MIN MAX ALL COUNT SAVE UPDATE CONTEXT PARTIAL".split())
_SORT_KEYS = frozenset("ARRIVAL CC DATE FROM SIZE SUBJECT TO DISPLAYFROM DISPLAYTO".split())
_LIST_SELECT = frozenset("SUBSCRIBED REMOTE RECURSIVEMATCH SPECIAL-USE".split())
_LIST_RETURN = frozenset("SUBSCRIBED CHILDREN SPECIAL-USE".split())
_USE_ATTRS = {
    a.upper(): a
    for a in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
}
_SEARCH_NOARG = frozenset(
    "ALL ANSWERED DELETED DRAFT FLAGGED NEW OLD RECENT SEEN UNANSWERED UNDELETED "
    "UNDRAFT UNFLAGGED UNSEEN SAVEDATESUPPORTED".split()
)
_SEARCH_STRING = frozenset("BCC BODY CC FROM SUBJECT TEXT TO".split())
_SEARCH_DATE = frozenset("BEFORE ON SINCE SENTBEFORE SENTON SENTSINCE SAVEDBEFORE SAVEDON "
                         "SAVEDSINCE".split())  # SAVED*: RFC 8514 §4.3


class _Syntax(Exception):
    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class _Incomplete(Exception):
    """The prefix parsed fine up to a literal not received yet."""


class _State(Enum):
    LINE = "line"  # reading a line of the current (or next) command
    LITERAL = "literal"  # collecting literal octets
    SKIP = "skip"  # swallowing the octets of a refused non-synchronising literal
    LONG = "long"  # dropping an over-long line up to its CRLF


class CommandParser:
    """Incremental IMAP4 command parser; see the module docstring for the rules."""

    def __init__(
        self,
        max_line: int = 65536,
        max_literal: int = 64 * 1024 * 1024,
        max_nonsync_literal: int | None = None,
        max_search_depth: int = 200,
        max_command_literals: int | None = None,
    ) -> None:
        self.max_line = max_line
        self.max_literal = max_literal
        # all literals of one command together (MULTIAPPEND, CATENATE): each literal is
        # bounded by max_literal, their sum by this (None: max_literal as well)
        self.max_command_literals = max_command_literals
        self.max_nonsync_literal = max_nonsync_literal
        self.max_search_depth = max_search_depth
        self._buf = bytearray()
        self._pos = 0  # start of unconsumed data in _buf
        self._scan = 0  # where to resume looking for CRLF
        self._state = _State.LINE
        self._lines: list[bytes] = []  # lines of the command in progress
        self._lits: list[bytes] = []  # literals received for it
        self._line_total = 0
        self._lit_total = 0
        self._lit = bytearray()
        self._need = 0  # octets still to collect (LITERAL) or swallow (SKIP)
        self._announced = -1  # size of the sync literal last answered by NeedContinuation
        self._pending: ParseError | LiteralTooLarge | None = None  # the command being discarded
        self._reported = False  # _pending was already returned (errors are reported early)
        self._tail = b""  # last octets of a line being dropped (LONG)
        self._raw: str | None = None  # "line" or "done"
        self._raw_long = False

    # -- public API ---------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Buffer bytes from the client; call ``next_event`` until it returns None."""
        self._buf += data

    def take_buffered(self) -> bytes:
        """Remove and return the octets received but not yet consumed (COMPRESS: they are
        DEFLATE data the protocol must inflate first)."""
        data = bytes(self._buf[self._pos:])
        del self._buf[:]
        self._pos = 0
        return data

    def expect_line(self) -> None:
        """The next line is a raw SASL response: ``next_event`` returns RawLine."""
        self._set_raw("line")

    def expect_done(self) -> None:
        """The next line must be DONE (ends IDLE): ``next_event`` returns Done."""
        self._set_raw("done")

    def reject_literal(self) -> None:
        """Refuse the literal just announced by ``NeedContinuation`` (the session
        answers ``tag NO/BAD`` instead of "+"); the client will not send it, so the
        parser returns to the start of the next command."""
        if self._state is not _State.LITERAL or self._lit or self._need != self._announced:
            raise RuntimeError("no synchronising literal is awaiting its continuation")
        self._state = _State.LINE
        self._need = 0
        self._reset()

    def _command_literals(self) -> int:
        """The bound on all literals of the command being received: only APPEND (and
        REPLACE) carry several messages (RFC 3502) or parts (RFC 4469)."""
        total = self.max_command_literals
        if total is None or _command_of(self._lines[0]) not in ("APPEND", "REPLACE"):
            return self.max_literal
        return max(total, self.max_literal)

    @property
    def buffered(self) -> int:
        """Octets received but not yet consumed (for flow control)."""
        return len(self._buf) - self._pos

    @property
    def mid_command(self) -> bool:
        """Part of a command (line or literal) has arrived, not all of it."""
        return self.buffered > 0 or self._state is not _State.LINE or bool(self._lines)

    def next_event(self) -> Event | None:
        """Return the next event, or None when more data is needed."""
        while True:
            state = self._state
            if state is _State.LITERAL:
                if not self._collect():
                    return None
                self._lits.append(bytes(self._lit))
                self._lit = bytearray()
                self._state = _State.LINE
                continue
            if state is _State.SKIP:
                if not self._swallow():
                    return None
                self._state = _State.LINE
                continue
            if state is _State.LONG:
                tail = self._drop_long()
                if tail is None:
                    return None
                self._state = _State.LINE
                if self._raw_long:
                    self._raw_long = False
                    return self._finish_discard(None)
                ev = self._finish_discard(_MARKER.search(tail))
                if ev is not None:
                    return ev
                continue
            line = self._take_line()
            if line is None:
                # a final CR may be the start of the CRLF, not line text
                held = len(self._buf) - self._pos - self._buf.endswith(b"\r")
                if held + self._line_total > self.max_line:
                    self._start_long()
                    ev = self._report_early()
                    if ev is not None:
                        return ev
                    continue
                self._compact()
                return None
            if self._pending is not None:
                ev = self._finish_discard(_MARKER.search(line))
                if ev is not None:
                    return ev
                continue
            if self._raw is not None and not self._lines:
                return self._raw_event(line)
            ev = self._on_line(line)
            if ev is not None:
                return ev

    # -- framing ------------------------------------------------------------

    def _set_raw(self, mode: str) -> None:
        if self._lines or self._state is not _State.LINE or self._pending is not None:
            raise RuntimeError("a command is being received")
        self._raw = mode

    def _take_line(self) -> bytes | None:
        buf = self._buf
        idx = buf.find(b"\r\n", max(self._scan, self._pos))
        if idx < 0:
            self._scan = max(len(buf) - 1, self._pos)
            return None
        line = bytes(buf[self._pos : idx])
        self._pos = self._scan = idx + 2
        return line

    def _compact(self) -> None:
        if self._pos and (self._pos == len(self._buf) or self._pos > 65536):
            del self._buf[: self._pos]
            self._scan = max(self._scan - self._pos, 0)
            self._pos = 0

    def _collect(self) -> bool:
        take = min(self._need, len(self._buf) - self._pos)
        if take:
            self._lit += self._buf[self._pos : self._pos + take]
            self._pos += take
            self._need -= take
        self._scan = self._pos
        self._compact()
        return self._need == 0

    def _swallow(self) -> bool:
        take = min(self._need, len(self._buf) - self._pos)
        self._pos += take
        self._need -= take
        self._scan = self._pos
        self._compact()
        return self._need == 0

    def _start_long(self) -> None:
        if self._raw is not None and not self._lines:
            self._raw = None
            self._raw_long = True
            self._pending = ParseError(None, "Line too long", "TOOBIG")
        elif self._pending is None:
            if self._lines:
                tag = _tag_of(self._lines[0])
            else:
                tag = _tag_of(bytes(self._buf[self._pos : self._pos + 256]), complete=False)
            self._pending = ParseError(tag, "Command line too long", "TOOBIG")
        self._tail = b""
        self._state = _State.LONG

    def _drop_long(self) -> bytes | None:
        buf = self._buf
        idx = buf.find(b"\r\n", max(self._scan, self._pos))
        if idx < 0:
            keep = max(len(buf) - 1, self._pos)  # a final CR may start the CRLF
            self._tail = (self._tail + bytes(buf[max(self._pos, keep - _MARKER_TAIL) : keep]))[
                -_MARKER_TAIL:
            ]
            self._pos = self._scan = keep
            self._compact()
            return None
        tail = (self._tail + bytes(buf[max(self._pos, idx - _MARKER_TAIL) : idx]))[-_MARKER_TAIL:]
        self._pos = self._scan = idx + 2
        self._tail = b""
        return tail

    def _finish_discard(self, marker: re.Match[bytes] | None) -> Event | None:
        """A line of a command being discarded ended; swallow its literal or report."""
        if marker is not None and marker.group(3):
            self._need = _size(marker.group(2))
            self._state = _State.SKIP
            return None
        ev = None if self._reported else self._pending
        self._reset()
        return ev

    def _report_early(self) -> Event | None:
        """The error of the command being discarded, once, before its end arrives."""
        if self._pending is None or self._reported:
            return None
        self._reported = True
        return self._pending

    def _reset(self) -> None:
        self._lines = []
        self._lits = []
        self._line_total = 0
        self._lit_total = 0
        self._pending = None
        self._reported = False
        self._compact()

    def _raw_event(self, line: bytes) -> Event:
        mode, self._raw = self._raw, None
        if len(line) > self.max_line:
            return ParseError(None, "Line too long", "TOOBIG")
        if mode == "line":
            return RawLine(line)
        if line.upper() == b"DONE":
            return Done()
        return ParseError(_tag_of(line), "Expected DONE")

    def _on_line(self, line: bytes) -> Event | None:
        self._line_total += len(line)
        self._lines.append(line)
        if self._line_total > self.max_line:
            self._pending = ParseError(_tag_of(self._lines[0]), "Command line too long", "TOOBIG")
            return self._finish_discard(_MARKER.search(line)) or self._report_early()
        marker = _MARKER.search(line)
        tag = _tag_of(self._lines[0])
        if marker is None and not line and len(self._lines) == 1:
            self._reset()
            return ParseError(None, "Empty command line")
        if marker is None:
            lines, lits = self._lines, self._lits
            self._reset()
            try:
                return _Reader(lines, lits, False, self.max_search_depth).command()
            except _Syntax as exc:
                return ParseError(tag, exc.text, exc.code)
        size = _size(marker.group(2))
        sync = not marker.group(3)
        too_big = size > self.max_literal or size > self._command_literals() - self._lit_total or (
            not sync and self.max_nonsync_literal is not None and size > self.max_nonsync_literal)
        problem: ParseError | LiteralTooLarge | None = None
        if too_big and not sync:
            problem = LiteralTooLarge(tag, size, sync=False)
        else:
            try:
                _Reader(self._lines, self._lits, True, self.max_search_depth).command()
                problem = ParseError(tag, "Literal not allowed here")
            except _Incomplete:
                pass
            except _Syntax as exc:
                problem = ParseError(tag, exc.text, exc.code)
            if problem is None and too_big:
                problem = LiteralTooLarge(tag, size)
        if problem is not None:
            if sync:
                self._reset()
                return problem
            self._pending = problem
            self._finish_discard(marker)
            return self._report_early()
        self._lit_total += size
        self._need = size
        self._lit = bytearray()
        self._state = _State.LITERAL
        if sync:
            self._announced = size
            return NeedContinuation(tag=tag, size=size, command=_command_of(self._lines[0]))
        self._announced = -1
        return None


def _size(digits: bytes) -> int:
    if len(digits) > 19:
        return _MAX_NUMBER64 + 1
    return int(digits)


def _command_of(line: bytes) -> str | None:
    words = line.split(b" ", 2)
    if len(words) < 2 or not words[1].isascii():
        return None
    return words[1].decode("ascii").upper()


def _tag_of(line: bytes, complete: bool = True) -> str | None:
    """The tag that starts ``line``, if it is a valid one (for error reports).
    ``complete=False``: ``line`` is only a sample, so the tag must be followed by SP."""
    m = _TAG_RE.match(line)
    if m is None:
        return None
    tag = m.group()
    if not all(b in _TAG for b in tag):
        return None
    if m.end() == len(line) and not complete:
        return None
    if m.end() != len(line) and line[m.end()] != 0x20:
        return None
    return tag.decode("ascii")


# -- grammar -----------------------------------------------------------------


class _Reader:
    """Recursive-descent reader over one command: lines[i] ends with the marker of
    lits[i]; ``partial`` means the literal after the last line has not arrived."""

    __slots__ = ("lines", "lits", "prefix", "i", "pos", "line", "depth", "max_depth")

    def __init__(self, lines: list[bytes], lits: list[bytes], partial: bool, max_depth: int) -> None:
        self.lines = lines
        self.lits = lits
        self.prefix = partial
        self.i = 0
        self.pos = 0
        self.line = lines[0]
        self.depth = 0
        self.max_depth = max_depth

    # -- lexical --------------------------------------------------------------

    def peek(self) -> int:
        return self.line[self.pos] if self.pos < len(self.line) else -1

    def error(self, what: str) -> _Syntax:
        near = self.line[self.pos : self.pos + 20].decode("ascii", "replace")
        return _Syntax(f"{what} at {near!r}" if near else f"{what} at end of line")

    def take(self, ch: int) -> bool:
        if self.peek() == ch:
            self.pos += 1
            return True
        return False

    def expect(self, ch: int, what: str | None = None) -> None:
        if not self.take(ch):
            raise self.error(f"Expected {what or repr(chr(ch))}")

    def sp(self) -> None:
        self.expect(0x20, "SP")

    def end(self) -> None:
        if self.pos != len(self.line) or self.i != len(self.lines) - 1:
            raise self.error("Expected end of command")

    def run(self, allowed: frozenset[int]) -> bytes:
        m = _RUN_RES[allowed].match(self.line, self.pos)
        assert m is not None  # the pattern matches the empty string
        self.pos = m.end()
        return m.group()

    def atom(self) -> str:
        data = self.run(_ATOM)
        if not data:
            raise self.error("Expected atom")
        return data.decode("ascii")

    def keyword(self) -> str:
        return self.atom().upper()

    def at_keyword(self, word: bytes) -> bool:
        """Consume ``word`` if it is the whole next atom."""
        end = self.pos + len(word)
        if self.line[self.pos : end].upper() == word and (
            end == len(self.line) or self.line[end] not in _ATOM
        ):
            self.pos = end
            return True
        return False

    def number(self, limit: int = MAX_NUMBER, nonzero: bool = False) -> int:
        digits = self.run(_DIGITS)
        if not digits:
            raise self.error("Expected number")
        if nonzero and digits[0] == 0x30:
            raise self.error("Expected non-zero number")
        if len(digits) > 20 or int(digits) > limit:
            raise self.error("Number out of range")
        return int(digits)

    def nz_number(self) -> int:
        return self.number(nonzero=True)

    def number64(self) -> int:
        return self.number(_MAX_NUMBER64)

    def modseq(self, zero: bool = False) -> int:
        n = self.number(_MAX_NUMBER64)
        if n == 0 and not zero:
            raise self.error("Expected non-zero mod-sequence")
        return n

    def quoted(self) -> bytes:
        m = _QUOTED.match(self.line, self.pos)
        if m is None:
            self.expect(0x22)
            raise self.error("Bad quoted string")
        self.pos = m.end()
        body = m.group(1)
        return _UNESCAPE.sub(rb"\1", body) if b"\\" in body else body

    def literal(self, eight: bool = False) -> bytes:
        start = self.pos
        if eight:
            self.expect(0x7E, "literal8")
        self.expect(0x7B)
        digits = self.run(_DIGITS)
        self.take(0x2B)
        if not digits or not self.take(0x7D) or self.pos != len(self.line):
            self.pos = start
            raise self.error("Bad literal")
        if self.i + 1 < len(self.lines):
            data = self.lits[self.i]
            if len(data) != _size(digits):
                raise self.error("Literal length mismatch")
            self.i += 1
            self.line = self.lines[self.i]
            self.pos = 0
            return data
        if self.prefix:
            raise _Incomplete()
        raise self.error("Missing literal")

    def string(self) -> bytes:
        b = self.peek()
        if b == 0x22:
            return self.quoted()
        if b == 0x7B:
            return self.literal()
        raise self.error("Expected string")

    def astring(self) -> bytes:
        b = self.peek()
        if b == 0x22 or b == 0x7B:
            return self.string()
        data = self.run(_ASTRING)
        if not data:
            raise self.error("Expected astring")
        return data

    def nstring(self) -> bytes | None:
        if self.at_keyword(b"NIL"):
            return None
        return self.string()

    def text(self, data: bytes, what: str) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(f"{what} is not UTF-8") from None

    def mailbox(self) -> str:
        name = self.text(self.astring(), "Mailbox name")
        return "INBOX" if name.upper() == "INBOX" else name

    def list_mailbox(self) -> str:
        b = self.peek()
        if b == 0x22 or b == 0x7B:
            return self.text(self.string(), "Mailbox pattern")
        data = self.run(_LIST)
        if not data:
            raise self.error("Expected mailbox pattern")
        return data.decode("ascii")

    def charset(self) -> str:
        if self.peek() == 0x22:
            return self.text(self.quoted(), "Charset").upper()
        return self.keyword()

    def flag(self) -> str:
        if self.take(0x5C):
            name = "\\" + self.atom()
            return _SYSTEM_FLAGS.get(name.upper(), name)
        return self.atom()

    def flag_list(self) -> tuple[str, ...]:
        self.expect(0x28)
        flags: list[str] = []
        if not self.take(0x29):
            flags.append(self.flag())
            while not self.take(0x29):
                self.sp()
                flags.append(self.flag())
        return tuple(flags)

    def seqset(self) -> SequenceSet:
        data = self.run(_SEQ)
        try:
            return SequenceSet.parse(data)
        except ValueError as exc:
            self.pos -= len(data)
            raise self.error(f"Bad sequence set ({exc})") from None

    def paren_list(self, item: Callable[[], str]) -> tuple[str, ...]:
        """``"(" item *(SP item) ")"``, at least one item."""
        self.expect(0x28)
        out = [item()]
        while not self.take(0x29):
            self.sp()
            out.append(item())
        return tuple(out)

    def search_date(self) -> date:
        quoted = self.take(0x22)
        day = self.run(_DIGITS)
        if not 1 <= len(day) <= 2:
            raise self.error("Bad date")
        d = self._date_rest(int(day))
        if quoted:
            self.expect(0x22)
        return d

    def _date_rest(self, day: int) -> date:
        self.expect(0x2D, "'-'")
        month = _MONTHS.get(self.line[self.pos : self.pos + 3].decode("ascii", "replace").upper())
        if month is None:
            raise self.error("Bad month")
        self.pos += 3
        self.expect(0x2D, "'-'")
        year = self.run(_DIGITS)
        if len(year) != 4:
            raise self.error("Bad year")
        try:
            return date(int(year), month, day)
        except ValueError:
            raise self.error("Bad date") from None

    def date_time(self) -> datetime:
        self.expect(0x22, "date-time")
        if self.take(0x20):
            day = self.run(_DIGITS)
            if len(day) != 1:
                raise self.error("Bad date-time day")
        else:
            day = self.run(_DIGITS)
            if len(day) != 2:
                raise self.error("Bad date-time day")
        d = self._date_rest(int(day))
        self.sp()
        m = _TIME_ZONE.match(self.line, self.pos)
        if m is None:
            raise self.error("Bad date-time")
        hh, mm, ss, sign, zh, zm = m.groups()
        offset = timedelta(hours=int(zh), minutes=int(zm))
        try:
            if int(zm) >= 60:
                raise ValueError
            tz = timezone(-offset if sign == b"-" else offset)
            value = datetime(d.year, d.month, d.day, int(hh), int(mm), int(ss), tzinfo=tz)
        except ValueError:
            raise self.error("Bad date-time") from None
        self.pos = m.end()
        return value

    # -- commands -------------------------------------------------------------

    def command(self) -> c.Command:
        tag = self.run(_TAG)
        if not tag:
            raise self.error("Expected tag")
        self.sp()
        name = self.keyword()
        tag_s = tag.decode("ascii")
        if name == "UID":
            self.sp()
            sub = self.keyword()
            handler = _UID_COMMANDS.get(sub)
            if handler is None:
                raise _Syntax(f"Unknown UID command {sub}")
            cmd = handler(self, tag_s, True)
        else:
            simple = _SIMPLE.get(name)
            if simple is not None:
                cmd = simple(tag_s)
            else:
                handler2 = _COMMANDS.get(name)
                if handler2 is None:
                    raise _Syntax(f"Unknown command {name}")
                cmd = handler2(self, tag_s)
        self.end()
        return cmd

    def cmd_login(self, tag: str) -> c.Command:
        self.sp()
        user = self.astring().decode("utf-8", "surrogateescape")
        self.sp()
        password = self.astring().decode("utf-8", "surrogateescape")
        return c.Login(tag, user, password)

    def cmd_authenticate(self, tag: str) -> c.Command:
        self.sp()
        mech = self.keyword()
        initial: bytes | None = None
        if self.take(0x20):
            data = self.run(_B64)
            if not data:
                raise self.error("Expected initial response")
            if data == b"=":
                initial = b""
            else:
                try:
                    initial = base64.b64decode(data, validate=True)
                except binascii.Error:
                    raise self.error("Bad base64 initial response") from None
        return c.Authenticate(tag, mech, initial)

    def cmd_enable(self, tag: str) -> c.Command:
        caps = []
        while self.take(0x20):
            caps.append(self.keyword())
        if not caps:
            raise self.error("Expected capability")
        return c.Enable(tag, tuple(caps))

    def cmd_id(self, tag: str) -> c.Command:
        self.sp()
        if self.at_keyword(b"NIL"):
            return c.Id(tag, None)
        self.expect(0x28)
        params: list[tuple[str, str | None]] = []
        while not self.take(0x29):
            if params:
                self.sp()
            key = self.text(self.string(), "ID field")
            self.sp()
            value = self.nstring()
            params.append((key, None if value is None else value.decode("utf-8", "replace")))
        return c.Id(tag, tuple(params))

    def _select(self, tag: str, cls: type[c.Select] | type[c.Examine]) -> c.Command:
        self.sp()
        mailbox = self.mailbox()
        condstore = False
        qresync: c.QResync | None = None
        if self.take(0x20):
            self.expect(0x28)
            while True:
                param = self.keyword()
                if param == "CONDSTORE":
                    condstore = True
                elif param == "QRESYNC":
                    self.sp()
                    qresync = self._qresync()
                else:
                    raise _Syntax(f"Unknown SELECT parameter {param}")
                if self.take(0x29):
                    break
                self.sp()
        return cls(tag, mailbox, condstore, qresync)

    def _qresync(self) -> c.QResync:
        self.expect(0x28)
        uidvalidity = self.nz_number()
        self.sp()
        modseq = self.modseq()
        known: SequenceSet | None = None
        match: tuple[SequenceSet, SequenceSet] | None = None
        if self.take(0x20):
            if self.peek() != 0x28:
                known = self.seqset()
                if known.uses_star or known.uses_saved:
                    raise _Syntax("'*' and '$' are not allowed in known-uids")
                if self.take(0x20):
                    match = self._seq_match()
            else:
                match = self._seq_match()
        self.expect(0x29)
        return c.QResync(uidvalidity, modseq, known, match)

    def _seq_match(self) -> tuple[SequenceSet, SequenceSet]:
        self.expect(0x28)
        seqs = self.seqset()
        self.sp()
        uids = self.seqset()
        self.expect(0x29)
        return (seqs, uids)

    def cmd_select(self, tag: str) -> c.Command:
        return self._select(tag, c.Select)

    def cmd_examine(self, tag: str) -> c.Command:
        return self._select(tag, c.Examine)

    def cmd_create(self, tag: str) -> c.Command:
        self.sp()
        mailbox = self.mailbox()
        use: tuple[str, ...] = ()
        if self.take(0x20):
            self.expect(0x28)
            while True:
                param = self.keyword()
                if param != "USE":
                    raise _Syntax(f"Unknown CREATE parameter {param}")
                self.sp()
                self.expect(0x28)
                attrs: list[str] = []
                if not self.take(0x29):
                    attrs.append(self._use_attr())
                    while not self.take(0x29):
                        self.sp()
                        attrs.append(self._use_attr())
                use += tuple(attrs)
                if self.take(0x29):
                    break
                self.sp()
        return c.Create(tag, mailbox, use)

    def _use_attr(self) -> str:
        self.expect(0x5C, "special-use attribute")
        name = "\\" + self.atom()
        return _USE_ATTRS.get(name.upper(), name)

    def _one_mailbox(self, tag: str, cls: type) -> c.Command:
        self.sp()
        return cls(tag, self.mailbox())  # type: ignore[no-any-return]

    def cmd_delete(self, tag: str) -> c.Command:
        return self._one_mailbox(tag, c.Delete)

    def cmd_subscribe(self, tag: str) -> c.Command:
        return self._one_mailbox(tag, c.Subscribe)

    def cmd_unsubscribe(self, tag: str) -> c.Command:
        return self._one_mailbox(tag, c.Unsubscribe)

    def cmd_rename(self, tag: str) -> c.Command:
        self.sp()
        old = self.mailbox()
        self.sp()
        return c.Rename(tag, old, self.mailbox())

    def cmd_list(self, tag: str) -> c.Command:
        self.sp()
        extended = False
        select: list[str] = []
        if self.take(0x28):
            extended = True
            while not self.take(0x29):
                if select:
                    self.sp()
                opt = self.keyword()
                if opt not in _LIST_SELECT:
                    raise _Syntax(f"Unknown LIST selection option {opt}")
                select.append(opt)
            self.sp()
        reference = self.text(self.astring(), "Reference")
        self.sp()
        if self.peek() == 0x28:
            extended = True
            patterns = self.paren_list(self.list_mailbox)
        else:
            patterns = (self.list_mailbox(),)
        returns: list[str] = []
        status: tuple[str, ...] | None = None
        if self.take(0x20):
            extended = True
            if self.keyword() != "RETURN":
                raise _Syntax("Expected RETURN")
            self.sp()
            self.expect(0x28)
            while not self.take(0x29):
                if returns or status is not None:
                    self.sp()
                opt = self.keyword()
                if opt == "STATUS":
                    self.sp()
                    status = self._status_items()
                elif opt in _LIST_RETURN:
                    returns.append(opt)
                else:
                    raise _Syntax(f"Unknown LIST return option {opt}")
        if "RECURSIVEMATCH" in select and not set(select) - {"RECURSIVEMATCH", "REMOTE"}:
            # RFC 5258 §3: RECURSIVEMATCH alone, or with only REMOTE (which "only
            # adds" names, §3.1), is a syntax error: it needs a filtering option.
            raise _Syntax("RECURSIVEMATCH needs another selection option")
        return c.List(tag, reference, patterns, tuple(select), tuple(returns), status, extended)

    def cmd_lsub(self, tag: str) -> c.Command:
        self.sp()
        reference = self.text(self.astring(), "Reference")
        self.sp()
        return c.Lsub(tag, reference, self.list_mailbox())

    def _status_item(self) -> str:
        item = self.keyword()
        if item not in _STATUS_ITEMS:
            raise _Syntax(f"Unknown STATUS item {item}")
        return item

    def _status_items(self) -> tuple[str, ...]:
        return self.paren_list(self._status_item)

    def cmd_status(self, tag: str) -> c.Command:
        self.sp()
        mailbox = self.mailbox()
        self.sp()
        return c.Status(tag, mailbox, self._status_items())

    def cmd_getquota(self, tag: str) -> c.Command:
        self.sp()
        return c.GetQuota(tag, self.text(self.astring(), "Quota root"))

    def cmd_getquotaroot(self, tag: str) -> c.Command:
        self.sp()
        return c.GetQuotaRoot(tag, self.mailbox())

    def cmd_setquota(self, tag: str) -> c.Command:
        """``setquota-list = "(" [setquota-resource *(SP setquota-resource)] ")"`` (RFC 9208 §7)."""
        self.sp()
        root = self.text(self.astring(), "Quota root")
        self.sp()
        self.expect(0x28)
        limits: list[tuple[str, int]] = []
        while not self.take(0x29):
            if limits:
                self.sp()
            name = self.keyword()
            self.sp()
            limits.append((name, self.number64()))
        return c.SetQuota(tag, root, tuple(limits))

    def cmd_append(self, tag: str) -> c.Command:
        """``APPEND mailbox 1*(SP append-message)``: MULTIAPPEND (RFC 3502 §6) and
        CATENATE (RFC 4469 §5) are part of the one grammar."""
        self.sp()
        mailbox = self.mailbox()
        msgs = [self.append_message()]
        while self.peek() == 0x20:
            msgs.append(self.append_message())
        m = msgs[0]
        return c.Append(tag, mailbox, m.flags, m.date_time, m.message, m.binary, m.utf8,
                        m.catenate, tuple(msgs[1:]))

    def append_message(self) -> c.AppendMessage:
        """``SP [flag-list SP] [date-time SP] append-data`` (RFC 4466 §2.1.1).  Extra
        spaces before a message are tolerated: imapclient 4's multiappend sends two
        between consecutive literals."""
        self.sp()
        while self.take(0x20):
            pass
        flags: tuple[str, ...] = ()
        when: datetime | None = None
        if self.peek() == 0x28:
            flags = self.flag_list()
            self.sp()
        if self.peek() == 0x22:
            when = self.date_time()
            self.sp()
        b = self.peek()
        if b == 0x7B:
            return c.AppendMessage(flags, when, self.literal())
        if b == 0x7E:
            return c.AppendMessage(flags, when, self.literal(eight=True), binary=True)
        if self.at_keyword(b"UTF8"):
            self.sp()
            self.expect(0x28)
            data = self.literal(eight=True)
            self.expect(0x29)
            return c.AppendMessage(flags, when, data, binary=True, utf8=True)
        if self.at_keyword(b"CATENATE"):
            self.sp()
            self.expect(0x28)
            parts = [self.cat_part()]
            while not self.take(0x29):
                self.sp()
                parts.append(self.cat_part())
            return c.AppendMessage(flags, when, b"", catenate=tuple(parts))
        raise self.error("Expected message literal")

    def cat_part(self) -> c.CatPart:
        """``"TEXT" SP literal / "URL" SP astring`` (RFC 4469 §5; literal8 with BINARY,
        RFC 3516 §4.4)."""
        if self.at_keyword(b"TEXT"):
            self.sp()
            return c.CatPart(text=self.literal(eight=self.peek() == 0x7E))
        if self.at_keyword(b"URL"):
            self.sp()
            return c.CatPart(url=self.text(self.astring(), "URL"))
        raise self.error("Expected TEXT or URL")

    def cmd_replace(self, tag: str, uid: bool = False) -> c.Command:
        """``[UID] REPLACE SP number SP mailbox append-message`` (RFC 8508 §5)."""
        self.sp()
        number = self.nz_number()
        self.sp()
        mailbox = self.mailbox()
        return c.Replace(tag, uid, number, mailbox, self.append_message())

    def cmd_genurlauth(self, tag: str) -> c.Command:
        """``GENURLAUTH 1*(SP url-rump SP mechanism)`` (RFC 4467 §9)."""
        urls: list[tuple[str, str]] = []
        while True:
            self.sp()
            url = self.text(self.astring(), "URL")
            self.sp()
            urls.append((url, self.keyword()))
            if self.peek() != 0x20:
                return c.GenUrlAuth(tag, tuple(urls))

    def cmd_resetkey(self, tag: str) -> c.Command:
        """``RESETKEY [SP mailbox *(SP mechanism)]`` (RFC 4467 §9)."""
        if not self.take(0x20):
            return c.ResetKey(tag)
        mailbox = self.mailbox()
        mechs: list[str] = []
        while self.take(0x20):
            mechs.append(self.keyword())
        return c.ResetKey(tag, mailbox, tuple(mechs))

    def cmd_urlfetch(self, tag: str) -> c.Command:
        """``URLFETCH 1*(SP url)`` (RFC 4467 §9), each url optionally
        ``"(" url *(SP param) ")"`` with BODYPARTSTRUCTURE / BODY / BINARY (RFC 5524 §3)."""
        urls: list[tuple[str, tuple[str, ...] | None]] = []
        while True:
            self.sp()
            if self.take(0x28):
                url = self.text(self.astring(), "URL")
                params: list[str] = []
                while not self.take(0x29):
                    self.sp()
                    p = self.keyword()
                    if p not in ("BODYPARTSTRUCTURE", "BODY", "BINARY"):
                        raise _Syntax(f"Unknown URLFETCH parameter {p}")
                    params.append(p)
                if "BODY" in params and "BINARY" in params:
                    raise _Syntax("URLFETCH takes BODY or BINARY, not both")
                urls.append((url, tuple(params)))
            else:
                urls.append((self.text(self.astring(), "URL"), None))
            if self.peek() != 0x20:
                return c.UrlFetch(tag, tuple(urls))

    def cmd_fetch(self, tag: str, uid: bool = False) -> c.Command:
        self.sp()
        seqs = self.seqset()
        self.sp()
        atts: list[c.FetchAtt] = []
        if self.take(0x28):
            atts.append(self.fetch_att())
            while not self.take(0x29):
                self.sp()
                atts.append(self.fetch_att())
        else:
            for macro, expansion in _MACROS.items():
                if self.at_keyword(macro.encode()):
                    atts.extend(c.FetchAtt(n) for n in expansion)
                    break
            else:
                atts.append(self.fetch_att())
        changed: int | None = None
        vanished = False
        partial: tuple[int, int] | None = None
        if self.take(0x20):
            self.expect(0x28)
            while True:
                mod = self.keyword()
                if mod == "CHANGEDSINCE":
                    self.sp()
                    changed = self.modseq()
                elif mod == "VANISHED":
                    vanished = True
                elif mod == "PARTIAL" and partial is None:
                    self.sp()
                    partial = self.partial_range()
                else:
                    raise _Syntax(f"Unknown FETCH modifier {mod}")
                if self.take(0x29):
                    break
                self.sp()
            if vanished and (changed is None or not uid):
                raise _Syntax("VANISHED needs UID FETCH with CHANGEDSINCE")
            if partial is not None and not uid:
                raise _Syntax("PARTIAL needs UID FETCH")  # RFC 9394 §3.3
        return c.Fetch(tag, uid, seqs, tuple(atts), c.FetchModifiers(changed, vanished, partial))

    def fetch_att(self) -> c.FetchAtt:
        start = self.pos
        data = self.run(_ATT)
        name = data.decode("ascii").upper()
        if name in ("BODY", "BODY.PEEK") and self.peek() == 0x5B:
            section = self.section()
            return c.FetchAtt("BODY", section, self.partial(), name == "BODY.PEEK")
        if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE"):
            section = self.section_binary()
            if name == "BINARY.SIZE":
                return c.FetchAtt(name, section)
            return c.FetchAtt("BINARY", section, self.partial(), name == "BINARY.PEEK")
        if name == "PREVIEW":
            lazy = False
            save = self.pos
            if self.take(0x20) and self.take(0x28) and self.at_keyword(b"LAZY"):
                self.pos -= 4
                for mod in self.paren_rest(self.keyword):
                    if mod != "LAZY":
                        raise _Syntax(f"Unknown PREVIEW modifier {mod}")
                lazy = True
            else:
                self.pos = save
            return c.FetchAtt(name, lazy=lazy)
        if name in _SIMPLE_ATTS or name == "BODY":
            return c.FetchAtt(name)
        self.pos = start
        raise self.error("Unknown FETCH attribute")

    def paren_rest(self, item: Callable[[], str]) -> tuple[str, ...]:
        """After "(": ``item *(SP item) ")"``."""
        out = [item()]
        while not self.take(0x29):
            self.sp()
            out.append(item())
        return tuple(out)

    def section(self) -> c.Section:
        self.expect(0x5B)
        if self.take(0x5D):
            return c.Section()
        parts: list[int] = []
        while self.peek() in _DIGITS:
            parts.append(self.nz_number())
            if not self.take(0x2E):
                break
        else:
            text = self.run(_ATT).decode("ascii").upper()
            fields: tuple[str, ...] = ()
            if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
                self.sp()
                fields = self.paren_list(lambda: self.text(self.astring(), "Header name"))
            elif text not in ("HEADER", "TEXT") and not (text == "MIME" and parts):
                raise self.error("Bad section")
            self.expect(0x5D)
            return c.Section(tuple(parts), text, fields)
        self.expect(0x5D)
        return c.Section(tuple(parts))

    def section_binary(self) -> c.Section:
        self.expect(0x5B)
        parts: list[int] = []
        if not self.take(0x5D):
            parts.append(self.nz_number())
            while self.take(0x2E):
                parts.append(self.nz_number())
            self.expect(0x5D)
        return c.Section(tuple(parts))

    def partial(self) -> tuple[int, int] | None:
        if not self.take(0x3C):
            return None
        offset = self.number64()
        self.expect(0x2E)
        length = self.number(_MAX_NUMBER64, nonzero=True)
        self.expect(0x3E)
        return (offset, length)

    def cmd_store(self, tag: str, uid: bool = False) -> c.Command:
        self.sp()
        seqs = self.seqset()
        self.sp()
        unchanged: int | None = None
        if self.take(0x28):
            while True:
                mod = self.keyword()
                if mod != "UNCHANGEDSINCE":
                    raise _Syntax(f"Unknown STORE modifier {mod}")
                self.sp()
                unchanged = self.modseq(zero=True)
                if self.take(0x29):
                    break
                self.sp()
            self.sp()
        action = "set"
        if self.take(0x2B):
            action = "add"
        elif self.take(0x2D):
            action = "remove"
        item = self.keyword()
        if item not in ("FLAGS", "FLAGS.SILENT"):
            raise _Syntax("Expected FLAGS, +FLAGS or -FLAGS")
        self.sp()
        if self.peek() == 0x28:
            flags = self.flag_list()
        else:
            items = [self.flag()]
            while self.take(0x20):
                items.append(self.flag())
            flags = tuple(items)
        return c.Store(tag, uid, seqs, action, item == "FLAGS.SILENT", flags, unchanged)

    def _return_opts(self) -> tuple[tuple[str, ...] | None, tuple[int, int] | None]:
        """``[SP "RETURN" SP "(" [opt *(SP opt)] ")"]`` (RFC 4731 §3.1) with RFC 5267 §4
        UPDATE/CONTEXT and ``PARTIAL partial-range`` (RFC 9394 §4); options and range."""
        save = self.pos
        if not (self.take(0x20) and self.at_keyword(b"RETURN")):
            self.pos = save
            return None, None
        self.sp()
        self.expect(0x28)
        opts: list[str] = []
        partial: tuple[int, int] | None = None
        while not self.take(0x29):
            if opts:
                self.sp()
            opt = self.keyword()
            if opt not in _SEARCH_RETURN:
                raise _Syntax(f"Unknown RETURN option {opt}")
            if opt in opts:
                raise _Syntax(f"RETURN option {opt} given twice")
            if opt == "PARTIAL":
                self.sp()
                partial = self.partial_range()
            opts.append(opt)
        if "PARTIAL" in opts and "ALL" in opts:  # RFC 9394 §3.1, RFC 5267 §4.4
            raise _Syntax("PARTIAL and ALL cannot be combined")
        return tuple(opts), partial

    def partial_range(self) -> tuple[int, int]:
        """RFC 9394 §4 ``partial-range-first / partial-range-last``: ``n:m`` or ``-n:-m``,
        nz-numbers; returned in order (``4:2`` is ``2:4``, ``-5:-1`` is ``-1:-5``)."""
        neg = self.take(0x2D)
        a = self.nz_number()
        self.expect(0x3A, "':'")
        if neg != self.take(0x2D):
            raise self.error("Bad partial range")
        b = self.nz_number()
        lo, hi = min(a, b), max(a, b)
        return (-lo, -hi) if neg else (lo, hi)

    def search_program(self, charset_required: bool) -> tuple[str | None, c.SearchKey]:
        charset: str | None = None
        if charset_required:
            charset = self.charset()
            self.sp()
        elif self.at_keyword(b"CHARSET"):
            self.sp()
            charset = self.charset()
            self.sp()
        keys = [self.search_key()]
        while self.take(0x20):
            keys.append(self.search_key())
        return charset, keys[0] if len(keys) == 1 else c.And(tuple(keys))

    def cmd_search(self, tag: str, uid: bool = False) -> c.Command:
        opts, partial = self._return_opts()
        self.sp()
        charset, keys = self.search_program(False)
        return c.Search(tag, uid, charset, keys, opts, partial)

    def cmd_sort(self, tag: str, uid: bool = False) -> c.Command:
        opts, partial = self._return_opts()
        self.sp()
        self.expect(0x28)
        criteria: list[c.SortCriterion] = []
        reverse = False
        while True:
            key = self.keyword()
            if key == "REVERSE" and not reverse:
                reverse = True
                self.sp()
                continue
            if key not in _SORT_KEYS:
                raise _Syntax(f"Unknown sort key {key}")
            criteria.append(c.SortCriterion(key, reverse))
            reverse = False
            if self.take(0x29):
                break
            self.sp()
        self.sp()
        charset, keys = self.search_program(True)
        assert charset is not None
        return c.Sort(tag, uid, tuple(criteria), charset, keys, opts, partial)

    def cmd_thread(self, tag: str, uid: bool = False) -> c.Command:
        self.sp()
        algorithm = self.keyword()
        self.sp()
        charset, keys = self.search_program(True)
        assert charset is not None
        return c.Thread(tag, uid, algorithm, charset, keys)

    def search_key(self) -> c.SearchKey:
        b = self.peek()
        if b == 0x28:
            self.depth += 1
            if self.depth > self.max_depth:
                raise _Syntax("Search keys nested too deeply")
            self.pos += 1
            keys = [self.search_key()]
            while not self.take(0x29):
                self.sp()
                keys.append(self.search_key())
            self.depth -= 1
            return keys[0] if len(keys) == 1 else c.And(tuple(keys))
        if b in _SEQ:
            return c.Key("SEQSET", (self.seqset(),))
        start = self.pos
        name = self.keyword()
        if name in _SEARCH_NOARG:
            return c.Key(name)
        self.sp()
        if name in _SEARCH_STRING:
            return c.Key(name, (self.astring(),))
        if name in _SEARCH_DATE:
            return c.Key(name, (self.search_date(),))
        if name == "NOT" or name == "OR":
            self.depth += 1
            if self.depth > self.max_depth:
                raise _Syntax("Search keys nested too deeply")
            first = self.search_key()
            if name == "NOT":
                self.depth -= 1
                return c.Not(first)
            self.sp()
            second = self.search_key()
            self.depth -= 1
            return c.Or(first, second)
        if name in ("KEYWORD", "UNKEYWORD"):
            return c.Key(name, (self.atom(),))
        if name in ("LARGER", "SMALLER"):
            return c.Key(name, (self.number64(),))
        if name in ("OLDER", "YOUNGER"):
            return c.Key(name, (self.nz_number(),))
        if name == "UID":
            return c.Key(name, (self.seqset(),))
        if name == "HEADER":
            field = self.text(self.astring(), "Header name")
            self.sp()
            return c.Key(name, (field, self.astring()))
        if name == "MODSEQ":
            entry: bytes | None = None
            kind: str | None = None
            if self.peek() == 0x22:
                entry = self.quoted()
                if not entry.lower().startswith(b"/flags/"):
                    raise _Syntax("Bad MODSEQ entry name")
                self.sp()
                kind = self.keyword().lower()
                if kind not in ("priv", "shared", "all"):
                    raise _Syntax("Bad MODSEQ entry type")
                self.sp()
            return c.Key(name, (entry, kind, self.modseq(zero=True)))
        if name in ("EMAILID", "THREADID"):
            ident = self.run(_ATOM)
            if not _OBJECTID.fullmatch(ident):
                raise self.error("Bad object id")
            return c.Key(name, (ident.decode("ascii"),))
        self.pos = start
        raise self.error("Unknown search key")

    def _copy(self, tag: str, uid: bool, cls: type[c.Copy] | type[c.Move]) -> c.Command:
        self.sp()
        seqs = self.seqset()
        self.sp()
        return cls(tag, uid, seqs, self.mailbox())

    def cmd_copy(self, tag: str, uid: bool = False) -> c.Command:
        return self._copy(tag, uid, c.Copy)

    def cmd_move(self, tag: str, uid: bool = False) -> c.Command:
        return self._copy(tag, uid, c.Move)

    def cmd_compress(self, tag: str) -> c.Command:
        self.sp()
        return c.Compress(tag, self.keyword())

    def cmd_cancelupdate(self, tag: str) -> c.Command:
        tags: list[str] = []
        while not tags or self.peek() == 0x20:
            self.sp()
            if self.peek() != 0x22:
                raise self.error("Expected quoted tag")
            tags.append(self.quoted().decode("utf-8", "replace"))
        return c.CancelUpdate(tag, tuple(tags))

    def cmd_uid_expunge(self, tag: str, uid: bool = True) -> c.Command:
        self.sp()
        return c.Expunge(tag, True, self.seqset())


_SIMPLE: dict[str, Callable[[str], c.Command]] = {
    "CAPABILITY": c.Capability,
    "NOOP": c.Noop,
    "LOGOUT": c.Logout,
    "STARTTLS": c.StartTLS,
    "NAMESPACE": c.Namespace,
    "CHECK": c.Check,
    "CLOSE": c.Close,
    "UNSELECT": c.Unselect,
    "IDLE": c.Idle,
    "EXPUNGE": c.Expunge,
    "GETJMAPACCESS": c.GetJmapAccess,
    "UNAUTHENTICATE": c.Unauthenticate,
}

_COMMANDS: dict[str, Callable[[_Reader, str], c.Command]] = {
    "LOGIN": _Reader.cmd_login,
    "AUTHENTICATE": _Reader.cmd_authenticate,
    "ENABLE": _Reader.cmd_enable,
    "ID": _Reader.cmd_id,
    "SELECT": _Reader.cmd_select,
    "EXAMINE": _Reader.cmd_examine,
    "CREATE": _Reader.cmd_create,
    "DELETE": _Reader.cmd_delete,
    "RENAME": _Reader.cmd_rename,
    "SUBSCRIBE": _Reader.cmd_subscribe,
    "UNSUBSCRIBE": _Reader.cmd_unsubscribe,
    "LIST": _Reader.cmd_list,
    "LSUB": _Reader.cmd_lsub,
    "STATUS": _Reader.cmd_status,
    "GETQUOTA": _Reader.cmd_getquota,
    "GETQUOTAROOT": _Reader.cmd_getquotaroot,
    "SETQUOTA": _Reader.cmd_setquota,
    "APPEND": _Reader.cmd_append,
    "FETCH": _Reader.cmd_fetch,
    "STORE": _Reader.cmd_store,
    "SEARCH": _Reader.cmd_search,
    "SORT": _Reader.cmd_sort,
    "THREAD": _Reader.cmd_thread,
    "COPY": _Reader.cmd_copy,
    "MOVE": _Reader.cmd_move,
    "GETMETADATA": _ext.getmetadata,
    "SETMETADATA": _ext.setmetadata,
    "NOTIFY": _ext.notify,
    "REPLACE": _Reader.cmd_replace,
    "GENURLAUTH": _Reader.cmd_genurlauth,
    "RESETKEY": _Reader.cmd_resetkey,
    "URLFETCH": _Reader.cmd_urlfetch,
    "CANCELUPDATE": _Reader.cmd_cancelupdate,
    "COMPRESS": _Reader.cmd_compress,
}

_UID_COMMANDS: dict[str, Callable[[_Reader, str, bool], c.Command]] = {
    "FETCH": _Reader.cmd_fetch,
    "STORE": _Reader.cmd_store,
    "SEARCH": _Reader.cmd_search,
    "SORT": _Reader.cmd_sort,
    "THREAD": _Reader.cmd_thread,
    "COPY": _Reader.cmd_copy,
    "MOVE": _Reader.cmd_move,
    "EXPUNGE": _Reader.cmd_uid_expunge,
    "REPLACE": _Reader.cmd_replace,
}


def parse_section(text: bytes) -> c.Section:
    """A ``section-spec`` without its brackets (``1.2``, ``HEADER.FIELDS (A B)``), as in
    an IMAP URL's ``;SECTION=`` (RFC 5092 §3, decoded); ValueError when malformed."""
    try:
        r = _Reader([b"[" + text + b"]"], [], False, 4)
        section = r.section()
        r.end()
    except _Syntax as exc:
        raise ValueError(exc.text) from None
    return section
