"""MULTIAPPEND (RFC 3502), CATENATE (RFC 4469), URLAUTH (RFC 4467), REPLACE (RFC 8508),
UNAUTHENTICATE (RFC 8437), LITERAL- (RFC 7888), SAVEDATE (RFC 8514) over the sans-I/O
session.  Bad input gets the code its RFC names and the store (modseq, JMAP states,
mailbox contents) is checked to be unchanged."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dualmail.imap.config import ImapConfig
from imap_util import PASSWORD, USER, Client, message


def lit(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


def snapshot(store: Any, account: int) -> tuple[Any, ...]:
    """Everything a refused command must leave as it was."""
    with store.read(account) as v:
        states = tuple(v.state(k) for k in ("Mailbox", "Email", "Thread"))
        boxes = tuple((b["name"], b["uidnext"], b["counts"]["msgs"]) for b in v.mailboxes())
        return (v.highest_modseq, states, boxes)


def uids(out: str) -> list[int]:
    m = re.search(r"APPENDUID \d+ ([0-9:,]+)", out)
    assert m, out
    got: list[int] = []
    for part in m.group(1).split(","):
        lo, _, hi = part.partition(":")
        got.extend(range(int(lo), int(hi or lo) + 1))
    return got


@pytest.fixture
def selected(client: Client) -> Client:
    client.send(b"p APPEND INBOX " + lit(message("one", "Body one\r\n")) + b"\r\n")
    client.send(b"q APPEND INBOX " + lit(message("two", "Body two\r\n")) + b"\r\n")
    client.ok("s SELECT INBOX")
    return client


# -- MULTIAPPEND ---------------------------------------------------------------------------


def test_capabilities_advertised(client: Client) -> None:
    caps = client.ok("c CAPABILITY")
    for cap in ("MULTIAPPEND", "CATENATE", "URLAUTH", "REPLACE", "UNAUTHENTICATE", "SAVEDATE",
                "LITERAL+"):
        assert f" {cap}" in caps
    assert "LITERAL-" not in caps  # RFC 7888 §5: never both


def test_multiappend_one_transaction_one_modseq(store: Any, account: int, client: Client) -> None:
    """RFC 3502 §6.3.11: the messages are appended together; one write, one modseq, and
    APPENDUID carries every new UID (RFC 4315 §3)."""
    before = snapshot(store, account)[0]
    out = client.send(b"a APPEND INBOX (\\Seen) " + lit(message("m1")) + b" " + lit(message("m2"))
                      + b' (\\Flagged) "01-Jan-2020 10:00:00 +0000" ' + lit(message("m3")) + b"\r\n")
    assert "a OK [APPENDUID 1 1:3]" in out
    with store.read(account) as v:
        assert v.highest_modseq == before + 1
        box = v.mailboxes()[0]
        mods = {u: v.email(e)["mbx"][str(box["id"])][2] for u, e in v.uid_items(box["id"])}
    assert set(mods.values()) == {before + 1}
    client.ok("s SELECT INBOX")
    got = client.ok("f FETCH 1:3 (FLAGS INTERNALDATE)")
    assert "1 FETCH (FLAGS (\\Seen \\Recent)" in got and "01-Jan-2020 10:00:00" in got


def test_multiappend_all_or_nothing(store: Any, account: int, client: Client) -> None:
    """RFC 3502 §6.3.11: NO means none of the messages were appended."""
    before = snapshot(store, account)
    out = client.send(b"a APPEND INBOX " + lit(message("m1")) + b" " + lit(b"") + b"\r\n")
    assert re.search(r"^a NO \[CANNOT\]", out, re.M), out
    out = client.send(b"b APPEND INBOX " + lit(message("m1")) + b' CATENATE (URL "/INBOX/;uid=99")\r\n')
    assert re.search(r'^b NO \[BADURL /INBOX/;uid=99\]', out, re.M), out
    assert snapshot(store, account) == before


def test_multiappend_limits(store: Any, account: int) -> None:
    """APPENDLIMIT is per message (RFC 7889 §3 with RFC 3502); the command's messages are
    bounded too (NO [LIMIT])."""
    cl = Client(store, ImapConfig(failed_login_delay=0, appendlimit=1000, max_append_messages=2))
    cl.login()
    before = snapshot(store, account)
    small = message("s")
    out = cl.send(b"a APPEND INBOX " + lit(small) + b" " + lit(small) + b" " + lit(small) + b"\r\n")
    assert re.search(r"^a NO \[LIMIT\]", out, re.M), out
    # the second message's synchronising literal is over APPENDLIMIT: no "+" for it
    out = cl.send(b"b APPEND INBOX " + lit(small) + b" {2000}\r\n")
    assert re.search(r"^b NO \[TOOBIG\]", out, re.M) and "+ " not in out, out
    out = cl.ok("c NOOP")
    assert snapshot(store, account) == before


# -- CATENATE ------------------------------------------------------------------------------


def test_catenate_text_and_url_parts(selected: Client) -> None:
    """RFC 4469 §3: the message is the parts' octets in order; URL parts name a message,
    its section or a partial range (RFC 5092 §5)."""
    text = b"\r\nextra\r\n"
    out = selected.send(b'a APPEND INBOX CATENATE (URL "/INBOX/;uid=1/;section=HEADER" TEXT '
                        + lit(b"Body three\r\n") + b' URL "/INBOX;UIDVALIDITY=1/;uid=2/;section=TEXT" TEXT '
                        + lit(text) + b' URL "/INBOX/;uid=2/;partial=0.4")\r\n')
    assert "a OK [APPENDUID 1 3]" in out, out
    body = selected.ok("f UID FETCH 3 BODY.PEEK[]")
    assert "Subject: one\r\n" in body and "Body three\r\nBody two\r\n\r\nextra\r\nFrom" in body


def test_catenate_badurl_checked_after_trycreate(store: Any, account: int, selected: Client) -> None:
    """RFC 4469 §5 BADURL for a URL naming nothing; a missing mailbox is TRYCREATE first
    (RFC 9051 §6.3.12), and nothing changes either way."""
    before = snapshot(store, account)
    for url in ("/INBOX;UIDVALIDITY=999/;uid=1", "/INBOX/;uid=7", "/Nope/;uid=1",
                "/INBOX/;uid=1/;section=3", "http://example.org/", "/INBOX/;uid=1;urlauth=anonymous",
                "imap://other@example.org/INBOX/;uid=1"):
        out = selected.send(b'a APPEND INBOX CATENATE (TEXT ' + lit(b"x: y\r\n\r\n") + b' URL "'
                            + url.encode() + b'")\r\n')
        assert re.search(rf"^a NO \[BADURL {re.escape(url)}\]", out, re.M), (url, out)
    out = selected.send(b'b APPEND Missing CATENATE (URL "/INBOX/;uid=77")\r\n')
    assert re.search(r"^b NO \[TRYCREATE\]", out, re.M), out
    assert snapshot(store, account) == before


def test_catenate_toobig(store: Any, account: int) -> None:
    """RFC 4469 §5: a result over APPENDLIMIT is NO [TOOBIG]."""
    cl = Client(store, ImapConfig(failed_login_delay=0, appendlimit=300))
    cl.login()
    cl.send(b"p APPEND INBOX " + lit(message("one", "x" * 50 + "\r\n")) + b"\r\n")
    before = snapshot(store, account)
    out = cl.send(b'a APPEND INBOX CATENATE (URL "/INBOX/;uid=1" URL "/INBOX/;uid=1")\r\n')
    assert re.search(r"^a NO \[TOOBIG\]", out, re.M), out
    assert snapshot(store, account) == before


def test_catenate_other_account_needs_urlauth(store: Any, account: int, selected: Client) -> None:
    """A plain URL reaches only the current user's mailboxes; another user's message is
    reachable through a URLAUTH-authorized URL its owner made (RFC 4469 §3, RFC 4467 §3)."""
    store.create_account("bob@example.org", PASSWORD)
    bob = Client(store)
    bob.ok(f"b LOGIN bob@example.org {PASSWORD}")
    bob.send(b"p APPEND INBOX " + lit(message("bob's", "Secret\r\n")) + b"\r\n")
    plain = "imap://bob@example.org/INBOX/;uid=1"
    out = selected.send(b'a APPEND INBOX CATENATE (URL "' + plain.encode() + b'")\r\n')
    assert "a NO [BADURL" in out
    gen = bob.ok(f'g GENURLAUTH "{plain};urlauth=user+{USER}" INTERNAL')
    url = re.search(r'GENURLAUTH "([^"]+)"', gen).group(1)  # type: ignore[union-attr]
    out = selected.send(b'c APPEND INBOX CATENATE (URL "' + url.encode() + b'")\r\n')
    assert "c OK [APPENDUID" in out, out


# -- URLAUTH -------------------------------------------------------------------------------


def _gen(cl: Client, url: str) -> str:
    out = cl.ok(f'g GENURLAUTH "{url}" INTERNAL')
    m = re.search(r'^\* GENURLAUTH "?([^"\r]+)"?\r$', out, re.M)
    assert m, out
    assert re.fullmatch(re.escape(url) + r":INTERNAL:[0-9a-f]{64}", m.group(1))
    return m.group(1)


def test_genurlauth_urlfetch_resetkey(store: Any, account: int, selected: Client) -> None:
    """RFC 4467 §7: GENURLAUTH signs the rump, URLFETCH returns the data, RESETKEY makes
    every URL of the mailbox fetch as NIL.  Keys are not JMAP-visible: no modseq, no
    state string moves (keys.py urlauthkey)."""
    before = snapshot(store, account)
    url = _gen(selected, f"imap://{USER}/INBOX/;uid=2/;section=TEXT;urlauth=user+{USER}")
    part = _gen(selected, f"imap://{USER}/INBOX/;uid=1/;partial=0.4;urlauth=authuser")
    assert snapshot(store, account) == before
    out = selected.ok(f'u URLFETCH "{url}" "{part}"')
    assert f'* URLFETCH "{url}" {{10}}\r\nBody two\r\n "{part}" {{4}}\r\nFrom\r\n' in out
    selected.ok("r RESETKEY INBOX")
    out = selected.ok(f'u URLFETCH "{url}"')
    assert f'* URLFETCH "{url}" NIL' in out
    assert snapshot(store, account) == before


def test_urlauth_access_identifiers(store: Any, account: int, selected: Client) -> None:
    """RFC 4467 §3: user+NAME only NAME; authuser any user; anonymous anyone; submit+
    never over IMAP; a tampered token, a past EXPIRE or unknown mechanism is NIL."""
    store.create_account("bob@example.org", PASSWORD)
    bob = Client(store)
    bob.ok(f"b LOGIN bob@example.org {PASSWORD}")
    base = f"imap://{USER}/INBOX/;uid=1"
    mine = _gen(selected, f"{base};urlauth=user+{USER}")
    bobs = _gen(selected, f"{base};urlauth=user+bob@example.org")
    anyone = _gen(selected, f"{base};urlauth=authuser")
    submit = _gen(selected, f"{base};urlauth=submit+{USER}")
    expired = _gen(selected, f"{base};expire=2001-01-01T00:00:00Z;urlauth=authuser")
    tampered = anyone[:-1] + ("0" if anyone[-1] != "0" else "1")
    for url, ok in ((mine, False), (bobs, True), (anyone, True), (submit, False), (expired, False),
                    (tampered, False)):
        out = bob.ok(f'u URLFETCH "{url}"')
        assert ("NIL" not in out) == ok, (url, out)
    assert "NIL" not in selected.ok(f'u URLFETCH "{mine}"')


def test_genurlauth_refusals(store: Any, account: int, selected: Client) -> None:
    """RFC 4467 §7.1: not a rump, another user's mailbox, an unknown mechanism: NO, and
    no GENURLAUTH response."""
    store.create_account("bob@example.org", PASSWORD)
    for args in ('"imap://bob@example.org/INBOX/;uid=1;urlauth=authuser" INTERNAL',
                 f'"imap://{USER}/INBOX/;uid=1" INTERNAL',
                 f'"imap://{USER}/INBOX/;uid=9;urlauth=authuser" INTERNAL',
                 f'"imap://{USER}/INBOX/;uid=1;urlauth=authuser:INTERNAL:{"0" * 32}" INTERNAL',
                 f'"imap://{USER}/INBOX/;uid=1;urlauth=authuser" XSECRET',
                 '"/INBOX/;uid=1;urlauth=authuser" INTERNAL'):
        out = selected.cmd(f"g GENURLAUTH {args}")
        assert re.search(r"^g NO ", out, re.M) and "* GENURLAUTH" not in out, (args, out)
    out = selected.cmd("r RESETKEY Nope")
    assert "r NO [NONEXISTENT]" in out


def test_urlfetch_nil_for_junk(selected: Client) -> None:
    out = selected.ok('u URLFETCH "junk" "imap://x/INBOX/;uid=1;urlauth=anonymous:INTERNAL:00000000000000000000000000000000"')
    assert out.count("NIL") == 2


# -- REPLACE -------------------------------------------------------------------------------


def test_replace(store: Any, account: int, selected: Client) -> None:
    """RFC 8508 §3.4, §4.3: APPENDUID in an untagged OK before the EXPUNGE; the old
    message is gone, the new one appended, in one transaction."""
    before = snapshot(store, account)[0]
    out = selected.send(b"r UID REPLACE 1 INBOX (\\Draft) " + lit(message("three")) + b"\r\n")
    assert out.index("* OK [APPENDUID 1 3]") < out.index("* 1 EXPUNGE") < out.index("r OK"), out
    assert snapshot(store, account)[0] == before + 1
    got = selected.ok("f UID FETCH 1:* (UID FLAGS)")
    assert "UID 2 " in got and "UID 3 FLAGS (\\Draft" in got and "UID 1 " not in got


def test_replace_with_qresync(selected: Client) -> None:
    """RFC 8508 §4.5: the replaced message goes as with UID EXPUNGE: VANISHED and the
    tagged OK carries HIGHESTMODSEQ (RFC 7162 §3.2.10)."""
    selected.ok("u UNSELECT")
    selected.ok("e ENABLE QRESYNC")
    selected.ok("s SELECT INBOX")
    out = selected.send(b"r UID REPLACE 2 INBOX " + lit(message("new")) + b"\r\n")
    assert "* VANISHED 2" in out and re.search(r"^r OK \[HIGHESTMODSEQ \d+\]", out, re.M), out


def test_replace_failure_changes_nothing(store: Any, account: int, selected: Client) -> None:
    """RFC 8508 §3.4: an error leaves the selected mailbox as it was; no EXPUNGE."""
    before = snapshot(store, account)
    for line, code in ((b"a REPLACE 1 Missing " + lit(message("x")), "TRYCREATE"),
                       (b'b REPLACE 1 INBOX CATENATE (URL "/INBOX/;uid=50")', "BADURL"),
                       (b"c UID REPLACE 50 INBOX " + lit(message("x")), "EXPUNGEISSUED")):
        out = selected.send(line + b"\r\n")
        assert re.search(rf"^[abc] NO \[{code}", out, re.M) and "EXPUNGE\r" not in out, out
    assert snapshot(store, account) == before
    selected.ok("e EXAMINE INBOX")
    out = selected.send(b"d REPLACE 1 INBOX " + lit(message("x")) + b"\r\n")
    assert "d NO [CANNOT]" in out


def test_replace_needs_selected_state(client: Client) -> None:
    """RFC 8508 §3.5."""
    out = client.send(b"a REPLACE 1 INBOX " + lit(message("x")) + b"\r\n")
    assert "a BAD" in out


# -- UNAUTHENTICATE, LITERAL- ----------------------------------------------------------------


def test_unauthenticate_resets_state(selected: Client) -> None:
    """RFC 8437 §3, §4.1: back to not authenticated, ENABLE and CONDSTORE forgotten;
    a pipelined LOGIN works."""
    selected.ok("e FETCH 1 (MODSEQ)")
    out = selected.cmd(f"u UNAUTHENTICATE\r\nl LOGIN {USER} {PASSWORD}")
    assert "u OK" in out and "l OK" in out
    assert not selected.session.condstore and selected.session.selected is None
    assert "e BAD" not in selected.ok("e ENABLE UTF8=ACCEPT")
    out = selected.cmd("u UNAUTHENTICATE")
    assert "u OK" in out
    assert "f BAD" in selected.cmd("f SELECT INBOX")
    assert "u BAD" in selected.cmd("u UNAUTHENTICATE")


def test_literal_minus(store: Any, account: int) -> None:
    """RFC 7888 §5: LITERAL- instead of LITERAL+; a non-synchronising literal over 4096
    octets is BAD [TOOBIG] (the octets are read and dropped), the connection goes on."""
    cl = Client(store, ImapConfig(failed_login_delay=0, literal_minus=True))
    caps = cl.cmd("c CAPABILITY")
    assert "LITERAL-" in caps and "LITERAL+" not in caps
    cl.login()
    before = snapshot(store, account)
    big = message("big", "x" * 5000 + "\r\n")
    out = cl.send(b"a APPEND INBOX " + lit(big) + b"\r\n")
    assert re.search(r"^a BAD \[TOOBIG\]", out, re.M), out
    assert not cl.closed and "n OK" in cl.cmd("n NOOP")
    assert snapshot(store, account) == before
    out = cl.send(b"b APPEND INBOX " + lit(message("small")) + b"\r\n")
    assert "b OK [APPENDUID" in out


# -- SAVEDATE ------------------------------------------------------------------------------


def test_savedate_per_mailbox(store: Any, account: int, selected: Client, monkeypatch: Any) -> None:
    """RFC 8514 §3: the save date is when the message entered that mailbox; COPY and MOVE
    give the new copy a new one and leave the source's alone."""
    import dualmail.store.txn as txn

    selected.ok("c CREATE Other")
    monkeypatch.setattr(txn.time, "time", lambda: 1_600_000_000.0)  # 13-Sep-2020
    selected.ok("k UID COPY 1 Other")
    out = selected.ok("f UID FETCH 1 (SAVEDATE)")
    assert "2020" not in out
    selected.ok("s SELECT Other")
    out = selected.ok("f FETCH 1 (SAVEDATE INTERNALDATE)")
    assert 'SAVEDATE "13-Sep-2020 12:26:40 +0000"' in out
    assert "* SEARCH 1\r" in selected.ok("s SEARCH SAVEDON 13-Sep-2020")
    assert "* SEARCH\r" in selected.ok("s SEARCH SAVEDSINCE 14-Sep-2020")
    assert "* SEARCH 1\r" in selected.ok("s SEARCH SAVEDBEFORE 14-Sep-2020 SAVEDATESUPPORTED")


