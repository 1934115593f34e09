"""End to end with imapclient: every command family, TLS (STARTTLS and implicit, with a
trustme CA), and two sessions where B's changes reach A in IDLE at once."""

from __future__ import annotations

import ssl
import threading

import pytest
import pytest_twisted
import trustme
from imapclient import IMAPClient
from twisted.internet.threads import deferToThread

from imap_util import message
from imap_e2e import PASSWORD, USER, running

pytestmark = pytest.mark.e2e


def _fl(flags: tuple) -> tuple:
    return tuple(f for f in flags if f != b"\\Recent")


def _imapclient_session(port: int) -> None:
    with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=30) as c:
        c.login(USER, PASSWORD)
        caps = c.capabilities()
        for cap in (b"IDLE", b"MOVE", b"UIDPLUS", b"ESEARCH", b"SORT", b"THREAD=REFERENCES",
                    b"SPECIAL-USE", b"LIST-STATUS"):
            assert cap in caps
        assert b"dualmail" in c.id_({"name": "pytest"})[0]
        assert c.enable("UTF8=ACCEPT") == [b"UTF8=ACCEPT"]
        c.create_folder("Reisen/Köln")
        folders = [f[2] for f in c.list_folders()]
        assert "Reisen/Köln" in folders and "INBOX" in folders
        special = {f[2]: f[0] for f in c.list_folders()}
        assert b"\\Sent" in special["Sent"]
        assert c.find_special_folder(b"\\Trash") == "Trash"
        c.subscribe_folder("Reisen/Köln")
        assert "Reisen/Köln" in [f[2] for f in c.list_sub_folders()]
        for i in range(3):
            c.append("INBOX", message(f"subject {i}", body=f"body number {i}\r\n"),
                     flags=[b"$Work"] if i == 1 else [])
        info = c.select_folder("INBOX")
        assert info[b"EXISTS"] == 3 and b"UIDVALIDITY" in info
        uids = c.search(["SUBJECT", "subject"])
        assert uids == [1, 2, 3]
        assert c.search(["KEYWORD", "$Work"]) == [2]
        assert c.search(["BODY", "number 2"]) == [3]
        assert c.sort(["REVERSE", "SUBJECT"]) == [3, 2, 1]
        assert c.thread() == ((1,), (2,), (3,))
        data = c.fetch([1, 2], ["FLAGS", "ENVELOPE", "BODY.PEEK[]", "RFC822.SIZE", "INTERNALDATE",
                                "BODYSTRUCTURE", "BINARY.SIZE[1]"])
        assert data[1][b"ENVELOPE"].subject == b"subject 0"
        assert _fl(data[2][b"FLAGS"]) == (b"$Work",)  # the spelling it was set with
        assert data[1][b"BODY[]"].startswith(b"From: Bob")
        c.add_flags([1], [b"\\Flagged"])
        c.remove_flags([2], [b"$work"])
        c.set_flags([3], [b"\\Seen", b"\\Answered"])
        assert {k: _fl(v) for k, v in c.get_flags([1, 2, 3]).items()} == \
            {1: (b"\\Flagged",), 2: (), 3: (b"\\Answered", b"\\Seen")}
        c.copy([1], "Reisen/Köln")
        assert c.folder_status("Reisen/Köln", ["MESSAGES"])[b"MESSAGES"] == 1
        c.move([2], "Archive")
        assert c.search() == [1, 3]
        c.delete_messages([3])
        assert c.expunge() is not None
        assert c.search() == [1]
        c.uid_expunge([1])
        st = c.folder_status("Archive", ["MESSAGES", "UIDNEXT", "UNSEEN", "SIZE"])
        assert st[b"MESSAGES"] == 1
        c.unselect_folder()
        c.select_folder("Reisen/Köln", readonly=True)
        assert _fl(c.fetch([1], ["FLAGS"])[1][b"FLAGS"]) == (b"\\Flagged",)
        c.close_folder()
        c.rename_folder("Reisen/Köln", "Reisen/Bonn")
        c.delete_folder("Reisen/Bonn")
        assert c.namespace().personal[0][0] == ""
        c.noop()


@pytest_twisted.ensureDeferred
async def test_imapclient_commands(tmp_path) -> None:
    async with running(tmp_path) as srv:
        await deferToThread(_imapclient_session, srv.imap_port)


def _tls_files(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    chain = tmp_path / "cert.pem"
    key = tmp_path / "key.pem"
    chain.write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    key.write_bytes(cert.private_key_pem.bytes())
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return str(chain), str(key), ctx


def _tls_session(port: int, imaps_port: int, ctx: ssl.SSLContext) -> None:
    with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=30) as c:
        assert b"STARTTLS" in c.capabilities()
        c.starttls(ctx)
        assert b"STARTTLS" not in c.capabilities()
        c.login(USER, PASSWORD)
        c.select_folder("INBOX")
    with IMAPClient("127.0.0.1", port=imaps_port, ssl=True, ssl_context=ctx, timeout=30) as c:
        assert b"AUTH=PLAIN" in c.capabilities()
        c.plain_login(USER, PASSWORD)
        c.select_folder("INBOX")


@pytest_twisted.ensureDeferred
async def test_starttls_and_implicit_tls(tmp_path) -> None:
    cert, key, ctx = _tls_files(tmp_path)
    async with running(tmp_path, "--tls-cert", cert, "--tls-key", key, imaps=True) as srv:
        await deferToThread(_tls_session, srv.imap_port, srv.imaps_port, ctx)


def _idle_pair(port: int) -> list:
    a = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=30)
    b = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=30)
    try:
        a.login(USER, PASSWORD)
        b.login(USER, PASSWORD)
        b.append("INBOX", message("one"))
        b.append("INBOX", message("two"))
        a.select_folder("INBOX")
        b.select_folder("INBOX")
        a.idle()
        seen: list = []

        def wait_for(pred) -> None:
            for _ in range(20):
                seen.extend(a.idle_check(timeout=5))
                if pred():
                    return
            raise AssertionError(seen)

        b.add_flags([1], [b"\\Flagged"])
        wait_for(lambda: any(r[1] == b"FETCH" for r in seen))
        b.append("INBOX", message("three"))
        wait_for(lambda: (3, b"EXISTS") in seen)
        b.delete_messages([2])
        b.expunge()
        wait_for(lambda: (2, b"EXPUNGE") in seen)
        a.idle_done()
        assert a.search() == [1, 3]  # UIDs
        return seen
    finally:
        for c in (a, b):
            try:
                c.logout()
            except Exception:
                pass


@pytest_twisted.ensureDeferred
async def test_two_sessions_idle(tmp_path) -> None:
    async with running(tmp_path) as srv:
        seen = await deferToThread(_idle_pair, srv.imap_port)
        assert any(r[1] == b"FETCH" and b"\\Flagged" in r[2][r[2].index(b"FLAGS") + 1] for r in seen
                   if r[1] == b"FETCH" and b"FLAGS" in r[2])
