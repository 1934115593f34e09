"""End to end: mbsync (isync) two-way sync of several mailboxes with a local Maildir."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from imap_util import message
from imap_e2e import PASSWORD, USER, running

MBSYNC = "/usr/bin/mbsync"
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not os.path.exists(MBSYNC), reason="mbsync (isync) missing")]


def _config(tmp: Path, port: int) -> Path:
    maildir = tmp / "Maildir"
    maildir.mkdir(exist_ok=True)
    rc = tmp / "mbsyncrc"
    rc.write_text(f"""IMAPAccount test
Host 127.0.0.1
Port {port}
User {USER}
Pass {PASSWORD}
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account test

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel test
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""")
    return rc


def _mbsync(rc: Path) -> str:
    proc = subprocess.run([MBSYNC, "-c", str(rc), "-a"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def _maildir_messages(folder: Path) -> dict[str, str]:
    """Subject -> Maildir flags (the part after ":2,")."""
    out = {}
    for sub in ("cur", "new"):
        d = folder / sub
        if not d.exists():
            continue
        for f in d.iterdir():
            subject = ""
            for line in f.read_bytes().split(b"\n"):
                if line.lower().startswith(b"subject:"):
                    subject = line.split(b":", 1)[1].strip().decode()
                    break
            flags = f.name.split(":2,", 1)[1] if ":2," in f.name else ""
            out[subject] = flags
    return out


def _server_messages(store, account: int, path: list[str]) -> dict[str, list[str]]:
    from dualmail.mail.ops import imap_flags

    out = {}
    with store.read(account) as v:
        m = v.mailbox_by_path(path)
        for _u, e in v.uid_items(m):
            rec = v.email(e)
            out[v.summary(e)["subject"]] = sorted(imap_flags(rec, m))
    return out


@pytest_twisted.ensureDeferred
async def test_mbsync_two_way(tmp_path: Path) -> None:
    from dualmail.mail.ops import deliver

    async with running(tmp_path) as srv:
        store, a = srv.store, srv.account
        with store.write(a) as tx:
            work = tx.create_mailbox("Work", 0)
            tx.create_mailbox("Reports", work)
        with store.read(a) as v:
            inbox = v.mailbox_by_path(["INBOX"])
            reports = v.mailbox_by_path(["Work", "Reports"])
        for i in range(5):
            deliver(store, a, message(f"inbox {i}", msgid=f"<i{i}@x>"), inbox)
        for i in range(3):
            deliver(store, a, message(f"work {i}", msgid=f"<w{i}@x>"), work, ["\\Seen"])
        deliver(store, a, message("report 0", msgid="<r0@x>"), reports)

        rc = _config(tmp_path, srv.imap_port)
        await deferToThread(_mbsync, rc)
        md = tmp_path / "Maildir"
        assert set(_maildir_messages(md / "INBOX")) == {f"inbox {i}" for i in range(5)}
        assert _maildir_messages(md / "Work") == {f"work {i}": "S" for i in range(3)}
        assert set(_maildir_messages(md / "Work" / "Reports")) == {"report 0"}

        # server side: flag one, delete one
        with store.write(a) as tx:
            for u, e in list(tx.uid_items(inbox)):
                subj = tx.summary(e)["subject"]
                if subj == "inbox 0":
                    tx.set_keywords(e, ["$flagged"])
                if subj == "inbox 1":
                    tx.set_deleted(e, inbox, True)
            tx.expunge(inbox)
        # local side: mark one seen, delete one, add one
        local = md / "INBOX"
        for sub in ("new", "cur"):
            for f in list((local / sub).iterdir()):
                text = f.read_bytes()
                if b"Subject: inbox 2" in text:
                    f.rename(local / "cur" / (f.name.split(":2,")[0] + ":2,S"))
                elif b"Subject: inbox 3" in text:
                    f.unlink()
        (local / "new" / "1700000000.local.host").write_bytes(message("local new", msgid="<l@x>"))

        await deferToThread(_mbsync, rc)
        # expunge the message mbsync flagged \Deleted on the server
        await deferToThread(_mbsync, rc)

        server = _server_messages(store, a, ["INBOX"])
        near = _maildir_messages(local)
        assert set(server) == set(near) == {"inbox 0", "inbox 2", "inbox 4", "local new"}, (server, near)
        assert "\\Flagged" in server["inbox 0"] and "F" in near["inbox 0"]
        assert "\\Seen" in server["inbox 2"] and "S" in near["inbox 2"]
