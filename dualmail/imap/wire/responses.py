"""IMAP4 server responses as values, and their serialisation to bytes.

One job: the server half of the wire format (RFC 9051 §7, §9): tagged, untagged and
continuation responses, response codes, and the encoders for the grammar's value
types (atom, number, quoted, literal, astring, nstring, lists, mailbox names,
sequence sets).  No I/O and no mailbox logic; imports only ``wire.sequence`` and
``wire.utf7``.

Values accepted by ``encode_value``:
  None -> NIL; int -> number; bytes/str -> string (quoted or literal, chosen here);
  Atom -> verbatim atom; Raw -> pre-encoded bytes; Literal -> forced literal;
  SequenceSet / ResolvedSet -> sequence-set; list/tuple -> parenthesised list.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Iterable, Sequence, Union

from dualmail.imap.wire import utf7
from dualmail.imap.wire.sequence import ResolvedSet, SequenceSet

MAX_QUOTED = 1024  # longer strings go out as literals
_ATOM_BYTES = frozenset(range(0x21, 0x7F)) - frozenset(b'(){%*"\\]')
_ASTRING_BYTES = _ATOM_BYTES | {ord("]")}


@dataclass(frozen=True, slots=True)
class Atom:
    """Written verbatim: keywords, flags, capability names (must be ASCII)."""

    text: str


@dataclass(frozen=True, slots=True)
class Raw:
    """Already-encoded bytes, written verbatim."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Literal:
    """Always a literal; ``binary`` makes it literal8 (RFC 3516 ``~{n}``)."""

    data: bytes
    binary: bool = False


Value = Union[None, int, str, bytes, Atom, Raw, Literal, SequenceSet, ResolvedSet, Sequence["Value"]]


# -- primitive encoders ------------------------------------------------------


def number(n: int) -> bytes:
    if n < 0:
        raise ValueError("IMAP numbers are unsigned")
    return str(n).encode("ascii")


def quoted(data: bytes | str) -> bytes:
    """``DQUOTE *QUOTED-CHAR DQUOTE``; ValueError if CR, LF or NUL make it impossible."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if b"\r" in raw or b"\n" in raw or b"\x00" in raw:
        raise ValueError("CR, LF and NUL cannot be quoted")
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def literal(data: bytes | str, binary: bool = False) -> bytes:
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return (b"~{" if binary else b"{") + number(len(raw)) + b"}\r\n" + raw


def _quotable(raw: bytes, utf8: bool) -> bool:
    if len(raw) > MAX_QUOTED or b"\r" in raw or b"\n" in raw or b"\x00" in raw:
        return False
    if raw.isascii():
        return True
    if not utf8:
        return False
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def string(data: bytes | str, *, utf8: bool = False) -> bytes:
    """quoted when it can be (7-bit, or UTF-8 once UTF8=ACCEPT is enabled; no CR,
    LF or NUL; not too long), else a literal (RFC 9051 §4.3)."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return quoted(raw) if _quotable(raw, utf8) else literal(raw)


def nstring(data: bytes | str | None, *, utf8: bool = False) -> bytes:
    return b"NIL" if data is None else string(data, utf8=utf8)


