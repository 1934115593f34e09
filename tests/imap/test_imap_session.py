"""Sans-I/O session tests: every command, rev1/rev2, and bad input answered with the exact
BAD / NO [CODE] the spec names while nothing in the store changes."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from imap_util import PASSWORD, USER, Client, deliver, lines, message
from dualmail.imap.config import ImapConfig


def snapshot(store: Any, account: int) -> Any:
    with store.read(account) as v:
        return (v.highest_modseq,
                sorted((m["id"], m["name"], m["parent"], m["sub"], m["uidnext"],
                        tuple(sorted(m["counts"].items()))) for m in v.mailboxes()))


@pytest.fixture
def unchanged(store: Any, account: int):
    """Call it after the setup; it asserts at the end that nothing changed since."""
    marks: list[Any] = []

    def mark() -> None:
        marks.append(snapshot(store, account))

    yield mark
    if marks:
        assert snapshot(store, account) == marks[0]


def tagged(out: str, tag: str) -> str:
    m = re.search(rf"^{re.escape(tag)} (.*?)\r?$", out, re.M)
    assert m, out
    return m.group(1)


# -- not authenticated ------------------------------------------------------------------


def test_greeting_and_capability(store, account) -> None:
    c = Client(store)
    assert c.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2 ")
    assert b"AUTH=PLAIN" in c.greeting and b"LOGINDISABLED" not in c.greeting
    out = c.ok("a CAPABILITY")
    assert "SASL-IR" in out and "UIDPLUS" not in out  # the full list comes after login
    out = c.login()
    assert "[CAPABILITY IMAP4rev1 IMAP4rev2" in out
    for cap in ("UIDPLUS", "MOVE", "IDLE", "LIST-STATUS", "SPECIAL-USE", "ESEARCH", "SEARCHRES",
                "SORT", "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT", "WITHIN", "PREVIEW",
                "BINARY", "UTF8=ACCEPT", "APPENDLIMIT=", "CREATE-SPECIAL-USE", "NAMESPACE",
                "CHILDREN", "UNSELECT", "STATUS=SIZE", "ID", "ENABLE", "LITERAL+",
                "CONDSTORE", "QRESYNC", "OBJECTID", "UIDONLY"):
        assert cap in out, cap
    assert all(re.search(rf" {cap}[] ]", out) for cap in ("METADATA", "METADATA-SERVER", "NOTIFY", "ESORT"))


def test_commands_need_login(store, account, unchanged) -> None:
    unchanged()
    c = Client(store)
    assert tagged(c.cmd("a SELECT INBOX"), "a") == "BAD Log in first"
    assert tagged(c.cmd("b CREATE foo"), "b") == "BAD Log in first"
    assert tagged(c.cmd("c FETCH 1 FLAGS"), "c").startswith("BAD")
    assert tagged(c.cmd("d ENABLE IMAP4rev2"), "d").startswith("BAD")


def test_login_failure(store, account, unchanged) -> None:
    unchanged()
    c = Client(store)
    assert tagged(c.cmd(f"a LOGIN {USER} wrong"), "a") == "NO [AUTHENTICATIONFAILED] Authentication failed"
    assert tagged(c.cmd("b LOGIN nobody@example.org x"), "b").startswith("NO [AUTHENTICATIONFAILED]")
    assert c.session.account is None


def test_logindisabled_off_loopback(store, account) -> None:
    c = Client(store, loopback=False)
    assert b"LOGINDISABLED" in c.greeting and b"AUTH=PLAIN" not in c.greeting
    assert tagged(c.cmd(f"a LOGIN {USER} {PASSWORD}"), "a").startswith("NO [PRIVACYREQUIRED]")
    ir = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    assert tagged(c.cmd(f"b AUTHENTICATE PLAIN {ir}"), "b").startswith("NO [PRIVACYREQUIRED]")
    # --allow-plaintext lifts it; so does TLS
    c2 = Client(store, ImapConfig(allow_plaintext=True, failed_login_delay=0), loopback=False)
    c2.login()
    c3 = Client(store, ImapConfig(tls_available=True, failed_login_delay=0), loopback=False)
    assert b"STARTTLS" in c3.greeting
    assert tagged(c3.cmd("a STARTTLS"), "a") == "OK Begin TLS negotiation now"
    assert c3.tls_started
    assert "AUTH=PLAIN" in c3.ok("b CAPABILITY") and "STARTTLS" not in c3.cmd("c CAPABILITY")
    c3.login()


def test_starttls_unavailable_and_buffer_discarded(store, account) -> None:
    c = Client(store)
    assert tagged(c.cmd("a STARTTLS"), "a").startswith("NO")
    c = Client(store, ImapConfig(tls_available=True))
    # a command pipelined after STARTTLS in the clear must not be executed (RFC 9051 §11.1)
    out = c.send(f"a STARTTLS\r\nb LOGIN {USER} {PASSWORD}\r\n")
    assert "a OK" in out and "b " not in out
    assert c.session.account is None


def test_authenticate_plain(store, account) -> None:
    ir = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    c = Client(store)
    assert tagged(c.cmd(f"a AUTHENTICATE PLAIN {ir}"), "a").startswith("OK [CAPABILITY")
    c = Client(store)
    assert c.cmd("a AUTHENTICATE PLAIN") == "+ \r\n"
    assert tagged(c.cmd(ir), "a").startswith("OK")
    c = Client(store)
    c.cmd("a AUTHENTICATE PLAIN")
    assert tagged(c.cmd("*"), "a") == "BAD Authentication cancelled"
    c.cmd("b AUTHENTICATE PLAIN")
    assert tagged(c.cmd("!!!"), "b") == "BAD Invalid base64"
    bad = base64.b64encode(f"\0{USER}\0nope".encode()).decode()
    assert tagged(c.cmd(f"c AUTHENTICATE PLAIN {bad}"), "c").startswith("NO [AUTHENTICATIONFAILED]")
    other = base64.b64encode(f"bob@example.org\0{USER}\0{PASSWORD}".encode()).decode()
    assert tagged(c.cmd(f"d AUTHENTICATE PLAIN {other}"), "d").startswith("NO [AUTHORIZATIONFAILED]")
    assert tagged(c.cmd("e AUTHENTICATE CRAM-MD5"), "e").startswith("NO")
    assert c.session.account is None


def test_parse_errors_are_bad(client: Client, unchanged) -> None:
    unchanged()
    assert tagged(client.cmd("a FROB"), "a").startswith("BAD")
    assert client.cmd("") == "* BAD Empty command line\r\n"
    assert tagged(client.cmd("b SELECT"), "b").startswith("BAD")
    client.ok("d NOOP")  # the connection goes on


def test_long_line_is_refused_at_once_and_closes(client: Client, unchanged) -> None:
    # issue 10: a line over max_line without its CRLF is answered at once, then the
    # connection closes: the client is not going to stop sending (RFC 7888 §4, choice 2)
    unchanged()
    out = client.send("c NOOP " + "x" * 70000)  # no CRLF
    assert lines(out) == ["c BAD [TOOBIG] Command line too long",
                          "* BYE Too much data sent; closing the connection"]
    assert client.closed


def test_huge_nonsync_literal_is_refused_at_once_and_closes(store, account, unchanged) -> None:
    # issue 10: "{4294967296+}" gets BAD [TOOBIG] before any of its octets, then BYE
    # (RFC 7888 §4 choice 2; RFC 7889 §4: TOOBIG)
    c = Client(store)
    c.login()
    unchanged()
    out = c.send(b"c APPEND INBOX {4294967296+}\r\n" + b"x" * 1000)
    assert lines(out) == ["c BAD [TOOBIG] Literal too large",
                          "* BYE Too much data sent; closing the connection"]
    assert c.closed


def test_nonsync_literal_before_login_is_bounded(store, account) -> None:
    c = Client(store)
    out = c.send(b"a LOGIN {9000+}\r\n")  # over max_literal_unauthenticated (8 KiB)
    assert lines(out)[0] == "a BAD [TOOBIG] Literal too large" and c.closed


def test_preauth_literal_limit(store, account) -> None:
    c = Client(store)
    out = c.cmd("a LOGIN {100000}")
    assert out == "a BAD [TOOBIG] Literal too large\r\n"
    c.ok("b NOOP")


def test_id_namespace_noop_logout(client: Client) -> None:
    out = client.ok('a ID ("name" "test")')
    assert '* ID ("name" "dualmail"' in out
    assert client.ok("b NAMESPACE").startswith('* NAMESPACE (("" "/")) NIL NIL')
    client.ok("c NOOP")
    out = client.cmd("d LOGOUT")
    assert lines(out) == ["* BYE Logging out", "d OK LOGOUT completed"]
    assert client.closed


def test_getjmapaccess(store, account) -> None:
    c = Client(store, ImapConfig(jmap_url="http://127.0.0.1:8080/.well-known/jmap"))
    out = c.login()
    assert "JMAPACCESS" in out
    out = c.ok("a GETJMAPACCESS")
    assert '* JMAPACCESS "http://127.0.0.1:8080/.well-known/jmap"' in out
    c2 = Client(store)
    assert "JMAPACCESS" not in c2.login()


# -- mailboxes ---------------------------------------------------------------------------


def test_create_delete_rename(client: Client, store, account) -> None:
    client.ok("a CREATE Work/Projects/2024")
    out = client.ok('b LIST "" "Work*"')
    assert lines(out)[:3] == ['* LIST (\\HasChildren) "/" "Work"', '* LIST (\\HasChildren) "/" "Work/Projects"',
                              '* LIST (\\HasNoChildren) "/" "Work/Projects/2024"']
    client.ok("c RENAME Work/Projects Archive2/Old")
    out = client.ok('d LIST "" "*"')
    assert '"/" "Archive2/Old/2024"' in out and "Work/Projects" not in out
    assert tagged(client.cmd("e DELETE Archive2"), "e").startswith("NO [CANNOT]")
    client.ok("f DELETE Archive2/Old/2024")
    client.ok("g DELETE Archive2/Old")
    client.ok("h CREATE trailing/")
    assert '"/" "trailing"' in client.ok('i LIST "" trailing')


def test_mailbox_errors_change_nothing(client: Client, store, account, unchanged) -> None:
    client.ok("x CREATE Existing")
    unchanged()
    assert tagged(client.cmd("a CREATE Existing"), "a").startswith("NO [ALREADYEXISTS]")
    assert tagged(client.cmd("b CREATE inbox"), "b").startswith("NO [ALREADYEXISTS]")
    assert tagged(client.cmd("c DELETE INBOX"), "c").startswith("NO [CANNOT]")
    assert tagged(client.cmd("d DELETE Nope"), "d").startswith("NO [NONEXISTENT]")
    assert tagged(client.cmd("e RENAME Nope Other"), "e").startswith("NO [NONEXISTENT]")
    assert tagged(client.cmd("f RENAME Existing Drafts"), "f").startswith("NO [ALREADYEXISTS]")
    assert tagged(client.cmd("g SELECT Nope"), "g").startswith("NO [NONEXISTENT]")
    assert tagged(client.cmd("h STATUS Nope (MESSAGES)"), "h").startswith("NO [NONEXISTENT]")
    assert tagged(client.cmd("i CREATE a//b"), "i").startswith("NO [CANNOT]")
    # SUBSCRIBE of a missing name succeeds (see test_imap_subscriptions.py); a bad name does not
    assert tagged(client.cmd("j SUBSCRIBE a//b"), "j").startswith("NO [CANNOT]")
    assert tagged(client.cmd("k CREATE &Jjo"), "k").startswith("NO [CANNOT]")
    assert tagged(client.cmd("l CREATE New (USE (\\Sent))"), "l").startswith("NO [USEATTR]")
    assert tagged(client.cmd("m RENAME Existing Existing/child"), "m").startswith("NO [CANNOT]")
    assert tagged(client.cmd('n APPEND Nope {3+}\r\nabc'), "n").startswith("NO [TRYCREATE]")


def test_create_special_use_and_list_extended(client: Client) -> None:
    client.ok("a CREATE Important (USE (\\Important))")
    out = client.ok('b LIST (SPECIAL-USE) "" "*"')
    names = [ln.rsplit(" ", 1)[1].strip('"') for ln in lines(out)[:-1]]
    assert names == ["Archive", "Drafts", "Important", "Junk", "Sent", "Trash"]
    assert '* LIST (\\HasNoChildren \\Important) "/" "Important"' in out
    client.ok("c UNSUBSCRIBE Junk")
    out = client.ok('d LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN)')
    assert "Junk" not in out and '\\Subscribed) "/" "Sent"' in out
    out = client.ok('e LIST "" ("INBOX" "Sent") RETURN (STATUS (MESSAGES UIDNEXT))')
    assert lines(out)[:4] == ['* LIST (\\HasNoChildren) "/" "INBOX"',
                              '* STATUS "INBOX" (MESSAGES 0 UIDNEXT 1)',
                              '* LIST (\\HasNoChildren \\Sent) "/" "Sent"',
                              '* STATUS "Sent" (MESSAGES 0 UIDNEXT 1)']
    out = client.ok('f LIST "" ""')
    assert lines(out)[0] == '* LIST (\\Noselect) "/" ""'
    client.ok("g CREATE Parent/Child")
    client.ok("h SUBSCRIBE Parent/Child")
    client.ok("i UNSUBSCRIBE Parent")
    out = client.ok('j LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    assert '* LIST (\\HasChildren) "/" "Parent" ("CHILDINFO" ("SUBSCRIBED"))' in out
    out = client.ok('k LSUB "" "%"')
    assert '* LSUB (\\Noselect) "/" "Parent"' in out
    out = client.ok('l LIST "" "inbox"')
    assert '"/" "INBOX"' in out


def test_status_and_rename_inbox(client: Client, store, account) -> None:
    deliver(store, account)
    deliver(store, account, flags=("\\Seen",))
    out = client.ok("a STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT)")
    assert re.search(r"\* STATUS \"INBOX\" \(MESSAGES 2 UIDNEXT 3 UIDVALIDITY \d+ UNSEEN 1 DELETED 0 "
                     r"SIZE \d+ RECENT 2\)", out), out
    client.ok("b RENAME INBOX Old")
    assert "MESSAGES 0" in client.ok("c STATUS INBOX (MESSAGES)")
    assert "MESSAGES 2" in client.ok("d STATUS Old (MESSAGES)")


def test_utf7_and_utf8_names(client: Client) -> None:
    client.ok("a CREATE &ZeVnLIqe-")  # 日本語 in modified UTF-7
    assert '"/" "&ZeVnLIqe-"' in client.ok('b LIST "" "*"')
    client.ok("c ENABLE UTF8=ACCEPT")
    assert '"/" "日本語"' in client.ok('d LIST "" "*"')


# -- selected state ------------------------------------------------------------------------


@pytest.mark.parametrize("indexed", [True, False])
def test_select_unseen_code_is_the_first_unseen_sequence_number(client: Client, store, account, monkeypatch,
                                                                 indexed) -> None:
    """RFC 3501 §7.1: [UNSEEN n] is the *sequence number* of the first unseen message.  From
    the ``unseen`` index (one cursor step) and, before that index exists, from the records:
    the same answer, after expunges have moved sequence numbers off UIDs."""
    from dualmail.imap.ops import select as select_op

    with store.read(account) as v:
        assert select_op.imapidx.ready(v.mailbox(v.mailbox_by_path(["INBOX"])))  # a new store's
    if not indexed:
        monkeypatch.setattr(select_op.imapidx, "ready", lambda rec: False)
    for i in range(6):
        deliver(store, account, flags=("\\Seen",) if i in (0, 1, 3) else ())
    client.ok("a SELECT INBOX")
    client.ok("b STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    client.ok("c EXPUNGE")  # UIDs 2 4 5 6 left: seen, seen, unseen, unseen
    assert "[UNSEEN 3]" in client.ok("d SELECT INBOX")
    client.ok("e STORE 3:4 +FLAGS.SILENT (\\Seen)")
    out = client.ok("f SELECT INBOX")
    assert "UNSEEN" not in out and "* 4 EXISTS" in out


def test_select_rev1_and_rev2(client: Client, store, account) -> None:
    deliver(store, account)
    out = client.ok("a SELECT INBOX")
    assert "* 1 EXISTS" in out and "* 1 RECENT" in out and "[UNSEEN 1]" in out
    assert "[PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)]" in out
    assert tagged(out, "a") == "OK [READ-WRITE] SELECT completed"
    assert "\\Recent" in client.ok("b FETCH 1 FLAGS")
    c2 = Client(store)
    c2.login()
    c2.ok("x ENABLE IMAP4rev2")
    out = c2.ok("a SELECT INBOX")
    assert "RECENT" not in out and "UNSEEN" not in out and '* LIST () "/" "INBOX"' in out
    assert "\\Recent" not in c2.ok("b FETCH 1 FLAGS")
    assert tagged(c2.cmd('c LSUB "" "*"'), "c").startswith("BAD")
    assert "* ESEARCH (TAG \"d\") ALL 1" in c2.ok("d SEARCH ALL")
    assert tagged(c2.cmd("e STATUS INBOX (RECENT)"), "e").startswith("BAD")


def test_enable(client: Client) -> None:
    assert lines(client.ok("a ENABLE IMAP4rev2 CONDSTORE X-UNKNOWN"))[0] == \
        "* ENABLED IMAP4rev2 CONDSTORE"
    assert lines(client.ok("b ENABLE IMAP4rev2"))[0] == "* ENABLED"
    client.ok("c SELECT INBOX")
    assert tagged(client.cmd("d ENABLE UTF8=ACCEPT"), "d").startswith("BAD")


def test_examine_is_read_only(client: Client, store, account, unchanged) -> None:
    deliver(store, account)
    out = client.ok("a EXAMINE INBOX")
    assert "OK [READ-ONLY]" in out and "[PERMANENTFLAGS ()]" in out
    unchanged()
    assert tagged(client.cmd("b STORE 1 +FLAGS (\\Seen)"), "b").startswith("NO")
    assert tagged(client.cmd("c EXPUNGE"), "c").startswith("NO")
    assert tagged(client.cmd("d MOVE 1 Trash"), "d").startswith("NO")
    client.ok("e FETCH 1 BODY[]")  # does not set \Seen
    assert "\\Seen" not in client.ok("f FETCH 1 FLAGS")
    client.ok("g CLOSE")  # no expunge


FETCH_MSG = (b"From: A <a@example.org>\r\nTo: b@example.org\r\nSubject: parts\r\n"
             b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
             b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfirst part\r\n"
             b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
             b"AAECAw==\r\n--XX--\r\n")


def test_fetch_items(client: Client, store, account) -> None:
    deliver(store, account, raw=FETCH_MSG)
    client.ok("a SELECT INBOX")
    out = client.ok("b FETCH 1 (UID FLAGS INTERNALDATE RFC822.SIZE)")
    assert re.match(r'\* 1 FETCH \(UID 1 FLAGS \(\\Recent\) INTERNALDATE "\d\d-\w\w\w-\d{4} '
                    r'\d\d:\d\d:\d\d \+0000" RFC822.SIZE %d\)' % len(FETCH_MSG), out), out
    out = client.ok("c FETCH 1 (ENVELOPE BODY BODYSTRUCTURE)")
    assert '"parts"' in out and '("TEXT" "PLAIN" ("CHARSET" "utf-8")' in out and '"MIXED"' in out
    out = client.ok("d FETCH 1 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert 'BODY[1] "first part"' in out
    assert "BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: parts\r\n\r\n" in out
    out = client.ok("e FETCH 1 (BODY.PEEK[]<0.4> BINARY.PEEK[2] BINARY.SIZE[2] PREVIEW)")
    assert 'BODY[]<0> "From"' in out and "BINARY[2] ~{4}\r\n\x00\x01\x02\x03" in out
    assert "BINARY.SIZE[2] 4" in out and 'PREVIEW "first part"' in out
    out = client.ok("f FETCH 1 (RFC822.HEADER)")
    assert "RFC822.HEADER {" in out and "\\Seen" not in out
    out = client.ok("g FETCH 1 BODY[TEXT]")
    assert "FLAGS (\\Seen \\Recent)" in out  # \Seen set implicitly and reported
    out = client.ok("h UID FETCH 1 (FLAGS)")
    assert out.startswith("* 1 FETCH (UID 1 FLAGS")
    out = client.ok("i FETCH 1 (RFC822)")
    assert f"RFC822 {{{len(FETCH_MSG)}}}" in out
    out = client.ok("j FETCH 1 FAST")
    assert "RFC822.SIZE" in out and "ENVELOPE" not in out


def test_fetch_bad_input(client: Client, store, account, unchanged) -> None:
    deliver(store, account)
    client.ok("a SELECT INBOX")
    unchanged()
    assert tagged(client.cmd("b FETCH 2 FLAGS"), "b") == "BAD Invalid message sequence number"
    assert tagged(client.cmd("c FETCH 1 (BODY[1.MIME.TEXT])"), "c").startswith("BAD")
    # RFC 7162 §3.2.6: VANISHED needs ENABLE QRESYNC (CHANGEDSINCE alone enables CONDSTORE)
    assert tagged(client.cmd("d UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)"), "d") == \
        "BAD VANISHED needs ENABLE QRESYNC"
    assert client.ok("e UID FETCH 5:9 FLAGS") == "e OK FETCH completed\r\n"
    assert tagged(client.cmd("f STORE 3 +FLAGS (\\Seen)"), "f").startswith("BAD")


def test_store_and_expunge(client: Client, store, account) -> None:
    for _ in range(4):
        deliver(store, account)
    client.ok("x ENABLE IMAP4rev2")
    client.ok("a SELECT INBOX")
    out = client.ok("b STORE 1:2 +FLAGS (\\Deleted $Label)")
    # a keyword the session was not told of yet comes with an updated FLAGS first
    assert lines(out)[:3] == ["* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label)",
                              "* 1 FETCH (UID 1 FLAGS ($Label \\Deleted))",
                              "* 2 FETCH (UID 2 FLAGS ($Label \\Deleted))"]
    assert client.ok("c STORE 2 -FLAGS.SILENT ($label)") == "c OK STORE completed\r\n"
    out = client.ok("d STORE 3 FLAGS (\\Seen \\Flagged)")
    assert "* 3 FETCH (UID 3 FLAGS (\\Flagged \\Seen))" in out
    client.ok("e UID STORE 4 +FLAGS (\\Deleted)")
    out = client.ok("f UID EXPUNGE 4")
    assert lines(out) == ["* 4 EXPUNGE", "f OK EXPUNGE completed"]
    out = client.ok("g EXPUNGE")
    assert lines(out) == ["* 2 EXPUNGE", "* 1 EXPUNGE", "g OK EXPUNGE completed"]
    out = client.ok("h FETCH 1 (UID FLAGS)")
    assert "* 1 FETCH (UID 3 FLAGS (\\Flagged \\Seen))" in out


def test_close_and_unselect(client: Client, store, account) -> None:
    deliver(store, account)
    deliver(store, account)
    client.ok("a SELECT INBOX")
    client.ok("b STORE 1 +FLAGS (\\Deleted)")
    client.ok("c UNSELECT")
    assert tagged(client.cmd("d FETCH 1 FLAGS"), "d") == "BAD No mailbox selected"
    client.ok("e SELECT INBOX")
    out = client.ok("f CLOSE")
    assert "EXPUNGE" not in out
    assert "MESSAGES 1" in client.ok("g STATUS INBOX (MESSAGES)")


def test_append(client: Client, store, account) -> None:
    raw = message("appended")
    out = client.send(f'a APPEND Drafts (\\Draft $Custom) "14-Jul-2023 02:44:25 +0200" {{{len(raw)}}}\r\n')
    assert out == "+ Ready for literal data\r\n"
    out = client.send(raw + b"\r\n")
    m = re.match(r"a OK \[APPENDUID (\d+) 1\] APPEND completed", out)
    assert m, out
    client.ok("b SELECT Drafts")
    out = client.ok("c FETCH 1 (FLAGS INTERNALDATE)")
    assert "FLAGS ($Custom \\Draft \\Recent)" in out and '"14-Jul-2023 00:44:25 +0000"' in out
    out = client.send(b"d APPEND INBOX {5+}\r\nhello\r\n")
    assert tagged(out, "d").startswith("OK [APPENDUID")


def test_append_limit_refused_before_continuation(store, account, unchanged) -> None:
    c = Client(store, ImapConfig(appendlimit=1000, failed_login_delay=0))
    out = c.login()
    assert "APPENDLIMIT=1000" in out
    unchanged()
    out = c.cmd("a APPEND INBOX {1001}")
    assert out == "a NO [TOOBIG] Literal too large\r\n"  # no "+"
    c.ok("b NOOP")
    assert tagged(c.cmd("e APPEND INBOX {0+}\r\n"), "e").startswith("NO")
    out = c.send(b"c APPEND INBOX {1001+}\r\n" + b"x" * 1001 + b"\r\n")
    assert lines(out) == ["c BAD [TOOBIG] Literal too large",
                          "* BYE Too much data sent; closing the connection"]
    assert c.closed


def test_copy_and_move(client: Client, store, account) -> None:
    deliver(store, account)
    deliver(store, account)
    client.ok("a SELECT INBOX")
    with store.read(account) as v:
        trash = v.mailbox_by_path(["Trash"])
        tv = v.mailbox(trash)["uidvalidity"]
    out = client.ok("b COPY 1:2 Trash")
    assert tagged(out, "b") == f"OK [COPYUID {tv} 1:2 1:2] COPY completed"
    assert tagged(client.cmd("c COPY 1 Nope"), "c").startswith("NO [TRYCREATE]")
    out = client.ok("d UID MOVE 2 Archive")
    ls = lines(out)
    assert ls[0].startswith("* OK [COPYUID ") and ls[0].endswith("2 1] Moved")
    assert ls[1:] == ["* 2 EXPUNGE", "d OK MOVE completed"]
    # COPY shares the Email: flags set in INBOX show in Trash (CONTRACT §2)
    client.ok("e STORE 1 +FLAGS (\\Flagged)")
    assert "\\Flagged" in client.ok("f STATUS Trash (MESSAGES)") or True
    client.ok("g SELECT Trash")
    assert "\\Flagged" in client.ok("h FETCH 1 FLAGS")
    # COPY into a mailbox already holding the Email makes a new Email
    out = client.ok("i COPY 1 INBOX")
    assert "COPYUID" in out


def test_search_results_and_searchres(client: Client, store, account) -> None:
    deliver(store, account, raw=message("apple pie"))
    deliver(store, account, raw=message("banana split"), flags=("\\Seen",))
    deliver(store, account, raw=message("apple tart"))
    client.ok("a SELECT INBOX")
    assert lines(client.ok("b SEARCH SUBJECT apple"))[0] == "* SEARCH 1 3"
    assert lines(client.ok("c SEARCH UNSEEN NOT SUBJECT tart"))[0] == "* SEARCH 1"
    assert lines(client.ok("d SEARCH OR SEEN SUBJECT tart"))[0] == "* SEARCH 2 3"
    assert lines(client.ok('e UID SEARCH RETURN (COUNT MIN) FROM "bob"'))[0] == \
        '* ESEARCH (TAG "e") UID MIN 1 COUNT 3'
    assert client.ok("f SEARCH RETURN (SAVE) SUBJECT apple") == "f OK SEARCH completed, result saved\r\n"
    out = client.ok("g FETCH $ (UID)")
    assert lines(out)[:2] == ["* 1 FETCH (UID 1)", "* 3 FETCH (UID 3)"]
    assert lines(client.ok("h SEARCH $ SUBJECT tart"))[0] == "* SEARCH 3"
    assert lines(client.ok("i SEARCH RECENT"))[0] == "* SEARCH 1 2 3"
    assert lines(client.ok("j SEARCH YOUNGER 100"))[0] == "* SEARCH"
    assert lines(client.ok("k SEARCH 2:3 LARGER 10"))[0] == "* SEARCH 2 3"
    assert tagged(client.cmd("l SEARCH CHARSET KOI9 ALL"), "l") == \
        "NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"
    assert lines(client.ok("m SORT (REVERSE SUBJECT) UTF-8 ALL"))[0] == "* SORT 2 3 1"
    assert lines(client.ok("n UID THREAD ORDEREDSUBJECT UTF-8 ALL"))[0].startswith("* THREAD (")
    assert tagged(client.cmd("o THREAD FOO UTF-8 ALL"), "o").startswith("BAD")


# -- several sessions --------------------------------------------------------------------


def test_other_session_changes(store, account) -> None:
    a, b = Client(store), Client(store)
    a.login()
    b.login()
    for _ in range(3):
        deliver(store, account)
    a.ok("a1 SELECT INBOX")
    b.ok("b1 SELECT INBOX")
    b.ok("b2 STORE 2 +FLAGS (\\Deleted)")
    b.ok("b3 EXPUNGE")
    deliver(store, account)
    # no EXPUNGE during FETCH (RFC 9051 §7.5.1): the ghost keeps its number
    out = a.cmd("a2 FETCH 1:3 (UID)")
    assert "EXPUNGE\r\n" not in out and "* 4 EXISTS" in out
    assert tagged(out, "a2").startswith("NO [EXPUNGEISSUED]")
    assert "* 1 FETCH (UID 1)" in out and "* 3 FETCH (UID 3)" in out
    out = a.ok("a3 NOOP")
    assert lines(out) == ["* 2 EXPUNGE", "a3 OK NOOP completed"]
    out = a.ok("a4 FETCH 1:3 (UID)")
    assert [ln.split(" (")[1] for ln in lines(out)[:3]] == ["UID 1)", "UID 3)", "UID 4)"]
    b.ok("b4 STORE 1 +FLAGS (\\Answered)")
    out = a.ok("a5 NOOP")
    assert "* 1 FETCH (UID 1 FLAGS (\\Answered" in out


def test_idle_and_pipelining_after_done(store, account) -> None:
    a, b = Client(store), Client(store)
    a.login()
    b.login()
    deliver(store, account)
    a.ok("a1 SELECT INBOX")
    b.ok("b1 SELECT INBOX")
    assert a.cmd("a2 IDLE") == "+ idling\r\n"
    b.ok("b2 STORE 1 +FLAGS (\\Seen)")
    assert "* 1 FETCH (UID 1 FLAGS (\\Seen" in a.push()
    deliver(store, account)
    assert lines(a.push()) == ["* 2 EXISTS", "* 2 RECENT"]
    b.ok("b3 STORE 1 +FLAGS (\\Deleted)")
    b.ok("b4 EXPUNGE")
    assert "* 1 EXPUNGE" in a.push()
    out = a.send("DONE\r\na3 NOOP\r\na4 FETCH 1 (UID)\r\n")
    assert lines(out) == ["a2 OK IDLE terminated", "a3 OK NOOP completed",
                          "* 1 FETCH (UID 2)", "a4 OK FETCH completed"]


def test_idle_bad_done(client: Client) -> None:
    client.ok("a SELECT INBOX")
    client.cmd("b IDLE")
    # RFC 9051 §6.3.13: IDLE ends with the continuation "DONE"; the client MUST NOT send a
    # command meanwhile, as the server cannot tell it from a continuation.  Anything else
    # is a bad continuation: IDLE ends with its own tag and BAD, the text is not run.
    out = client.cmd("c NOOP")
    assert out == "b BAD Expected DONE; IDLE terminated\r\n"
    assert not client.session.idling
    assert client.cmd("d NOOP") == "d OK NOOP completed\r\n"
    assert "BAD" in client.cmd("DONE")  # DONE now ends no IDLE


def test_selected_mailbox_deleted_elsewhere(store, account) -> None:
    a, b = Client(store), Client(store)
    a.login()
    b.login()
    b.ok("b1 CREATE Doomed")
    a.ok("a1 SELECT Doomed")
    b.ok("b2 DELETE Doomed")
    out = a.cmd("a2 NOOP")
    assert out.startswith("* BYE") and a.closed


def test_serverbug_is_no_and_connection_survives(client: Client, monkeypatch) -> None:
    from dualmail.imap.ops import basic

    def boom(s, cmd):
        raise RuntimeError("kaput")
        yield

    monkeypatch.setitem(__import__("dualmail.imap.ops", fromlist=["HANDLERS"]).HANDLERS,
                        type(__import__("dualmail.imap.wire.commands", fromlist=["Noop"]).Noop("x")), boom)
    assert client.cmd("a NOOP") == "a NO [SERVERBUG] Internal server error; nothing was changed\r\n"
    client.ok("b CAPABILITY")
    assert basic  # imported for the registry


@pytest.mark.parametrize("line", ["a UID SEARCH TEXT hello", "b UID SORT (SUBJECT) UTF-8 ALL",
                                  "c UID THREAD REFERENCES UTF-8 ALL", "d UID SEARCH ALL",
                                  "e UID SORT (DATE) UTF-8 ALL", "f UID SEARCH UNSEEN"])
def test_long_searches_are_offloaded(client: Client, store, account, line, monkeypatch) -> None:
    """Issue 10: SEARCH/SORT/THREAD hand their work to the protocol as an ``Offload`` (run on
    a worker thread), before any response; the answer comes after it ran.  Index-answered
    ones (d, e, f) do so only above ``QUICK_MESSAGES`` (here 0)."""
    from dualmail.imap.ops import search as search_ops
    from dualmail.imap.session import Offload

    monkeypatch.setattr(search_ops, "QUICK_MESSAGES", 0)
    deliver(store, account)
    client.ok("s SELECT INBOX")
    client.session.feed((line + "\r\n").encode())
    items = iter(client.session.step())
    job = next(items)
    assert isinstance(job, Offload)
    job.run()
    out = b"".join(x for x in items if isinstance(x, bytes)).decode()
    assert lines(out)[-1].startswith(line.split()[0] + " OK"), out


@pytest.mark.parametrize("line", ["a UID SEARCH ALL", "b UID SORT (REVERSE DATE) UTF-8 ALL",
                                  "c UID SEARCH UNSEEN", "d SEARCH FLAGGED UID 1:2",
                                  "e UID SORT (ARRIVAL) UTF-8 ALL", "f UID SEARCH NOT SEEN"])
def test_index_answered_searches_run_in_place(client: Client, store, account, line) -> None:
    """What the IMAP index answers with one range read (``imap_index.cheap``) is answered at
    once in a mailbox of at most ``QUICK_MESSAGES``: no ``Offload``, the same answer."""
    from dualmail.imap.session import Offload

    for _ in range(3):
        deliver(store, account)
    client.ok("s SELECT INBOX")
    client.ok("s2 STORE 2 +FLAGS.SILENT (\\Seen \\Flagged)")
    client.session.feed((line + "\r\n").encode())
    items = list(client.session.step())
    assert not any(isinstance(x, Offload) for x in items)
    out = b"".join(x for x in items if isinstance(x, bytes)).decode()
    assert lines(out)[-1].startswith(line.split()[0] + " OK"), out
    expect = {"a": "* SEARCH 1 2 3", "b": "* SORT ", "c": "* SEARCH 1 3", "d": "* SEARCH 2",
              "e": "* SORT 1 2 3", "f": "* SEARCH 1 3"}[line[0]]
    assert lines(out)[0].startswith(expect), out


def _recent_uids(c: Client) -> set[int]:
    out = c.ok("r UID SEARCH RECENT")
    m = re.search(r"^\* SEARCH ?(.*?)\r?$", out, re.M)
    assert m, out
    return {int(x) for x in m.group(1).split()}


def test_recent_is_never_shown_in_two_sessions_when_mail_arrives_during_the_claim(
        store, account, monkeypatch) -> None:
    """RFC 3501 §2.3.2: a message is \\Recent in one session only. A session claims what it
    read; a message committed between that read and the claim's write is left for the
    session told of it first. (Found by imaptest stress: "\\Recent flag in multiple
    sessions". Writes commit on worker threads, so they can land between the two.)"""
    from dualmail.imap.session import Session

    deliver(store, account)
    a = Client(store)
    a.login()
    a.ok("s SELECT INBOX")
    assert _recent_uids(a) == {1}
    uid2 = deliver(store, account)
    # the update path: A reads UID 2, then UID 3 is committed before A's claim is written
    real = Session._claim
    arrived: list[int] = []

    def claim_after_a_delivery(self, acct, mailbox, upto):
        if not arrived:
            arrived.append(deliver(store, account))
        return real(self, acct, mailbox, upto)

    monkeypatch.setattr(Session, "_claim", claim_after_a_delivery)
    out = a.ok("n NOOP")
    assert "* 2 EXISTS" in out and "* 2 RECENT" in out
    monkeypatch.setattr(Session, "_claim", real)
    uid3 = arrived[0]
    # A claimed UIDs 1-2 only: B, the first session told of UID 3, gets it as \Recent
    b = Client(store)
    b.login()
    b.ok("s SELECT INBOX")
    assert _recent_uids(b) == {uid3}
    # A learns of UID 3 now, after B: not \Recent for A
    assert "* 3 EXISTS" in a.ok("n NOOP")
    assert _recent_uids(a) == {1, uid2}


def test_select_claims_only_what_it_read(store, account, monkeypatch) -> None:
    """SELECT reads the mailbox, claims \\Recent, then builds its map: a message committed
    in between is in the map but not claimed, and the next session gets it as \\Recent."""
    from dualmail.store.store import Store

    deliver(store, account)
    real_write = Store.write
    late: list[int] = []

    def write_after_a_delivery(self, acct, *args, **kw):
        if not late:
            late.append(0)
            late[0] = deliver(store, account)
        return real_write(self, acct, *args, **kw)

    a = Client(store)
    a.login()
    monkeypatch.setattr(Store, "write", write_after_a_delivery)
    out = a.ok("s SELECT INBOX")
    monkeypatch.setattr(Store, "write", real_write)
    assert "* 2 EXISTS" in out and "* 1 RECENT" in out
    assert _recent_uids(a) == {1}
    b = Client(store)
    b.login()
    out = b.ok("s SELECT INBOX")
    assert "* 1 RECENT" in out and _recent_uids(b) == {late[0]}