def test_savedate_old_records_use_internaldate(store: Any, account: int, selected: Client) -> None:
    """A membership made before save dates were kept answers its internal date (RFC 8514
    §3 defines support per mailbox; the fallback is the one §4.3 gives SEARCH)."""
    with store.write(account) as tx:
        box = tx.mailboxes()[0]["id"]
        tx.w.delete("savedate", __import__("dualmail.store.keys", fromlist=["uid"]).uid(account, box, 1))
    out = selected.ok("f UID FETCH 1 (SAVEDATE INTERNALDATE)")
    saved = re.search(r'SAVEDATE "([^"]+)"', out).group(1)  # type: ignore[union-attr]
    assert f'INTERNALDATE "{saved}"' in out


def test_literal_minus_option(tmp_path: Any) -> None:
    """``--literal-minus`` reaches the IMAP config (RFC 7888 §5: a configuration choice)."""
    from twisted.internet.testing import MemoryReactorClock

    from dualmail.imap.protocol import make_factories
    from dualmail.store.store import open_store
    from dualmail.tap import Options

    for flag, want in (([], False), (["--literal-minus"], True)):
        opts = Options()
        opts.parseOptions(["--data", str(tmp_path / "d")] + flag)
        store = open_store(str(tmp_path / "d"), sync=False)
        try:
            [(_kind, imap)] = make_factories(store, opts, MemoryReactorClock())
            assert imap.config.literal_minus is want
        finally:
            store.close()