def astring(data: bytes | str, *, utf8: bool = False) -> bytes:
    """An atom when every octet is an ASTRING-CHAR, else a string."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if raw and all(b in _ASTRING_BYTES for b in raw):
        return raw
    return string(raw, utf8=utf8)


def mailbox(name: str, *, utf8: bool = False) -> bytes:
    """A mailbox name: modified UTF-7 (RFC 3501 §5.1.3) unless UTF8=ACCEPT is on."""
    return string(name if utf8 else utf7.encode(name), utf8=utf8)


def flag_list(flags: Iterable[str]) -> bytes:
    return b"(" + b" ".join(f.encode("ascii") for f in flags) + b")"


def sequence_set(value: SequenceSet | ResolvedSet | Iterable[int]) -> bytes:
    if isinstance(value, SequenceSet):
        return value.format().encode("ascii")
    if not isinstance(value, ResolvedSet):
        value = ResolvedSet.from_ints(value)
    if not value:
        raise ValueError("empty sequence set")
    return value.format().encode("ascii")


def encode_value(value: Value, *, utf8: bool = False) -> bytes:
    if value is None:
        return b"NIL"
    if isinstance(value, bool):
        raise TypeError("booleans have no IMAP encoding")
    if isinstance(value, int):
        return number(value)
    if isinstance(value, (str, bytes)):
        return string(value, utf8=utf8)
    if isinstance(value, Atom):
        return value.text.encode("ascii")
    if isinstance(value, Raw):
        return value.data
    if isinstance(value, Literal):
        return literal(value.data, value.binary)
    if isinstance(value, (SequenceSet, ResolvedSet)):
        return sequence_set(value)
    if isinstance(value, (list, tuple)):
        return b"(" + b" ".join(encode_value(v, utf8=utf8) for v in value) + b")"
    raise TypeError(f"cannot encode {type(value).__name__}")


def _text(text: str) -> bytes:
    """resp-text: one line; CR/LF would end the response early."""
    clean = text.replace("\r", " ").replace("\n", " ")
    return clean.encode("utf-8")


# -- responses -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResponseCode:
    """``[NAME args...]``; ``args`` are encoded with ``encode_value``."""

    name: str
    args: tuple[Value, ...] = ()

    def encode(self, *, utf8: bool = False) -> bytes:
        parts = [self.name.encode("ascii")]
        parts.extend(encode_value(a, utf8=utf8) for a in self.args)
        return b"[" + b" ".join(parts) + b"]"


@dataclass(frozen=True, slots=True)
class Tagged:
    tag: str
    status: str  # OK, NO, BAD
    text: str
    code: ResponseCode | None = None


@dataclass(frozen=True, slots=True)
class UntaggedStatus:
    status: str  # OK, NO, BAD, BYE, PREAUTH
    text: str
    code: ResponseCode | None = None


@dataclass(frozen=True, slots=True)
class Data:
    """``* item item ...``: untagged data (EXISTS, FETCH, LIST, SEARCH, ...)."""

    items: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Continuation:
    """``+ text``: literal go-ahead, IDLE acknowledgement or SASL challenge."""

    text: str = ""

    @classmethod
    def challenge(cls, data: bytes) -> Continuation:
        return cls(base64.b64encode(data).decode("ascii"))


Response = Union[Tagged, UntaggedStatus, Data, Continuation]


def serialize(response: Response, *, utf8: bool = False) -> bytes:
    """The response's bytes, CRLF included.  ``utf8``: UTF8=ACCEPT is enabled."""
    if isinstance(response, Data):  # one join: a FETCH of BODY[] carries the whole message
        out = [b"*"]
        for v in response.items:
            out += (b" ", encode_value(v, utf8=utf8))
        out.append(b"\r\n")
        return b"".join(out)
    if isinstance(response, Continuation):
        return b"+ " + _text(response.text) + b"\r\n"
    head = b"*" if isinstance(response, UntaggedStatus) else response.tag.encode("ascii")
    out = [head, response.status.encode("ascii")]
    if response.code is not None:
        out.append(response.code.encode(utf8=utf8))
    out.append(_text(response.text or "completed"))
    return b" ".join(out) + b"\r\n"


# -- response codes (RFC 9051 §7.1, RFC 4315, RFC 7162, RFC 8474) ---------------


def code(name: str, *args: Value) -> ResponseCode:
    return ResponseCode(name, args)


def code_inprogress(tag: str | None, progress: int | None = None,
                    goal: int | None = None) -> ResponseCode:
    """RFC 9585 §3 ``[INPROGRESS ("tag" progress goal)]``; NIL for what is unknown.  A tag
    with "]" in it goes as NIL, so the code can never look ended early (as mox does)."""
    t = b"NIL" if tag is None or "]" in tag else string(tag)
    p = b"NIL" if progress is None else number(progress)
    g = b"NIL" if not goal else number(goal)  # §3: the goal, when given, is above zero
    return ResponseCode("INPROGRESS", (Raw(b"(" + t + b" " + p + b" " + g + b")"),))


