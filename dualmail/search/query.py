"""The condition tree both IMAP SEARCH and JMAP Email/query compile to, and sort keys.

Values only: frozen, slotted dataclasses, no store access.  ``And(())`` is true and
``Or(())`` is false (``ALL`` and ``NOTHING``).  Times are epoch seconds (UTC), days
are days since 1970-01-01, keywords are lowercase JMAP keywords (``\\Seen`` is
``$seen``, see ``dualmail.model.keywords``), email/thread/mailbox are store numbers.

IMAP key -> condition (what ``imap_keys.from_imap_keys`` builds; RFC 9051 §6.4.4):

===================  ============================================================
ALL                  ``ALL``
ANSWERED/UN-         ``Keyword("$answered")`` / ``Not(...)``; DRAFT, FLAGGED, SEEN alike
DELETED/UNDELETED    ``Deleted()`` / ``Not(Deleted())`` (per membership, IMAP scope)
KEYWORD k/UNKEYWORD  ``Keyword(k.lower())`` / ``Not(...)``
RECENT, NEW, OLD     ``Recent()``, ``And((Recent(), Not(Keyword("$seen"))))``, ``Not(Recent())``
BEFORE/ON/SINCE d    ``Received(hi=day(d))``, ``Received(day(d), day(d)+86400)``,
                     ``Received(lo=day(d))`` -- internal date, dates taken in UTC
SENTBEFORE/ON/SINCE  ``SentDay(hi=n)``, ``SentDay(n, n+1)``, ``SentDay(lo=n)``: the Date
                     field's own calendar date (time and zone disregarded); without a
                     parseable Date, the internal date's (RFC 5256 §2.2)
OLDER/YOUNGER n      ``Received(hi=now-n+1)`` / ``Received(lo=now-n)`` (RFC 5032 §3)
LARGER/SMALLER n     ``Size(lo=n+1)`` / ``Size(hi=n)``
UID set, seq set     ``UidIn(ranges)`` (the session resolves sequence numbers to UIDs)
FROM TO CC BCC       ``Contains("from", s)`` ... (decoded field text)
SUBJECT BODY TEXT    ``Contains("subject"|"body"|"text", s)``
HEADER f s           ``Header(f, s)``; ``s == ""``: the field is present
MODSEQ [e t] n       ``ModSeq(n)`` (RFC 7162 §3.1.5: modseq >= n)
EMAILID/THREADID     ``EmailId(e)`` / ``ThreadId(t)`` (RFC 8474 §5)
SAVEDBEFORE/ON/SINCE ``Saved(...)`` like BEFORE/ON/SINCE on the save date (RFC 8514 §4.3);
SAVEDATESUPPORTED    ``ALL`` (every mailbox keeps save dates)
OR a b, NOT a        ``Or((a, b))``, ``Not(a)``
===================  ============================================================

JMAP FilterCondition -> condition: see ``from_jmap_filter`` (RFC 8621 §4.4.1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Union

from ..model import ids, keywords as kwmod

__all__ = [
    "ALL", "And", "Contains", "Cond", "Context", "Deleted", "EmailId", "FilterError",
    "HasAttachment", "Header", "InMailbox", "InMailboxOtherThan", "InvalidFilterError",
    "Keyword", "ModSeq", "NOTHING", "Not", "Or", "Received", "Recent", "SentDay", "Size",
    "SortKey", "ThreadId", "ThreadKeyword", "UidIn", "UnsupportedFilter",
    "UnsupportedSortError", "from_jmap_filter", "from_jmap_sort", "TEXT_FIELDS",
]

#: Where ``Contains`` looks.  "text" is IMAP TEXT (every header field and the body);
#: "jmaptext" is JMAP ``text`` (From, To, Cc, Bcc, Subject and the body, RFC 8621 §4.4.1).
TEXT_FIELDS = frozenset({"from", "to", "cc", "bcc", "subject", "body", "text", "jmaptext"})


# -- operators ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class And:
    conds: tuple[Cond, ...]


@dataclass(frozen=True, slots=True)
class Or:
    conds: tuple[Cond, ...]


@dataclass(frozen=True, slots=True)
class Not:
    cond: Cond


ALL = And(())
NOTHING = Or(())


# -- leaves ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Keyword:
    """The Email has this (lowercase) keyword."""

    keyword: str


@dataclass(frozen=True, slots=True)
class Deleted:
    """The membership is ``\\Deleted`` (IMAP scope only; never true for JMAP)."""


@dataclass(frozen=True, slots=True)
class Recent:
    """The UID is in ``Context.recent`` (IMAP session state; never true for JMAP)."""


@dataclass(frozen=True, slots=True)
class Received:
    """``lo <= receivedAt < hi`` (None: unbounded); IMAP INTERNALDATE."""

    lo: int | None = None
    hi: int | None = None


@dataclass(frozen=True, slots=True)
class Saved:
    """``lo <= save date < hi`` in the mailbox searched (RFC 8514 §3; a membership older
    than save dates uses its internal date); never matches outside a mailbox scope."""

    lo: int | None = None
    hi: int | None = None


@dataclass(frozen=True, slots=True)
class SentDay:
    """``lo <= day < hi`` for the calendar day of the Date field in its own zone; an
    Email without a parseable Date field uses its internal date's UTC day instead (the
    RFC 5256 §2.2 SORT (DATE) fallback, so SEARCH and SORT agree)."""

    lo: int | None = None
    hi: int | None = None


@dataclass(frozen=True, slots=True)
class Size:
    """``lo <= size < hi`` (None: unbounded)."""

    lo: int | None = None
    hi: int | None = None


@dataclass(frozen=True, slots=True)
class UidIn:
    """The membership's UID lies in one of the inclusive ``ranges`` (IMAP scope)."""

    ranges: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, numbers: Iterable[int | tuple[int, int]]) -> UidIn:
        pairs = sorted((n, n) if isinstance(n, int) else (min(n), max(n)) for n in numbers)
        merged: list[tuple[int, int]] = []
        for lo, hi in pairs:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
            else:
                merged.append((lo, hi))
        return cls(tuple(merged))


