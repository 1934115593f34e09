"""URLAUTH (RFC 4467): GENURLAUTH, RESETKEY, URLFETCH (with RFC 5524 URLAUTH=BINARY), and
the resolution of IMAP URLs (RFC 5092) that CATENATE (RFC 4469) shares.

Keys: one random 256-bit mailbox access key per mailbox (RFC 4467 §3: "per user per
mailbox"), made by the first GENURLAUTH that needs it, in the store table ``urlauthkey``
(store/keys.py).  Writing a key takes no modseq and logs no change, so neither IMAP
MODSEQs nor JMAP state strings move.  The INTERNAL mechanism's token is the hex
HMAC-SHA-256 of the URL rump under that key (64 hex digits; RFC 4467 §7 asks for at
least 128 bits).  RESETKEY replaces keys, which invalidates every URL made with them.

Access (RFC 4467 §3, ``access``): ``user+NAME`` lets only NAME fetch, ``authuser`` any
authenticated user of this server, ``anonymous`` anyone; ``submit+NAME`` is for the
submission server acting for NAME and is never honoured by IMAP URLFETCH (``fetch_url``
with ``submit=True`` is the in-process entry a BURL implementation would call, see
docs/protocols.md).  A URL that fails any check fetches as NIL: nothing tells the client
which check failed (RFC 4467 §7.3: NIL for a URL that is invalid or not authorized).

Imports no twisted.internet.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Generator

from dualmail.imap.errors import ImapNo
from dualmail.imap.ops import names
from dualmail.imap.ops.fetch import _section_spec  # the one FETCH section -> spec mapping
from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r
from dualmail.imap.wire import urls
from dualmail.mime import imap_body

if TYPE_CHECKING:
    from dualmail.imap.session import Session

Gen = Generator[Any, None, "r.Tagged | None"]

MECHANISMS = ("INTERNAL",)


# -- URL -> bytes (shared with CATENATE) -------------------------------------------------------


def url_owner(store: Any, url: urls.ImapUrl, current: int | None) -> int | None:
    """The account an IMAP URL names: the current one for the absolute-path form, else
    the URL's user (``user`` as a login, or ``user@host``)."""
    if url.user is None:
        return current
    for name in (url.user, f"{url.user}@{url.host}" if url.host and "@" not in url.user else None):
        if name:
            a = store.account_id(name)
            if a is not None:
                return int(a)
    return None


def url_data(view: Any, url: urls.ImapUrl) -> bytes:
    """The octets an IMAP URL names (RFC 5092 §5: the message, its section, its partial
    range), read from ``view`` (of the URL's owner); ``UrlError`` when it names nothing."""
    m, e, rec = _message(view, url)
    raw = view.blob(rec["blob"])
    if raw is None:
        raise urls.UrlError("no such message")
    data = raw
    if url.section is not None:
        summary = view.summary(e) or {}
        try:
            data = imap_body.section_bytes(raw, summary["structure"], _section_spec(url.section))
        except (imap_body.SectionError, KeyError):
            raise urls.UrlError("bad section") from None
        if not data and url.section.part and imap_body.part_node(summary["structure"], url.section.part) is None:
            raise urls.UrlError("no such part")
    if url.partial is not None:
        start, length = url.partial
        data = data[start:] if length is None else data[start:start + length]
    return data


def _message(view: Any, url: urls.ImapUrl) -> tuple[int, int, dict[str, Any]]:
    m = names.find(view, url.mailbox)
    mrec = view.mailbox(m) if m is not None else None
    if m is None or mrec is None:
        raise urls.UrlError("no such mailbox")
    if url.uidvalidity is not None and url.uidvalidity != int(mrec["uidvalidity"]):
        raise urls.UrlError("UIDVALIDITY mismatch")
    e = view.email_at(m, url.uid)
    rec = view.email(e) if e is not None else None
    if e is None or rec is None:
        raise urls.UrlError("no such message")
    return m, e, rec


# -- tokens ---------------------------------------------------------------------------------


def token(key: bytes, rump: str) -> str:
    """The INTERNAL mechanism's token: hex HMAC-SHA-256 of the rump (RFC 4467 §7)."""
    return hmac.new(key, rump.encode("ascii"), hashlib.sha256).hexdigest()


