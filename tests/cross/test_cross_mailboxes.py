"""Cross-protocol mailboxes on the real service: a JMAP rename is an IMAP rename that
keeps MAILBOXID and UIDVALIDITY, and IMAP STATUS counts agree with JMAP Mailbox counts
after writes from both sides (CONTRACT §1, §2, §3)."""

from __future__ import annotations

import imaplib

import pytest
import pytest_twisted

from tests.cross.cross_util import close, in_thread, message, one, running

pytestmark = pytest.mark.e2e


@pytest_twisted.ensureDeferred
async def test_jmap_rename_is_imap_rename(tmp_path):
    """JMAP Mailbox/set updating ``name`` and ``parentId`` (RFC 8621 §2.5) is an IMAP
    RENAME (CONTRACT §3): LIST (RFC 9051 §6.3.9) shows the new hierarchical name under
    the new parent (separator ``/``) and not the old one, SELECT of the old name fails,
    and the mailbox keeps its MAILBOXID (RFC 8474 §4, CONTRACT §1: same id), its
    UIDVALIDITY (CONTRACT §1: fixed at creation, survives JMAP renames) and its
    messages, with their UIDs and EMAILIDs."""
    async with running(tmp_path) as srv:
        jmap = srv.jmap

        def setup():
            c = srv.imap()
            try:
                c.create_folder("Projects")
                c.create_folder("Work")
                c.append("Projects", message("plan"))
                status = c.folder_status("Projects", ["MAILBOXID", "UIDVALIDITY", "UIDNEXT", "MESSAGES"])
                work = c.folder_status("Work", ["MAILBOXID"])
                c.select_folder("Projects")
                fetched = c.fetch([1], ["EMAILID"])
                return status, one(work[b"MAILBOXID"]), one(fetched[1][b"EMAILID"])
            finally:
                close(c)

        before, work_id, email_id = await in_thread(setup)
        projects_id = one(before[b"MAILBOXID"])
        boxes = await jmap.mailboxes()
        assert boxes["Projects"]["id"] == projects_id and boxes["Work"]["id"] == work_id

        result = await jmap.call("Mailbox/set", {"update": {projects_id: {"name": "Plans", "parentId": work_id}}})
        assert projects_id in result["updated"], result

        def imap_side():
            c = srv.imap()
            try:
                names = [name for _, _, name in c.list_folders()]
                after = c.folder_status("Work/Plans", ["MAILBOXID", "UIDVALIDITY", "UIDNEXT", "MESSAGES"])
                try:
                    c.select_folder("Projects")
                    old = "selected"
                except imaplib.IMAP4.error as e:
                    old = str(e)
                c.select_folder("Work/Plans")
                fetched = c.fetch([1], ["EMAILID"])
                return names, after, old, fetched
            finally:
                close(c)

        names, after, old, fetched = await in_thread(imap_side)
        assert "Work/Plans" in names and "Projects" not in names and "Plans" not in names, names
        assert one(after[b"MAILBOXID"]) == projects_id
        assert after[b"UIDVALIDITY"] == before[b"UIDVALIDITY"]
        assert after[b"UIDNEXT"] == before[b"UIDNEXT"] and after[b"MESSAGES"] == 1
        assert "NONEXISTENT" in old, old
        assert one(fetched[1][b"EMAILID"]) == email_id

        got = await jmap.call("Mailbox/get", {"ids": [projects_id], "properties": ["name", "parentId"]})
        assert got["list"] == [{"id": projects_id, "name": "Plans", "parentId": work_id}]