@dataclass(frozen=True, slots=True)
class InMailbox:
    """The Email has a non-``\\Deleted`` membership in ``mailbox`` (JMAP inMailbox)."""

    mailbox: int


@dataclass(frozen=True, slots=True)
class InMailboxOtherThan:
    """The Email has a non-``\\Deleted`` membership in a mailbox not in ``mailboxes``."""

    mailboxes: frozenset[int]


@dataclass(frozen=True, slots=True)
class ThreadKeyword:
    """``mode`` "all" / "some" / "none" of the JMAP-visible Emails of the thread have
    the keyword (RFC 8621 allInThreadHaveKeyword etc.)."""

    keyword: str
    mode: str


@dataclass(frozen=True, slots=True)
class HasAttachment:
    value: bool


@dataclass(frozen=True, slots=True)
class Contains:
    """``fold(value)`` is a substring of the folded decoded text of ``field`` (one of
    ``TEXT_FIELDS``).  An empty value matches every Email."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class Header:
    """A header field named ``name`` (case-insensitive) exists whose decoded value
    contains ``value``; ``value == ""``: the field exists (RFC 9051 HEADER)."""

    name: str
    value: str = ""


@dataclass(frozen=True, slots=True)
class ModSeq:
    """The membership's modseq (IMAP scope) or the Email's (JMAP scope) is >= ``modseq``."""

    modseq: int


@dataclass(frozen=True, slots=True)
class EmailId:
    email: int


@dataclass(frozen=True, slots=True)
class ThreadId:
    thread: int


Cond = Union[And, Or, Not, Keyword, Deleted, Recent, Received, SentDay, Size, UidIn, InMailbox,
             InMailboxOtherThan, ThreadKeyword, HasAttachment, Contains, Header, ModSeq, EmailId,
             ThreadId, Saved]


@dataclass(frozen=True, slots=True)
class Context:
    """Session information some conditions need: the session's ``\\Recent`` UIDs."""

    recent: frozenset[int] = frozenset()


# -- sort keys ---------------------------------------------------------------------------

#: Sort key names.  received: receivedAt / IMAP ARRIVAL; date: RFC 5256 sent date (Date
#: field in UTC, INTERNALDATE when absent) for IMAP DATE and JMAP sentAt; from/to/cc:
#: RFC 5256 addr-mailbox of the first address; displayfrom/displayto: display name, else
#: the address (RFC 5957; also JMAP from/to, RFC 8621 §4.4.2); subject: base subject;
#: size; hasKeyword, allInThreadHaveKeyword, someInThreadHaveKeyword (with keyword);
#: groupdisplayfrom/groupdisplayto: IMAP SORT=DISPLAY, where a leading group sorts by
#: its display name (RFC 5957 §3.1, as Dovecot; JMAP flattens groups, RFC 8621 §4.1.2.3).
SORT_NAMES = frozenset({"received", "date", "size", "from", "to", "cc", "displayfrom", "displayto",
                        "subject", "hasKeyword", "allInThreadHaveKeyword", "someInThreadHaveKeyword",
                        "groupdisplayfrom", "groupdisplayto"})