def code_capability(caps: Iterable[str]) -> ResponseCode:
    return ResponseCode("CAPABILITY", tuple(Atom(c) for c in caps))


def code_appenduid(uidvalidity: int, uids: SequenceSet | ResolvedSet | Iterable[int]) -> ResponseCode:
    return ResponseCode("APPENDUID", (uidvalidity, Raw(sequence_set(uids))))


def code_copyuid(
    uidvalidity: int,
    source: SequenceSet | ResolvedSet | Iterable[int],
    dest: SequenceSet | ResolvedSet | Iterable[int],
) -> ResponseCode:
    """RFC 4315 §3: source and destination UIDs pair up in order, so pass them in
    matching order; a ResolvedSet is sorted, which is right for COPY/MOVE."""
    return ResponseCode("COPYUID", (uidvalidity, Raw(sequence_set(source)), Raw(sequence_set(dest))))


def code_modified(numbers: SequenceSet | ResolvedSet | Iterable[int]) -> ResponseCode:
    return ResponseCode("MODIFIED", (Raw(sequence_set(numbers)),))


def code_highestmodseq(modseq: int) -> ResponseCode:
    return ResponseCode("HIGHESTMODSEQ", (modseq,))


def code_nomodseq() -> ResponseCode:
    return ResponseCode("NOMODSEQ")


def code_closed() -> ResponseCode:
    return ResponseCode("CLOSED")


def code_mailboxid(object_id: str) -> ResponseCode:
    return ResponseCode("MAILBOXID", ([Atom(object_id)],))


def code_uidvalidity(n: int) -> ResponseCode:
    return ResponseCode("UIDVALIDITY", (n,))


def code_uidnext(n: int) -> ResponseCode:
    return ResponseCode("UIDNEXT", (n,))


def code_permanentflags(flags: Iterable[str]) -> ResponseCode:
    return ResponseCode("PERMANENTFLAGS", ([Atom(f) for f in flags],))


def code_badcharset(charsets: Iterable[str] = ()) -> ResponseCode:
    names = [Atom(c) for c in charsets]
    return ResponseCode("BADCHARSET", (names,) if names else ())


# -- untagged data builders ------------------------------------------------------


def capability(caps: Iterable[str]) -> Data:
    return Data((Atom("CAPABILITY"), *(Atom(c) for c in caps)))


def enabled(caps: Iterable[str]) -> Data:
    return Data((Atom("ENABLED"), *(Atom(c) for c in caps)))


def exists(n: int) -> Data:
    return Data((n, Atom("EXISTS")))


def recent(n: int) -> Data:
    return Data((n, Atom("RECENT")))


def expunge(seq: int) -> Data:
    return Data((seq, Atom("EXPUNGE")))


def flags(names: Iterable[str]) -> Data:
    return Data((Atom("FLAGS"), Raw(flag_list(names))))


def search(numbers: Iterable[int], modseq: int | None = None) -> Data:
    """Classic ``* SEARCH n...`` with the RFC 7162 §3.1.5 ``(MODSEQ n)`` suffix."""
    return _numbers("SEARCH", numbers, modseq)


def sort(numbers: Iterable[int], modseq: int | None = None) -> Data:
    return _numbers("SORT", numbers, modseq)


def _numbers(name: str, numbers: Iterable[int], modseq: int | None) -> Data:
    """``* NAME n n ... [(MODSEQ m)]``; the numbers joined once (100k-message answers)."""
    items: list[Value] = [Atom(name)]
    joined = b" ".join([b"%d" % n for n in numbers])  # (a list: a third faster than a generator)
    if joined:
        items.append(Raw(joined))
    if modseq is not None:
        items.append(Raw(b"(MODSEQ " + number(modseq) + b")"))
    return Data(tuple(items))


