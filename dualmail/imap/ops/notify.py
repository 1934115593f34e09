"""NOTIFY SET / NOTIFY NONE (RFC 5465 §3.1).

SET replaces the registration (``imap/notify.py``) and, with STATUS, reports the watched
mailboxes other than the selected one before the tagged OK; an unsupported event is ``NO
[BADEVENT (supported...)]`` and changes nothing; too many watched mailboxes is ``NO
[NOTIFICATIONOVERFLOW]``.  Like NOOP, a successful SET reports what is pending for the
selected mailbox (the session's command-end updates).  Imports no twisted.internet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generator

from dualmail.imap import notify as nt
from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r

if TYPE_CHECKING:
    from dualmail.imap.session import Session

Gen = Generator[Any, None, "r.Tagged | None"]


def notify(s: Session, cmd: c.Notify) -> Gen:
    if cmd.groups is None:
        s.notify = None
        return r.Tagged(cmd.tag, "OK", "NOTIFY completed")
    bad = nt.unsupported(cmd)
    if bad:
        return r.Tagged(cmd.tag, "NO", f"Unsupported event {bad[0]}",
                        r.code("BADEVENT", [r.Atom(e) for e in nt.SUPPORTED]))
    assert s.account is not None
    state = nt.NotifyState(cmd, s.utf8, s.config.notify_max_pending)
    with s.store.read(s.account) as view:
        out = state.start(view, status=cmd.status,
                          selected=s.selected.mailbox if s.selected is not None else None,
                          utf8=s.utf8, max_mailboxes=s.config.notify_max_mailboxes)
    s.notify = state
    yield from out
    return r.Tagged(cmd.tag, "OK", "NOTIFY completed")
