"""The ``dualmail`` command while the server runs (issue: store): a user added by the CLI
logs in at once, and mail imported by the CLI reaches an IDLE-ing IMAP session at once
(another process's commit, noticed through inotify — CONTRACT §5)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import pytest_twisted
from imapclient import IMAPClient
from twisted.internet.threads import deferToThread

from imap_e2e import PASSWORD, USER, running

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(data: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    script = os.path.join(os.path.dirname(sys.executable), "dualmail")
    cmd = [script] if os.path.exists(script) else [sys.executable, "-m", "dualmail.cli"]
    return subprocess.run([*cmd, "--data", data, *args], input=stdin, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ROOT}, timeout=120, check=True)


def _new_user_logs_in(port: int, data: str) -> list:
    cli(data, "user", "add", "bob@example.org", stdin="bobpass\n")
    with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=30) as c:
        c.login("bob@example.org", "bobpass")
        return [f for _flags, _sep, f in c.list_folders()]


def _import_reaches_idle(port: int, data: str, mbox: str) -> list:
    with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=30) as a:
        a.login(USER, PASSWORD)
        a.select_folder("INBOX")
        a.idle()
        out = cli(data, "import", USER, mbox, "--quiet")
        assert out.stdout.strip() == "imported 3, skipped 0 (already present), failed 0"
        seen: list = []
        for _ in range(20):
            seen.extend(a.idle_check(timeout=5))
            if (3, b"EXISTS") in seen:
                break
        a.idle_done()
        return seen


@pytest_twisted.ensureDeferred
async def test_cli_user_add_while_running(tmp_path) -> None:
    async with running(tmp_path) as srv:
        folders = await deferToThread(_new_user_logs_in, srv.imap_port, srv.data)
        assert "INBOX" in folders and "Sent" in folders


@pytest_twisted.ensureDeferred
async def test_cli_import_reaches_idle_session(tmp_path) -> None:
    mbox = tmp_path / "in.mbox"
    mbox.write_bytes(b"".join(
        b"From a@b Mon Jan  1 00:00:00 2024\nSubject: m%d\nMessage-ID: <%d@x>\n\nbody\n\n" % (i, i)
        for i in range(3)))
    async with running(tmp_path) as srv:
        seen = await deferToThread(_import_reaches_idle, srv.imap_port, srv.data, str(mbox))
        assert (3, b"EXISTS") in seen
