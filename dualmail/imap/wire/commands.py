"""IMAP4 client commands as frozen values, one dataclass per command.

One job: the vocabulary the parser produces and the session consumes.  No parsing
and no behaviour beyond formatting helpers for FETCH attribute names (which the
server echoes back in FETCH responses).  Imports only ``wire.sequence``.

Conventions:
* every command has ``tag`` (str) first; ``uid`` is True for the ``UID xxx`` forms;
* keywords (status items, capabilities, options) are upper-cased str;
* mailbox names are decoded str exactly as sent (modified UTF-7 for non-UTF8
  sessions; decode with ``wire.utf7``), with ``INBOX`` in any case normalised;
* SEARCH string arguments stay ``bytes``: their charset is ``Search.charset``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Union

from dualmail.imap.wire.sequence import SequenceSet


class Command:
    """Marker base of every command value."""

    __slots__ = ()
    tag: str


# -- search keys (RFC 9051 §6.4.4) ------------------------------------------


@dataclass(frozen=True, slots=True)
class Key:
    """A leaf search key: ``name`` upper-cased, ``args`` typed per key.

    Argument types: dates ``datetime.date``; LARGER/SMALLER/OLDER/YOUNGER ``int``;
    BCC/BODY/CC/FROM/SUBJECT/TEXT/TO ``(bytes,)``; HEADER ``(str field, bytes value)``;
    KEYWORD/UNKEYWORD ``(str,)``; UID and the bare set (name ``"SEQSET"``)
    ``(SequenceSet,)``; MODSEQ ``(entry_name: bytes|None, entry_type: str|None,
    modseq: int)`` (RFC 7162 §3.1.5); EMAILID/THREADID ``(str,)`` (RFC 8474).
    """

    name: str
    args: tuple[object, ...] = ()


@dataclass(frozen=True, slots=True)
class And:
    """All of ``keys``: the top-level key list or a parenthesised group."""

    keys: tuple[SearchKey, ...]


@dataclass(frozen=True, slots=True)
class Or:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class Not:
    key: SearchKey


SearchKey = Union[Key, And, Or, Not]


# -- FETCH attributes ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Section:
    """``section-spec``: ``part`` numbers, then an optional text specifier.

    ``text`` is one of None, "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT",
    "MIME"; ``fields`` holds the header-list of the HEADER.FIELDS forms.
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def format(self) -> str:
        spec = ".".join(str(p) for p in self.part)
        if self.text:
            spec = f"{spec}.{self.text}" if spec else self.text
            if self.fields:
                spec += " (" + " ".join(_hdr_name(f) for f in self.fields) + ")"
        return f"[{spec}]"


@dataclass(frozen=True, slots=True)
class FetchAtt:
    """One fetch-att.  ``name`` is BODY, BINARY, BINARY.SIZE or a simple attribute
    (FLAGS, UID, ENVELOPE, BODYSTRUCTURE, RFC822.HEADER, MODSEQ, PREVIEW, ...).

    ``BODY`` with ``section=None`` is the non-extensible BODYSTRUCTURE; ``partial``
    is ``(offset, length)``; ``peek`` marks BODY.PEEK / BINARY.PEEK.  For PREVIEW,
    ``lazy`` reports the RFC 8970 ``(LAZY)`` modifier.
    """

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False
    lazy: bool = False

    def response_name(self) -> str:
        """The item name the server uses in the FETCH response (RFC 9051 §7.5.2):
        no ``.PEEK``, and only the partial's origin is echoed."""
        if self.section is None:
            return self.name
        out = self.name + self.section.format()
        if self.partial is not None:
            out += f"<{self.partial[0]}>"
        return out

    def format(self) -> str:
        """The attribute as a client would send it."""
        if self.section is None:
            return self.name + (" (LAZY)" if self.lazy else "")
        name = self.name + (".PEEK" if self.peek else "")
        out = name + self.section.format()
        if self.partial is not None:
            out += f"<{self.partial[0]}.{self.partial[1]}>"
        return out


@dataclass(frozen=True, slots=True)
class FetchModifiers:
    """RFC 7162 §3.1.4 CHANGEDSINCE and §3.2.6 VANISHED."""

    changed_since: int | None = None
    vanished: bool = False
    partial: tuple[int, int] | None = None  # RFC 9394 §3.3 (UID FETCH only)