def authorized(store: Any, url: urls.ImapUrl, requester: int | None, *, submit: bool = False,
               now: float | None = None) -> int | None:
    """The owner account if the URLAUTH-authorized ``url`` may be fetched by
    ``requester`` (None: not authenticated), else None (RFC 4467 §3, §7.3)."""
    if not url.absolute or url.access is None or url.token is None or url.mechanism not in MECHANISMS:
        return None
    if url.expire is not None and url.expire.timestamp() <= (now if now is not None else _now()):
        return None
    owner = url_owner(store, url, None)
    if owner is None:
        return None
    access = url.access
    if access == "anonymous":
        pass
    elif access == "authuser":
        if requester is None:
            return None
    elif access.startswith("user+"):
        if submit or requester is None or store.account_id(url.access_user() or "") != requester:
            return None
    elif access.startswith("submit+"):
        if not submit or store.account_id(url.access_user() or "") is None:
            return None
    else:
        return None
    with store.read(owner) as view:
        m = names.find(view, url.mailbox)
        key = view.urlauth_key(m) if m is not None else None
    if key is None or not hmac.compare_digest(token(key, url.rump), url.token):
        return None
    return owner


def fetch_url(store: Any, text: str, requester: int | None, *, submit: bool = False) -> bytes | None:
    """URLFETCH of one URL: its octets, or None (NIL).  ``submit=True`` is the submission
    server's view (BURL, RFC 4468 §3): ``submit+`` access instead of ``user+``."""
    try:
        url = urls.parse(text)
    except urls.UrlError:
        return None
    owner = authorized(store, url, requester, submit=submit)
    if owner is None:
        return None
    try:
        with store.read(owner) as view:
            return url_data(view, url)
    except urls.UrlError:
        return None


def _now() -> float:
    return datetime.now(timezone.utc).timestamp()


# -- commands ---------------------------------------------------------------------------------


def genurlauth(s: Session, cmd: c.GenUrlAuth) -> Gen:
    """RFC 4467 §7.1: every URL must be a rump (``;URLAUTH=access`` and no verifier) of
    a message of the current user; otherwise tagged NO and no GENURLAUTH response."""
    assert s.account is not None
    if len(cmd.urls) > s.config.max_urlfetch_urls:
        raise ImapNo("Too many URLs", "LIMIT")
    checked: list[tuple[urls.ImapUrl, str]] = []
    for text, mech in cmd.urls:
        if mech not in MECHANISMS:
            raise ImapNo(f"Unsupported URLAUTH mechanism {mech}")
        try:
            url = urls.parse(text)
        except urls.UrlError as exc:
            raise ImapNo(f"Invalid URL: {exc}") from None
        if not url.absolute or url.access is None or url.token is not None:
            raise ImapNo("Invalid URL: not a URLAUTH rump")
        if url_owner(s.store, url, s.account) != s.account:
            raise ImapNo("Invalid URL: not a mailbox of the current user")
        if url.access != "anonymous" and url.access != "authuser" and \
                s.store.account_id(url.access_user() or "") is None:
            raise ImapNo("Invalid URL: unknown user in the access identifier")
        checked.append((url, text))
    keys: dict[int, bytes] = {}
    boxes: list[int] = []
    with s.store.read(s.account) as view:
        for url, _text in checked:
            try:
                m, _e, _rec = _message(view, url)
            except urls.UrlError as exc:
                raise ImapNo(f"Invalid URL: {exc}") from None
            boxes.append(m)
            key = view.urlauth_key(m)
            if key is not None:
                keys[m] = key
    missing = sorted(set(boxes) - set(keys))
    if missing:
        with s.store.write(s.account) as tx:  # no modseq: not JMAP-visible
            for m in missing:
                key = tx.urlauth_key(m)
                if key is None:
                    key = os.urandom(32)
                    tx.set_urlauth_key(m, key)
                keys[m] = key
    out: list[r.Value] = [r.Atom("GENURLAUTH")]
    for (url, text), m in zip(checked, boxes):
        out.append(f"{text}:INTERNAL:{token(keys[m], url.rump)}")
    yield r.Data(tuple(out))
    return r.Tagged(cmd.tag, "OK", "GENURLAUTH completed")