def esearch(
    tag: str | None,
    uid: bool,
    *,
    min: int | None = None,
    max: int | None = None,
    all: SequenceSet | ResolvedSet | Iterable[int] | None = None,
    count: int | None = None,
    modseq: int | None = None,
    ordered: Iterable[int] | None = None,
    partial: tuple[tuple[int, int], list[int]] | None = None,
    updates: Iterable[tuple[str, int, list[int]]] = (),
) -> Data:
    """RFC 4731 §3.1 ESEARCH; empty MIN/MAX/ALL are omitted as the RFC requires.
    ``ordered``: ALL in the given order (ESORT, RFC 5267 §3.1); ``partial``: (range, numbers
    in order), an empty list is NIL (RFC 9394 §3.1); ``updates``: (ADDTO|REMOVEFROM,
    position, numbers in order) pairs, one data item each (RFC 5267 §4.3.3, §4.3.4)."""
    items: list[Value] = [Atom("ESEARCH")]
    if tag is not None:
        items.append(Raw(b"(TAG " + string(tag) + b")"))
    if uid:
        items.append(Atom("UID"))
    if min is not None:
        items += [Atom("MIN"), min]
    if max is not None:
        items += [Atom("MAX"), max]
    if all is not None:
        resolved = all if isinstance(all, (SequenceSet, ResolvedSet)) else ResolvedSet.from_ints(all)
        if not isinstance(resolved, ResolvedSet) or resolved:
            items += [Atom("ALL"), Raw(sequence_set(resolved))]
    if ordered is not None:
        numbers = list(ordered)
        if numbers:
            items += [Atom("ALL"), Raw(ordered_set(numbers))]
    if partial is not None:
        (lo, hi), numbers = partial
        items += [Atom("PARTIAL"), Raw(b"(" + number_range(lo, hi) + b" "
                                       + (ordered_set(numbers) if numbers else b"NIL") + b")")]
    for name, pos, numbers in updates:
        items += [Atom(name), Raw(b"(" + number(pos) + b" " + ordered_set(numbers) + b")")]
    if count is not None:
        items += [Atom("COUNT"), count]
    if modseq is not None:
        items += [Atom("MODSEQ"), modseq]
    return Data(tuple(items))


def number_range(lo: int, hi: int) -> bytes:
    """A partial-range as the client wrote it, normalised: ``2:4``, ``-1:-100``."""
    return str(lo).encode() + b":" + str(hi).encode()


def ordered_set(numbers: Iterable[int]) -> bytes:
    """A sequence-set keeping the given order (ESORT, RFC 5267 §3.2): only ascending runs
    of consecutive numbers become ranges (``5,3:4,2``), never ``12:10``."""
    out: list[bytes] = []
    run: list[int] = []
    for n in numbers:
        if run and n == run[-1] + 1:
            run.append(n)
            continue
        if run:
            out.append(b"%d" % run[0] if len(run) == 1 else b"%d:%d" % (run[0], run[-1]))
        run = [n]
    if run:
        out.append(b"%d" % run[0] if len(run) == 1 else b"%d:%d" % (run[0], run[-1]))
    return b",".join(out)


def vanished(uids: SequenceSet | ResolvedSet | Iterable[int], earlier: bool = False) -> Data:
    """RFC 7162 §3.2.10 ``* VANISHED [(EARLIER)] uid-set``."""
    items: list[Value] = [Atom("VANISHED")]
    if earlier:
        items.append(Raw(b"(EARLIER)"))
    items.append(Raw(sequence_set(uids)))
    return Data(tuple(items))


def fetch(seq: int, items: Iterable[tuple[str | bytes, bytes]]) -> Data:
    """``* seq FETCH (name value ...)`` from already-encoded values, e.g.
    ``[("UID", b"7"), ("BODY[]", literal(msg))]``."""
    return Data((seq, Atom("FETCH"), Raw(_fetch_items(items))))


