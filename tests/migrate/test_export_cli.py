"""``dualmail export`` through the CLI: the Maildir++ files, their names and times, the
UID list, keywords; a non-empty target is refused and nothing is written."""

from __future__ import annotations

import os
import subprocess
import sys

from dualmail.store.store import open_store
from tests.conftest import summary


def test_export_cli_writes_maildir_with_uidlist(tmp_path):
    data = str(tmp_path / "data")
    s = open_store(data, sync=False)
    a = s.create_account("a@x", "pw")
    raw = b"Subject: hi\r\n\r\nbody\r\n"
    with s.write(a) as tx:
        m = tx.create_mailbox_as("Old.Stuff", uidvalidity=4242)
        tx.create_email(raw, summary("a@x"), [m], ["$seen", "work"], 1600000000, at_uids={m: 17})
        tx.create_email(raw, summary("b@x"), [m], [], 1600000100, at_uids={m: 20}, deleted=True)
        tx.raise_uidnext(m, 30)
    s.close()
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "dualmail.cli", "--data", data, "export", "a@x", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "exported 7 mailboxes, 2 messages" in r.stdout and "'.' in a name" in r.stdout
    d = out / ".Old_Stuff"
    lines = (d / "dovecot-uidlist").read_text().splitlines()
    assert lines[0].startswith("3 V4242 N30 G")
    files = sorted(os.listdir(d / "cur"))
    assert [f.rsplit(":2,", 1)[1] for f in files] == ["Sa", "T"]
    assert [int(line.split()[0]) for line in lines[1:]] == [17, 20]
    assert {line.split(" :", 1)[1] for line in lines[1:]} == {f.rsplit(":2,", 1)[0] for f in files}
    assert (d / "dovecot-keywords").read_text() == "0 work\n"
    assert (d / "cur" / files[0]).read_bytes() == raw
    assert int(os.stat(d / "cur" / files[0]).st_mtime) == 1600000000
    assert (out / "cur").is_dir() and (d / "maildirfolder").exists()
    # a non-empty target: refused, nothing written
    before = sorted(os.listdir(out))
    r = subprocess.run([sys.executable, "-m", "dualmail.cli", "--data", data, "export", "a@x", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "not empty" in r.stderr
    assert sorted(os.listdir(out)) == before