@dataclass(frozen=True, slots=True)
class QResync:
    """RFC 7162 §3.2.5 SELECT/EXAMINE (QRESYNC (...)) parameters."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class SortCriterion:
    key: str
    reverse: bool = False


# -- commands ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capability(Command):
    tag: str


@dataclass(frozen=True, slots=True)
class Noop(Command):
    tag: str


@dataclass(frozen=True, slots=True)
class Logout(Command):
    tag: str


@dataclass(frozen=True, slots=True)
class StartTLS(Command):
    tag: str


@dataclass(frozen=True, slots=True)
class Namespace(Command):
    tag: str


@dataclass(frozen=True, slots=True)
class GetJmapAccess(Command):
    """RFC 9698 GETJMAPACCESS: ask for the JMAP session URL."""

    tag: str


@dataclass(frozen=True, slots=True)
class Check(Command):
    tag: str


@dataclass(frozen=True, slots=True)
class Close(Command):
    tag: str


@dataclass(frozen=True, slots=True)
class Unselect(Command):
    tag: str


@dataclass(frozen=True, slots=True)
class Idle(Command):
    """After handling, the session sends "+ idling" and calls ``parser.expect_done()``."""

    tag: str


@dataclass(frozen=True, slots=True)
class Expunge(Command):
    """EXPUNGE, or UID EXPUNGE ``sequence_set`` (RFC 9051 §6.4.9)."""

    tag: str
    uid: bool = False
    sequence_set: SequenceSet | None = None


@dataclass(frozen=True, slots=True)
class Authenticate(Command):
    """``initial_response`` is the decoded SASL-IR (RFC 4959): None when absent,
    b"" for "=".  Further client responses arrive as ``RawLine`` events after
    the session calls ``parser.expect_line()``."""

    tag: str
    mechanism: str
    initial_response: bytes | None = None


@dataclass(frozen=True, slots=True)
class Login(Command):
    """userid and password decoded as UTF-8 with surrogateescape (bytes survive)."""

    tag: str
    userid: str
    password: str


@dataclass(frozen=True, slots=True)
class Enable(Command):
    tag: str
    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Id(Command):
    """RFC 2971: ``params`` is None for NIL, else (field, value-or-None) pairs."""

    tag: str
    params: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, slots=True)
class Select(Command):
    tag: str
    mailbox: str
    condstore: bool = False
    qresync: QResync | None = None


@dataclass(frozen=True, slots=True)
class Examine(Command):
    tag: str
    mailbox: str
    condstore: bool = False
    qresync: QResync | None = None


@dataclass(frozen=True, slots=True)
class Create(Command):
    """``special_use`` from RFC 6154 §3 ``(USE (\\Drafts ...))``."""

    tag: str
    mailbox: str
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Delete(Command):
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class Rename(Command):
    tag: str
    mailbox: str
    new_name: str


@dataclass(frozen=True, slots=True)
class Subscribe(Command):
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class Unsubscribe(Command):
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class List(Command):
    """LIST, including RFC 5258 LIST-EXTENDED and RFC 5819 LIST-STATUS.

    ``extended`` is True when any extended syntax was used (selection options,
    a pattern list or RETURN); ``status_items`` is None unless RETURN (STATUS (...)).
    """

    tag: str
    reference: str
    patterns: tuple[str, ...]
    select_options: tuple[str, ...] = ()
    return_options: tuple[str, ...] = ()
    status_items: tuple[str, ...] | None = None
    extended: bool = False


@dataclass(frozen=True, slots=True)
class Lsub(Command):
    tag: str
    reference: str
    pattern: str


@dataclass(frozen=True, slots=True)
class Status(Command):
    tag: str
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GetQuota(Command):
    """RFC 9208 §4.1.1 GETQUOTA quota-root."""

    tag: str
    root: str


@dataclass(frozen=True, slots=True)
class GetQuotaRoot(Command):
    """RFC 9208 §4.1.2 GETQUOTAROOT mailbox."""

    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class SetQuota(Command):
    """RFC 9208 §4.1.3 SETQUOTA quota-root (resource limit ...)."""

    tag: str
    root: str
    limits: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Append(Command):
    """``binary``: sent as literal8 ``~{n}`` (RFC 3516); ``utf8``: the RFC 6855
    ``UTF8 (~{n})`` form.  ``message`` holds the literal's bytes unchanged."""

    tag: str
    mailbox: str
    flags: tuple[str, ...]
    date_time: datetime | None
    message: bytes
    binary: bool = False
    utf8: bool = False
    catenate: tuple[CatPart, ...] | None = None  # RFC 4469: the message is built from parts
    more: tuple[AppendMessage, ...] = ()  # RFC 3502 MULTIAPPEND: the messages after the first

    def messages(self) -> tuple[AppendMessage, ...]:
        """Every message of the command, in order (one for a plain APPEND)."""
        first = AppendMessage(self.flags, self.date_time, self.message, self.binary, self.utf8,
                              self.catenate)
        return (first,) + self.more


