"""Unit tests of the store's operations (CONTRACT §1–4)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dualmail.model import errors
from dualmail.store.txn import CannotCalculateChangesError
from tests.conftest import summary

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INBOX, DRAFTS, SENT, TRASH, JUNK, ARCHIVE = 1, 2, 3, 4, 5, 6


def add(store, a, mailboxes=(INBOX,), kw=(), received=1000, mid="", subject="s", **kw2):
    with store.write(a) as tx:
        return tx.create_email(b"Subject: x\r\n\r\nbody\r\n", summary(mid, subject, **kw2), mailboxes, kw, received)


def test_new_account_has_default_mailboxes_with_roles(store, account):
    with store.read(account) as r:
        boxes = {m["name"]: m for m in r.mailboxes()}
        assert set(boxes) == {"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"}
        assert {m["role"] for m in boxes.values()} == {"inbox", "drafts", "sent", "trash", "junk", "archive"}
        # CONTRACT §4: never 0; an untouched mailbox reports the modseq that created it
        assert all(m["hms"] == 1 for m in boxes.values())
        assert r.highest_modseq == 1


def test_each_write_takes_exactly_one_modseq(store, account):
    with store.read(account) as r:
        before = r.highest_modseq
    e, uids = add(store, account, (INBOX, ARCHIVE))
    with store.read(account) as r:
        assert r.highest_modseq == before + 1
        rec = r.email(e)
        assert rec["modseq"] == before + 1
        assert r.mailbox(INBOX)["hms"] == before + 1
        assert r.state("Email") == r.state("Mailbox") == r.state("Thread") == before + 1
    # a transaction that changes nothing takes no modseq
    with store.write(account) as tx:
        assert tx.set_keywords(e, []) is False
    with store.read(account) as r:
        assert r.highest_modseq == before + 1


def test_uids_ascend_and_are_never_reused(store, account):
    e1, u1 = add(store, account)
    e2, u2 = add(store, account)
    assert u2[INBOX] == u1[INBOX] + 1
    with store.write(account) as tx:
        tx.destroy_email(e2)
    e3, u3 = add(store, account)
    assert u3[INBOX] == u2[INBOX] + 1


def test_keywords_shared_by_memberships_and_counters(store, account):
    e, uids = add(store, account, (INBOX, ARCHIVE))
    with store.read(account) as r:
        c = r.mailbox(INBOX)["counts"]
        assert (c["msgs"], c["unseen"], c["total"], c["unread"], c["threads"], c["unreadThreads"]) == (1, 1, 1, 1, 1, 1)
    with store.write(account) as tx:
        tx.set_keywords(e, ["$seen"])
        ms = tx.modseq
    with store.read(account) as r:
        for m in (INBOX, ARCHIVE):
            c = r.mailbox(m)["counts"]
            assert (c["unseen"], c["unread"], c["unreadThreads"]) == (0, 0, 0)
            assert r.mailbox(m)["hms"] == ms
        # IMAP MODSEQ of both memberships moved (CONTRACT §4)
        assert r.changed_since(INBOX, ms - 1) == [(uids[INBOX], ms)]
        assert r.changed_since(ARCHIVE, ms - 1) == [(uids[ARCHIVE], ms)]
        # a counts change is a Mailbox change with updatedProperties = counts
        ch = r.changes("Mailbox", ms - 1)
        assert sorted(ch.updated) == [INBOX, ARCHIVE] and ch.only_counts


def test_draft_is_not_unread_for_jmap_but_unseen_for_imap(store, account):
    add(store, account, (DRAFTS,), kw=("$draft",))
    with store.read(account) as r:
        c = r.mailbox(DRAFTS)["counts"]
        assert c["unseen"] == 1 and c["unread"] == 0  # RFC 8621 §2 unreadEmails


def test_deleted_membership_is_invisible_to_jmap(store, account):
    """CONTRACT §2 / RFC 8621 §4.1.1: \\Deleted messages are not visible via JMAP."""
    e, uids = add(store, account, (INBOX, ARCHIVE))
    with store.read(account) as r:
        s0 = r.state("Email")
    with store.write(account) as tx:
        tx.set_deleted(e, INBOX, True)
    with store.read(account) as r:
        c = r.mailbox(INBOX)["counts"]
        assert (c["msgs"], c["deleted"], c["total"], c["threads"]) == (1, 1, 0, 0)
        assert list(r.received_order(INBOX)) == []
        assert list(r.received_order(ARCHIVE)) == [e]
        assert r.changes("Email", s0).updated == [e]
    with store.write(account) as tx:
        tx.set_deleted(e, ARCHIVE, True)
    with store.read(account) as r:
        # every membership \Deleted: the Email is gone for JMAP
        assert list(r.received_order(None)) == []
        ch = r.changes("Email", s0)
        assert ch.destroyed == [e] and not ch.updated
        ch = r.changes("Thread", s0)
        assert ch.destroyed == [r.email(e)["thread"]]


def test_expunge_removes_deleted_memberships_and_destroys_orphans(store, account):
    e, uids = add(store, account, (INBOX,))
    e2, uids2 = add(store, account, (INBOX, ARCHIVE))
    with store.write(account) as tx:
        tx.set_deleted(e, INBOX, True)
        tx.set_deleted(e2, INBOX, True)
    with store.read(account) as r:
        ms = r.highest_modseq
        blob = r.email(e)["blob"]
    with store.write(account) as tx:
        assert tx.expunge(INBOX) == [uids[INBOX], uids2[INBOX]]
    with store.read(account) as r:
        assert r.email(e) is None and r.blob(blob) is not None  # e2 shares nothing... same bytes
        assert r.email(e2) is not None and list(r.email(e2)["mbx"]) == [str(ARCHIVE)]
        assert r.expunged_since(INBOX, ms) == [uids[INBOX], uids2[INBOX]]
        assert r.mailbox(INBOX)["counts"]["msgs"] == 0


def test_blob_is_freed_when_no_email_uses_it(store, account):
    e, _ = add(store, account)
    with store.read(account) as r:
        blob = r.email(e)["blob"]
    e2, _ = add(store, account)  # same bytes: same blob, two references
    with store.write(account) as tx:
        tx.destroy_email(e)
    with store.read(account) as r:
        assert r.blob(blob) is not None
    with store.write(account) as tx:
        tx.destroy_email(e2)
    with store.read(account) as r:
        assert r.blob(blob) is None and r.blob_info(blob) is None


def test_threading(store, account):
    """RFC 8621 §3: a reply joins its parent's thread when base subjects match."""
    e1, _ = add(store, account, mid="a@x", subject="hello")
    e2, _ = add(store, account, mid="b@x", subject="hello", in_reply_to=["a@x"], references=["a@x"])
    e3, _ = add(store, account, mid="c@x", subject="other", in_reply_to=["a@x"])
    # either direction: an older message arriving after its reply
    e4, _ = add(store, account, mid="p@x", subject="late", references=["q@x"])
    e5, _ = add(store, account, mid="q@x", subject="late")
    with store.read(account) as r:
        t = {e: r.email(e)["thread"] for e in (e1, e2, e3, e4, e5)}
    assert t[e1] == t[e2] != t[e3]
    assert t[e4] == t[e5]


