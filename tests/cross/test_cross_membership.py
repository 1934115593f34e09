"""Cross-protocol mailbox membership on the real service: JMAP ``mailboxIds`` changes
are IMAP expunges and new UIDs, IMAP ``\\Deleted`` hides a membership from JMAP, IMAP
COPY adds memberships, and JMAP destroy expunges everywhere (CONTRACT §2, §5)."""

from __future__ import annotations

import re

import pytest
import pytest_twisted

from dualmail.imap.wire.sequence import SequenceSet
from tests.cross.cross_util import close, idle_until, in_thread, message, one, running

pytestmark = pytest.mark.e2e


def _expunged(seq: int):
    return lambda seen: (seq, b"EXPUNGE") in seen


def _vanished(uid: int):
    def uids(value) -> set[int]:
        if isinstance(value, int):
            return {value}
        return set(SequenceSet.parse(value.decode()).resolve(2**32 - 1))

    return lambda seen: any(r[0] == b"VANISHED" and uid in uids(r[-1]) for r in seen)


def _copy(client, uids: list[int], folder: str) -> int:
    """UID COPY; the destination UID from the tagged OK [COPYUID ...] (RFC 4315 §3)."""
    client._imap.untagged_responses.pop("COPYUID", None)
    client.copy(uids, folder)
    [code] = client._imap.untagged_responses.pop("COPYUID")
    return int(code.split()[-1])


