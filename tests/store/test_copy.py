"""``dualmail store copy`` (issue 18): LMDB -> PostgreSQL -> LMDB keeps every row, so every
id, UID, UIDVALIDITY, modseq and state string; ``dualmail check`` passes on both ends, and
a client's saved JMAP state (RFC 8620 §5.2) and QRESYNC point (RFC 7162 §3.2.5) stay valid."""

from __future__ import annotations

from dualmail.store.keys import TABLES
from dualmail.store.store import open_kv, open_store
from tests.conftest import summary
from tests.multinode.nodes import dualmail_cli

INBOX, ARCHIVE = 1, 6


def rows(target: str) -> dict[str, list[tuple[bytes, bytes]]]:
    kv = open_kv(target)
    try:
        with kv.read() as r:
            return {t: [(bytes(k), bytes(v)) for k, v in r.range(t, b"")] for t in TABLES}
    finally:
        kv.close()


def test_copy_lmdb_to_postgresql_and_back_keeps_everything(tmp_path, pg_server):
    src = str(tmp_path / "lmdb")
    s = open_store(src)
    a = s.create_account("a@x.org", "pw")
    b = s.create_account("b@x.org", "pw")
    s.create_token("a@x.org", note="app")
    emails = []
    for i in range(30):
        with s.write(a if i % 3 else b) as tx:
            e, _ = tx.create_email(f"Subject: m{i}\r\n\r\nbody {i}\r\n".encode(), summary(f"{i}@x", f"m{i}"),
                                   [INBOX], ["$seen"] if i % 2 else [], 1000 + i)
            emails.append((a if i % 3 else b, e))
    with s.write(a) as tx:
        ea = [e for acc, e in emails if acc == a]
        tx.add_membership(ea[0], ARCHIVE)
        tx.remove_membership(ea[0], INBOX)
        tx.set_deleted(ea[1], INBOX, True)
        tx.expunge(INBOX)
        m = tx.create_mailbox("Work", 0)
        tx.update_mailbox(m, name="Projects")
    with s.read(a) as r:
        saved_state = r.state("Email")
        saved_hms = r.mailbox(INBOX)["hms"]
        uidvalidity = r.mailbox(INBOX).get("uidvalidity")
    s.close()
    before = rows(src)

    url = pg_server.fresh_url("cp")
    r = dualmail_cli("store", "copy", "--from", src, "--to", url)
    assert r.returncode == 0, r.stderr
    assert rows(url) == before
    r = dualmail_cli("--store", url, "check")
    assert r.returncode == 0 and r.stdout.count(": ok") == 2, r.stdout + r.stderr

    # A client's saved states are valid on the new engine: only what changed since.
    p = open_store(url)
    try:
        with p.read(a) as view:
            assert view.state("Email") == saved_state
            assert view.mailbox(INBOX)["hms"] == saved_hms
            assert view.mailbox(INBOX).get("uidvalidity") == uidvalidity
        with p.write(a) as tx:
            tx.set_keywords(ea[2], ["$flagged"])
        with p.read(a) as view:
            ch = view.changes("Email", saved_state)
            assert (ch.created, ch.updated, ch.destroyed) == ([], [ea[2]], [])
            assert view.state("Email") == saved_state + 1
            assert [u for u, _e in view.changed_since(INBOX, saved_hms)] == \
                [view.email(ea[2])["mbx"][str(INBOX)][0]]
    finally:
        p.close()

    back = str(tmp_path / "back")
    r = dualmail_cli("store", "copy", "--from", url, "--to", back)
    assert r.returncode == 0, r.stderr
    assert rows(back) == rows(url)
    r = dualmail_cli("--data", back, "check")
    assert r.returncode == 0, r.stdout + r.stderr

    # The destination must be empty: nothing is written into a used store.
    r = dualmail_cli("store", "copy", "--from", src, "--to", back)
    assert r.returncode == 1 and "not empty" in r.stderr
    assert rows(back) == rows(url)