def test_copy_onto_itself_is_a_new_email(store, account):
    from dualmail.mail.ops import copy_messages

    e, uids = add(store, account, kw=("$flagged",))
    with store.write(account) as tx:
        pairs = copy_messages(tx, INBOX, [uids[INBOX]], INBOX)
    with store.read(account) as r:
        (src, dst), = pairs
        e2 = r.email_at(INBOX, dst)
        assert e2 != e and r.email(e2)["kw"] == ["$flagged"]
        assert r.email(e2)["blob"] == r.email(e)["blob"]


def test_move_is_add_plus_expunge(store, account):
    from dualmail.mail.ops import copy_messages

    e, uids = add(store, account)
    with store.write(account) as tx:
        pairs = copy_messages(tx, INBOX, [uids[INBOX]], ARCHIVE, move=True)
        ms = tx.modseq
    with store.read(account) as r:
        assert r.email_at(ARCHIVE, pairs[0][1]) == e
        assert r.email_at(INBOX, uids[INBOX]) is None
        assert r.expunged_since(INBOX, ms - 1) == [uids[INBOX]]
        ch = r.changes("Email", ms - 1)
        assert ch.updated == [e]


def test_mailbox_create_rename_delete(store, account):
    with store.write(account) as tx:
        m = tx.create_mailbox("Projects")
        child = tx.create_mailbox("2024", m)
    with store.read(account) as r:
        uv = r.mailbox(m)["uidvalidity"]
        assert r.mailbox_by_path(["Projects", "2024"]) == child
    with store.write(account) as tx:
        tx.update_mailbox(m, name="Work")
    with store.read(account) as r:
        assert r.mailbox_path(child) == ["Work", "2024"]
        assert r.mailbox(m)["uidvalidity"] == uv  # CONTRACT §1: survives RENAME
    with pytest.raises(errors.AlreadyExistsError):
        with store.write(account) as tx:
            tx.create_mailbox("Work")
    with pytest.raises(errors.CycleError):
        with store.write(account) as tx:
            tx.update_mailbox(m, parent=child)
    with pytest.raises(errors.HasChildrenError):
        with store.write(account) as tx:
            tx.delete_mailbox(m, remove_emails=True)
    with pytest.raises(errors.CannotError):
        with store.write(account) as tx:
            tx.delete_mailbox(INBOX, remove_emails=True)
    with pytest.raises(errors.InvalidNameError):
        with store.write(account) as tx:
            tx.create_mailbox("a/b")


