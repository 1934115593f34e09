"""Against Debian's Dovecot, through the API (no dualmail server): ``dualmail export``
read back by a second Dovecot, the UID-range path of a source without CONDSTORE, many
accounts from a mapping file in parallel, and a rerun resuming after an interruption."""

from __future__ import annotations

import os
import shutil

import pytest

from dualmail.migrate.export import export_account
from dualmail.migrate.mapping import Job, parse_server, read_mapping, run_jobs
from dualmail.migrate.names import parse_url
from dualmail.migrate.source import Source
from dualmail.migrate.sync import migrate_account
from dualmail.store.check import verify
from dualmail.store.store import open_store
from tests.dovecot_util import Dovecot
from tests.migrate import seed
from tests.migrate.compare import diff, snapshot

USERS = {"bob@example.org": "pw-bob", "carol@example.org": "pw-carol", "dave@example.org": "pw-dave"}


@pytest.fixture
def dovecot(tmp_path):
    dv = Dovecot(str(tmp_path / "dovecot"), USERS)
    yield dv
    dv.stop()


@pytest.fixture
def store(tmp_path):
    s = open_store(str(tmp_path / "data"), sync=False)
    for u in USERS:
        s.create_account(u, "x")
    yield s
    s.close()


def _source(dv, user="bob@example.org"):
    return Source(parse_url(dv.url(user)), USERS[user])


def _ok(store, user):
    with store.read(store.account_id(user)) as r:
        assert verify(r) == []


def test_export_is_read_back_by_dovecot_with_the_same_uids(tmp_path, dovecot, store):
    c = dovecot.client()
    seed.seed(c, 150)
    want = snapshot(c, ".")
    c.logout()
    src = _source(dovecot)
    res = migrate_account(store, store.account_id("bob@example.org"), src)
    src.close()
    assert not res.failures and res.messages == sum(len(b.messages) for b in want.values())
    out = str(tmp_path / "export")
    exp = export_account(store, store.account_id("bob@example.org"), out)
    assert exp.messages == res.messages
    # a second Dovecot whose mail is that Maildir
    dv2 = Dovecot(str(tmp_path / "dovecot2"), {"bob@example.org": "pw-bob"},
                  mail_location="maildir:%h/Maildir", special_use=False)
    try:
        home = os.path.join(dv2.root, "home", "bob@example.org")
        shutil.copytree(out, os.path.join(home, "Maildir"))  # copy2: file times kept
        dv2.give_to_mail_user(home)
        c2 = dv2.client()
        got = snapshot(c2, ".")
        subs = {n for _f, _d, n in c2.list_sub_folders()}
        c2.logout()
    finally:
        dv2.stop()
    # the \Noselect parents of the source are plain (empty) folders now
    assert set(got) - set(want) == {"Lists", "日本語"}
    assert diff(want, {p: b for p, b in got.items() if p in want}, modseqs=False) == []
    assert "Früchte & Gemüse" in subs and "Lists.python-dev" not in subs


def test_source_without_condstore_uses_uid_ranges(dovecot, store):
    c = dovecot.client()
    seed.seed(c, 60)
    a = store.account_id("bob@example.org")
    src = _source(dovecot)
    src.condstore = False  # as a server without RFC 7162
    res = migrate_account(store, a, src)
    assert not res.failures
    want = snapshot(c, ".")
    with store.read(a) as r:
        for path, box in want.items():
            m = r.mailbox_by_path(path.split("/"))
            rec = r.mailbox(m)
            assert (rec["uidvalidity"], rec["uidnext"]) == (box.uidvalidity, box.uidnext)
            assert list(r.uids(m)) == sorted(box.messages)
    # flags and an expunge on the source: found by comparing, not by MODSEQ
    c.select_folder("INBOX")
    uids = c.search(["ALL"])
    unanswered = [u for u, d in c.fetch(uids[:4], ["FLAGS"]).items() if b"\\Answered" not in d[b"FLAGS"]]
    c.add_flags(uids[:4], [b"\\Answered"])
    c.delete_messages(uids[-1:])
    c.expunge(uids[-1:])
    res2 = migrate_account(store, a, src)
    assert not res2.failures and res2.messages == 0 and res2.expunges == 1
    assert res2.flags == len(unanswered)
    with store.read(a) as r:
        m = r.mailbox_by_path(["INBOX"])
        assert list(r.uids(m)) == sorted(c.search(["ALL"]))
        for u in uids[:4]:
            assert "$answered" in r.email(r.email_at(m, u))["kw"]
    src.close()
    c.logout()
    _ok(store, "bob@example.org")