@dataclass(frozen=True, slots=True)
class SortKey:
    name: str
    reverse: bool = False
    keyword: str | None = None

    def __post_init__(self) -> None:
        if self.name not in SORT_NAMES:
            raise UnsupportedSortError(f"unknown sort key {self.name!r}")


IMAP_SORT = {"ARRIVAL": "received", "CC": "cc", "DATE": "date", "FROM": "from", "SIZE": "size",
             "SUBJECT": "subject", "TO": "to", "DISPLAYFROM": "groupdisplayfrom",
             "DISPLAYTO": "groupdisplayto"}
JMAP_SORT = {"receivedAt": "received", "sentAt": "date", "size": "size", "from": "displayfrom",
             "to": "displayto", "subject": "subject", "hasKeyword": "hasKeyword",
             "allInThreadHaveKeyword": "allInThreadHaveKeyword",
             "someInThreadHaveKeyword": "someInThreadHaveKeyword"}
COLLATIONS = frozenset({"i;unicode-casemap", "i;ascii-casemap"})


# -- errors ---------------------------------------------------------------------------------


class FilterError(ValueError):
    """A JMAP filter or sort the engine cannot use; ``jmap_type`` is the method error."""

    jmap_type = "invalidArguments"


class InvalidFilterError(FilterError):
    """The filter does not match the type definitions (JMAP ``invalidArguments``)."""


class UnsupportedFilter(FilterError):
    """A well-formed filter the server does not support (JMAP ``unsupportedFilter``)."""

    jmap_type = "unsupportedFilter"


class UnsupportedSortError(FilterError):
    """A sort the server does not support (JMAP ``unsupportedSort``)."""

    jmap_type = "unsupportedSort"


# -- JMAP ------------------------------------------------------------------------------------

_CONDITION_KEYS = frozenset({
    "inMailbox", "inMailboxOtherThan", "before", "after", "minSize", "maxSize",
    "allInThreadHaveKeyword", "someInThreadHaveKeyword", "noneInThreadHaveKeyword", "hasKeyword",
    "notKeyword", "hasAttachment", "text", "from", "to", "cc", "bcc", "subject", "body", "header",
})
_UTCDATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z")
_MAX_DEPTH = 50


def _str(v: object, what: str) -> str:
    if not isinstance(v, str):
        raise InvalidFilterError(f"{what} must be a String")
    return v


