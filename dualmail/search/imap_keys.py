"""IMAP SEARCH keys (the parser's tree, ``imap.wire.commands``) -> a condition tree.

``from_imap_keys(keys, uid_set=..., seq_set=..., now=..., charset=...)`` compiles the
``Key``/``And``/``Or``/``Not`` values the wire parser produces (RFC 9051 §6.4.4, RFC
5032 WITHIN, RFC 7162 §3.1.5 MODSEQ, RFC 8474 EMAILID/THREADID) into ``query`` values;
the table in ``query``'s docstring lists the mapping.  The session supplies what only
it knows: ``uid_set(SequenceSet)`` and ``seq_set(SequenceSet)`` resolve a set to UID
ranges (``*``, ``$`` and sequence numbers are session state), and ``now`` (epoch
seconds) for OLDER/YOUNGER.

The wire values are read by their attributes (duck typing), so this module imports
nothing from ``dualmail.imap``: imports point from the protocols to the engine.

Dates (BEFORE/ON/SINCE) are calendar days in UTC, the server's time zone for
INTERNALDATE comparisons; SENT* compare the Date field's own calendar date, or the
INTERNALDATE's when the message has no parseable Date (as SORT (DATE), RFC 5256 §2.2).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Callable, Iterable

from ..mime.text import codec_for, valid_text
from ..model import ids
from .query import (
    ALL, NOTHING, And, Contains, Cond, Deleted, EmailId, Header, Keyword, ModSeq, Not, Or,
    Received, Recent, Saved, SentDay, Size, ThreadId, UidIn,
)

__all__ = ["BadCharsetError", "from_imap_keys", "uses_modseq"]

Ranges = Iterable[tuple[int, int]]

_FLAGS = {"ANSWERED": "$answered", "DRAFT": "$draft", "FLAGGED": "$flagged", "SEEN": "$seen"}
_STRINGS = {"FROM": "from", "TO": "to", "CC": "cc", "BCC": "bcc", "SUBJECT": "subject",
            "BODY": "body", "TEXT": "text"}
_DAY = 86400


class BadCharsetError(ValueError):
    """The SEARCH CHARSET is unknown: answer ``NO [BADCHARSET (UTF-8 US-ASCII)]``."""


def _day(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def _decode(value: object, charset: str) -> str:
    if isinstance(value, str):
        return value
    data = bytes(value)  # type: ignore[call-overload]
    try:
        text: str = data.decode(charset)
    except UnicodeDecodeError:
        text = data.decode(charset, "replace")
    return valid_text(text)  # UTF-7 may yield lone surrogates


def from_imap_keys(keys: Any, *, uid_set: Callable[[Any], Ranges], seq_set: Callable[[Any], Ranges],
                   now: int, charset: str | None = None) -> Cond:
    """The condition of a parsed IMAP search program.  Raises ``BadCharsetError``."""
    cs = (charset or "utf-8").lower()
    if cs in ("us-ascii", "ascii"):
        cs = "utf-8"  # a superset; 8-bit octets in a US-ASCII search are taken as UTF-8
    codec = codec_for(cs)  # None for unknown names and for codecs that are no charset (rot13)
    if codec is None:
        raise BadCharsetError(charset or "")
    cs = codec

    def conv(k: Any) -> Cond:
        kind = type(k).__name__
        if kind == "And":
            return And(tuple(conv(x) for x in k.keys))
        if kind == "Or":
            return Or((conv(k.left), conv(k.right)))
        if kind == "Not":
            return Not(conv(k.key))
        return leaf(str(k.name).upper(), tuple(k.args))

    def leaf(name: str, args: tuple[Any, ...]) -> Cond:
        if name == "ALL":
            return ALL
        if name in _FLAGS:
            return Keyword(_FLAGS[name])
        if name.startswith("UN") and name[2:] in _FLAGS:
            return Not(Keyword(_FLAGS[name[2:]]))
        if name == "DELETED":
            return Deleted()
        if name == "UNDELETED":
            return Not(Deleted())
        if name == "RECENT":
            return Recent()
        if name == "NEW":
            return And((Recent(), Not(Keyword("$seen"))))
        if name == "OLD":
            return Not(Recent())
        if name in ("KEYWORD", "UNKEYWORD"):
            kw = str(args[0]).lower()
            if kw.startswith("\\"):  # a system flag given as a keyword
                kw = {"\\" + f.lower(): v for f, v in _FLAGS.items()}.get(kw, kw)
            c: Cond = Keyword(kw)
            return c if name == "KEYWORD" else Not(c)
        if name in ("BEFORE", "ON", "SINCE"):
            t = _day(args[0]) * _DAY
            return {"BEFORE": Received(hi=t), "ON": Received(t, t + _DAY), "SINCE": Received(lo=t)}[name]
        if name in ("SAVEDBEFORE", "SAVEDON", "SAVEDSINCE"):  # RFC 8514 §4.3
            t = _day(args[0]) * _DAY
            return {"SAVEDBEFORE": Saved(hi=t), "SAVEDON": Saved(t, t + _DAY), "SAVEDSINCE": Saved(lo=t)}[name]
        if name == "SAVEDATESUPPORTED":  # every mailbox keeps save dates
            return ALL
        if name in ("SENTBEFORE", "SENTON", "SENTSINCE"):
            n = _day(args[0])
            return {"SENTBEFORE": SentDay(hi=n), "SENTON": SentDay(n, n + 1), "SENTSINCE": SentDay(lo=n)}[name]
        if name == "OLDER":  # RFC 5032 §3: INTERNALDATE <= now - interval
            return Received(hi=now - int(args[0]) + 1)
        if name == "YOUNGER":  # INTERNALDATE >= now - interval
            return Received(lo=now - int(args[0]))
        if name == "LARGER":
            return Size(lo=int(args[0]) + 1)
        if name == "SMALLER":
            return Size(hi=int(args[0]))
        if name == "UID":
            return UidIn.of(uid_set(args[0]))
        if name == "SEQSET":
            return UidIn.of(seq_set(args[0]))
        if name in _STRINGS:
            return Contains(_STRINGS[name], _decode(args[0], cs))
        if name == "HEADER":
            return Header(str(args[0]), _decode(args[1], cs))
        if name == "MODSEQ":  # the entry name and type do not matter: one modseq per message
            return ModSeq(int(args[-1]))
        if name == "EMAILID":
            email = ids.parse_id(ids.EMAIL, args[0])
            return NOTHING if email is None else EmailId(email)
        if name == "THREADID":
            tid = ids.parse_id(ids.THREAD, args[0])
            return NOTHING if tid is None else ThreadId(tid)
        raise ValueError(f"unknown search key {name}")

    return conv(keys)


def uses_modseq(c: Cond) -> bool:
    """Does the condition use MODSEQ?  Then the SEARCH response carries ``(MODSEQ n)``
    (RFC 7162 §3.1.5)."""
    if isinstance(c, (And, Or)):
        return any(uses_modseq(x) for x in c.conds)
    if isinstance(c, Not):
        return uses_modseq(c.cond)
    return isinstance(c, ModSeq)
