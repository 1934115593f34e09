"""STORE and UID STORE (RFC 9051 §6.4.6): +FLAGS, -FLAGS, FLAGS and their .SILENT forms.

One write for the whole set; the FETCH responses carry the flags after the change (and
the UID, so UID STORE answers are unambiguous).  Messages expunged elsewhere but not yet
reported are skipped and the STORE still succeeds (RFC 2180 §4.2.1).  Keywords are shared by every membership
of an Email, ``\\Deleted`` is per membership (CONTRACT §2).

CONDSTORE (RFC 7162 §3.1.3): UNCHANGEDSINCE enables CONDSTORE and fails the messages whose
MODSEQ is above it (always, for 0): they are left alone and listed in ``[MODIFIED set]``
(sequence numbers for STORE, UIDs for UID STORE) on an OK, or on the NO when some of the
messages were also expunged (Example 11).  Each failed message gets an unsolicited FETCH of
its current FLAGS and MODSEQ (the RECOMMENDED behaviour of Examples 10); each passing one a
FETCH with MODSEQ even with .SILENT -- also when the store changed nothing, and then with
its unchanged MODSEQ (§3.1.11: setting a set flag does not move the modseq).  Once
CONDSTORE is on, a .SILENT STORE still reports UID and MODSEQ of what it changed.
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
    conditional = cmd.unchanged_since is not None
    if conditional:
        yield from s.enable_condstore()
    mode = _MODES[cmd.action]
    mailbox, gone, since = sel.mailbox, frozenset(sel.gone), cmd.unchanged_since

    def write(tx: Any) -> tuple[Any, ...]:
        """The one write; touches only ``tx`` (it may run again in a group commit)."""
        before = int(tx.require_mailbox(mailbox)["hms"])
        done: list[tuple[int, int, dict[str, Any], bool]] = []
        failed: list[tuple[int, int, dict[str, Any]]] = []
        modified: list[int] = []
        missing = False
        for seq, uid in msgs:
            if uid in gone:
                missing = True
                continue
            e = tx.email_at(mailbox, uid)
            if e is None:
                missing = True
                continue
            if since is not None:
                rec = tx.require_email(e)
                if membership_modseq(rec, mailbox) > since:
                    modified.append(uid if cmd.uid else seq)
                    failed.append((seq, uid, rec))
                    continue
            changed = apply_flags(tx, mailbox, e, mode, cmd.flags)
            done.append((seq, uid, e, changed))
        after = [(seq, uid, tx.require_email(e), changed) for seq, uid, e, changed in done]
        return (before, after, failed, modified, missing, tx.keyword_spellings(),
                tx.modseq if tx.changed else None)

    before, done, failed, modified, missing, spellings, modseq = \
        yield from s.write_long(cmd.tag, len(msgs), write)
    if sel.spell is not None:
        sel.spell.update(spellings)  # spellings first used by this STORE
    out: list[r.Response] = []
    for seq, uid, rec, changed in done:
        if not cmd.silent:
            out.extend(sel.fetch(seq, sel.flag_items(rec, uid, s.rev2), uid))
        elif conditional or (s.condstore and changed):
            out.extend(sel.fetch(seq, [("UID", r.number(uid)),
                                       ("MODSEQ", _modseq(rec, sel.mailbox))], uid))
        else:
            continue
        if not cmd.silent:
            sel.pending_flags.discard(uid)
    for seq, uid, rec in failed:
        out.extend(sel.fetch(seq, sel.flag_items(rec, uid, s.rev2), uid))
        sel.pending_flags.discard(uid)
    if s.wrote_alone:
        sel.own_write(before, modseq)
    sel.touch(uid for _seq, uid, _rec, changed in done if changed)
    yield from out
    if modified and missing:
        return r.Tagged(cmd.tag, "NO", "Some of the messages no longer exist; "
                        "conditional STORE failed for others", r.code_modified(modified))
    if modified:
        return r.Tagged(cmd.tag, "OK", "Conditional STORE failed for some messages",
                        r.code_modified(modified))
    # RFC 2180 §4.2.1: a STORE on messages expunged elsewhere (not yet reported) is
    # ignored for them and succeeds for the rest
    return r.Tagged(cmd.tag, "OK", "STORE completed")


def _modseq(rec: dict[str, Any], mailbox: int) -> bytes:
    return b"(" + r.number(membership_modseq(rec, mailbox)) + b")"
