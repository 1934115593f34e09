"""The ``dualmail`` command and ``twistd dualmail`` as a newcomer uses them (issue: store).

These run real subprocesses: the console script installed next to the test's Python (a
plain ``pip install .``), falling back to ``python -m dualmail.cli`` in a checkout.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import select
import shlex
import socket
import sys

import pytest

from dualmail.store.check import verify
from dualmail.store.store import open_store

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
sys.path.insert(0, os.path.join(ROOT, "bench"))
import mailgen  # noqa: E402


def dualmail_cmd() -> list[str]:
    script = os.path.join(BIN, "dualmail")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "dualmail.cli"]


def run(data, *args, stdin: str | None = None, check: bool = False):
    env = {**os.environ, "PYTHONPATH": ROOT}
    p = subprocess.run([*dualmail_cmd(), "--data", str(data), *args], input=stdin, capture_output=True,
                       text=True, env=env, cwd=ROOT, timeout=300)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_user_add_list_passwd_delete(tmp_path):
    data = tmp_path / "d"
    assert run(data, "user", "add", "Alice@Example.org", stdin="pw1\n", check=True).stdout.strip() == "added alice@example.org"
    assert run(data, "user", "list", check=True).stdout.split() == ["alice@example.org"]
    dup = run(data, "user", "add", "alice@example.org", stdin="pw\n")
    assert dup.returncode != 0 and dup.stderr.strip() == "dualmail: user alice@example.org already exists"
    run(data, "user", "passwd", "alice@example.org", stdin="pw2\n", check=True)
    s = open_store(str(data))
    try:
        assert s.authenticate("alice@example.org", "pw2") is not None
        assert s.authenticate("alice@example.org", "pw1") is None
    finally:
        s.close()
    no = run(data, "user", "delete", "alice@example.org")
    assert no.returncode != 0 and "--yes" in no.stderr
    run(data, "user", "delete", "alice@example.org", "--yes", check=True)
    assert run(data, "user", "list", check=True).stdout == ""


def test_bad_input_is_one_line_and_changes_nothing(tmp_path):
    data = tmp_path / "d"
    run(data, "user", "add", "a@x", stdin="pw\n", check=True)
    unknown = run(data, "import", "nobody@x", str(tmp_path))
    assert unknown.returncode != 0 and unknown.stderr == "dualmail: no such user: nobody@x\n"
    (tmp_path / "notmail.txt").write_text("hello\n")
    bad = run(data, "import", "a@x", str(tmp_path / "notmail.txt"))
    assert bad.returncode != 0
    assert bad.stderr.count("\n") == 1 and "not an mbox" in bad.stderr
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    bad2 = run(data, "import", "a@x", str(empty_dir))
    assert bad2.returncode != 0 and "not a Maildir" in bad2.stderr
    s = open_store(str(data))
    try:
        a = s.require_account("a@x")
        with s.read(a) as r:
            assert r.highest_modseq == 1 and [m["name"] for m in r.mailboxes()][0] == "INBOX"
            assert all(m["counts"]["msgs"] == 0 for m in r.mailboxes())
    finally:
        s.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere (CI covers the file case below)")
def test_unwritable_store(tmp_path):
    data = tmp_path / "ro"
    data.mkdir()
    data.chmod(0o555)
    p = run(data, "user", "list")
    assert p.returncode != 0
    assert p.stderr == f"dualmail: the data directory {data} is not writable\n"
    assert os.listdir(data) == []


def test_store_path_that_is_a_file(tmp_path):
    data = tmp_path / "file"
    data.write_bytes(b"not a store")
    p = run(data, "user", "add", "a@x", stdin="pw\n")
    assert p.returncode != 0
    assert p.stderr == f"dualmail: {data} is not a directory\n"
    assert data.read_bytes() == b"not a store"


def test_newer_format_refused(tmp_path):
    data = tmp_path / "d"
    run(data, "user", "add", "a@x", stdin="pw\n", check=True)
    s = open_store(str(data))
    with s.kv.write() as w:
        w.put("meta", b"format", b"99")
    s.close()
    p = run(data, "user", "list")
    assert p.returncode != 0 and p.stderr.startswith("dualmail: the store was written by a newer dualmail")
    assert p.stderr.count("\n") == 1


def test_import_mbox_and_maildir_twice(tmp_path):
    data = tmp_path / "d"
    run(data, "user", "add", "a@x", stdin="pw\n", check=True)
    records = list(mailgen.generate_records(300, seed=7))
    with open(tmp_path / "in.mbox", "wb") as f:
        mailgen.write_mbox(f, [r for r in records[:150]])
    mailgen.write_maildir(str(tmp_path / "Maildir"), records[150:])
    out = run(data, "import", "a@x", str(tmp_path / "in.mbox"), "--mailbox", "Old/2019", check=True).stdout
    assert out.strip() == "imported 150, skipped 0 (already present), failed 0"
    out = run(data, "import", "a@x", str(tmp_path / "Maildir"), check=True).stdout
    assert out.strip() == "imported 150, skipped 0 (already present), failed 0"
    again = run(data, "import", "a@x", str(tmp_path / "in.mbox"), "--mailbox", "Old/2019", check=True).stdout
    assert again.strip() == "imported 0, skipped 150 (already present), failed 0"
    again = run(data, "import", "a@x", str(tmp_path / "Maildir"), check=True).stdout
    assert again.strip() == "imported 0, skipped 150 (already present), failed 0"
    s = open_store(str(data))
    try:
        a = s.require_account("a@x")
        with s.read(a) as r:
            assert verify(r) == []
            old = r.mailbox_by_path(["Old", "2019"])
            assert r.mailbox(old)["counts"]["msgs"] == 150
            total = sum(m["counts"]["msgs"] for m in r.mailboxes())
            assert total == 300
    finally:
        s.close()
    assert run(data, "check", check=True).stdout.strip() == "a@x: ok"


def test_import_preserves_flags_and_dates(tmp_path):
    data = tmp_path / "d"
    run(data, "user", "add", "a@x", stdin="pw\n", check=True)
    md = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    (md / "cur" / "1500000000.M1P1.host:2,FS").write_bytes(b"Subject: a\n\nbody\n")
    (md / "new" / "1600000000.M2P2.host").write_bytes(b"Subject: b\n\nbody\n")
    (md / ".Sent" / "cur").mkdir(parents=True)
    (md / ".Sent" / "new").mkdir()
    (md / ".Sent" / "tmp").mkdir()
    (md / ".Sent" / "cur" / "1400000000.M3P3.host:2,RST").write_bytes(b"Subject: c\n\nbody\n")
    run(data, "import", "a@x", str(md), check=True)
    s = open_store(str(data))
    try:
        a = s.require_account("a@x")
        with s.read(a) as r:
            got = {}
            for box in ("INBOX", "Sent"):
                m = r.mailbox_by_path([box])
                for u, e in r.uid_items(m):
                    rec = r.email(e)
                    got[r.raw_message(e).split(b"\r\n")[0]] = (box, rec["recv"], rec["kw"], rec["mbx"][str(m)][1])
        assert got[b"Subject: a"] == ("INBOX", 1500000000, ["$flagged", "$seen"], 0)
        assert got[b"Subject: b"] == ("INBOX", 1600000000, [], 0)
        assert got[b"Subject: c"] == ("Sent", 1400000000, ["$answered", "$seen"], 1)
    finally:
        s.close()


def _exits(pid: int, timeout: float) -> bool:
    """Wait for process ``pid`` (not our child) to end: a pidfd is readable once it has."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def test_import_is_crash_safe(tmp_path):
    """SIGKILL mid-import: the store passes its invariants and every message the import
    reported as committed is present (CONTRACT §7)."""
    data = tmp_path / "d"
    run(data, "user", "add", "a@x", stdin="pw\n", check=True)
    with open(tmp_path / "big.mbox", "wb") as f:
        mailgen.write_mbox(f, list(mailgen.generate_records(3000, seed=3)))
    code = (
        "import sys\n"
        "from dualmail.store.store import open_store\n"
        "from dualmail.importer_run import run_import\n"
        "s = open_store(sys.argv[1])\n"
        "a = s.require_account('a@x')\n"
        "import multiprocessing\n"
        # Batches of 200 (not up to 2,000 messages or 32 MB): on a fast machine the parsers
        # would otherwise have read the whole file before the first commit, and ended.
        "import dualmail.importer_run as ir\n"
        "ir.BATCH_MESSAGES = 200\n"
        "def committed(keys):\n"
        "    pids = ' '.join(str(c.pid) for c in multiprocessing.active_children())\n"
        "    sys.stdout.write(''.join(k.hex() + '\\n' for k in keys) + 'COMMIT ' + pids + '\\n')\n"
        "    sys.stdout.flush()\n"
        "run_import(s, a, sys.argv[2], workers=2, on_commit=committed)\n"
        "sys.stdout.write('DONE\\n')\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(data), str(tmp_path / "big.mbox")],
                         stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    reported: list[bytes] = []
    pending: list[bytes] = []
    parsers: list[int] = []
    for line in p.stdout:
        line = line.strip()
        if line.startswith("COMMIT"):
            reported += pending
            pending = []
            # the parsers seen at some commit: by the 500th message they may have parsed
            # the whole file and ended (on a loaded machine the commits trail behind)
            parsers = [int(x) for x in line.split()[1:]] or parsers
            if len(reported) >= 500:
                p.send_signal(signal.SIGKILL)
                break
        elif line == "DONE":
            break
        else:
            pending.append(bytes.fromhex(line))
    p.wait()
    assert p.returncode == -signal.SIGKILL, "the import finished before it could be killed"
    assert len(reported) >= 500
    # The parsing processes notice that the importer is gone and end.
    assert len(parsers) == 2
    for pid in parsers:
        assert _exits(pid, timeout=30), "a parser process outlived the importer"
    s = open_store(str(data))
    try:
        a = s.require_account("a@x")
        with s.read(a) as r:
            assert verify(r) == []
            inbox = r.mailbox_by_path(["INBOX"])
            missing = [k for k in reported if r.imported(inbox, k) is None]
            assert missing == []
    finally:
        s.close()


def _twistd() -> list[str]:
    script = os.path.join(BIN, "twistd")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "twisted"]