def test_failed_write_changes_nothing(store, account):
    with store.read(account) as r:
        ms = r.highest_modseq
    with pytest.raises(errors.AlreadyExistsError):
        with store.write(account) as tx:
            tx.create_mailbox("New")
            tx.create_mailbox("New")
    with store.read(account) as r:
        assert r.highest_modseq == ms and r.mailbox_by_path(["New"]) is None


def test_changes_paging_inside_one_transaction(store, account):
    """CONTRACT §4: paging is exact even when one transaction changed more than a page."""
    with store.read(account) as r:
        s0 = r.state("Email")
    with store.write(account) as tx:
        ids = [tx.create_email(b"x", summary(f"{i}@x"), [INBOX])[0] for i in range(7)]
    seen: list[int] = []
    state, after = s0, 0
    while True:
        with store.read(account) as r:
            ch = r.changes("Email", state, limit=3, after=after)
        seen += ch.created
        assert not ch.updated and not ch.destroyed
        state, after = ch.new_state, ch.new_after
        if not ch.has_more:
            break
        assert state == s0 + 1 and after > 0  # a position inside the one transaction
    assert seen == ids and (state, after) == (s0 + 1, 0)


def test_changes_from_future_or_junk_state(store, account):
    with store.read(account) as r:
        with pytest.raises(CannotCalculateChangesError):
            r.changes("Email", 999)
        with pytest.raises(CannotCalculateChangesError):
            r.changes("Email", -1)


def test_accounts(store):
    a = store.create_account("Bob@Example.org", "pw1")
    assert store.authenticate("bob@example.org", "pw1") == a
    assert store.authenticate("bob@example.org", "nope") is None
    assert store.authenticate("nobody@example.org", "pw1") is None
    with pytest.raises(errors.AlreadyExistsError):
        store.create_account("bob@example.org", "x")
    store.set_password("bob@example.org", "pw2")
    assert store.authenticate("bob@example.org", "pw2") == a
    t = store.create_token("bob@example.org")
    assert store.verify_token(t) == a
    store.revoke_tokens("bob@example.org")
    assert store.verify_token(t) is None
    store.delete_account("bob@example.org")
    assert store.account_id("bob@example.org") is None


