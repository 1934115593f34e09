"""The one table between IMAP flags and JMAP keywords (CONTRACT §2, RFC 8621 §4.1.1).

Keywords are stored lowercase (RFC 8621 §4.1.1: servers MUST return them lowercase).
``\\Deleted`` and ``\\Recent`` are not keywords: ``\\Deleted`` is per membership and
``\\Recent`` is session state; neither is ever shown to JMAP.

Imports nothing outside the standard library.
"""

from __future__ import annotations

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
    return KEYWORD_TO_SYSTEM.get(keyword, keyword)


def unread(keywords: frozenset[str] | set[str] | list[str]) -> bool:
    """RFC 8621 §2 unreadEmails: neither ``$seen`` nor ``$draft``."""
    return "$seen" not in keywords and "$draft" not in keywords