@pytest_twisted.ensureDeferred
async def test_jmap_move_is_imap_expunge_and_new_uid(tmp_path):
    """JMAP Email/set with the patch ``mailboxIds/INBOX: null, mailboxIds/Archive: true``
    (RFC 8620 §5.3 PatchObject) moves the Email: in INBOX that membership is expunged
    (CONTRACT §2), so a session IDLE-ing there (RFC 2177) gets ``* n EXPUNGE`` (RFC 9051
    §7.5.1) and one with QRESYNC enabled gets ``* VANISHED uid`` instead (RFC 7162
    §3.2.10); a session IDLE-ing in Archive gets EXISTS. Archive's UIDNEXT moves past the
    new UID (RFC 9051 §2.3.1.1) and the message there has the same EMAILID (RFC 8474 §5.1, §5.3).
    Both mailboxes' STATUS HIGHESTMODSEQ (RFC 7162 §3.1.7) is the new Email state (CONTRACT §4:
    expunges included)."""
    async with running(tmp_path) as srv:
        jmap = srv.jmap
        boxes = await jmap.mailboxes()
        inbox, archive = boxes["INBOX"]["id"], boxes["Archive"]["id"]

        def setup():
            w = srv.imap()
            w.append("INBOX", message("stays"))
            w.append("INBOX", message("moves"))
            archive_before = w.folder_status("Archive", ["UIDNEXT", "MESSAGES"])
            w.select_folder("INBOX")
            email_id = one(w.fetch([2], ["EMAILID"])[2][b"EMAILID"])
            w.logout()
            plain, qresync, watcher = srv.imap(), srv.imap(), srv.imap()
            plain.select_folder("INBOX")
            assert qresync.enable("QRESYNC") == [b"QRESYNC"]
            qresync.select_folder("INBOX")
            watcher.select_folder("Archive")
            for c in (plain, qresync, watcher):
                c.idle()
            return (plain, qresync, watcher), email_id, archive_before

        clients, email_id, archive_before = await in_thread(setup)
        plain, qresync, watcher = clients
        try:
            result = await jmap.call("Email/set", {"update": {email_id: {
                f"mailboxIds/{inbox}": None, f"mailboxIds/{archive}": True}}})
            assert email_id in result["updated"], result

            def imap_side():
                got_plain = idle_until(plain, _expunged(2))
                got_qresync = idle_until(qresync, _vanished(2))
                got_watcher = idle_until(watcher, lambda seen: (1, b"EXISTS") in seen)
                for c in clients:
                    c.idle_done()
                archive_after = plain.folder_status("Archive", ["UIDNEXT", "MESSAGES", "HIGHESTMODSEQ"])
                inbox_hms = qresync.folder_status("INBOX", ["HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"]
                watcher_fetch = watcher.fetch(watcher.search(), ["UID", "EMAILID"])
                inbox_left = plain.search()
                return got_plain, got_qresync, archive_after, inbox_hms, watcher_fetch, inbox_left

            got_plain, got_qresync, archive_after, inbox_hms, watcher_fetch, inbox_left = await in_thread(imap_side)
        finally:
            for c in clients:
                await in_thread(close, c)

        assert not any(r[1:2] == (b"EXPUNGE",) for r in got_qresync), \
            "with QRESYNC enabled expunges are VANISHED, never EXPUNGE (RFC 7162 §3.2.10)"
        assert not any(r[0] == b"VANISHED" for r in got_plain)
        assert inbox_left == [1]
        assert archive_after[b"MESSAGES"] == archive_before[b"MESSAGES"] + 1
        assert archive_after[b"UIDNEXT"] > archive_before[b"UIDNEXT"]
        [(uid, items)] = watcher_fetch.items()
        assert archive_before[b"UIDNEXT"] <= uid < archive_after[b"UIDNEXT"]
        assert one(items[b"EMAILID"]) == email_id
        # one transaction changed both mailboxes, the expunge included (CONTRACT §4)
        assert inbox_hms == archive_after[b"HIGHESTMODSEQ"] == int(result["newState"])

        got = await jmap.call("Email/get", {"ids": [email_id], "properties": ["mailboxIds"]})
        assert got["list"][0]["mailboxIds"] == {archive: True}


@pytest_twisted.ensureDeferred
async def test_imap_deleted_hides_email_from_jmap(tmp_path):
    """IMAP ``\\Deleted`` is per membership and invisible to JMAP (CONTRACT §2, RFC 8621
    §4.1.1): STORE +FLAGS (\\Deleted) on an Email's only membership makes Email/get
    report it notFound (RFC 8620 §5.1), Email/query drop it, the Mailbox's totalEmails
    drop (RFC 8621 §2) and Email/changes (RFC 8620 §5.2) report it destroyed. STORE
    -FLAGS (\\Deleted) brings it back (same id); EXPUNGE (RFC 9051 §6.4.3) then destroys
    it for good."""
    async with running(tmp_path) as srv:
        jmap = srv.jmap
        inbox = (await jmap.mailboxes())["INBOX"]["id"]

        def setup():
            s = srv.imap()  # this connection lives across the JMAP checks
            s.append("INBOX", message("kept"))
            s.append("INBOX", message("deleted"))
            s.select_folder("INBOX")
            return s, one(s.fetch([2], ["EMAILID"])[2][b"EMAILID"])

        s, email_id = await in_thread(setup)

        async def jmap_view():
            got = await jmap.call("Email/get", {"ids": [email_id], "properties": ["mailboxIds"]})
            query = await jmap.call("Email/query", {"filter": {"inMailbox": inbox}, "calculateTotal": True})
            total = (await jmap.mailboxes())["INBOX"]["totalEmails"]
            return got, query, total

        try:
            visible = await jmap.state("Email")
            mailbox_visible = await jmap.state("Mailbox")
            got, query, total = await jmap_view()
            assert [e["id"] for e in got["list"]] == [email_id] and email_id in query["ids"]
            assert total == 2

            await in_thread(s.add_flags, [2], [rb"\Deleted"])
            got, query, total = await jmap_view()
            assert got["list"] == [] and got["notFound"] == [email_id], got
            assert email_id not in query["ids"] and query["total"] == 1
            assert total == 1
            hidden = await jmap.state("Email")
            changes = await jmap.call("Email/changes", {"sinceState": visible})
            assert changes["destroyed"] == [email_id], changes
            assert changes["created"] == [] and changes["updated"] == []
            # INBOX's totalEmails dropped in that transaction: a Mailbox change (§4)
            mailbox_changes = await jmap.call("Mailbox/changes", {"sinceState": mailbox_visible})
            assert mailbox_changes["updated"] == [inbox] and mailbox_changes["newState"] == hidden

            await in_thread(s.remove_flags, [2], [rb"\Deleted"])
            got, query, total = await jmap_view()
            assert got["list"] == [{"id": email_id, "mailboxIds": {inbox: True}}], got
            assert email_id in query["ids"] and total == 2
            changes = await jmap.call("Email/changes", {"sinceState": hidden})
            assert email_id in changes["created"] + changes["updated"], changes
            assert changes["destroyed"] == []

            def expunge():
                s.add_flags([2], [rb"\Deleted"])
                s.expunge()
                return s.search()

            left = await in_thread(expunge)
            assert left == [1]
        finally:
            await in_thread(close, s)

        got, query, total = await jmap_view()
        assert got["notFound"] == [email_id] and email_id not in query["ids"] and total == 1
        changes = await jmap.call("Email/changes", {"sinceState": visible})
        assert changes["destroyed"] == [email_id] and email_id not in changes["created"] + changes["updated"]

        def fresh_look():
            t = srv.imap()
            try:
                t.select_folder("INBOX")
                return t.search([b"UID", b"2"]), t.folder_status("INBOX", ["MESSAGES"])
            finally:
                t.logout()

        found, status = await in_thread(fresh_look)
        assert found == [] and status[b"MESSAGES"] == 1


@pytest_twisted.ensureDeferred
async def test_imap_copy_adds_membership_or_new_email(tmp_path):
    """IMAP COPY (RFC 9051 §6.4.7) into another mailbox adds a membership to the same
    Email: JMAP ``mailboxIds`` then holds both (CONTRACT §2). COPY into a mailbox that
    already holds the Email makes a new Email there (same bytes, same keywords), so the
    COPYUID (RFC 4315 §3) names a new message whose EMAILID is a new JMAP id."""
    async with running(tmp_path) as srv:
        jmap = srv.jmap
        boxes = await jmap.mailboxes()
        inbox, archive = boxes["INBOX"]["id"], boxes["Archive"]["id"]

        def first():
            s = srv.imap()
            s.append("INBOX", message("copied"), flags=[rb"\Flagged"])
            s.select_folder("INBOX")
            email_id = one(s.fetch([1], ["EMAILID"])[1][b"EMAILID"])
            copied = _copy(s, [1], "Archive")
            return s, email_id, copied

        s, email_id, archive_uid = await in_thread(first)
        try:
            got = await jmap.call("Email/get", {"ids": [email_id], "properties": ["mailboxIds", "keywords"]})
            assert got["list"][0]["mailboxIds"] == {inbox: True, archive: True}
            assert got["list"][0]["keywords"] == {"$flagged": True}

            def second():
                again = _copy(s, [1], "Archive")
                s.select_folder("Archive")
                fetched = s.fetch([archive_uid, again], ["EMAILID", "FLAGS"])
                return again, fetched

            again, fetched = await in_thread(second)
        finally:
            await in_thread(close, s)

        assert again > archive_uid
        assert one(fetched[archive_uid][b"EMAILID"]) == email_id
        new_id = one(fetched[again][b"EMAILID"])
        assert new_id != email_id

        query = await jmap.call("Email/query", {"filter": {"inMailbox": archive}})
        assert sorted(query["ids"]) == sorted([email_id, new_id])
        got = await jmap.call("Email/get", {"ids": [email_id, new_id],
                                            "properties": ["mailboxIds", "keywords", "blobId", "size"]})
        old, new = got["list"]
        assert old["mailboxIds"] == {inbox: True, archive: True}
        assert new["mailboxIds"] == {archive: True}
        assert new["keywords"] == old["keywords"] == {"$flagged": True}
        assert new["size"] == old["size"]
        assert (await jmap.mailboxes())["Archive"]["totalEmails"] == 2


@pytest_twisted.ensureDeferred
async def test_jmap_destroy_expunges_in_every_mailbox(tmp_path):
    """JMAP Email/set destroy (RFC 8620 §5.3) of an Email in two mailboxes removes every
    membership (CONTRACT §2): a session IDLE-ing (RFC 2177) in each mailbox gets
    ``* n EXPUNGE`` (RFC 9051 §7.5.1) at once (CONTRACT §5)."""
    async with running(tmp_path) as srv:
        jmap = srv.jmap

        def setup():
            w = srv.imap()
            w.append("INBOX", message("first"))
            w.append("INBOX", message("doomed"))
            w.append("Archive", message("other"))
            w.select_folder("INBOX")
            w.copy([2], "Archive")
            email_id = one(w.fetch([2], ["EMAILID"])[2][b"EMAILID"])
            w.logout()
            a, b = srv.imap(), srv.imap()
            a.select_folder("INBOX")
            b.select_folder("Archive")
            assert one(b.fetch([2], ["EMAILID"])[2][b"EMAILID"]) == email_id
            a.idle()
            b.idle()
            return a, b, email_id

        a, b, email_id = await in_thread(setup)
        try:
            result = await jmap.call("Email/set", {"destroy": [email_id]})
            assert result["destroyed"] == [email_id], result

            def imap_side():
                idle_until(a, _expunged(2))
                idle_until(b, _expunged(2))
                a.idle_done()
                b.idle_done()
                return a.search(), b.search()

            in_inbox, in_archive = await in_thread(imap_side)
        finally:
            await in_thread(close, a)
            await in_thread(close, b)
        assert in_inbox == [1] and in_archive == [1]
        got = await jmap.call("Email/get", {"ids": [email_id]})
        assert got["notFound"] == [email_id]
