"""APPEND (RFC 9051 §6.3.12) with APPENDUID (RFC 4315), APPENDLIMIT (RFC 7889), literal8
(RFC 3516), UTF8 (RFC 6855), MULTIAPPEND (RFC 3502), CATENATE (RFC 4469), and REPLACE
(RFC 8508), which is an APPEND plus the expunge of one message.

Every message is built and parsed before the write; the write is one transaction for the
whole command, so a MULTIAPPEND is all or nothing and takes one modseq (RFC 3502 §6.3.11:
"If the server returns NO ... none of the messages are appended").  A literal over
APPENDLIMIT never gets its "+" (the session refuses it with NO [TOOBIG]); a CATENATE
result over it is NO [TOOBIG] too (RFC 4469 §5).  A CATENATE URL that names nothing this
user may read is NO [BADURL url] (RFC 4469 §3, §5), checked after the mailbox
(NO [TRYCREATE] first).  Imports no twisted.internet.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Generator, Sequence

from dualmail.imap.errors import ImapBad, ImapNo
from dualmail.imap.ops import names, urlauth
from dualmail.imap.ops.fetch import resolve
from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r
from dualmail.imap.wire import urls
from dualmail.imap.wire.sequence import SequenceSet
from dualmail.mail.ops import Prepared, prepare, prepare_parsed_many, stage, store_prepared
from dualmail.mime import imap_body, summarize

from dualmail.imap.session import Offload

if TYPE_CHECKING:
    from dualmail.imap.session import Session

Gen = Generator[Any, None, "r.Tagged | None"]


def append(s: Session, cmd: c.Append) -> Gen:
    assert s.account is not None
    msgs = cmd.messages()
    if len(msgs) > s.config.max_append_messages:
        raise ImapNo(f"At most {s.config.max_append_messages} messages per APPEND", "LIMIT")
    for msg in msgs:
        _check(s, msg)
    name = names.decode(s.utf8, cmd.mailbox)
    with s.store.read(s.account) as view:
        m = names.find(view, name)
    if m is None:
        raise ImapNo("No such mailbox", "TRYCREATE")
    # built here (CATENATE reads the store); parsed on the worker thread below
    messages = [_message(s, msg) for msg in msgs]
    prepared: list[Prepared] = []

    def write(tx: Any) -> tuple[int, list[int]]:
        if tx.mailbox(m) is None:
            raise ImapNo("No such mailbox", "TRYCREATE")
        uids = store_all(tx, prepared, m)  # a MULTIAPPEND is one unit, whole or not at all
        return int(tx.require_mailbox(m)["uidvalidity"]), uids

    # group commit: concurrent APPENDs (of every connection and account) share one synced
    # transaction, committed on a worker thread; the tagged OK waits for it to be durable
    account = s.account

    def run() -> tuple[int, list[int]]:
        # parsed (in the parser processes, see mail.parsers), hashed and (S3 blobs) uploaded
        # here, on the worker thread, outside the write lock
        with s.store.parsers.job() if s.store.parsers is not None else nullcontext():
            items = [(_nul_safe(raw), flags, received) for raw, flags, received in messages]
            prepared[:] = [stage(s.store, account, p) for p in prepare_parsed_many(s.store, items)]
            return s.store.write_grouped(account, write)

    job = Offload(run)
    yield job
    try:
        uidvalidity, uids = job.result()
    finally:
        s.store.poll_external()  # publish the commit here, on the session's thread
    return r.Tagged(cmd.tag, "OK", "APPEND completed", r.code_appenduid(uidvalidity, uids))


def replace(s: Session, cmd: c.Replace) -> Gen:
    """RFC 8508 §3.4: append to ``cmd.mailbox`` and expunge the message from the selected
    mailbox in one transaction; APPENDUID goes in an untagged OK before the EXPUNGE
    (§4.3), and nothing changes if any part fails (§3.4)."""
    sel = s.selected
    assert sel is not None and s.account is not None
    if sel.readonly:
        raise ImapNo("Mailbox is read-only", "CANNOT")
    target = resolve(s, SequenceSet.parse(str(cmd.number)), cmd.uid)
    _check(s, cmd.message)
    name = names.decode(s.utf8, cmd.mailbox)
    with s.store.read(s.account) as view:
        dst = names.find(view, name)
    if dst is None:
        raise ImapNo("No such mailbox", "TRYCREATE")
    if not target or target[0][1] in sel.gone:
        raise ImapNo("The message to replace no longer exists", "EXPUNGEISSUED")
    old_uid = target[0][1]
    prepared = _prepare(s, cmd.message)
    with s.store.write(s.account) as tx:
        if tx.mailbox(dst) is None:
            raise ImapNo("No such mailbox", "TRYCREATE")
        e = tx.email_at(sel.mailbox, old_uid)
        if e is None:
            raise ImapNo("The message to replace no longer exists", "EXPUNGEISSUED")
        before = int(tx.require_mailbox(sel.mailbox)["hms"])
        # as UID EXPUNGE of that one (§4.5); first, so the quota sees only the net
        # consumption (§3.4: "evaluated within the context of the pending EXPUNGE")
        tx.remove_membership(e, sel.mailbox)
        uids = store_all(tx, [prepared], dst)
        uidvalidity = int(tx.require_mailbox(dst)["uidvalidity"])
        modseq = tx.modseq
    sel.expunged([old_uid])
    if dst != sel.mailbox:
        sel.own_write(before, modseq)
    if s.qresync:  # §4.5: as UID EXPUNGE, so OK [HIGHESTMODSEQ] (RFC 7162 §3.2.10)
        s.hms_on_tagged = True
    yield r.UntaggedStatus("OK", "Replacement message ready", r.code_appenduid(uidvalidity, uids))
    return r.Tagged(cmd.tag, "OK", "REPLACE completed")


def store_all(tx: Any, prepared: Sequence[Prepared], mailbox: int) -> list[int]:
    """Store the prepared messages into ``mailbox`` in the caller's one transaction; the
    UIDs in order."""
    out: list[int] = []
    for p in prepared:
        _e, uids = store_prepared(tx, p, [mailbox])
        out.append(uids[mailbox])
    return out


def _check(s: Session, msg: c.AppendMessage) -> None:
    """What can be refused before the mailbox is looked up."""
    if msg.catenate is None:
        if len(msg.message) > s.config.appendlimit:
            raise ImapNo("Message exceeds APPENDLIMIT", "TOOBIG")
        if not msg.message:
            raise ImapNo("Empty message", "CANNOT")
    elif len(msg.catenate) > s.config.max_catenate_parts:
        raise ImapNo(f"At most {s.config.max_catenate_parts} CATENATE parts", "LIMIT")
    if msg.utf8 and not s.utf8:
        raise ImapBad("UTF8 APPEND needs ENABLE UTF8=ACCEPT")


def _message(s: Session, msg: c.AppendMessage) -> tuple[bytes, list[str], int]:
    """The message's bytes (a CATENATE result built), flags and internal date."""
    message = msg.message if msg.catenate is None else catenate(s, msg.catenate)
    received = int(msg.date_time.timestamp()) if msg.date_time is not None else int(s.now())
    flags = [f for f in msg.flags if f.lower() != "\\recent"]
    return message, flags, received