def resetkey(s: Session, cmd: c.ResetKey) -> Gen:
    """RFC 4467 §7.2: new keys for one mailbox, or for every mailbox of the user."""
    assert s.account is not None
    for mech in cmd.mechanisms:
        if mech not in MECHANISMS:
            raise ImapNo(f"Unsupported URLAUTH mechanism {mech}")
    with s.store.write(s.account) as tx:  # no modseq: not JMAP-visible
        if cmd.mailbox is None:
            for m in tx.urlauth_mailboxes():
                tx.set_urlauth_key(m, None)
        else:
            m = names.find(tx, names.decode(s.utf8, cmd.mailbox))
            if m is None:
                raise ImapNo("No such mailbox", "NONEXISTENT")
            if tx.urlauth_key(m) is not None:
                tx.set_urlauth_key(m, os.urandom(32))
    return r.Tagged(cmd.tag, "OK", "RESETKEY completed")
    yield  # pragma: no cover


def urlfetch(s: Session, cmd: c.UrlFetch) -> Gen:
    """RFC 4467 §7.3 (one ``* URLFETCH`` response, url and nstring pairs) and RFC 5524 §3
    (``(url params)``: BODYPARTSTRUCTURE and BODY or BINARY, NIL-free metadata list)."""
    if len(cmd.urls) > s.config.max_urlfetch_urls:
        raise ImapNo("Too many URLs", "LIMIT")
    out: list[r.Value] = [r.Atom("URLFETCH")]
    for text, params in cmd.urls:
        out.append(text)
        if params is None:
            data = fetch_url(s.store, text, s.account)
            out.append(r.Literal(data) if data is not None else None)
            continue
        item = _extended(s, text, params)
        out.append(r.Raw(item) if item is not None else None)
    yield r.Data(tuple(out))
    return r.Tagged(cmd.tag, "OK", "URLFETCH completed")


def _extended(s: Session, text: str, params: tuple[str, ...]) -> bytes | None:
    try:
        url = urls.parse(text)
    except urls.UrlError:
        return None
    owner = authorized(s.store, url, s.account)
    if owner is None or url.section is not None and url.section.text is not None:
        return None if owner is None else _extended_plain(s, url, owner, params)
    with s.store.read(owner) as view:
        try:
            _m, e, rec = _message(view, url)
        except urls.UrlError:
            return None
        raw = view.blob(rec["blob"]) or b""
        structure = (view.summary(e) or {}).get("structure")
    if structure is None:
        return None
    path = url.section.part if url.section is not None else ()
    node = imap_body.part_node(structure, path)
    if node is None:
        return None
    items: list[bytes] = []
    if "BODYPARTSTRUCTURE" in params:
        items.append(b"BODYPARTSTRUCTURE " + imap_body.bodystructure_bytes(node, True))
    if "BINARY" in params:
        try:
            data = imap_body.binary_section(raw, structure, list(path))
        except (imap_body.UnknownCTEError, imap_body.SectionError):
            return None
        data = _partial(data, url.partial)
        items.append(b"BINARY " + r.literal(data, binary=b"\x00" in data))
    elif "BODY" in params:
        with s.store.read(owner) as view:
            try:
                data = url_data(view, url)
            except urls.UrlError:
                return None
        items.append(b"BODY " + r.literal(data))
    return b"(" + b" ".join(items) + b")"


def _extended_plain(s: Session, url: urls.ImapUrl, owner: int, params: tuple[str, ...]) -> bytes | None:
    """A URL naming HEADER/TEXT/MIME: BODY only (no structure, no binary form)."""
    if "BODY" not in params:
        return None
    with s.store.read(owner) as view:
        try:
            data = url_data(view, url)
        except urls.UrlError:
            return None
    return b"(BODY " + r.literal(data) + b")"


def _partial(data: bytes, partial: tuple[int, int | None] | None) -> bytes:
    if partial is None:
        return data
    start, length = partial
    return data[start:] if length is None else data[start:start + length]

