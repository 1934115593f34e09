"""End to end: UIDONLY (RFC 9586) through the real listener with imaplib, with a second
connection making the changes the UIDONLY session is told of as UIDFETCH and VANISHED."""

from __future__ import annotations

import imaplib

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from imap_util import message
from imap_e2e import logged_in_pair, running

pytestmark = pytest.mark.e2e


def _session(port: int) -> None:
    a, b = logged_in_pair(port)
    try:
        assert b"UIDONLY" in a.capability()[1][0].split()
        for i in range(1, 5):
            assert b.append("INBOX", None, None, message(f"s{i}"))[0] == "OK"
        b.select("INBOX")
        b.store("1", "+FLAGS.SILENT", "(\\Deleted)")
        b.expunge()  # UIDs 2..4 are now sequence numbers 1..3
        imaplib.Commands.setdefault("ENABLE", ("AUTH",))
        assert a._simple_command("ENABLE", "UIDONLY")[0] == "OK"
        assert a.untagged_responses.pop("ENABLED") == [b"UIDONLY"]
        assert a.select("INBOX")[0] == "OK"
        assert "UNSEEN" not in a.untagged_responses
        with pytest.raises(imaplib.IMAP4.error, match=r"BAD \[b'\[UIDREQUIRED\]"):
            a.fetch("1", "(FLAGS)")
        typ, _ = a.uid("FETCH", "2:*", "(FLAGS RFC822.SIZE)")
        assert typ == "OK"
        got = a.untagged_responses.pop("UIDFETCH")
        assert [g.split(b" ", 1)[0] for g in got] == [b"2", b"3", b"4"], got
        assert b"UID " not in b" ".join(got)
        assert b.store("3", "+FLAGS", "(\\Flagged)")[0] == "OK"  # UID 4
        b.store("1", "+FLAGS.SILENT", "(\\Deleted)")  # UID 2
        b.expunge()
        assert a.noop()[0] == "OK"
        assert a.untagged_responses.pop("VANISHED") == [b"2"]
        assert a.untagged_responses.pop("UIDFETCH") == [b"4 (FLAGS (\\Flagged))"]
        assert "EXPUNGE" not in a.untagged_responses and "FETCH" not in a.untagged_responses
        with pytest.raises(imaplib.IMAP4.error, match=r"BAD \[b'\[UIDREQUIRED\]"):
            a.uid("SEARCH", "1:2")
        assert a.uid("SEARCH", "ALL") == ("OK", [b"3 4"])
    finally:
        a.logout()
        b.logout()


@pytest_twisted.ensureDeferred
async def test_uidonly_over_the_listener(tmp_path) -> None:
    async with running(tmp_path) as srv:
        await deferToThread(_session, srv.imap_port)
