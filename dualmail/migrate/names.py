"""Sans-I/O parts of migration: source URL, mailbox names -> dualmail paths, roles.

No network, no store.  The source's hierarchy separator (often ``.``) becomes dualmail's
``/``; a ``/`` inside a source name component (possible when the source separator is
not ``/``) becomes U+2215 DIVISION SLASH, since dualmail names cannot hold the
separator.  Roles come from SPECIAL-USE attributes (RFC 6154 §2) and, only for a role
no source mailbox claims that way, from well-known folder names of other servers.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import unquote

SLASH_STANDIN = "\u2215"

SPECIAL_USE = {
    "\\all": "all", "\\archive": "archive", "\\drafts": "drafts", "\\flagged": "flagged",
    "\\junk": "junk", "\\sent": "sent", "\\trash": "trash", "\\important": "important",
}

# Folder names other servers and clients use for a role (casefolded), when the
# source announces no SPECIAL-USE for it (Exchange, Outlook, Thunderbird, Courier...).
WELL_KNOWN = {
    "sent": ("sent", "sent items", "sent messages", "sent mail", "sent-mail", "outbox"),
    "trash": ("trash", "deleted items", "deleted messages", "bin", "deleted"),
    "junk": ("junk", "junk e-mail", "junk email", "junk mail", "spam", "bulk mail"),
    "drafts": ("drafts", "draft"),
    "archive": ("archive", "archives"),
}


class SourceURLError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SourceURL:
    tls: bool  # imaps: TLS from the first byte
    login: str
    host: str
    port: int


def parse_url(url: str) -> SourceURL:
    """``imap[s]://LOGIN@HOST[:PORT]`` (RFC 5092 §3; ``%40`` for an ``@`` in LOGIN,
    or the last ``@`` separates)."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("imap", "imaps"):
        raise SourceURLError("the source must be imap://LOGIN@HOST[:PORT] or imaps://...")
    rest = rest.split("/", 1)[0].split("?", 1)[0]
    login, at, hostport = rest.rpartition("@")
    if not at or not login:
        raise SourceURLError("the source URL names no LOGIN (imap://LOGIN@HOST)")
    login = unquote(login.split(";", 1)[0])
    if hostport.startswith("["):
        host, _, tail = hostport[1:].partition("]")
        port_s = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_s = hostport.partition(":")
    if not host:
        raise SourceURLError("the source URL names no HOST")
    try:
        port = int(port_s) if port_s else (993 if scheme == "imaps" else 143)
    except ValueError:
        raise SourceURLError(f"bad port {port_s!r}") from None
    if not 0 < port < 65536:
        raise SourceURLError(f"bad port {port}")
    return SourceURL(scheme == "imaps", login, host, port)


def source_path(name: str, delimiter: str | None) -> list[str]:
    """A source mailbox name (decoded from modified UTF-7) -> dualmail path components."""
    parts = [name] if not delimiter else name.split(delimiter)
    out = []
    for p in parts:
        p = p.replace("/", SLASH_STANDIN)
        p = "".join(c if ord(c) >= 0x20 and ord(c) != 0x7F else "_" for c in p)
        out.append(p or "_")
    if out and out[0].upper() == "INBOX":
        out[0] = "INBOX"
    return out


def special_use_role(flags: list[str]) -> str | None:
    for f in flags:
        role = SPECIAL_USE.get(f.lower())
        if role:
            return role
    return None


def assign_roles(boxes: list[tuple[list[str], list[str]]]) -> list[str | None]:
    """Roles for (path, LIST attributes) pairs: SPECIAL-USE first, then a well-known
    name (top level or directly under INBOX) for a role nobody claimed; each role once;
    INBOX is ``inbox``."""
    roles: list[str | None] = [None] * len(boxes)
    taken: set[str] = set()
    for i, (path, flags) in enumerate(boxes):
        if path == ["INBOX"]:
            roles[i] = "inbox"
            taken.add("inbox")
    for i, (path, flags) in enumerate(boxes):
        r = special_use_role(flags)
        if r and r not in taken and roles[i] is None:
            roles[i] = r
            taken.add(r)
    for role, names in WELL_KNOWN.items():
        if role in taken:
            continue
        best = None
        for i, (path, _flags) in enumerate(boxes):
            top = len(path) == 1 or (len(path) == 2 and path[0] == "INBOX")
            if roles[i] is not None or not top:
                continue
            name = path[-1].casefold()
            if name in names:
                rank = names.index(name)
                if best is None or rank < best[0]:
                    best = (rank, i)
        if best is not None:
            roles[best[1]] = role
            taken.add(role)
    return roles


def selected(path: list[str], patterns: list[str]) -> bool:
    """``--mailbox PATTERN``: shell-style patterns on the "/"-joined dualmail path; a
    pattern also takes the mailboxes below what it names."""
    if not patterns:
        return True
    full = "/".join(path)
    return any(fnmatchcase(full, p) or fnmatchcase(full, p.rstrip("/") + "/*") for p in patterns)
