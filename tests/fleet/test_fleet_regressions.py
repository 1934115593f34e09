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
