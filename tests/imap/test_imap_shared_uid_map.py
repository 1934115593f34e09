"""Selected sessions of one large mailbox share its UID list (``Store.uid_maps``) until
they change it (copy on write): memory per idle selected connection does not carry a
private 4-bytes-per-message copy (issue 12), and each session's sequence numbers stay its
own (RFC 9051 §2.3.1.2: they change only by the EXISTS/EXPUNGE it was sent)."""

from __future__ import annotations

from typing import Any

from dualmail.mail.ops import prepare, store_prepared

from imap_util import Client, message


def _fill(store: Any, account: int, n: int) -> None:
    with store.read(account) as v:
        inbox = v.mailbox_by_path(["INBOX"])
    p = prepare(message("bulk"), [], 1_700_000_000)

    def run(tx: Any) -> None:
        for _i in range(n):
            store_prepared(tx, p, [inbox])

    store.transact(account, run)


def test_sessions_share_the_map_until_they_change_it(store: Any, account: int) -> None:
    _fill(store, account, 1200)
    a, b = Client(store), Client(store)
    for c in (a, b):
        c.login()
        c.ok("s1 SELECT INBOX")
    sa, sb = a.session.selected, b.session.selected
    assert sa.uids is sb.uids  # one array for both
    shared = sa.uids
    out = a.ok("x1 APPEND INBOX {4+}\r\nHi\r\n") + a.ok("x2 NOOP")
    assert "* 1201 EXISTS" in out
    assert len(sa.uids) == 1201 and sa.uids is not shared
    assert len(shared) == 1200 and len(sb.uids) == 1200  # the other session's view is untouched
    out = b.ok("y1 NOOP")
    assert "* 1201 EXISTS" in out and len(sb.uids) == 1201
    b.ok("y2 STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    b.ok("y3 EXPUNGE")
    assert len(sb.uids) == 1198 and len(sa.uids) == 1201
    assert "* 3 EXPUNGE" in a.ok("x3 NOOP") and len(sa.uids) == 1198
    c = Client(store)
    c.login()
    c.ok("z1 SELECT INBOX")
    assert list(c.session.selected.uids) == list(sa.uids)