def _fetch_items(items: Iterable[tuple[str | bytes, bytes]]) -> bytes:
    """``(name value name value ...)`` in one join (no copy of a value per step)."""
    out = [b"("]
    for n, v in items:
        out += (n.encode("ascii") if isinstance(n, str) else n, b" ", v, b" ")
    if len(out) > 1:
        out.pop()
    out.append(b")")
    return b"".join(out)


def uidfetch(uid: int, items: Iterable[tuple[str | bytes, bytes]]) -> Data:
    """RFC 9586 §3.3 ``* uid UIDFETCH (name value ...)``: a FETCH response keyed by UID, for
    sessions that ENABLEd UIDONLY."""
    return Data((uid, Atom("UIDFETCH"), Raw(_fetch_items(items))))


def list_response(
    attributes: Iterable[str],
    delimiter: str | None,
    name: str,
    *,
    utf8: bool = False,
    extended: Sequence[tuple[str, Value]] = (),
    command: str = "LIST",
) -> Data:
    """``* LIST (attrs) "/" name [(ext-items)]`` (RFC 9051 §7.3.1, RFC 5258 §3)."""
    delim: Value = None if delimiter is None else Raw(quoted(delimiter))
    items: list[Value] = [Atom(command), Raw(flag_list(attributes)), delim, Raw(mailbox(name, utf8=utf8))]
    if extended:
        ext: list[Value] = []
        for tag, value in extended:
            ext += [Raw(quoted(tag)), value]
        items.append(ext)
    return Data(tuple(items))


def status(name: str, values: Iterable[tuple[str, int | str]], *, utf8: bool = False) -> Data:
    """``* STATUS name (ITEM value ...)``; MAILBOXID takes the id as str."""
    out: list[Value] = []
    for item, value in values:
        out.append(Atom(item))
        out.append([Atom(value)] if isinstance(value, str) else value)
    return Data((Atom("STATUS"), Raw(mailbox(name, utf8=utf8)), out))


def namespace(
    personal: Sequence[tuple[str, str | None]] | None,
    other: Sequence[tuple[str, str | None]] | None = None,
    shared: Sequence[tuple[str, str | None]] | None = None,
    *,
    utf8: bool = False,
) -> Data:
    def one(ns: Sequence[tuple[str, str | None]] | None) -> Value:
        # namespace = nil / "(" 1*namespace-descr ")": descriptors are not space-separated
        if not ns:
            return None
        descrs = (
            b"(" + mailbox(prefix, utf8=utf8) + b" " + (b"NIL" if d is None else quoted(d)) + b")"
            for prefix, d in ns
        )
        return Raw(b"(" + b"".join(descrs) + b")")

    return Data((Atom("NAMESPACE"), one(personal), one(other), one(shared)))


def id_response(params: Sequence[tuple[str, str | None]] | None) -> Data:
    if not params:
        return Data((Atom("ID"), None))
    flat: list[Value] = []
    for key, value in params:
        flat += [Raw(string(key)), None if value is None else Raw(string(value))]
    return Data((Atom("ID"), flat))


ThreadNode = tuple[Union[int, None], Sequence["ThreadNode"]]


def thread(roots: Sequence[ThreadNode]) -> Data:
    """RFC 5256 §4 ``* THREAD (2)(3 6 (4 23)(44 7 96))``.

    A node is ``(number, children)``; ``None`` is a dummy parent (missing message).
    Chains of only children are flattened; siblings are parenthesised.
    """
    body = b"".join(b"(" + _thread_members(node) + b")" for node in roots)
    return Data((Atom("THREAD"), Raw(body)) if body else (Atom("THREAD"),))


def _thread_members(node: ThreadNode) -> bytes:
    parts: list[bytes] = []
    num, children = node
    while True:
        if num is None and len(children) == 1:
            num, children = children[0]
            continue
        if num is not None:
            parts.append(number(num))
            if len(children) == 1:
                num, children = children[0]
                continue
        if children:
            parts.append(b"".join(b"(" + _thread_members(ch) + b")" for ch in children))
        return b" ".join(parts)