@pytest_twisted.ensureDeferred
async def test_counts_agree_after_mixed_writes(tmp_path):
    """After writes from both protocols, IMAP STATUS (MESSAGES UNSEEN) (RFC 9051 §6.3.11)
    and JMAP Mailbox totalEmails / unreadEmails (RFC 8621 §2) agree per mailbox, by the
    rules of each: IMAP counts ``\\Deleted`` messages, JMAP does not (CONTRACT §2, RFC
    8621 §4.1.1); JMAP unread excludes ``$draft``, IMAP UNSEEN does not (RFC 8621 §2:
    neither ``$seen`` nor ``$draft``). Counts are kept in the write transaction
    (CONTRACT §3), so they must equal a recount of FETCH FLAGS too."""
    async with running(tmp_path) as srv:
        jmap = srv.jmap
        boxes = await jmap.mailboxes()
        ids = {name: m["id"] for name, m in boxes.items()}

        def imap_writes():
            c = srv.imap()
            try:
                c.append("INBOX", message("m1"))
                c.append("INBOX", message("m2"), flags=[rb"\Seen"])
                c.append("INBOX", message("m3"), flags=[rb"\Draft"])
                c.append("INBOX", message("m4"), flags=[rb"\Seen", rb"\Draft"])
                c.append("INBOX", message("m5"))
                c.select_folder("INBOX")
                fetched = c.fetch([1, 2, 3, 4, 5], ["EMAILID"])
                return {f"m{uid}": one(v[b"EMAILID"]) for uid, v in fetched.items()}
            finally:
                close(c)

        m = await in_thread(imap_writes)

        # JMAP: two new Emails (one unread in INBOX, one draft in Drafts), m1 read, m5 moved
        created = await jmap.call("Email/set", {"create": {
            "j1": {"mailboxIds": {ids["INBOX"]: True}, "subject": "j1", "keywords": {},
                   "from": [{"email": "carol@example.org"}],
                   "bodyValues": {"b": {"value": "hello"}}, "textBody": [{"partId": "b", "type": "text/plain"}]},
            "j2": {"mailboxIds": {ids["Drafts"]: True}, "subject": "j2", "keywords": {"$draft": True},
                   "bodyValues": {"b": {"value": "draft"}}, "textBody": [{"partId": "b", "type": "text/plain"}]},
        }, "update": {
            m["m1"]: {"keywords/$seen": True},
            m["m5"]: {f"mailboxIds/{ids['INBOX']}": None, f"mailboxIds/{ids['Archive']}": True},
        }})
        assert set(created["created"]) == {"j1", "j2"}, created
        assert set(created["updated"]) == {m["m1"], m["m5"]}, created
        j1 = created["created"]["j1"]["id"]

        def more_imap_writes():
            c = srv.imap()
            try:
                c.select_folder("INBOX")
                [j1_uid] = c.search(["SUBJECT", "j1"])
                c.add_flags([j1_uid], [rb"\Deleted"])  # unread, \Deleted: IMAP counts it, JMAP not
                c.copy([2], "Archive")  # m2 gets a second membership
                c.select_folder("Archive")
                [m2_uid] = c.search(["SUBJECT", "m2"])
                c.add_flags([m2_uid], [rb"\Deleted"])  # that membership only
                return j1_uid
            finally:
                close(c)

        await in_thread(more_imap_writes)
        # JMAP: m2 unread again (both memberships); j1 is hidden from JMAP by \Deleted
        updated = await jmap.call("Email/set", {"update": {m["m2"]: {"keywords/$seen": None}}})
        assert m["m2"] in updated["updated"], updated
        hidden = await jmap.call("Email/get", {"ids": [j1], "properties": ["id"]})
        assert hidden["notFound"] == [j1]

        def imap_counts():
            c = srv.imap()
            out = {}
            try:
                for name in ids:
                    status = c.folder_status(name, ["MESSAGES", "UNSEEN"])
                    c.select_folder(name, readonly=True)
                    every = c.search(["ALL"])  # \Deleted ones too
                    flags = [{f.lower() for f in v[b"FLAGS"]} for v in c.fetch(every, ["FLAGS"]).values()] \
                        if every else []
                    out[name] = (status[b"MESSAGES"], status[b"UNSEEN"], flags)
                    c.unselect_folder()
                return out
            finally:
                close(c)

        imap = await in_thread(imap_counts)
        jmap_boxes = await jmap.mailboxes()

        for name, (messages, unseen, flags) in imap.items():
            box = jmap_boxes[name]
            # STATUS is a recount of what the mailbox holds
            assert messages == len(flags), name
            assert unseen == sum(rb"\seen" not in f for f in flags), name
            # JMAP: the same mailbox without \Deleted memberships, drafts not unread
            live = [f for f in flags if rb"\deleted" not in f]
            assert box["totalEmails"] == len(live), (name, box, flags)
            assert box["unreadEmails"] == sum(rb"\seen" not in f and rb"\draft" not in f for f in live), \
                (name, box, flags)

        # and the numbers this scenario must give
        assert {n: (v[0], v[1]) for n, v in imap.items() if v[0]} == {
            "INBOX": (5, 3),    # m1 m2 m3 m4 j1(\Deleted); unseen m2 m3 j1
            "Archive": (2, 2),  # m5, m2(\Deleted); both unseen
            "Drafts": (1, 1),   # j2, a draft, unseen
        }
        assert {n: (b["totalEmails"], b["unreadEmails"]) for n, b in jmap_boxes.items() if b["totalEmails"]} == {
            "INBOX": (4, 1),    # m1 m2 m3 m4; unread m2 (m3 is a draft)
            "Archive": (1, 1),  # m5
            "Drafts": (1, 0),   # j2 is a draft: not unread
        }