def test_mapping_file_moves_accounts_in_parallel(tmp_path, dovecot, store):
    for i, u in enumerate(USERS):
        c = dovecot.client(u)
        seed.seed(c, 40 + 10 * i, seed_no=i + 1)
        c.logout()
    lines = ["address,source login,password file"]
    for u, pw in USERS.items():
        (tmp_path / f"{u}.pw").write_text(pw + "\n")
        lines.append(f"{u},{u},{u}.pw")
    (tmp_path / "map.csv").write_text("\n".join(lines) + "\n")
    server = parse_server(f"imap://{dovecot.host}:{dovecot.port}")
    jobs = read_mapping(str(tmp_path / "map.csv"), server)
    assert [j.address for j in jobs] == list(USERS)
    ticks = []
    results = run_jobs(store, jobs + [Job("nobody@example.org", server, "x")], parallel=3, progress=ticks.append)
    assert [r.failures for r in results[:3]] == [[], [], []]
    assert "nobody@example.org" in results[3].failures[0]
    assert sum(ticks) == sum(r.messages for r in results)
    for u in USERS:
        c = dovecot.client(u)
        want = snapshot(c, ".")
        c.logout()
        with store.read(store.account_id(u)) as r:
            for path, box in want.items():
                m = r.mailbox_by_path(path.split("/"))
                assert list(r.uids(m)) == sorted(box.messages), (u, path)
        _ok(store, u)


def test_interrupted_run_resumes_without_copying_twice(dovecot, store, monkeypatch):
    c = dovecot.client()
    seed.seed(c, 120)
    want = snapshot(c, ".", bodies=False)
    c.logout()
    a = store.account_id("bob@example.org")
    src = _source(dovecot)
    import dualmail.migrate.source as source_mod

    monkeypatch.setattr(source_mod, "BODY_CHUNK", 5)
    calls = {"n": 0}
    real = Source._bodies

    def flaky(self, group):
        calls["n"] += 1
        if calls["n"] == 7:
            raise ConnectionResetError("the source went away")
        return real(self, group)

    monkeypatch.setattr(Source, "_bodies", flaky)
    with pytest.raises(ConnectionResetError):
        migrate_account(store, a, src)
    _ok(store, "bob@example.org")
    with store.read(a) as r:
        copied = sum(r.mailbox(int(b["id"]))["counts"]["msgs"] for b in r.mailboxes())
    assert 0 < copied < sum(len(b.messages) for b in want.values())
    res = migrate_account(store, a, src)
    assert not res.failures
    assert res.messages == sum(len(b.messages) for b in want.values()) - copied
    with store.read(a) as r:
        for path, box in want.items():
            m = r.mailbox_by_path(path.split("/"))
            assert list(r.uids(m)) == sorted(box.messages)
            assert r.mailbox(m)["hms"] == box.hms
    src.close()
    _ok(store, "bob@example.org")