def test_accounts_are_isolated(store):
    a = store.create_account("a@x", "pw")
    b = store.create_account("b@x", "pw")
    with store.write(a) as tx:
        e, _ = tx.create_email(b"secret", summary("s@x"), [1])
    with store.read(b) as r:
        assert r.email(e) is None
        assert list(r.received_order(None)) == []
        assert r.mailbox(1)["counts"]["msgs"] == 0


def test_newer_format_is_refused(tmp_path, engine, request):
    from dualmail.store.store import open_store
    from tests.conftest import store_target

    path = store_target(engine, tmp_path, request)
    s = open_store(path)
    with s.kv.write() as w:
        w.put("meta", b"format", b"999")
    s.close()
    with pytest.raises(errors.StoreFormatError, match="newer dualmail"):
        open_store(path)


def test_older_format_is_read_and_marked_current(tmp_path, engine, request):
    """A store of format 1 (before version 2 ``imaph`` values) opens and is marked current
    (3: version 3 values), so an older dualmail refuses it afterwards rather than misread it."""
    from dualmail.store import keys as K
    from dualmail.store.store import open_store
    from tests.conftest import store_target

    path = store_target(engine, tmp_path, request)
    s = open_store(path)
    a = s.create_account("old@x", "pw")
    with s.kv.write() as w:
        w.put("meta", b"format", b"1")
    s.close()
    s = open_store(path)
    try:
        with s.kv.read() as r:
            assert r.get("meta", b"format") == str(K.FORMAT_VERSION).encode() == b"3"
        with s.read(a) as v:
            assert v.mailbox_by_path(["INBOX"]) is not None
    finally:
        s.close()


def test_external_commits_are_published(tmp_path, engine, request):
    """A second Store on the same directory or database (another process, e.g. the CLI)
    is noticed."""
    from dualmail.store.store import open_store
    from tests.conftest import store_target

    path = store_target(engine, tmp_path, request)
    s1 = open_store(path, sync=False)
    seen = []
    s1.subscribe(seen.append)
    a = s1.create_account("x@y", "pw")
    seen.clear()
    code = (
        "import sys; from dualmail.store.store import open_store\n"
        "s = open_store(sys.argv[1])\n"
        "with s.write(int(sys.argv[2])) as tx: tx.create_mailbox('FromCLI')\n"
        "s.close()\n"
    )
    subprocess.run([sys.executable, "-c", code, path, str(a)], check=True, cwd=ROOT)
    assert s1.poll_external()[0].modseq == 2
    assert [c.modseq for c in seen] == [2] and seen[0].kinds == {"Mailbox"}
    assert s1.poll_external() == []
    s1.close()


def test_map_grows_by_itself(tmp_path):
    # LMDB only: the memory map and its growth are LMDB's; PostgreSQL has no map.
    from dualmail.store.store import open_store

    s = open_store(str(tmp_path / "g"), sync=False)
    a = s.create_account("x@y", "pw")
    big = b"x" * (1 << 20)

    def fill(tx):
        for i in range(300):  # 300 MiB in one transaction, over the initial map
            tx.create_email(big + str(i).encode(), summary(f"{i}@x"), [1])

    s.transact(a, fill)
    with s.read(a) as r:
        assert r.mailbox(1)["counts"]["msgs"] == 300
    s.close()


MALFORMED = [
    b"",
    b"no header at all, no blank line",
    b"Subject: =?utf-8?B?broken base64?=\r\nFrom: \xff\xfe<@>\r\n\r\nbody",
    b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nunterminated",
    b"Subject: " + b"x" * 200_000 + b"\r\n\r\nhuge header",
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" * 300,
    "Subject: Grüße =?iso-8859-1?q?caf=E9?=\r\nFrom: \"Zoë\" <zoe@example.org>\r\n\r\nnaïve".encode("utf-8"),
    b"\x00\x01\x02 binary junk \r\n\r\n\xff",
]


