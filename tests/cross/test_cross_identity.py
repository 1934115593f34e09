"""Cross-protocol identity on the real service: an IMAP APPEND is a JMAP Email, and the
OBJECTID items (RFC 8474) name the very same JMAP objects (CONTRACT §1, §2, §4)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
import pytest_twisted

from tests.cross.cross_util import in_thread, message, one, running

pytestmark = pytest.mark.e2e


@pytest_twisted.ensureDeferred
async def test_imap_append_is_jmap_email_with_same_ids(tmp_path):
    """IMAP APPEND (RFC 9051 §6.3.12, UIDPLUS APPENDUID RFC 4315) creates an Email that
    JMAP sees in Email/query (filter inMailbox, sort receivedAt descending, RFC 8621 §4.4)
    and in Email/changes since the state before (RFC 8620 §5.2) as created.

    The ids agree (CONTRACT §1, RFC 8474): FETCH EMAILID == JMAP Email id, FETCH THREADID
    == JMAP threadId, STATUS (MAILBOXID) and LIST RETURN (STATUS (MAILBOXID)) (RFC 8474
    §4.3, RFC 5819) == JMAP Mailbox id, and SELECT's [MAILBOXID] (RFC 8474 §4.2) too."""
    async with running(tmp_path) as srv:
        jmap = srv.jmap
        inbox = (await jmap.mailboxes())["INBOX"]
        before = await jmap.state("Email")

        def imap_side():
            c = srv.imap()
            try:
                caps = set(c.capabilities())
                older = c.append("INBOX", message("older"),
                                 msg_time=datetime(2020, 1, 1, tzinfo=timezone.utc))
                newer = c.append("INBOX", message("newer"),
                                 msg_time=datetime(2021, 1, 1, tzinfo=timezone.utc))
                uids = [int(re.search(rb"APPENDUID \d+ (\d+)", r).group(1)) for r in (older, newer)]
                status = c.folder_status("INBOX", ["MESSAGES", "MAILBOXID"])
                listed = c._imap._simple_command("LIST", '"" "INBOX" RETURN (STATUS (MAILBOXID))')
                list_status = c._imap.untagged_responses.pop("STATUS", [])
                select = c.select_folder("INBOX")
                fetched = c.fetch(uids, ["EMAILID", "THREADID"])
                return caps, uids, status, (listed[0], list_status), select, fetched
            finally:
                c.logout()

        caps, uids, status, (list_typ, list_status), select, fetched = await in_thread(imap_side)

        query = await jmap.call("Email/query", {"filter": {"inMailbox": inbox["id"]},
                                                "sort": [{"property": "receivedAt", "isAscending": False}]})
        got = await jmap.call("Email/get", {"ids": query["ids"], "properties": ["threadId", "subject", "mailboxIds"]})
        by_subject = {e["subject"]: e for e in got["list"]}
        changes = await jmap.call("Email/changes", {"sinceState": before})

        # Email/query: both, newest receivedAt first
        assert [by_subject["newer"]["id"], by_subject["older"]["id"]] == query["ids"]
        assert changes["oldState"] == before
        assert sorted(changes["created"]) == sorted(query["ids"])
        assert changes["updated"] == [] and changes["destroyed"] == []
        assert changes["newState"] == await jmap.state("Email")

        # the OBJECTID bridge: FETCH EMAILID / THREADID answer the JMAP ids
        for uid, subject in zip(uids, ("older", "newer")):
            email = by_subject[subject]
            assert one(fetched[uid][b"EMAILID"]) == email["id"]
            assert one(fetched[uid][b"THREADID"]) == email["threadId"]
            assert email["mailboxIds"] == {inbox["id"]: True}

        assert one(status[b"MAILBOXID"]) == inbox["id"], status
        assert status[b"MESSAGES"] == 2
        assert list_typ == "OK"
        assert [s for s in list_status if inbox["id"].encode() in s], list_status
        assert one(select[b"MAILBOXID"]) == inbox["id"], select

        # capability advertisement (RFC 8474 §3): checked last, so a missing one does
        # not hide the items above
        assert b"OBJECTID" in caps, "OBJECTID items answer, but CAPABILITY does not advertise OBJECTID"
