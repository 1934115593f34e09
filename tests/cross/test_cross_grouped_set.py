"""Many JMAP clients' Email/set and Mailbox/set at once, on the real service: the calls
write in the store's group commit (worker threads, transactions shared), and what each
response says still holds for the IMAP side (RFC 8620 §5.3 oldState/newState, CONTRACT
§4: one modseq per account per transaction)."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, gatherResults

from tests.cross.cross_util import close, in_thread, message, one, running

pytestmark = pytest.mark.e2e

N = 12
CORE = "urn:ietf:params:jmap:core"


async def in_waves(jmap, calls: list) -> list:
    """Run the (name, args) calls as concurrent requests, as many at once as the
    session's maxConcurrentRequests allows (RFC 8620 §2: more would get a 429)."""
    width = jmap.session["capabilities"][CORE]["maxConcurrentRequests"]
    out: list = []
    for i in range(0, len(calls), width):
        out += await gatherResults([Deferred.fromCoroutine(jmap.call(name, args))
                                    for name, args in calls[i:i + width]])
    return out


@pytest_twisted.ensureDeferred
async def test_concurrent_email_sets_each_cover_their_own_change(tmp_path):
    """Requests in flight at once, one keyword change each. Every call's change has an
    IMAP MODSEQ in (oldState, newState] of its own response, /changes from the first
    oldState lists all N, and the final state is the IMAP HIGHESTMODSEQ."""
    async with running(tmp_path) as srv:
        jmap = srv.jmap

        def setup():
            c = srv.imap()
            for i in range(N):
                c.append("INBOX", message(f"m{i}", msgid=f"<m{i}@example.org>"))
            c.enable("CONDSTORE")
            c.select_folder("INBOX")
            got = c.fetch(list(range(1, N + 1)), ["EMAILID"])
            return c, {seq: one(v[b"EMAILID"]) for seq, v in got.items()}

        c, ids = await in_thread(setup)
        try:
            start = await jmap.state("Email")
            results = await in_waves(jmap, [("Email/set", {"update": {e: {"keywords/$flagged": True}}})
                                            for e in ids.values()])
            final = await jmap.state("Email")

            def imap_side():
                fetched = c.fetch(list(range(1, N + 1)), ["FLAGS", "MODSEQ"])
                status = c.folder_status("INBOX", ["HIGHESTMODSEQ"])
                return fetched, status[b"HIGHESTMODSEQ"]

            fetched, highest = await in_thread(imap_side)
        finally:
            await in_thread(close, c)

        assert str(highest) == final
        by_email = {ids[seq]: v for seq, v in fetched.items()}
        for result in results:
            [e] = result["updated"]
            [modseq] = by_email[e][b"MODSEQ"]
            assert b"\\Flagged" in by_email[e][b"FLAGS"]
            assert int(result["oldState"]) < modseq <= int(result["newState"]) <= int(final), result
        changes = await jmap.call("Email/changes", {"sinceState": start})
        assert sorted(changes["updated"]) == sorted(ids.values())
        assert changes["newState"] == final and not changes["hasMoreChanges"]


@pytest_twisted.ensureDeferred
async def test_concurrent_mailbox_creates_all_land(tmp_path):
    """Mailbox/set creates in flight at once (different names): every one is created once, IMAP
    LIST shows them, and a duplicate name sent at the same time is refused alone."""
    async with running(tmp_path) as srv:
        jmap = srv.jmap
        calls = [("Mailbox/set", {"create": {"k": {"name": f"Box {i}"}}}) for i in range(N)]
        calls.insert(1, ("Mailbox/set", {"create": {"k": {"name": "Box 0"}}}))  # beside the first
        results = await in_waves(jmap, calls)
        created = [r["created"]["k"]["id"] for r in results if r.get("created")]
        refused = [r["notCreated"]["k"] for r in results if r.get("notCreated")]
        assert len(created) == N and len(set(created)) == N
        assert [e["type"] for e in refused] == ["alreadyExists"]  # RFC 8620 §5.3

        def listing():
            c = srv.imap()
            try:
                return sorted(name for _f, _d, name in c.list_folders() if name.startswith("Box "))
            finally:
                close(c)

        assert await in_thread(listing) == sorted(f"Box {i}" for i in range(N))
        names = await jmap.mailboxes()
        assert sorted(n for n in names if n.startswith("Box ")) == sorted(f"Box {i}" for i in range(N))
