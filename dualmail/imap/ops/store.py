"""STORE and UID STORE (RFC 9051 §6.4.6): +FLAGS, -FLAGS, FLAGS and their .SILENT forms.

One write for the whole set; the FETCH responses carry the flags after the change (and
the UID, so UID STORE answers are unambiguous).  Keywords are shared by every membership
of an Email, ``\\Deleted`` is per membership (CONTRACT §2).  UNCHANGEDSINCE (RFC 7162
§3.1.3) fails the messages whose MODSEQ is higher, reported as [MODIFIED set].
Imports no twisted.internet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generator

from dualmail.imap.errors import ImapNo
from dualmail.imap.ops.fetch import resolve
from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r
from dualmail.mail.ops import apply_flags, membership_modseq

if TYPE_CHECKING:
    from dualmail.imap.session import Session

Gen = Generator[Any, None, "r.Tagged | None"]
_MODES = {"add": "+", "remove": "-", "set": ""}


def store(s: Session, cmd: c.Store) -> Gen:
    sel = s.selected
    assert sel is not None and s.account is not None
    if sel.readonly:
        raise ImapNo("Mailbox is read-only", "CANNOT")
    msgs = resolve(s, cmd.sequence_set, cmd.uid)
    mode = _MODES[cmd.action]
    out: list[r.Data] = []
    modified: list[int] = []
    missing = False
    with s.store.write(s.account) as tx:
        before = int(tx.require_mailbox(sel.mailbox)["hms"])
        done: list[tuple[int, int, int]] = []
        for seq, uid in msgs:
            if uid in sel.gone:
                missing = True
                continue
            e = tx.email_at(sel.mailbox, uid)
            if e is None:
                missing = True
                continue
            if cmd.unchanged_since is not None:
                rec = tx.require_email(e)
                if membership_modseq(rec, sel.mailbox) > cmd.unchanged_since:
                    modified.append(uid if cmd.uid else seq)
                    continue
            apply_flags(tx, sel.mailbox, e, mode, cmd.flags)
            done.append((seq, uid, e))
        if not cmd.silent:
            for seq, uid, e in done:
                rec = tx.require_email(e)
                items = sel.flag_items(rec, uid, s.rev2)
                out.append(r.fetch(seq, items))
                sel.pending_flags.discard(uid)
        modseq = tx.modseq if tx.changed else None
    sel.own_write(before, modseq)
    yield from out
    if modified:
        return r.Tagged(cmd.tag, "OK", "Conditional STORE failed for some messages",
                        r.code_modified(modified))
    if missing:
        return r.Tagged(cmd.tag, "NO", "Some of the requested messages no longer exist",
                        r.code("EXPUNGEISSUED"))
    return r.Tagged(cmd.tag, "OK", "STORE completed")
