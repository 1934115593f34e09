"""End to end: Python's imaplib and imapclient against the real service on loopback."""

from __future__ import annotations

import imaplib
import time

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from imap_util import message
from imap_e2e import PASSWORD, USER, running

pytestmark = pytest.mark.e2e


def _imaplib_session(port: int) -> list[str]:
    notes = []
    M = imaplib.IMAP4("127.0.0.1", port)
    try:
        typ, caps = M.capability()
        assert typ == "OK"
        M.login(USER, PASSWORD)
        assert b"IMAP4rev2" in M.capabilities[0] if isinstance(M.capabilities[0], bytes) else True
        typ, _ = M.create("Work/Projects")
        assert typ == "OK"
        typ, data = M.list()
        names = [d.decode() for d in data]
        assert any('"Work/Projects"' in n or " Work/Projects" in n for n in names), names
        typ, data = M.append("INBOX", "(\\Flagged)", imaplib.Time2Internaldate(time.time()),
                             message("first"))
        assert typ == "OK" and b"APPENDUID" in data[0], data
        M.append("INBOX", None, None, message("second"))
        typ, data = M.select("INBOX")
        assert typ == "OK" and data == [b"2"], data
        typ, data = M.fetch("1:*", "(UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)")
        assert typ == "OK" and len([d for d in data if isinstance(d, bytes)]) == 2, data
        typ, data = M.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"Subject: first" in data[0][1]
        typ, data = M.fetch("2", "(BODY[TEXT])")
        assert data[0][1] == b"Hello world\r\n"
        typ, data = M.fetch("2", "(FLAGS)")
        assert b"\\Seen" in data[0]
        typ, data = M.store("1", "+FLAGS", "(\\Deleted)")
        assert b"\\Deleted" in data[0]
        typ, data = M.copy("2", "Work/Projects")
        assert typ == "OK"
        typ, data = M.status("Work/Projects", "(MESSAGES UIDNEXT UNSEEN)")
        assert b"MESSAGES 1" in data[0], data
        typ, data = M.expunge()
        assert data == [b"1"], data
        typ, data = M.uid("FETCH", "1:*", "(FLAGS)")
        assert typ == "OK"
        typ, data = M.rename("Work/Projects", "Work/Done")
        assert typ == "OK"
        typ, data = M.subscribe("Work/Done")
        assert typ == "OK"
        typ, data = M.lsub()
        assert any(b"Work/Done" in d for d in data), data
        typ, data = M.select("Work/Done")
        assert data == [b"1"]
        typ, data = M.close()
        assert typ == "OK"
        typ, data = M.delete("Work/Done")
        assert typ == "OK"
        typ, data = M.namespace()
        assert typ == "OK"
        typ, data = M.noop()
        assert typ == "OK"
        typ, data = M.select("INBOX", readonly=True)
        assert typ == "OK"
        assert M.check()[0] == "OK"
        typ, data = M.search(None, "ALL")
        assert data == [b"1"], data
        typ, data = M.uid("SEARCH", "UNSEEN")
        assert typ == "OK"
        typ, data = M.sort("(SUBJECT)", "UTF-8", "ALL")
        assert data == [b"1"], data
        typ, data = M.thread("REFERENCES", "UTF-8", "ALL")
        assert data == [b"(1)"], data
        assert M.unselect()[0] == "OK"
        typ, data = M.select("INBOX")
        typ, data = M.uid("MOVE", "1:*", "Trash")
        assert typ == "OK", data
        typ, data = M.xatom("ID", '("name" "imaplib")')
        assert typ == "OK"
        typ, data = M.xatom("GETJMAPACCESS")
        assert typ == "OK" and M.untagged_responses.get("JMAPACCESS"), M.untagged_responses
    finally:
        M.logout()
    M = imaplib.IMAP4("127.0.0.1", port)
    try:
        typ, _ = M.authenticate("PLAIN", lambda _c: f"\0{USER}\0{PASSWORD}".encode())
        assert typ == "OK"
        typ, _ = M.enable("IMAP4rev2")
        assert typ == "OK"
        typ, data = M.select("Trash")
        assert data == [b"1"], data
        typ, data = M.search(None, "ALL")
        assert typ == "OK"  # an ESEARCH answer now: imaplib keeps it as untagged data
        assert M.untagged_responses.get("ESEARCH"), M.untagged_responses
    finally:
        M.logout()
    return notes


@pytest_twisted.ensureDeferred
async def test_imaplib_commands(tmp_path) -> None:
    async with running(tmp_path) as srv:
        await deferToThread(_imaplib_session, srv.imap_port)
