"""Cases the randomized fleet test found, kept as regression tests (docs/consistency.md)."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.cross.cross_util import in_thread
from tests.fleet.fleet import Fleet, message, uid_fetch
from tests.lmtp.lmtp_util import running

pytestmark = pytest.mark.e2e


@pytest_twisted.ensureDeferred
async def test_keyword_spelling_is_stable_per_session(tmp_path):
    """Seed 14 (80 steps): JMAP set ``$work`` before any IMAP client spelt it; an IDLE
    session shown ``$work`` then keeps that spelling for the rest of its session, while a
    session opened after IMAP STORE ``$Work`` shows the first IMAP spelling. Keywords are
    case-insensitive (RFC 9051 §2.3.2); the two views are the same set."""
    async with running(tmp_path) as srv:
        fleet = Fleet(srv.imap_port, srv.jmap_port, srv.lmtp_port)

        def go() -> None:
            fleet.start()
            try:
                fleet.writer.append("INBOX", message(1, "one"))
                fleet.writer.append("INBOX", message(2, "two"))
                fleet.check()
                _, emails = fleet.jmap.emails()
                first, second = sorted(emails)
                fleet.jmap.call("Email/set", {"update": {first: {"keywords/$work": True}}})
                fleet.check()
                assert fleet.idle_view[1][1] == {"$work"}
                fleet.writer.select_folder("INBOX")
                fleet.writer.add_flags([2], ["$Work"])
                fleet.check()  # passes: compared case-insensitively
                assert fleet.idle_view[2][1] == {"$work"}  # this session's spelling
                fresh = fleet.imap()
                fresh.select_folder("INBOX", readonly=True)
                got = uid_fetch(fresh, "1:*", ["FLAGS"])
                assert {u: set(d[b"FLAGS"]) for u, d in got.items()} == {1: {b"$Work"}, 2: {b"$Work"}}
                fresh.logout()
            finally:
                fleet.close()

        await in_thread(go)


@pytest_twisted.ensureDeferred
async def test_expunging_a_hidden_email_moves_highestmodseq_not_the_email_state(tmp_path):
    """Seed 1 (25 steps): STORE \\Deleted on an Email's only membership hides it from JMAP
    (CONTRACT §2), which is an Email change; the UID EXPUNGE after it changes what IMAP
    sees (HIGHESTMODSEQ moves, RFC 7162 §3.1.7) but no JMAP object, so the Email state
    stays and Email/changes from it is empty."""
    async with running(tmp_path) as srv:
        fleet = Fleet(srv.imap_port, srv.jmap_port, srv.lmtp_port)

        def go() -> None:
            fleet.start()
            try:
                w = fleet.writer
                w.append("Sent", message(1, "one"))
                w.select_folder("Sent")
                w.add_flags([1], ["\\Deleted"])
                fleet.check()
                state = fleet.jmap.call("Email/get", {"ids": []})["state"]
                before = w.folder_status("Sent", ["HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"]
                w.uid_expunge([1])
                after = w.folder_status("Sent", ["HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"]
                assert after > before
                assert fleet.jmap.call("Email/get", {"ids": []})["state"] == state
                ch = fleet.jmap.call("Email/changes", {"sinceState": state})
                assert (ch["created"], ch["updated"], ch["destroyed"]) == ([], [], [])
                w.unselect_folder()
                fleet.check()
            finally:
                fleet.close()

        await in_thread(go)