def test_twistd_first_start_and_sigterm(tmp_path):
    """The README's run command: first start makes demo@localhost, says how to log in once,
    in the log and a 0600 file; SIGTERM closes the store cleanly."""
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"}
    args = [*_twistd(), "-n", "--pidfile=", "--logfile=-", "dualmail", "--data", str(data),
            "--imap", "tcp:0:interface=127.0.0.1", "--jmap", "tcp:0:interface=127.0.0.1",
            "--lmtp", "tcp:0:interface=127.0.0.1"]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)
    lines = []
    for line in p.stdout:
        lines.append(line)
        if "dualmail ready" in line:
            break
    log = "".join(lines)
    assert "demo@localhost" in log, log
    password = log.split("password:")[1].split()[0]
    cred = data / "first-login.txt"
    assert stat.S_IMODE(cred.stat().st_mode) == 0o600
    assert password in cred.read_text()
    p.send_signal(signal.SIGTERM)
    rest = p.communicate(timeout=60)[0]
    # twistd stops the reactor, then exits by re-raising the signal it got
    assert p.returncode == -signal.SIGTERM, rest
    assert "dualmail store closed" in rest and "Server Shut Down" in rest
    # issue 10: the banner names the dualmail command that works from here (the one beside
    # the running Python: .venv/bin is not on PATH after the README's install)
    hint = log.split("Add users with: ")[1].split("\n")[0]
    assert hint.endswith(" user add ADDRESS"), hint
    command = shlex.split(hint.rsplit(" user add", 1)[0])
    if os.path.exists(os.path.join(BIN, "dualmail")):
        assert os.path.samefile(os.path.join(ROOT, command[0]), os.path.join(BIN, "dualmail")), hint
    listed = subprocess.run([*command, "user", "list"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert listed.returncode == 0 and "demo@localhost" in listed.stdout, (hint, listed)
    # a second start does not make another account or print a password
    p2 = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)
    out2 = []
    for line in p2.stdout:
        out2.append(line)
        if "dualmail ready" in line:
            break
    p2.send_signal(signal.SIGTERM)
    out2.append(p2.communicate(timeout=60)[0])
    assert "password:" not in "".join(out2)
    s = open_store(str(data))
    try:
        assert [a for _n, a in s.list_accounts()] == ["demo@localhost"]
        assert s.authenticate("demo@localhost", password) is not None
    finally:
        s.close()


def test_plugin_found_after_plain_install(tmp_path):
    """twisted/plugins packaging trap: after a non-editable ``pip install .`` the plugin must
    be found from anywhere (not only from a checkout)."""
    twistd = os.path.join(BIN, "twistd")
    probe = subprocess.run([sys.executable, "-c", "import dualmail, sys; print(dualmail.__file__)"],
                           capture_output=True, text=True, cwd=str(tmp_path), env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    if probe.returncode != 0 or not os.path.exists(twistd):
        pytest.skip("dualmail is not installed in this environment (run the README's test command)")
    out = subprocess.run([twistd, "--help"], capture_output=True, text=True, cwd=str(tmp_path),
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert "dualmail" in out.stdout


def test_compact_drops_old_tombstones(tmp_path):
    """``dualmail compact``: tombstones below the kept window go and the floor rises, so
    QRESYNC clients older than it get the RFC 7162 §3.2.5.2 fallback."""
    data = tmp_path / "d"
    run(data, "user", "add", "a@x", stdin="pw\n", check=True)
    s = open_store(str(data))
    try:
        a = s.require_account("a@x")
        with s.write(a) as tx:
            es = [tx.create_email(b"Subject: x\r\n\r\n", {"message_id": [f"{i}@x"]}, [1])[0] for i in range(3)]
        for e in es[:2]:
            with s.write(a) as tx:
                tx.destroy_email(e)
        with s.read(a) as r:
            assert len(r.expunged_since(1, 0)) == 2
    finally:
        s.close()
    assert run(data, "compact", "--keep", "1", check=True).stdout.strip() == "a@x: dropped 1 expunge tombstones"
    s = open_store(str(data))
    try:
        with s.read(a) as r:
            assert len(r.expunged_since(1, 0)) == 1 and r.expunge_floor(1) == r.highest_modseq - 1
            assert verify(r) == []
    finally:
        s.close()


def test_check_upgrade_builds_the_imap_indexes_of_an_old_store(tmp_path):
    """``dualmail check --upgrade``: a store from before the IMAP indexes (no rows, no
    "ix" mark, no stored header fields) gets them; no modseq is taken; ``check`` is ok."""
    from dualmail.mail.ops import deliver
    from dualmail.store import imapidx
    from tests.old_store import make_old

    data = tmp_path / "d"
    run(data, "user", "add", "a@x", stdin="pw\n", check=True)
    s = open_store(str(data))
    try:
        a = s.require_account("a@x")
        for m in mailgen.generate_records(5, seed=2):
            deliver(s, a, m.raw, 1, ("\\Seen",) if m.date % 2 else ())
        make_old(s, a)
        with s.read(a) as r:
            modseq = r.highest_modseq
    finally:
        s.close()
    out = run(data, "check", "--upgrade", check=True).stdout
    assert "a@x: mailbox 1: IMAP indexes built" in out and "a@x: 5 emails: header fields stored" in out
    assert out.strip().endswith("a@x: ok")
    assert run(data, "check", "--upgrade", check=True).stdout.strip() == "a@x: ok"  # nothing left
    s = open_store(str(data))
    try:
        with s.read(a) as r:
            assert r.highest_modseq == modseq and verify(r) == []
            assert all(imapidx.ready(b) for b in r.mailboxes())
    finally:
        s.close()


def test_twistd_port_in_use_is_one_line_and_exit_1(tmp_path):
    """Issue 10: a port already taken printed a 39-line traceback; now one line names the
    listener and the address, and twistd exits 1 (the store is not left half-started)."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"}
    try:
        for kind in ("imap", "jmap"):
            other = "jmap" if kind == "imap" else "imap"
            args = [*_twistd(), "-n", "--pidfile=", "--logfile=-", "dualmail",
                    "--data", str(tmp_path / "data"), "--no-first-account",
                    f"--{kind}", f"tcp:{port}:interface=127.0.0.1",
                    f"--{other}", "tcp:0:interface=127.0.0.1", "--lmtp", "tcp:0:interface=127.0.0.1"]
            p = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
            out = p.stdout + p.stderr
            assert p.returncode == 1, out
            assert "Traceback" not in out, out
            errors = [line for line in out.splitlines() if "dualmail:" in line]
            label = kind.upper()
            assert len(errors) == 1 and errors[0].endswith(
                f"dualmail: cannot listen for {label} on 127.0.0.1:{port}: address already in use; "
                f"choose another with --{kind}"), out
    finally:
        busy.close()


def test_systemd_unit_runs_valid_options():
    """contrib/dualmail.service (issue 10): twistd in the foreground under systemd, with
    options dualmail accepts (kept in step with tap.Options)."""
    from dualmail.tap import Options

    unit = open(os.path.join(ROOT, "contrib", "dualmail.service")).read()
    [exec_start] = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = shlex.split(exec_start)
    assert argv[0].endswith("/twistd") and "--nodaemon" in argv[: argv.index("dualmail")]
    opts = Options()
    opts.parseOptions(argv[argv.index("dualmail") + 1 :])
    assert opts["data"] == "/var/lib/dualmail"


def _wait_for(condition, timeout: float = 60.0) -> bool:
    """Poll ``condition`` (a file appearing, a process ending) for at most ``timeout``."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_twistd_as_a_daemon_pidfile_logfile_and_stop(tmp_path):
    """README / docs/operating.md (issue 10): without -n twistd forks, writes the pidfile and
    the log file; SIGTERM to the pid stops it and closes the store."""
    pidfile, logfile = tmp_path / "dualmail.pid", tmp_path / "dualmail.log"
    env = {**os.environ, "PYTHONPATH": ROOT}
    args = [*_twistd(), f"--pidfile={pidfile}", f"--logfile={logfile}", "dualmail",
            "--data", str(tmp_path / "data"), "--imap", "tcp:0:interface=127.0.0.1",
            "--jmap", "tcp:0:interface=127.0.0.1", "--lmtp", "tcp:0:interface=127.0.0.1"]
    started = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr  # the parent returns at once
    assert _wait_for(lambda: pidfile.exists() and logfile.exists() and "dualmail ready" in logfile.read_text())
    pid = int(pidfile.read_text())

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    try:
        os.kill(pid, signal.SIGTERM)
        assert _wait_for(gone)
    finally:
        if not gone():
            os.kill(pid, signal.SIGKILL)
    log = logfile.read_text()
    assert "dualmail store closed" in log, log
    assert not pidfile.exists()


def test_token_create_list_revoke_with_scope_and_expiry(tmp_path):
    data = tmp_path / "d"
    run(data, "user", "add", "a@x", stdin="pw\n", check=True)
    imap = run(data, "token", "create", "a@x", "--scope", "imap", "--expires", "30d", "--note", "phone",
               check=True).stdout.strip()
    run(data, "token", "create", "a@x", "--scope", "jmap-read", check=True)
    listing = run(data, "token", "list", "a@x", check=True).stdout.splitlines()
    assert len(listing) == 2 and imap not in "".join(listing)  # never the token itself
    phone = next(line for line in listing if "phone" in line)
    assert " imap " in phone and "expires never" not in phone
    assert any(" jmap-read " in line and "expires never" in line for line in listing)
    bad = run(data, "token", "create", "a@x", "--expires", "soon")
    assert bad.returncode != 0 and "--expires" in bad.stderr
    assert run(data, "token", "create", "a@x", "--scope", "root").returncode != 0
    assert run(data, "token", "revoke", "a@x", phone.split()[0], check=True).stdout.strip() == "revoked 1 token(s)"
    assert len(run(data, "token", "list", "a@x", check=True).stdout.splitlines()) == 1
    s = open_store(str(data))
    try:
        assert s.verify_token(imap) is None
    finally:
        s.close()


def test_a_token_never_starts_with_a_dash_so_revoke_takes_it(tmp_path, monkeypatch):
    """token_urlsafe's alphabet has "-": a token "-..." given to ``token revoke`` read as an
    option (argparse usage error; seen in tests/crash with seed 4)."""
    import secrets as secrets_mod

    from dualmail.store import passwords

    drawn = iter(["-dashfirst", "-again", "plainTOKEN_x"])
    monkeypatch.setattr(secrets_mod, "token_urlsafe", lambda n: next(drawn))
    assert passwords.new_secret(32) == "plainTOKEN_x"
    monkeypatch.undo()
    data = tmp_path / "d"
    run(data, "user", "add", "a@x", stdin="pw\n", check=True)
    s = open_store(str(data))
    try:
        tokens = [s.create_token("a@x") for _ in range(200)]  # 1 in 64 began with a dash before
    finally:
        s.close()
    assert not [t for t in tokens if t.startswith("-")]
    assert run(data, "token", "revoke", "a@x", tokens[0], check=True).stdout.strip() == "revoked 1 token(s)"
