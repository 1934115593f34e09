"""COPY / MOVE and their UID forms (RFC 9051 §6.4.7, RFC 6851, COPYUID from RFC 4315).

COPY adds a membership of the same Email (CONTRACT §2); MOVE also removes the source
one, answered with an untagged OK [COPYUID] and then the EXPUNGEs (RFC 6851 §4.3).
A missing target is NO [TRYCREATE]; MOVE into the selected mailbox itself gives each
message a new UID there.  Imports no twisted.internet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generator

from dualmail.imap.errors import ImapNo
from dualmail.imap.ops import names
from dualmail.imap.ops.fetch import resolve
from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r
from dualmail.mail.ops import copy_messages

if TYPE_CHECKING:
    from dualmail.imap.session import Session

Gen = Generator[Any, None, "r.Tagged | None"]


def copy(s: Session, cmd: c.Copy | c.Move) -> Gen:
    sel = s.selected
    assert sel is not None and s.account is not None
    move = isinstance(cmd, c.Move)
    if move and sel.readonly:
        raise ImapNo("Mailbox is read-only", "CANNOT")
    verb = "MOVE" if move else "COPY"
    msgs = resolve(s, cmd.sequence_set, cmd.uid)
    name = names.decode(s.utf8, cmd.mailbox)
    live = [u for _s, u in msgs if u not in sel.gone]
    mailbox = sel.mailbox

    def write(tx: Any) -> tuple[int, int, list[tuple[int, int]], int, int | None]:
        """The one write; touches only ``tx`` (it may run again in a group commit)."""
        dst = names.find(tx, name)
        if dst is None:
            raise ImapNo("No such mailbox", "TRYCREATE")
        before = int(tx.require_mailbox(mailbox)["hms"])
        if move and dst == mailbox:
            # MOVE onto itself (RFC 6851 §3.3): a new message (a new Email, CONTRACT §2)
            # takes the next UID and the original is expunged
            pairs = copy_messages(tx, mailbox, live, dst)
            for src, _new in pairs:
                e = tx.email_at(mailbox, src)
                if e is not None:
                    tx.remove_membership(e, mailbox)
        else:
            pairs = copy_messages(tx, mailbox, live, dst, move=move)
        uidvalidity = int(tx.require_mailbox(dst)["uidvalidity"])
        return dst, before, pairs, uidvalidity, tx.modseq if tx.changed else None

    dst, before, pairs, uidvalidity, modseq = yield from s.write_long(cmd.tag, len(live), write)
    if move:
        sel.expunged([src for src, _dst in pairs])
    if dst != sel.mailbox and s.wrote_alone:
        sel.own_write(before, modseq)
    missing = len(live) < len(msgs) or len(pairs) < len(live)
    code = r.code_copyuid(uidvalidity, [p[0] for p in pairs], [p[1] for p in pairs]) if pairs else None
    if move:
        if code is not None:
            yield r.UntaggedStatus("OK", "Moved", code)
        code = None
    if missing and not pairs:
        return r.Tagged(cmd.tag, "NO", "The messages no longer exist", r.code("EXPUNGEISSUED"))
    return r.Tagged(cmd.tag, "OK", f"{verb} completed", code)
