"""Mailbox names on the wire <-> mailboxes in the store (separator "/", RFC 9051 §5.1).

Modified UTF-7 (RFC 3501 §5.1.3) until UTF8=ACCEPT is enabled (RFC 6855); ``INBOX`` is
case-insensitive at the top level only.  Imports no twisted.
"""

from __future__ import annotations

import re
from typing import Any

from dualmail.imap.errors import ImapNo
from dualmail.imap.wire import utf7

SEP = "/"
ROLE_ATTRS = {
    "drafts": "\\Drafts", "sent": "\\Sent", "trash": "\\Trash", "junk": "\\Junk",
    "archive": "\\Archive", "all": "\\All", "flagged": "\\Flagged", "important": "\\Important",
}
ATTR_ROLES = {v.lower(): k for k, v in ROLE_ATTRS.items()}


def decode(utf8: bool, name: str) -> str:
    """The mailbox name as the store spells it; NO [CANNOT] for broken modified UTF-7."""
    if utf8:
        return name
    try:
        return utf7.decode(name)
    except ValueError:
        raise ImapNo("Mailbox name is not valid modified UTF-7", "CANNOT") from None


def decode_pattern(utf8: bool, pattern: str) -> str:
    if utf8:
        return pattern
    try:
        return utf7.decode(pattern)
    except ValueError:
        return pattern


def components(name: str) -> list[str]:
    comps = name.split(SEP)
    if comps and comps[0].upper() == "INBOX":
        comps[0] = "INBOX"
    return comps


def valid(comps: list[str]) -> bool:
    return bool(comps) and all(comps)


def find(view: Any, name: str) -> int | None:
    comps = components(name)
    if not valid(comps):
        return None
    found = view.mailbox_by_path(comps)
    return None if found is None else int(found)


def require(view: Any, name: str) -> int:
    m = find(view, name)
    if m is None:
        raise ImapNo("No such mailbox", "NONEXISTENT")
    return m


def tree(view: Any) -> dict[int, tuple[str, dict[str, Any]]]:
    """Every mailbox: id -> (full path, record)."""
    recs = {int(rec["id"]): rec for rec in view.mailboxes()}
    paths: dict[int, str] = {}

    def path(m: int, depth: int = 0) -> str:
        if m in paths:
            return paths[m]
        rec = recs[m]
        parent = int(rec["parent"])
        p: str = str(rec["name"]) if not parent or parent not in recs or depth > 500 else \
            path(parent, depth + 1) + SEP + rec["name"]
        paths[m] = p
        return p

    return {m: (path(m), rec) for m, rec in recs.items()}


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """RFC 9051 §6.3.9: ``*`` matches anything, ``%`` anything but the separator."""
    if pattern[:5].upper() == "INBOX" and (len(pattern) == 5 or pattern[5] in (SEP, "*", "%")):
        pattern = "INBOX" + pattern[5:]
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append("[^/]*")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def attributes(rec: dict[str, Any], has_children: bool) -> list[str]:
    attrs = ["\\HasChildren" if has_children else "\\HasNoChildren"]
    role = rec.get("role")
    if role in ROLE_ATTRS:
        attrs.append(ROLE_ATTRS[role])
    return attrs
