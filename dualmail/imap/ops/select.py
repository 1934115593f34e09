"""SELECT / EXAMINE (RFC 9051 §6.3.2, RFC 3501 §6.3.1), CLOSE and UNSELECT (RFC 3691).

SELECT builds the sequence map from the UID index (the one O(mailbox) read a session
makes); everything after that is incremental (``selected.py``).  IMAP4rev1 sessions
claim \\Recent and get RECENT and [UNSEEN n]; IMAP4rev2 sessions get a LIST response
instead (RFC 9051 §6.3.2).  Imports no twisted.internet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generator

from dualmail.imap.ops import names
from dualmail.imap.selected import SelectedMailbox
from dualmail.imap.states import State
from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r

if TYPE_CHECKING:
    from dualmail.imap.session import Session

Gen = Generator[Any, None, "r.Tagged | None"]

SYSTEM_FLAGS = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"]
UNSEEN_SCAN_LIMIT = 5000  # [UNSEEN n] is looked for among this many messages at most


def select(s: Session, cmd: c.Select | c.Examine) -> Gen:
    readonly = isinstance(cmd, c.Examine)
    name = names.decode(s.utf8, cmd.mailbox)
    assert s.account is not None
    # A failed SELECT leaves no mailbox selected (RFC 9051 §6.3.2).
    s.selected = None
    s.state = State.AUTHENTICATED
    recent_from: int | None = None
    with s.store.read(s.account) as view:
        m = names.require(view, name)
        pre = view.require_mailbox(m)
        recent_from = int(pre.get("recent", 1))
        unclaimed = recent_from < int(pre["uidnext"])
    if not s.rev2 and not readonly and unclaimed:
        # \Recent goes to the first session that sees a message (RFC 3501 §2.3.2)
        with s.store.write(s.account) as tx:
            recent_from = int(tx.claim_recent(m))
    if s.rev2:
        recent_from = None
    with s.store.read(s.account) as view:
        rec = view.require_mailbox(m)
        uids = view.uids(m)
        path = names.tree(view)[m][0]
        first_unseen = None
        if not s.rev2 and rec["counts"]["unseen"]:
            first_unseen = _first_unseen(view, m, uids)
    sel = SelectedMailbox(m, path, readonly, int(rec["uidvalidity"]), uids, int(rec["hms"]),
                          recent_from)
    s.selected = sel
    s.state = State.SELECTED
    yield r.flags(SYSTEM_FLAGS)
    yield r.UntaggedStatus("OK", "Flags permitted", r.code_permanentflags(
        [] if readonly else SYSTEM_FLAGS + ["\\*"]))
    yield r.exists(sel.exists)
    if not s.rev2:
        yield r.recent(sel.recent_count())
        if first_unseen is not None:
            yield r.UntaggedStatus("OK", "First unseen", r.code("UNSEEN", first_unseen))
    else:
        yield r.list_response(names.attributes(rec, False)[1:], names.SEP, path, utf8=s.utf8)
    yield r.UntaggedStatus("OK", "UIDs valid", r.code_uidvalidity(sel.uidvalidity))
    yield r.UntaggedStatus("OK", "Predicted next UID", r.code_uidnext(int(rec["uidnext"])))
    mode = "READ-ONLY" if readonly else "READ-WRITE"
    return r.Tagged(cmd.tag, "OK", f"{type(cmd).__name__.upper()} completed", r.code(mode))


def _first_unseen(view: Any, m: int, uids: Any) -> int | None:
    for i, (_u, e) in enumerate(view.uid_items(m)):
        if i >= UNSEEN_SCAN_LIMIT:
            return None
        rec = view.email(e)
        if rec is not None and "$seen" not in rec["kw"]:
            return i + 1
    return None


def close(s: Session, cmd: c.Close) -> Gen:
    sel = s.selected
    assert sel is not None and s.account is not None
    if not sel.readonly:
        # RFC 9051 §6.4.1: expunge silently, no EXPUNGE responses
        with s.store.write(s.account) as tx:
            tx.expunge(sel.mailbox)
    s.selected = None
    s.state = State.AUTHENTICATED
    return r.Tagged(cmd.tag, "OK", "CLOSE completed")
    yield  # pragma: no cover


def unselect(s: Session, cmd: c.Unselect) -> Gen:
    s.selected = None
    s.state = State.AUTHENTICATED
    return r.Tagged(cmd.tag, "OK", "UNSELECT completed")
    yield  # pragma: no cover
