"""IMAP NOTIFY (RFC 5465) and METADATA (RFC 5464) on the real service: changes made
through JMAP (Email/set, Email/import, Mailbox/set) in mailboxes the IMAP client has not
selected reach it as unsolicited STATUS and LIST between commands, with no IDLE; a
METADATA write reaches another IMAP session and moves no JMAP state.

imapclient has no NOTIFY, so the IMAP side is a small line client over a real socket
(blocking, in a thread, every read bounded by TIMEOUT)."""

from __future__ import annotations

import json
import re

import pytest
import pytest_twisted

from tests.cross.cross_util import AUTH, PASSWORD, USER, in_thread, message, running
from tests.dovecot.imap_raw import Client as RawClient

pytestmark = pytest.mark.e2e


class Line(RawClient):
    """A raw IMAP connection (tests/dovecot/imap_raw.py) that can also wait for
    unsolicited responses with no command in progress."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.login(USER, PASSWORD)

    def cmd(self, command: str) -> list[str]:
        """The untagged responses of ``command`` (which must end OK), as text."""
        reply = self.run(command)
        return [" ".join(_text(v) for v in resp) for resp in reply.untagged]

    def until(self, pred) -> list[str]:
        """Unsolicited lines until ``pred(lines)``; the socket timeout bounds each wait."""
        seen: list[str] = []
        while not pred(seen):
            seen.append(self._response().decode("utf-8", "replace").rstrip("\r\n"))
        return seen


def _text(value) -> str:
    if isinstance(value, list):
        return "(" + " ".join(_text(v) for v in value) + ")"
    if isinstance(value, bytes):
        return '"' + value.decode("utf-8", "replace") + '"'
    return "NIL" if value is None else str(value)


def has(pattern: str):
    return lambda seen: any(re.search(pattern, line) for line in seen)


@pytest_twisted.ensureDeferred
async def test_jmap_changes_reach_a_notify_client_between_commands(tmp_path):
    """RFC 5465 §5.2/§5.3 (STATUS for a non-selected mailbox), §5.4 (LIST with OLDNAME),
    §3.1 (notifications arrive while no command is in progress)."""
    async with running(tmp_path) as srv:
        jmap = srv.jmap
        boxes = await jmap.mailboxes()
        archive = boxes["Archive"]["id"]
        imap = await in_thread(Line, srv.imap_port)
        try:
            await in_thread(imap.cmd, "SELECT INBOX")
            out = await in_thread(imap.cmd, "NOTIFY SET STATUS (selected (MessageNew MessageExpunge)) "
                                  "(personal (MessageNew MessageExpunge FlagChange MailboxName))")
            assert any(ln.startswith('* STATUS "Archive" (MESSAGES 0 UIDNEXT 1') for ln in out), out

            # Email/set create in Archive (not selected)
            created = await jmap.call("Email/set", {"create": {"k": {
                "mailboxIds": {archive: True}, "subject": "via jmap", "keywords": {},
                "bodyValues": {"b": {"value": "hi"}}, "textBody": [{"partId": "b", "type": "text/plain"}]}}})
            email = created["created"]["k"]["id"]
            seen = await in_thread(imap.until, has(r'^\* STATUS "Archive" \(MESSAGES 1 UIDNEXT 2 UNSEEN 1\)'))
            assert not any("EXISTS" in ln for ln in seen), seen

            # Email/import of an uploaded message into Archive
            upload = jmap.session["uploadUrl"].replace("{accountId}", jmap.account)
            resp = await jmap.http.post(upload, data=message("imported"),
                                        headers={**AUTH, b"Content-Type": [b"message/rfc822"]})
            blob = json.loads(await resp.content())["blobId"]
            got = await jmap.call("Email/import", {"emails": {"i": {"blobId": blob,
                                                                    "mailboxIds": {archive: True}}}})
            assert "i" in got["created"], got
            await in_thread(imap.until, has(r'^\* STATUS "Archive" \(MESSAGES 2 UIDNEXT 3 UNSEEN 2\)'))

            # a keyword change (FlagChange, no CONDSTORE: told through UNSEEN) and a destroy
            await jmap.call("Email/set", {"update": {email: {"keywords/$seen": True}}})
            await in_thread(imap.until, has(r'^\* STATUS "Archive" \(UNSEEN 1\)'))
            await jmap.call("Email/set", {"destroy": [email]})
            await in_thread(imap.until, has(r'^\* STATUS "Archive" \(MESSAGES 1 UIDNEXT 3 UNSEEN 1\)'))

            # Mailbox/set rename: LIST with OLDNAME (§5.4)
            await jmap.call("Mailbox/set", {"update": {archive: {"name": "Old mail"}}})
            await in_thread(imap.until, has(r'^\* LIST \(.*\) "/" "Old mail" \("OLDNAME" \("Archive"\)\)'))

            # and the selected mailbox hears of its own new mail at once (SELECTED)
            await jmap.call("Email/set", {"create": {"j": {
                "mailboxIds": {boxes["INBOX"]["id"]: True}, "subject": "inbox", "keywords": {},
                "bodyValues": {"b": {"value": "x"}}, "textBody": [{"partId": "b", "type": "text/plain"}]}}})
            await in_thread(imap.until, has(r"^\* 1 EXISTS"))
        finally:
            await in_thread(imap.close)


@pytest_twisted.ensureDeferred
async def test_metadata_reaches_another_session_and_moves_no_jmap_state(tmp_path):
    """RFC 5464 §4.3 stored in the store and visible to other sessions; RFC 5465 §5.6
    unsolicited METADATA; issue 16: no JMAP state string moves for a METADATA write."""
    async with running(tmp_path) as srv:
        jmap = srv.jmap
        states = [await jmap.state(k) for k in ("Mailbox", "Email", "Thread")]
        watcher = await in_thread(Line, srv.imap_port)
        writer = await in_thread(Line, srv.imap_port)
        try:
            await in_thread(watcher.cmd, "NOTIFY SET (personal (MailboxMetadataChange)) "
                            "(inboxes (MessageNew MessageExpunge))")
            await in_thread(writer.cmd, 'SETMETADATA INBOX (/shared/comment "shared note")')
            await in_thread(watcher.until, has(r'^\* METADATA "INBOX" /shared/comment$'))
            out = await in_thread(watcher.cmd, "GETMETADATA INBOX /shared/comment")
            assert '* METADATA "INBOX" (/shared/comment "shared note")' in out
            assert [await jmap.state(k) for k in ("Mailbox", "Email", "Thread")] == states
        finally:
            await in_thread(watcher.close)
            await in_thread(writer.close)