def _uint(v: object, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**53:
        raise InvalidFilterError(f"{what} must be an UnsignedInt")
    return v


def _utcdate(v: object, what: str) -> int:
    s = _str(v, what)
    if not _UTCDATE.fullmatch(s):
        raise InvalidFilterError(f"{what} must be a UTCDate")
    try:
        dt = datetime.strptime(s[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        raise InvalidFilterError(f"{what} is not a valid date") from None
    return int(dt.timestamp())


def _keyword(v: object, what: str) -> str:
    k = _str(v, what).lower()
    if not kwmod.is_valid_keyword(k):
        raise InvalidFilterError(f"{what}: invalid keyword")
    return k


def _mailbox(v: object, what: str) -> int:
    n = ids.parse_id(ids.MAILBOX, _str(v, what))
    return -1 if n is None else n  # an unknown id is a mailbox nothing is in


def jmap_text_terms(text: str) -> list[str]:
    """RFC 8621 §4.4.1 String matching: quoted phrases (with ``\\`` escapes) are one
    term; outside quotes white space separates terms that must all be present."""
    terms: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in "'\"":
            j, buf = i + 1, []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            if j < n:  # a closed phrase
                if "".join(buf).strip():
                    terms.append("".join(buf))
                i = j + 1
                continue
        j = i
        while j < n and not text[j].isspace():
            j += 1
        terms.append(text[i:j])
        i = j
    return terms


def _contains(field: str, text: str) -> Cond:
    terms = jmap_text_terms(text)
    if len(terms) == 1:
        return Contains(field, terms[0])
    return And(tuple(Contains(field, t) for t in terms))


def _condition(f: dict[str, Any]) -> Cond:
    out: list[Cond] = []
    for key, v in f.items():
        if key not in _CONDITION_KEYS:
            raise UnsupportedFilter(f"unknown filter property {key!r}")
        if key == "inMailbox":
            out.append(InMailbox(_mailbox(v, key)))
        elif key == "inMailboxOtherThan":
            if not isinstance(v, list):
                raise InvalidFilterError("inMailboxOtherThan must be an Id[]")
            out.append(InMailboxOtherThan(frozenset(_mailbox(x, key) for x in v)))
        elif key == "before":
            out.append(Received(hi=_utcdate(v, key)))
        elif key == "after":
            out.append(Received(lo=_utcdate(v, key)))
        elif key == "minSize":
            out.append(Size(lo=_uint(v, key)))
        elif key == "maxSize":
            out.append(Size(hi=_uint(v, key)))
        elif key.endswith("InThreadHaveKeyword"):
            out.append(ThreadKeyword(_keyword(v, key), key[: -len("InThreadHaveKeyword")]))
        elif key == "hasKeyword":
            out.append(Keyword(_keyword(v, key)))
        elif key == "notKeyword":
            out.append(Not(Keyword(_keyword(v, key))))
        elif key == "hasAttachment":
            if not isinstance(v, bool):
                raise InvalidFilterError("hasAttachment must be a Boolean")
            out.append(HasAttachment(v))
        elif key == "header":
            if not isinstance(v, list) or not 1 <= len(v) <= 2:
                raise InvalidFilterError("header must be a String[] of one or two elements")
            name = _str(v[0], "header name")
            if not name or any(ord(c) <= 32 or ord(c) >= 127 or c == ":" for c in name):
                raise InvalidFilterError("header: bad field name")
            out.append(Header(name, _str(v[1], "header value") if len(v) == 2 else ""))
        else:
            out.append(_contains("jmaptext" if key == "text" else key, _str(v, key)))
    return out[0] if len(out) == 1 else And(tuple(out))


def from_jmap_filter(filter_json: object, _depth: int = 0) -> Cond:
    """An RFC 8621 §4.4.1 filter (FilterOperator or FilterCondition, or null) as a
    condition.  Raises ``InvalidFilterError`` or ``UnsupportedFilter``."""
    if filter_json is None:
        return ALL
    if _depth > _MAX_DEPTH:
        raise UnsupportedFilter("filter nested too deeply")
    if not isinstance(filter_json, dict):
        raise InvalidFilterError("a filter must be an object")
    if "operator" in filter_json:
        op = filter_json["operator"]
        conds = filter_json.get("conditions")
        if set(filter_json) != {"operator", "conditions"} or not isinstance(conds, list):
            raise InvalidFilterError("a FilterOperator has exactly operator and conditions")
        parts = tuple(from_jmap_filter(c, _depth + 1) for c in conds)
        if op == "AND":
            return And(parts)
        if op == "OR":
            return Or(parts)
        if op == "NOT":
            return Not(Or(parts))
        raise InvalidFilterError(f"unknown operator {op!r}")
    return _condition(filter_json)


def from_jmap_sort(comparators: object) -> list[SortKey]:
    """RFC 8621 §4.4.2 Comparators (RFC 8620 §5.5) as sort keys; null or [] is []."""
    if comparators is None:
        return []
    if not isinstance(comparators, list):
        raise InvalidFilterError("sort must be a Comparator[]")
    out = []
    for c in comparators:
        if not isinstance(c, dict) or not isinstance(c.get("property"), str):
            raise InvalidFilterError("a Comparator needs a property")
        extra = set(c) - {"property", "isAscending", "collation", "keyword"}
        if extra:
            raise InvalidFilterError(f"unknown Comparator properties {sorted(extra)}")
        asc = c.get("isAscending", True)
        if not isinstance(asc, bool):
            raise InvalidFilterError("isAscending must be a Boolean")
        coll = c.get("collation")
        if coll is not None and coll not in COLLATIONS:
            raise UnsupportedSortError(f"unsupported collation {coll!r}")
        name = JMAP_SORT.get(c["property"])
        if name is None:
            raise UnsupportedSortError(f"unsupported sort property {c['property']!r}")
        keyword = None
        if name in ("hasKeyword", "allInThreadHaveKeyword", "someInThreadHaveKeyword"):
            if "keyword" not in c:
                raise InvalidFilterError(f"{c['property']} needs a keyword")
            keyword = _keyword(c["keyword"], "keyword")
        out.append(SortKey(name, not asc, keyword))
    return out


def from_imap_sort(criteria: Iterable[Any]) -> list[SortKey]:
    """IMAP SORT criteria (objects with ``key`` and ``reverse``, e.g.
    ``imap.wire.commands.SortCriterion``) as sort keys (RFC 5256 §3, RFC 5957)."""
    out = []
    for c in criteria:
        name = IMAP_SORT.get(str(c.key).upper())
        if name is None:
            raise UnsupportedSortError(f"unknown sort criterion {c.key!r}")
        out.append(SortKey(name, bool(c.reverse)))
    return out