def _nul_safe(message: bytes) -> bytes:
    if b"\x00" in message:
        # RFC 3516 §4.4: store NUL-bearing binary parts base64-encoded so that
        # BODY[...] can be sent at all (no NUL in a <literal>).
        return imap_body.nul_parts_to_base64(message, summarize(message)["structure"])
    return message


def _prepare(s: Session, msg: c.AppendMessage) -> Prepared:
    """REPLACE's message, parsed here: its write runs on the session's thread."""
    message, flags, received = _message(s, msg)
    return prepare(_nul_safe(message), flags, received)


def catenate(s: Session, parts: Sequence[c.CatPart]) -> bytes:
    """The message a CATENATE list builds (RFC 4469 §3): TEXT octets as sent, URL parts
    read from this account's store (or, URLAUTH-authorized, another's)."""
    out = bytearray()
    for part in parts:
        if part.text is not None:
            out += part.text
        else:
            assert part.url is not None
            out += _url_part(s, part.url)
        if len(out) > s.config.appendlimit:
            raise ImapNo("Message exceeds APPENDLIMIT", "TOOBIG")
    if not out:
        raise ImapNo("Empty message", "CANNOT")
    return bytes(out)


def _url_part(s: Session, text: str) -> bytes:
    try:
        url = urls.parse(text)
        if url.token is not None:
            owner = urlauth.authorized(s.store, url, s.account)
        elif url.access is not None:
            owner = None  # a rump: the authorization is missing
        else:
            owner = urlauth.url_owner(s.store, url, s.account)
            if owner != s.account:
                owner = None  # another user's message needs URLAUTH (RFC 4469 §3)
        if owner is None:
            raise urls.UrlError("not authorized")
        with s.store.read(owner) as view:
            return urlauth.url_data(view, url)
    except urls.UrlError:
        raise ImapNo("Bad URL", badurl(text)) from None


def badurl(text: str) -> r.ResponseCode:
    """``[BADURL url-resp-text]`` (RFC 4469 §5): the URL as sent, when it fits the
    grammar (no "]", CR, LF, non-ASCII)."""
    if text.isascii() and text.isprintable() and "]" not in text:
        return r.code("BADURL", r.Raw(text.encode("ascii")))
    return r.code("BADURL")