@dataclass(frozen=True, slots=True)
class CatPart:
    """One CATENATE part (RFC 4469 §5): ``TEXT`` with its literal bytes, or ``URL``."""

    text: bytes | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message of an APPEND (RFC 3502 ``append-message``)."""

    flags: tuple[str, ...]
    date_time: datetime | None
    message: bytes
    binary: bool = False
    utf8: bool = False
    catenate: tuple[CatPart, ...] | None = None


@dataclass(frozen=True, slots=True)
class Replace(Command):
    """REPLACE / UID REPLACE (RFC 8508 §3): append ``message`` to ``mailbox`` and expunge
    message ``number`` of the selected mailbox, atomically."""

    tag: str
    uid: bool
    number: int
    mailbox: str
    message: AppendMessage


@dataclass(frozen=True, slots=True)
class GenUrlAuth(Command):
    """GENURLAUTH (RFC 4467 §7.1): (url, mechanism) pairs."""

    tag: str
    urls: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ResetKey(Command):
    """RESETKEY (RFC 4467 §7.2): no mailbox resets every key of the user."""

    tag: str
    mailbox: str | None = None
    mechanisms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UrlFetch(Command):
    """URLFETCH (RFC 4467 §7.3, RFC 5524): (url, (BODYPARTSTRUCTURE/BODY/BINARY ...)) pairs;
    empty parameters: the plain form, answered ``url nstring``."""

    tag: str
    urls: tuple[tuple[str, tuple[str, ...] | None], ...]


@dataclass(frozen=True, slots=True)
class Unauthenticate(Command):
    """UNAUTHENTICATE (RFC 8437 §3)."""

    tag: str


@dataclass(frozen=True, slots=True)
class Fetch(Command):
    tag: str
    uid: bool
    sequence_set: SequenceSet
    attributes: tuple[FetchAtt, ...]
    modifiers: FetchModifiers = FetchModifiers()


@dataclass(frozen=True, slots=True)
class Store(Command):
    """``action`` is "set" (FLAGS), "add" (+FLAGS) or "remove" (-FLAGS)."""

    tag: str
    uid: bool
    sequence_set: SequenceSet
    action: str
    silent: bool
    flags: tuple[str, ...]
    unchanged_since: int | None = None


@dataclass(frozen=True, slots=True)
class Search(Command):
    """``return_opts`` is None without RETURN (plain SEARCH response); a tuple
    (possibly empty, meaning ALL per RFC 4731 §3.1) asks for ESEARCH."""

    tag: str
    uid: bool
    charset: str | None
    keys: SearchKey
    return_opts: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None  # RETURN (PARTIAL lo:hi), RFC 9394 §3.1


@dataclass(frozen=True, slots=True)
class Sort(Command):
    """RFC 5256 SORT; ``return_opts`` as for Search (RFC 5267 ESORT)."""

    tag: str
    uid: bool
    criteria: tuple[SortCriterion, ...]
    charset: str
    keys: SearchKey
    return_opts: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Compress(Command):
    """RFC 4978 §3 ``COMPRESS mechanism``."""

    tag: str
    mechanism: str


@dataclass(frozen=True, slots=True)
class CancelUpdate(Command):
    """RFC 5267 §4.3.5 ``CANCELUPDATE 1*(SP quoted)``: the tags of updating contexts."""

    tag: str
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Thread(Command):
    tag: str
    uid: bool
    algorithm: str
    charset: str
    keys: SearchKey


@dataclass(frozen=True, slots=True)
class Copy(Command):
    tag: str
    uid: bool
    sequence_set: SequenceSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class Move(Command):
    tag: str
    uid: bool
    sequence_set: SequenceSet
    mailbox: str


def _hdr_name(name: str) -> str:
    """Header field names are atoms in practice; quote anything else."""
    if name and all(33 <= ord(ch) < 127 and ch not in '(){%*"\\]' for ch in name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- RFC 5464 METADATA, RFC 5465 NOTIFY ----------------------------------------------


@dataclass(frozen=True, slots=True)
class GetMetadata(Command):
    """``mailbox`` "" names the server; ``entries`` lower-cased; ``depth`` None is
    "infinity"; ``maxsize`` None: no MAXSIZE option."""

    tag: str
    mailbox: str
    entries: tuple[str, ...]
    maxsize: int | None = None
    depth: int | None = 0


@dataclass(frozen=True, slots=True)
class SetMetadata(Command):
    """(entry, value) pairs; value None (NIL) removes the entry."""

    tag: str
    mailbox: str
    entries: tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True, slots=True)
class NotifyGroup:
    """One event-group: ``filter`` upper-cased (SELECTED, SELECTED-DELAYED, INBOXES,
    PERSONAL, SUBSCRIBED, SUBTREE, MAILBOXES), ``mailboxes`` for SUBTREE/MAILBOXES,
    ``events`` as sent but case-normalised (() for NONE), ``fetch_atts`` of MessageNew."""

    filter: str
    mailboxes: tuple[str, ...]
    events: tuple[str, ...]
    fetch_atts: tuple[FetchAtt, ...] = ()


@dataclass(frozen=True, slots=True)
class Notify(Command):
    """``groups`` None is NOTIFY NONE."""

    tag: str
    groups: tuple[NotifyGroup, ...] | None
    status: bool = False
