"""End to end over the real listener: imapclient's MULTIAPPEND (RFC 3502), and imaplib
driving CATENATE (RFC 4469), URLAUTH across two accounts (RFC 4467), REPLACE (RFC 8508),
SAVEDATE (RFC 8514) and UNAUTHENTICATE (RFC 8437)."""

from __future__ import annotations

import imaplib
import re

import pytest
import pytest_twisted
from imapclient import IMAPClient
from twisted.internet.threads import deferToThread

from imap_util import message
from imap_e2e import PASSWORD, USER, running

pytestmark = pytest.mark.e2e

BOB = "bob@example.org"
for _name in ("GENURLAUTH", "URLFETCH", "RESETKEY", "UNAUTHENTICATE", "REPLACE"):
    imaplib.Commands.setdefault(_name, ("AUTH", "SELECTED", "NONAUTH"))


def _imapclient_multiappend(port: int) -> list[int]:
    with IMAPClient("127.0.0.1", port=port, ssl=False) as c:
        c.login(USER, PASSWORD)
        caps = c.capabilities()
        assert b"MULTIAPPEND" in caps and b"CATENATE" in caps and b"URLAUTH" in caps
        resp = c.multiappend("INBOX", [message("m1"), {"msg": message("m2"), "flags": ["\\Seen"]},
                                       message("m3")])
        c.select_folder("INBOX")
        c.use_uid = False
        got = c.fetch([1, 2, 3], ["UID", "FLAGS", "SAVEDATE"])
        assert len(got) == 3 and b"\\Seen" in got[2][b"FLAGS"]
        assert all(v[b"SAVEDATE"] for v in got.values())
        m = re.search(rb"APPENDUID \d+ ([0-9:]+)", resp if isinstance(resp, bytes) else str(resp).encode())
        assert m and m.group(1) == b"1:3", resp
        return sorted(got)


def _imaplib_session(port: int) -> tuple[str, str]:
    bob = imaplib.IMAP4("127.0.0.1", port)
    bob.login(BOB, PASSWORD)
    typ, data = bob.append("INBOX", None, None, message("for alice", "Bob's part\r\n"))
    assert typ == "OK"
    rump = f"imap://{BOB}/INBOX/;uid=1/;section=TEXT;urlauth=user+{USER}"
    typ, _ = bob._simple_command("GENURLAUTH", f'"{rump}"', "INTERNAL")
    _t, [signed] = bob._untagged_response(typ, [None], "GENURLAUTH")
    signed_url = signed.decode().strip('"')
    assert signed_url.startswith(rump + ":INTERNAL:")

    M = imaplib.IMAP4("127.0.0.1", port)
    try:
        M.login(USER, PASSWORD)
        M.select("INBOX")
        # CATENATE: a header of our own message 1 and bob's authorized body
        typ, data = M._simple_command(
            "APPEND", "INBOX", f'CATENATE (URL "/INBOX/;uid=1/;section=HEADER" URL "{signed_url}")')
        assert typ == "OK", data
        typ, data = M.uid("FETCH", "4", "(BODY.PEEK[TEXT])")
        assert data[0][1] == b"Bob's part\r\n", data
        # a plain URL into bob's account is not ours to read: BADURL, nothing appended
        typ, data = M._simple_command("APPEND", "INBOX", f'CATENATE (URL "imap://{BOB}/INBOX/;uid=1")')
        assert typ == "NO" and b"[BADURL" in data[0], data
        typ, data = M._simple_command("URLFETCH", f'"{signed_url}"')
        assert typ == "OK"
        _t, fetched = M._untagged_response(typ, data, "URLFETCH")
        assert any(isinstance(x, tuple) and x[1] == b"Bob's part\r\n" for x in fetched), fetched
        # REPLACE the CATENATE result with a new draft
        M.literal = message("replacement")
        typ, data = M._simple_command("UID", "REPLACE", "4", "INBOX", "(\\Draft)")
        assert typ == "OK", data
        typ, data = M.uid("SEARCH", "SAVEDSINCE", "1-Jan-2020", "DRAFT")
        assert data == [b"5"], data
        # UNAUTHENTICATE, then log in again as bob on the same connection
        typ, _ = M._simple_command("UNAUTHENTICATE")
        assert typ == "OK"
        M.state = "NONAUTH"
        typ, _ = M.login(BOB, PASSWORD)
        assert typ == "OK"
        typ, data = M.select("INBOX")
        assert data == [b"1"], data
    finally:
        M.logout()
    bob._simple_command("RESETKEY")
    typ, data = bob._simple_command("URLFETCH", f'"{signed_url}"')
    _t, fetched = bob._untagged_response(typ, data, "URLFETCH")
    bob.logout()
    return signed_url, repr(fetched)


@pytest_twisted.ensureDeferred
async def test_multiappend_catenate_urlauth_replace(tmp_path) -> None:
    async with running(tmp_path) as srv:
        assert await deferToThread(_imapclient_multiappend, srv.imap_port) == [1, 2, 3]
        srv.store.create_account(BOB, PASSWORD)
        bob = srv.store.account_id(BOB)
        url, after_reset = await deferToThread(_imaplib_session, srv.imap_port)
        assert after_reset.endswith("NIL']") or "NIL" in after_reset, after_reset
        with srv.store.read(srv.account) as v:
            box = v.mailboxes()[0]["id"]
            assert [u for u, _e in v.uid_items(box)] == [1, 2, 3, 5]
        with srv.store.read(bob) as v:  # bob's message is untouched by alice's reads
            assert [u for u, _e in v.uid_items(v.mailboxes()[0]["id"])] == [1]
