"""RFC 5322 §3.4 address-list parsing, best effort, linear time.

One job: turn an unfolded address header value into ``Mailbox`` and
``Group`` values, and render them as IMAP ENVELOPE address structures
(RFC 9051 §7.5.2, RFC 3501 §7.4.2) or JMAP EmailAddress /
EmailAddressGroup objects (RFC 8621 §4.1.2.3-4).

Leniency (RFC 8621 §4.1.2.3 "best effort ... semi-complete drafts"):
unterminated quotes, comments and angle brackets run to the end; empty
list elements are skipped; a word list without ``@`` becomes an address
without domain; a group left open is closed at the end.

Names: the ``name`` of a ``Mailbox`` is the raw display-name (quoted
strings unquoted, quoted-pairs decoded, words joined by one space, RFC 2047
words still encoded) -- what IMAP ENVELOPE returns.  JMAP names are that
with RFC 2047 decoded and whitespace trimmed.  With no display-name, the
comment right after the addr-spec is used (RFC 8621 §4.1.2.3).

Must not import: twisted, lmdb, or anything from dualmail outside
dualmail.mime.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Union

from .rfc2047 import decode_words, nfc

__all__ = [
    "Group",
    "Mailbox",
    "envelope_addresses",
    "jmap_addresses",
    "jmap_grouped_addresses",
    "parse_address_list",
]


@dataclass(frozen=True, slots=True)
class Mailbox:
    name: str | None  # raw display-name, or the comment after the addr-spec
    route: str | None  # obs-route ("@a,@b"), IMAP "adl"
    local: str
    domain: str | None

    @property
    def email(self) -> str:
        if self.domain is None:
            return self.local
        return self.local + "@" + self.domain


@dataclass(frozen=True, slots=True)
class Group:
    name: str  # raw group display-name
    members: tuple[Mailbox, ...]


Address = Union[Mailbox, Group]

_TOKEN = re.compile(
    r'[ \t\r\n]+'
    r'|"((?:[^"\\]|\\.)*)"?'
    r'|\[((?:[^\[\]\\]|\\.)*)\]?'
    r'|([<>@,;:])'
    r'|([^ \t\r\n"(\[<>@,;:)\]]+)'
    r'|(.)',
    re.S,
)
_UNESCAPE = re.compile(r"\\(.)", re.S)
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\U0010ffff-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\U0010ffff-]+)*")

# token kinds
_QS, _DL, _ATOM, _COMMENT = "qs", "dl", "atom", "comment"


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    n = len(text)
    while pos < n:
        if text[pos] == "(":
            depth = 0
            j = pos
            while j < n:
                c = text[j]
                if c == "\\":
                    j += 2
                    continue
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if not depth:
                        break
                j += 1
            tokens.append((_COMMENT, _UNESCAPE.sub(r"\1", text[pos + 1 : min(j, n)])))
            pos = j + 1
            continue
        m = _TOKEN.match(text, pos)
        if m is None:  # pragma: no cover - the last alternative matches anything
            break
        pos = m.end()
        qs, dl, special, atom, _other = m.groups()
        if qs is not None:
            tokens.append((_QS, _UNESCAPE.sub(r"\1", qs)))
        elif dl is not None:
            tokens.append((_DL, dl))
        elif special is not None:
            tokens.append((special, special))
        elif atom is not None:
            tokens.append((_ATOM, atom))
    return tokens


def _phrase(tokens: list[tuple[str, str]]) -> str | None:
    words = [t for k, t in tokens if k != _COMMENT]
    if not words:
        return None
    return " ".join(words)


def _local_text(kind: str, text: str) -> str:
    if kind == _QS and not _DOT_ATOM.fullmatch(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if kind == _DL:
        return "[" + text + "]"
    return text


def _addr_spec(tokens: list[tuple[str, str]]) -> tuple[str, str | None]:
    words = [(k, t) for k, t in tokens if k != _COMMENT]
    at = -1
    for i, (k, _t) in enumerate(words):
        if k == "@":
            at = i
    if at < 0:
        return " ".join(_local_text(k, t) for k, t in words), None
    local = "".join(_local_text(k, t) for k, t in words[:at])
    domain = "".join(_local_text(k, t) for k, t in words[at + 1 :])
    return local, domain


def _mailbox(tokens: list[tuple[str, str]]) -> Mailbox | None:
    kinds = [k for k, _t in tokens]
    if "<" in kinds:
        lt = kinds.index("<")
        gt = kinds.index(">", lt) if ">" in kinds[lt:] else len(tokens)
        inner = tokens[lt + 1 : gt]
        route = None
        inner_kinds = [k for k, _t in inner]
        if ":" in inner_kinds:
            colon = inner_kinds.index(":")
            route = "".join(t for k, t in inner[:colon] if k != _COMMENT) or None
            inner = inner[colon + 1 :]
        local, domain = _addr_spec(inner)
        return Mailbox(_phrase(tokens[:lt]), route, local, domain)
    words = [i for i, k in enumerate(kinds) if k != _COMMENT]
    if not words:
        return None
    local, domain = _addr_spec(tokens)
    name = None
    for k, t in tokens[words[-1] + 1 :]:
        if k == _COMMENT:
            name = " ".join(t.split()) or None
            break
    return Mailbox(name, None, local, domain)


def parse_address_list(text: str) -> tuple[Address, ...]:
    """Parse an unfolded address-list header value; never raises.

    The result is immutable, so short values (the common From/To fields, parsed for both
    the IMAP ENVELOPE and the JMAP properties, and repeated across a mailbox) are cached.
    """
    if len(text) <= _CACHED_LENGTH:
        return _parse_cached(text)
    return _parse_address_list(text)


_CACHED_LENGTH = 512


def _parse_address_list(text: str) -> tuple[Address, ...]:
    items: list[Address] = []
    group_name: str | None = None
    members: list[Mailbox] = []
    current: list[tuple[str, str]] = []
    in_angle = False

    def finish() -> None:
        mb = _mailbox(current)
        if mb is not None:
            (members if group_name is not None else items).append(mb)  # type: ignore[arg-type]
        current.clear()

    for tok in _tokenize(text):
        kind = tok[0]
        if in_angle:
            current.append(tok)
            if kind == ">":
                in_angle = False
            continue
        if kind == "<":
            in_angle = True
            current.append(tok)
        elif kind == ",":
            finish()
        elif kind == ":" and group_name is None and not any(k in ("@", "<") for k, _t in current):
            group_name = _phrase(current) or ""
            members = []
            current.clear()
        elif kind == ";" and group_name is not None:
            finish()
            items.append(Group(group_name, tuple(members)))
            group_name = None
            members = []
        else:
            current.append(tok)
    finish()
    if group_name is not None:
        items.append(Group(group_name, tuple(members)))
    return tuple(items)


# -- renderings ----------------------------------------------------------------


def _jmap_name(raw: str | None) -> str | None:
    if raw is None:
        return None
    name = " ".join(decode_words(raw, strict=False).split())
    return nfc(name) or None


def _jmap_mailbox(mb: Mailbox) -> dict[str, str | None]:
    return {"name": _jmap_name(mb.name), "email": nfc(mb.email)}


def jmap_addresses(items: tuple[Address, ...]) -> list[dict[str, str | None]]:
    """RFC 8621 §4.1.2.3 Addresses form: groups flattened."""
    out: list[dict[str, str | None]] = []
    for item in items:
        if isinstance(item, Group):
            out.extend(_jmap_mailbox(mb) for mb in item.members)
        else:
            out.append(_jmap_mailbox(item))
    return out


def jmap_grouped_addresses(items: tuple[Address, ...]) -> list[dict[str, object]]:
    """RFC 8621 §4.1.2.4 GroupedAddresses form."""
    out: list[dict[str, object]] = []
    loose: list[dict[str, str | None]] = []
    for item in items:
        if isinstance(item, Group):
            if loose:
                out.append({"name": None, "addresses": loose})
                loose = []
            out.append({"name": _jmap_name(item.name), "addresses": [_jmap_mailbox(m) for m in item.members]})
        else:
            loose.append(_jmap_mailbox(item))
    if loose:
        out.append({"name": None, "addresses": loose})
    return out


def _env_mailbox(mb: Mailbox) -> list[str | None]:
    # host is never NIL for a mailbox: NIL host marks a group (RFC 9051 §7.5.2).
    return [mb.name, mb.route, mb.local, mb.domain if mb.domain is not None else ""]


def envelope_addresses(items: tuple[Address, ...]) -> list[list[str | None]] | None:
    """IMAP ENVELOPE address list with group markers, or None (NIL) when empty."""
    out: list[list[str | None]] = []
    for item in items:
        if isinstance(item, Group):
            out.append([None, None, item.name, None])
            out.extend(_env_mailbox(mb) for mb in item.members)
            out.append([None, None, None, None])
        else:
            out.append(_env_mailbox(item))
    return out or None


_parse_cached = functools.lru_cache(maxsize=4096)(_parse_address_list)
