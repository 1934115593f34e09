"""Cross-protocol keywords and the one modification sequence on the real service:
a JMAP keyword change is an IMAP FLAGS change carrying the JMAP state as MODSEQ, and an
IMAP STORE is pushed to JMAP EventSource with the MODSEQ as Email state
(CONTRACT §2, §4, §5)."""

from __future__ import annotations

import pytest
import pytest_twisted
from imapclient.response_parser import parse_fetch_response

from tests.cross.cross_util import close, idle_until, in_thread, message, one, running

pytestmark = pytest.mark.e2e


def _flags(flags) -> set[bytes]:
    return {f.lower() for f in flags} - {b"\\recent"}


@pytest_twisted.ensureDeferred
async def test_jmap_seen_is_imap_flag_with_modseq_equal_to_email_state(tmp_path):
    """JMAP Email/set ``keywords/$seen: true`` (RFC 8621 §4.6, patch per RFC 8620 §5.3)
    is the IMAP flag ``\\Seen`` (CONTRACT §2). An IMAP session in IDLE (RFC 2177) with
    CONDSTORE enabled gets the untagged FETCH at once (CONTRACT §5), carrying MODSEQ (RFC
    7162 §3.1: also for changes by an external agent). That MODSEQ, a later FETCH MODSEQ
    (RFC 7162 §3.1.4) and STATUS HIGHESTMODSEQ (RFC 7162 §3.1.7) all equal the new JMAP
    Email state read as a decimal number (CONTRACT §4), and so does the Mailbox state: INBOX's
    unreadEmails changed in that transaction (CONTRACT §4, RFC 8621 §2)."""
    async with running(tmp_path) as srv:
        jmap = srv.jmap

        def setup():
            c = srv.imap()
            c.append("INBOX", message("read me"))
            c.append("INBOX", message("not me"))
            c.enable("CONDSTORE")
            c.select_folder("INBOX")
            ids = c.fetch([1], ["EMAILID"])
            c.idle()
            return c, one(ids[1][b"EMAILID"])

        c, email_id = await in_thread(setup)
        inbox = (await jmap.mailboxes())["INBOX"]
        mailbox_before = await jmap.state("Mailbox")
        try:
            result = await jmap.call("Email/set", {"update": {email_id: {"keywords/$seen": True}}})
            assert email_id in result["updated"], result
            state = result["newState"]
            assert state == await jmap.state("Email")
            assert state.isdigit(), state

            def imap_side():
                seen = idle_until(c, lambda got: any(r[1:2] == (b"FETCH",) for r in got))
                c.idle_done()
                fetched = c.fetch([1, 2], ["FLAGS", "MODSEQ"])
                other = srv.imap()
                try:
                    status = other.folder_status("INBOX", ["HIGHESTMODSEQ"])
                finally:
                    other.logout()
                return seen, fetched, status

            seen, fetched, status = await in_thread(imap_side)
        finally:
            await in_thread(close, c)

        [(seq, _, items)] = [r for r in seen if r[1:2] == (b"FETCH",)]
        pushed = dict(zip(items[::2], items[1::2]))
        assert seq == 1
        assert b"\\seen" in _flags(pushed[b"FLAGS"]), pushed
        assert pushed[b"MODSEQ"] == (int(state),), pushed
        assert b"\\seen" in _flags(fetched[1][b"FLAGS"])
        assert b"\\seen" not in _flags(fetched[2][b"FLAGS"])
        assert fetched[1][b"MODSEQ"] == (int(state),)
        assert fetched[2][b"MODSEQ"][0] < int(state)
        assert status[b"HIGHESTMODSEQ"] == int(state)
        # INBOX's unreadEmails changed in the same transaction: a Mailbox change too (§4)
        changes = await jmap.call("Mailbox/changes", {"sinceState": mailbox_before})
        assert changes["updated"] == [inbox["id"]] and changes["newState"] == state, changes
        assert (await jmap.mailboxes())["INBOX"]["unreadEmails"] == inbox["unreadEmails"] - 1


@pytest_twisted.ensureDeferred
async def test_imap_store_pushes_state_change_with_the_modseq(tmp_path):
    """IMAP ``UID STORE +FLAGS (\\Flagged)`` with CONDSTORE on (RFC 7162 §3.1.3: the
    untagged FETCH carries MODSEQ) makes the JMAP EventSource (RFC 8620 §7.3), opened
    before the STORE, deliver a StateChange whose Email state is that MODSEQ, in decimal
    (CONTRACT §4, §5: one change stream, whichever protocol wrote). The Email then has
    ``$flagged`` (CONTRACT §2)."""
    async with running(tmp_path) as srv:
        jmap = srv.jmap

        def setup():
            c = srv.imap()
            c.append("INBOX", message("flag me"))
            c.enable("CONDSTORE")
            c.select_folder("INBOX")
            return c, one(c.fetch([1], ["EMAILID"])[1][b"EMAILID"])

        c, email_id = await in_thread(setup)
        events = await jmap.events()
        try:
            before = await jmap.state("Email")
            typ, data = await in_thread(c._imap.uid, "STORE", "1", "+FLAGS", r"(\Flagged)")
            assert typ == "OK", data
            [(uid, items)] = parse_fetch_response([d for d in data if d], uid_is_key=True).items()
            assert uid == 1 and b"\\flagged" in _flags(items[b"FLAGS"]), items
            [modseq] = items[b"MODSEQ"]
            assert modseq > int(before)

            _, change = await events.wait_for(
                lambda e: e[0] == "state" and "Email" in e[1]["changed"].get(jmap.account, {}))
            assert change["@type"] == "StateChange"
            assert change["changed"][jmap.account]["Email"] == str(modseq), change
        finally:
            events.close()
            await in_thread(close, c)

        got = await jmap.call("Email/get", {"ids": [email_id], "properties": ["keywords"]})
        assert got["list"][0]["keywords"] == {"$flagged": True}
        assert got["state"] == str(modseq)
