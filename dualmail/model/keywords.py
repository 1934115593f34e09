"""The one table between IMAP flags and JMAP keywords (CONTRACT §2, RFC 8621 §4.1.1).

Keywords are stored lowercase (RFC 8621 §4.1.1: servers MUST return them lowercase).
``\\Deleted`` and ``\\Recent`` are not keywords: ``\\Deleted`` is per membership and
``\\Recent`` is session state; neither is ever shown to JMAP.

IMAP shows a keyword with its spelling (clients such as Thunderbird and Apple Mail compare
flags by spelling): the registered spelling of the IANA keywords in ``REGISTERED``, else
the spelling the account first set it with over IMAP or an import (kept by the store,
account-wide, written in the transaction of that first use), else the stored lowercase
form.  Matching stays case-insensitive on both sides (CONTRACT §2: "maps 1:1,
case-insensitively").

Imports nothing outside the standard library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

SYSTEM_TO_KEYWORD = {
    "\\seen": "$seen",
    "\\flagged": "$flagged",
    "\\answered": "$answered",
    "\\draft": "$draft",
}
KEYWORD_TO_SYSTEM = {
    "$seen": "\\Seen",
    "$flagged": "\\Flagged",
    "$answered": "\\Answered",
    "$draft": "\\Draft",
}
#: IANA "IMAP and JMAP Keywords" registry spellings (RFC 5788, RFC 8621 §10.4).
REGISTERED = {k.lower(): k for k in (
    "$Forwarded", "$MDNSent", "$Junk", "$NotJunk", "$Phishing", "$Important", "$Submitted",
)}
DELETED = "\\Deleted"
RECENT = "\\Recent"

# RFC 8621 §4.1.1: %x21-%x7e except ( ) { ] % * " \
_FORBIDDEN = set('(){]%*"\\')


def is_valid_keyword(k: str) -> bool:
    return (
        isinstance(k, str)
        and 1 <= len(k) <= 255
        and all(0x21 <= ord(c) <= 0x7E and c not in _FORBIDDEN for c in k)
    )


def flag_to_keyword(flag: str) -> str | None:
    """IMAP flag -> JMAP keyword; None for ``\\Deleted``/``\\Recent``/unknown system flags."""
    low = flag.lower()
    if low.startswith("\\"):
        return SYSTEM_TO_KEYWORD.get(low)
    return low


def keyword_to_flag(keyword: str) -> str:
    """The IMAP form without an account's spellings (registered ones, else lowercase)."""
    return KEYWORD_TO_SYSTEM.get(keyword) or REGISTERED.get(keyword, keyword)


def unread(keywords: frozenset[str] | set[str] | list[str]) -> bool:
    """RFC 8621 §2 unreadEmails: neither ``$seen`` nor ``$draft``."""
    return "$seen" not in keywords and "$draft" not in keywords


def new_spellings(flags: Iterable[str], known: Mapping[str, str]) -> dict[str, str]:
    """{lowercase: spelling} for the keywords among IMAP ``flags`` with no spelling yet
    (neither in ``known`` nor registered); the first spelling in ``flags`` wins."""
    out: dict[str, str] = {}
    for f in flags:
        if f.startswith("\\") or not is_valid_keyword(f):
            continue
        low = f.lower()
        if low not in known and low not in REGISTERED and low not in out:
            out[low] = f
    return out


class Spellings:
    """A session's keyword -> IMAP flag view over the account's spellings.

    ``load()`` reads the account's {lowercase: spelling} table.  A keyword the table
    lacks makes one re-read (another session may have spelt it since); one still
    missing is shown lowercase for the rest of the session.
    """

    def __init__(self, load: Callable[[], Mapping[str, str]]) -> None:
        """The table is loaded when first needed: a mailbox whose messages carry only
        system and registered keywords never reads it."""
        self._load = load
        self._map: dict[str, str] | None = None
        self._missing: set[str] = set()
        self._added: dict[str, str] = {}

    def update(self, spellings: Mapping[str, str]) -> None:
        """Take the table as a writing transaction sees it (spellings it just added)."""
        if self._map is None:
            self._added.update(spellings)
        else:
            self._map.update(spellings)

    def flag(self, keyword: str) -> str:
        system = KEYWORD_TO_SYSTEM.get(keyword)
        if system is not None:
            return system
        spelt = REGISTERED.get(keyword)
        if spelt is not None:
            return spelt
        if self._map is None:
            self._map = {**self._load(), **self._added}
        spelt = self._map.get(keyword)
        if spelt is not None:
            return spelt
        if keyword not in self._missing:
            self._map = dict(self._load())
            self._missing.add(keyword)
            spelt = self._map.get(keyword)
        return spelt or keyword