@pytest.mark.parametrize("raw", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_mime_is_stored_byte_exact(store, account, raw):
    """CONTRACT §7: malformed MIME is stored byte-exact and parsed best-effort, never raising."""
    from dualmail.mail.ops import prepare, store_prepared

    p = prepare(raw, ["\\Seen"], 1_700_000_000)
    with store.write(account) as tx:
        e, uids = store_prepared(tx, p, [INBOX])
    with store.read(account) as r:
        assert r.raw_message(e) == raw
        assert r.email(e)["size"] == len(raw)
        s = r.summary(e)
        assert isinstance(s["structure"], dict) and isinstance(s["envelope"], dict)
        from dualmail.store.check import verify

        assert verify(r) == []


def test_rfc2047_and_utf8_headers_are_decoded_once(store, account):
    from dualmail.mail.ops import prepare, store_prepared

    raw = ("From: =?utf-8?q?J=C3=BCrgen?= <j@example.org>\r\nSubject: =?iso-8859-1?q?R=E9union?= "
           "=?utf-8?b?8J+OiQ==?=\r\nTo: Zoë <z@example.org>\r\n\r\nhello\r\n").encode("utf-8")
    with store.write(account) as tx:
        e, _ = store_prepared(tx, prepare(raw), [INBOX])
    with store.read(account) as r:
        s = r.summary(e)
        assert s["subject"] == "Réunion🎉"
        assert s["from"] == [{"name": "Jürgen", "email": "j@example.org"}]
        assert s["to"] == [{"name": "Zoë", "email": "z@example.org"}]
        assert "Jürgen" in r.text(e)[0]


def test_map_does_not_move_under_a_reader_on_another_thread(tmp_path):
    """(LMDB only: the memory map is LMDB's.)  LMDB may resize the map only when no transaction is open in the process: a read on
    the password-check thread pool must never be invalidated by a write's growth."""
    import threading

    from dualmail.store.store import open_store

    s = open_store(str(tmp_path / "t"), sync=False)
    a = s.create_account("x@y", "pw")
    opened, release, seen = threading.Event(), threading.Event(), []

    def reader():
        with s.read(a) as r:
            opened.set()
            release.wait(60)
            seen.append(r.mailbox(1)["name"])  # still usable

    t = threading.Thread(target=reader)
    t.start()
    opened.wait(60)
    size = s.kv._env.info()["map_size"]
    big = b"x" * (1 << 20)
    for i in range(300):  # past the half-free headroom rule: growth is deferred, not forced
        with s.write(a) as tx:
            tx.create_email(big + str(i).encode(), summary(f"{i}@x"), [1])
    assert s.kv._env.info()["map_size"] == size
    release.set()
    t.join()
    assert seen == ["INBOX"]
    with s.write(a) as tx:  # no reader now: the next write grows the map
        tx.create_email(b"y", summary("y@x"), [1])
    assert s.kv._env.info()["map_size"] > size
    s.close()


def test_a_full_map_waits_for_another_threads_short_read(tmp_path):
    """(LMDB only: the memory map is LMDB's.)  A write that fills the map while another thread reads waits for that read to end,
    then grows the map and succeeds (the importer's writer thread and its reading thread)."""
    import threading

    from dualmail.store.store import open_store

    s = open_store(str(tmp_path / "w"), sync=False)
    a = s.create_account("x@y", "pw")
    size = s.kv._env.info()["map_size"]
    opened, growing, seen = threading.Event(), threading.Event(), []
    grow = s.kv._grow

    def announced_grow(*args, **kw):
        growing.set()
        return grow(*args, **kw)

    s.kv._grow = announced_grow

    def reader():
        with s.read(a) as r:
            opened.set()
            growing.wait(60)  # the map is full and the writer wants to grow it
            seen.append(r.mailbox(1)["name"])

    t = threading.Thread(target=reader)
    t.start()
    opened.wait(60)
    big = b"x" * (1 << 20)
    n = size // (1 << 20) + 50  # more than the map holds

    def fill(tx):
        for i in range(n):
            tx.create_email(big + str(i).encode(), summary(f"{i}@x"), [1])

    s.transact(a, fill)
    t.join()
    assert growing.is_set() and seen == ["INBOX"]
    assert s.kv._env.info()["map_size"] > size
    with s.read(a) as r:
        assert r.mailbox(1)["counts"]["msgs"] == n
    s.close()