def test_cli_dry_run_writes_nothing_and_bad_input_is_refused(tmp_path, dovecot, store):
    import subprocess
    import sys

    c = dovecot.client()
    seed.seed(c, 30)
    total = sum(len(b.messages) for b in snapshot(c, ".", bodies=False).values())
    c.logout()
    a = store.account_id("bob@example.org")
    with store.read(a) as r:
        before = (r.highest_modseq, sorted(m["name"] for m in r.mailboxes()))
    store.close()
    data = str(tmp_path / "data")
    pw = tmp_path / "pw"
    pw.write_text("pw-bob\n")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "dualmail.cli", "--data", data, "migrate", *args],
                              capture_output=True, text=True, timeout=120)

    r = cli("bob@example.org", dovecot.url(), "--password-file", str(pw), "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"messages {total} " in r.stdout and r.stdout.startswith("would copy: ")
    r = cli("bob@example.org", "http://x@y", "--password-file", str(pw))
    assert r.returncode == 1 and "imap://LOGIN@HOST" in r.stderr
    r = cli("bob@example.org", dovecot.url(), "--password-file", str(tmp_path / "missing"))
    assert r.returncode == 1 and "missing" in r.stderr
    bad = tmp_path / "bad"
    bad.write_text("wrong\n")
    r = cli("bob@example.org", dovecot.url(), "--password-file", str(bad))
    assert r.returncode == 1 and "failed: bob@example.org:" in r.stdout
    s2 = open_store(data, sync=False)
    try:
        with s2.read(a) as r2:
            assert (r2.highest_modseq, sorted(m["name"] for m in r2.mailboxes())) == before
    finally:
        s2.close()


def test_merged_copy_whose_flags_change_on_the_source_gets_its_own_email(dovecot, store):
    from datetime import datetime, timezone

    c = dovecot.client()
    c.create_folder("A")
    c.create_folder("B")
    raw = b"Message-ID: <same@x>\r\nSubject: twice\r\n\r\nbody\r\n"
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    for box in ("A", "B"):
        c.append(box, raw, [b"\\Seen"], when)
    a = store.account_id("bob@example.org")
    src = _source(dovecot)
    res = migrate_account(store, a, src)
    assert res.merged == 1
    with store.read(a) as r:
        ma, mb = r.mailbox_by_path(["A"]), r.mailbox_by_path(["B"])
        e = r.email_at(ma, 1)
        assert r.email_at(mb, 1) == e and sorted(r.email(e)["mbx"]) == sorted([str(ma), str(mb)])
    c.select_folder("A")
    c.add_flags([1], [b"\\Flagged"])
    res = migrate_account(store, a, src)
    assert res.flags == 1 and not res.failures
    with store.read(a) as r:
        ea, eb = r.email_at(ma, 1), r.email_at(mb, 1)
        assert ea != eb and eb == e
        assert r.email(ea)["kw"] == ["$flagged", "$seen"] and r.email(eb)["kw"] == ["$seen"]
        assert r.raw_message(ea) == raw == r.raw_message(eb)
    src.close()
    c.logout()
    _ok(store, "bob@example.org")


def test_safety_rule_rename_and_delete_on_the_dualmail_side(dovecot, store):
    from datetime import datetime, timezone

    c = dovecot.client()
    for box in ("Keep", "Moved", "Gone"):
        c.create_folder(box)
        c.append(box, f"Subject: {box}\r\n\r\nx\r\n".encode(), [], datetime.now(timezone.utc))
    a = store.account_id("bob@example.org")
    src = _source(dovecot)
    assert not migrate_account(store, a, src).failures
    with store.write(a) as tx:
        tx.update_mailbox(tx.mailbox_by_path(["Moved"]), name="Renamed here")
        tx.delete_mailbox(tx.mailbox_by_path(["Gone"]), remove_emails=True)
    for box in ("Keep", "Moved", "Gone"):
        c.append(box, b"Subject: later\r\n\r\ny\r\n", [], datetime.now(timezone.utc))
    res = migrate_account(store, a, src)
    assert sorted(res.failures) == [
        "Gone: deleted in dualmail since the last run; not re-created",
        "Renamed here: renamed in dualmail since the last run (was Moved); not synced",
    ]
    with store.read(a) as r:
        assert r.mailbox_by_path(["Gone"]) is None and r.mailbox_by_path(["Moved"]) is None
        assert r.mailbox(r.mailbox_by_path(["Renamed here"]))["counts"]["msgs"] == 1
        assert r.mailbox(r.mailbox_by_path(["Keep"]))["counts"]["msgs"] == 2  # the others go on
    src.close()
    c.logout()
    _ok(store, "bob@example.org")


def test_condstore_without_qresync_finds_changes_by_search_modseq(dovecot, store):
    c = dovecot.client()
    seed.seed(c, 60)
    a = store.account_id("bob@example.org")
    src = _source(dovecot)
    src.qresync = False  # as a server with CONDSTORE only: SEARCH MODSEQ, counts for expunges
    assert not migrate_account(store, a, src).failures
    c.select_folder("Junk")
    uids = c.search(["ALL"])
    c.add_flags(uids[:2], [b"Later"])
    c.delete_messages(uids[2:3])
    c.expunge(uids[2:3])
    res = migrate_account(store, a, src)
    assert (res.flags, res.expunges, res.messages, res.failures) == (2, 1, 0, [])
    want = snapshot(c, ".", bodies=False)
    src.close()
    c.logout()
    with store.read(a) as r:
        m = r.mailbox_by_path(["Junk"])
        assert list(r.uids(m)) == sorted(want["Junk"].messages)
        assert r.mailbox(m)["hms"] == want["Junk"].hms
        for u, (_b, _f, _d, ms) in want["Junk"].messages.items():
            assert r.email(r.email_at(m, u))["mbx"][str(m)][2] == ms  # MODSEQ carried
    _ok(store, "bob@example.org")


def test_mailbox_patterns_limit_the_run(dovecot, store):
    c = dovecot.client()
    seed.seed(c, 40)
    c.logout()
    a = store.account_id("bob@example.org")
    src = _source(dovecot)
    res = migrate_account(store, a, src, patterns=["Archive"])
    src.close()
    assert not res.failures and res.mailboxes == 3
    with store.read(a) as r:
        migrated = sorted("/".join(r.mailbox_path(int(b["id"]))) for b in r.mailboxes() if b.get("migrated"))
    assert migrated == ["Archive", "Archive/2023", "Archive/2023/Q1"]


@pytest.mark.parametrize("mode", ["starttls", "imaps"])
def test_tls_to_the_source_with_its_ca(tmp_path, mode):
    import subprocess
    import sys

    from tests.conftest import write_tls_files

    key, cert, ca = write_tls_files(tmp_path)
    dv = Dovecot(str(tmp_path / "dv"), {"bob@example.org": "pw-bob"}, tls=(str(key), str(cert)))
    try:
        c = dv.client()
        c.append("INBOX", b"Subject: over TLS\r\n\r\nx\r\n")
        c.logout()
        data = str(tmp_path / "data")
        s = open_store(data, sync=False)
        s.create_account("bob@example.org", "x")
        s.close()
        (tmp_path / "pw").write_text("pw-bob\n")
        url = f"imap://bob%40example.org@127.0.0.1:{dv.port}" if mode == "starttls" \
            else f"imaps://bob%40example.org@127.0.0.1:{dv.imaps_port}"
        args = [sys.executable, "-m", "dualmail.cli", "--data", data, "migrate", "bob@example.org", url,
                "--password-file", str(tmp_path / "pw")] + (["--starttls"] if mode == "starttls" else [])
        # without the CA the certificate is refused, and nothing is copied
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in r.stdout, r.stdout + r.stderr
        r = subprocess.run(args + ["--tls-ca", str(ca)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "messages 1 " in r.stdout, r.stdout + r.stderr
    finally:
        dv.stop()
