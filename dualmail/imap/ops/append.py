"""APPEND (RFC 9051 §6.3.12) with APPENDUID (RFC 4315), APPENDLIMIT (RFC 7889), literal8
(RFC 3516) and UTF8 (RFC 6855).

The message is parsed before the write; the write is one transaction.  A literal over
APPENDLIMIT never gets its "+" (the session refuses it with NO [TOOBIG]).
Imports no twisted.internet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generator

from dualmail.imap.errors import ImapNo
from dualmail.imap.ops import names
from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r
from dualmail.mail.ops import prepare, store_prepared
from dualmail.mime import imap_body, summarize

from dualmail.imap.session import Offload

if TYPE_CHECKING:
    from dualmail.imap.session import Session

Gen = Generator[Any, None, "r.Tagged | None"]


def append(s: Session, cmd: c.Append) -> Gen:
    assert s.account is not None
    if len(cmd.message) > s.config.appendlimit:
        raise ImapNo("Message exceeds APPENDLIMIT", "TOOBIG")
    if not cmd.message:
        raise ImapNo("Empty message", "CANNOT")
    if cmd.utf8 and not s.utf8:
        return r.Tagged(cmd.tag, "BAD", "UTF8 APPEND needs ENABLE UTF8=ACCEPT")
    name = names.decode(s.utf8, cmd.mailbox)
    with s.store.read(s.account) as view:
        m = names.find(view, name)
    if m is None:
        raise ImapNo("No such mailbox", "TRYCREATE")
    received = int(cmd.date_time.timestamp()) if cmd.date_time is not None else int(s.now())
    flags = [f for f in cmd.flags if f.lower() != "\\recent"]
    message = cmd.message
    if b"\x00" in message:
        # RFC 3516 §4.4: store NUL-bearing binary parts base64-encoded so that
        # BODY[...] can be sent at all (no NUL in a <literal>).
        message = imap_body.nul_parts_to_base64(message, summarize(message)["structure"])
    prepared = prepare(message, flags, received)

    def write(tx: Any) -> tuple[int, int]:
        if tx.mailbox(m) is None:
            raise ImapNo("No such mailbox", "TRYCREATE")
        _e, uids = store_prepared(tx, prepared, [m])
        return int(tx.require_mailbox(m)["uidvalidity"]), uids[m]

    # group commit: concurrent APPENDs (of every connection and account) share one synced
    # transaction, committed on a worker thread; the tagged OK waits for it to be durable
    account = s.account
    job = Offload(lambda: s.store.write_grouped(account, write))
    yield job
    try:
        uidvalidity, uid = job.result()
    finally:
        s.store.poll_external()  # publish the commit here, on the session's thread
    return r.Tagged(cmd.tag, "OK", "APPEND completed", r.code_appenduid(uidvalidity, [uid]))
