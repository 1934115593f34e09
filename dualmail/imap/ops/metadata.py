"""GETMETADATA and SETMETADATA (RFC 5464 METADATA and METADATA-SERVER).

Entries live in the store (``store/metadata.py``); a SETMETADATA is one store transaction
(``Store.write_metadata``) with every limit checked before anything is written, so a
refused command changes nothing (§4.3).  Limits (``ImapConfig``): a value of at most
``metadata_max_size`` octets (``NO [METADATA MAXSIZE n]``), at most
``metadata_max_entries`` entries per mailbox and for the server (``NO [METADATA
TOOMANY]``).  Private entries are supported (an account is one user), so NOPRIVATE is
never needed.  ``/shared/admin`` on the server is read-only (§3.2.1.1).  A change reaches
other sessions as the unsolicited ``* METADATA`` of NOTIFY MailboxMetadataChange /
ServerMetadataChange (RFC 5465 §5.6, §5.7).  Imports no twisted.internet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generator

from dualmail.imap.errors import ImapNo
from dualmail.imap.ops import names
from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r
from dualmail.store import metadata as md

if TYPE_CHECKING:
    from dualmail.imap.session import Session

Gen = Generator[Any, None, "r.Tagged | None"]

READ_ONLY = ("/shared/admin",)


def _mailbox(s: Session, view: Any, raw: str) -> tuple[int, str]:
    """(mailbox number, name as sent back): 0 and "" for the server."""
    if raw == "":
        return md.SERVER, ""
    name = names.decode(s.utf8, raw)
    return names.require(view, name), name


def getmetadata(s: Session, cmd: c.GetMetadata) -> Gen:
    assert s.account is not None
    found: dict[str, bytes] = {}
    with s.store.read(s.account) as view:
        m, name = _mailbox(s, view, cmd.mailbox)
        for entry in cmd.entries:
            value = md.get(view.kv, s.account, m, entry)
            if value is not None:
                found[entry] = value
            if cmd.depth != 0:
                found.update(md.below(view.kv, s.account, m, entry, cmd.depth))
    longest = 0
    items: list[Any] = []
    for entry in sorted(found):
        value = found[entry]
        if cmd.maxsize is not None and len(value) > cmd.maxsize:
            longest = max(longest, len(value))  # §4.2.1: the biggest one left out
            continue
        items += [r.Raw(r.astring(entry)), r.Raw(_value(value, s.utf8))]
    if items:
        yield r.Data((r.Atom("METADATA"), r.Raw(r.mailbox(name, utf8=s.utf8) if name else b'""'),
                      items))
    code = r.code("METADATA", r.Atom("LONGENTRIES"), longest) if longest else None
    return r.Tagged(cmd.tag, "OK", "GETMETADATA completed", code)


def _value(data: bytes, utf8: bool) -> bytes:
    """A value as a string, or a literal8 when it holds NUL (RFC 5464 §5 ``value``)."""
    if b"\x00" in data:
        return r.literal(data, binary=True)
    return r.string(data, utf8=utf8)


def setmetadata(s: Session, cmd: c.SetMetadata) -> Gen:
    assert s.account is not None
    with s.store.read(s.account) as view:
        m, _name = _mailbox(s, view, cmd.mailbox)
    cfg = s.config
    try:
        s.store.write_metadata(s.account, m, list(cmd.entries),
                               max_entries=cfg.metadata_max_entries,
                               max_size=cfg.metadata_max_size,
                               readonly=READ_ONLY if m == md.SERVER else ())
    except md.TooBigError as e:
        raise ImapNo(e.message, r.code("METADATA", r.Atom("MAXSIZE"), e.maxsize)) from None
    except md.TooManyError as e:
        raise ImapNo(e.message, r.code("METADATA", r.Atom("TOOMANY"))) from None
    except md.ReadOnlyError as e:
        raise ImapNo(e.message, "CANNOT") from None
    return r.Tagged(cmd.tag, "OK", "SETMETADATA completed")
    yield  # pragma: no cover
