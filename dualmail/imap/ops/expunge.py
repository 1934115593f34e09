"""EXPUNGE and UID EXPUNGE (RFC 9051 §6.4.3, §6.4.9; RFC 4315).

The write removes the \\Deleted memberships; the EXPUNGE responses come from
``SelectedMailbox`` like everyone else's, so sequence numbers stay right.  With QRESYNC
they are ``VANISHED`` and the tagged OK carries the new ``[HIGHESTMODSEQ]`` (RFC 7162
§3.2.7, §3.2.9).  Imports no twisted.internet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generator

from dualmail.imap.errors import ImapNo
from dualmail.imap.ops.fetch import resolve
from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r

if TYPE_CHECKING:
    from dualmail.imap.session import Session

Gen = Generator[Any, None, "r.Tagged | None"]


def expunge(s: Session, cmd: c.Expunge) -> Gen:
    sel = s.selected
    assert sel is not None and s.account is not None
    if sel.readonly:
        raise ImapNo("Mailbox is read-only", "CANNOT")
    uids = None
    if cmd.uid:
        assert cmd.sequence_set is not None
        uids = [u for _s, u in resolve(s, cmd.sequence_set, True)]
    mailbox = sel.mailbox

    def write(tx: Any) -> tuple[int, list[int], int | None]:
        before = int(tx.require_mailbox(mailbox)["hms"])
        gone = tx.expunge(mailbox, uids)
        return before, gone, tx.modseq if tx.changed else None

    # the work is O(messages expunged); the count of the selected mailbox bounds it
    count = len(uids) if uids is not None else sel.exists
    before, gone, modseq = yield from s.write_long(cmd.tag, count, write)
    sel.expunged(gone)
    if s.wrote_alone:
        sel.own_write(before, modseq)
    if gone and s.qresync:
        s.hms_on_tagged = True
    return r.Tagged(cmd.tag, "OK", "EXPUNGE completed")
