"""IMAP METADATA (RFC 5464) entries of an account: mailbox and server annotations.

One job: read and write the ``metadata`` table (keys.py) inside a transaction handed in,
with the limits checked before anything is written (RFC 5464 §4.3: a SETMETADATA that
fails changes nothing).

Key: ``A M entry`` -- account, mailbox (0 = the server), the entry name lower-cased
(entry names are case-insensitive, §3.2), e.g. ``/private/comment``; value: the raw
octets.  Both scopes (``/private``, ``/shared``) live in the one table: an account is one
user, so its private and shared entries are both its own.

A METADATA write is NOT a mail-model write: it takes no modseq, so no IMAP HIGHESTMODSEQ
and no JMAP state string moves (issue 16; docs/consistency.md "METADATA").  It is still
one KV transaction, and it appends a record to the global commit log in that same
transaction (``Store.write_metadata``), so other sessions, processes and nodes hear of it.
Imports no twisted and no lmdb.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from ..model import errors
from . import keys as K
from .kv import KVRead, KVWrite, prefix_end

SERVER = 0  # the mailbox number of server annotations (mailbox numbers start at 1)


class TooManyError(errors.LimitError):
    """``[METADATA TOOMANY]``: the mailbox (or server) already has the most entries."""


class TooBigError(errors.LimitError):
    """``[METADATA MAXSIZE n]``: a value is larger than the limit."""

    def __init__(self, message: str, maxsize: int) -> None:
        super().__init__(message)
        self.maxsize = maxsize


class ReadOnlyError(errors.CannotError):
    """A server-computed entry (``/shared/admin``) cannot be set (RFC 5464 §3.2.1.1)."""


def _key(a: int, m: int, entry: str = "") -> bytes:
    return K.u32(a) + K.u32(m) + entry.lower().encode("ascii")


def get(kv: KVRead, a: int, m: int, entry: str) -> bytes | None:
    return kv.get("metadata", _key(a, m, entry))


def below(kv: KVRead, a: int, m: int, entry: str, depth: int | None) -> Iterator[tuple[str, bytes]]:
    """Entries strictly below ``entry``, at most ``depth`` levels down (None: any)."""
    prefix = _key(a, m, entry.rstrip("/") + "/")
    base = entry.rstrip("/").count("/")
    for k, v in kv.range("metadata", prefix, prefix_end(prefix)):
        name = k[8:].decode("ascii")
        if depth is None or name.count("/") - base <= depth:
            yield name, bytes(v)


def entries(kv: KVRead, a: int, m: int) -> Iterator[tuple[str, bytes]]:
    p = _key(a, m)
    for k, v in kv.range("metadata", p, prefix_end(p)):
        yield k[8:].decode("ascii"), bytes(v)


def count(kv: KVRead, a: int, m: int) -> int:
    return sum(1 for _ in entries(kv, a, m))


def apply(w: KVWrite, a: int, m: int, changes: Iterable[tuple[str, bytes | None]], *,
          max_entries: int, max_size: int, readonly: Iterable[str] = ()) -> list[str]:
    """Set (value) or remove (None) entries of mailbox ``m``; every check first, so a
    refusal writes nothing.  Returns the entry names that changed."""
    todo: dict[str, bytes | None] = {}
    for name, value in changes:
        todo[name.lower()] = value  # the last value given for a name wins
    ro = {n.lower() for n in readonly}
    for name, value in todo.items():
        if name in ro:
            raise ReadOnlyError(f"{name} is read-only")
        if value is not None and len(value) > max_size:
            raise TooBigError(f"the value of {name} is larger than {max_size} octets", max_size)
    have = count(w, a, m)
    added = sum(1 for n, v in todo.items() if v is not None and get(w, a, m, n) is None)
    removed = sum(1 for n, v in todo.items() if v is None and get(w, a, m, n) is not None)
    if added and have + added - removed > max_entries:
        raise TooManyError(f"at most {max_entries} entries per mailbox")
    changed: list[str] = []
    for name, value in todo.items():
        k = _key(a, m, name)
        old = w.get("metadata", k)
        if value is None:
            if old is not None:
                w.delete("metadata", k)
                changed.append(name)
        elif old is None or bytes(old) != value:
            w.put("metadata", k, value)
            changed.append(name)
    return changed


def copy_all(w: KVWrite, a: int, src: int, dst: int) -> None:
    """Give ``dst`` the entries of ``src`` (INBOX renamed: RFC 5464 §4.1)."""
    for name, value in list(entries(w, a, src)):
        w.put("metadata", _key(a, dst, name), value)
