"""Server response serialisation (RFC 9051 §7), checked against RFC examples."""

from __future__ import annotations

import pytest

from dualmail.imap.wire import responses as r
from dualmail.imap.wire.sequence import ResolvedSet, SequenceSet


def ser(resp: r.Response, **kw: bool) -> bytes:
    return r.serialize(resp, **kw)


def test_status_responses() -> None:
    assert ser(r.Tagged("a1", "OK", "LOGIN completed")) == b"a1 OK LOGIN completed\r\n"
    assert ser(r.Tagged("a1", "NO", "bad\r\nline")) == b"a1 NO bad  line\r\n"
    assert ser(r.UntaggedStatus("BYE", "Autologout; idle for too long")) == (
        b"* BYE Autologout; idle for too long\r\n"
    )
    assert ser(r.UntaggedStatus("OK", "UIDs valid", r.code_uidvalidity(3857529045))) == (
        b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"
    )
    assert ser(r.Continuation("Ready for literal data")) == b"+ Ready for literal data\r\n"
    assert ser(r.Continuation("idling")) == b"+ idling\r\n"
    assert ser(r.Continuation.challenge(b"")) == b"+ \r\n"
    assert ser(r.Continuation.challenge(b"\x00\x01")) == b"+ AAE=\r\n"


@pytest.mark.parametrize(
    ("code", "wire"),
    [
        (r.code_appenduid(38505, [3955]), b"[APPENDUID 38505 3955]"),
        (
            r.code_copyuid(38505, SequenceSet.parse("304,319:320"), ResolvedSet.from_ints([3956, 3957, 3958])),
            b"[COPYUID 38505 304,319:320 3956:3958]",
        ),
        (r.code_modified([7, 9]), b"[MODIFIED 7,9]"),
        (r.code_highestmodseq(715194045007), b"[HIGHESTMODSEQ 715194045007]"),
        (r.code_nomodseq(), b"[NOMODSEQ]"),
        (r.code_closed(), b"[CLOSED]"),
        (r.code_mailboxid("F2212ea87-6097-4256-9d51-71338625"), b"[MAILBOXID (F2212ea87-6097-4256-9d51-71338625)]"),
        (r.code_capability(["IMAP4rev2", "AUTH=PLAIN"]), b"[CAPABILITY IMAP4rev2 AUTH=PLAIN]"),
        (r.code_uidnext(4392), b"[UIDNEXT 4392]"),
        (
            r.code_permanentflags(["\\Deleted", "\\Seen", "\\*"]),
            b"[PERMANENTFLAGS (\\Deleted \\Seen \\*)]",
        ),
        (r.code_badcharset(["UTF-8"]), b"[BADCHARSET (UTF-8)]"),
        (r.code("TRYCREATE"), b"[TRYCREATE]"),
        (r.code("READ-WRITE"), b"[READ-WRITE]"),
    ],
)
def test_response_codes(code: r.ResponseCode, wire: bytes) -> None:
    assert ser(r.Tagged("A003", "OK", "done", code)) == b"A003 OK " + wire + b" done\r\n"


def test_string_choice() -> None:
    assert r.string(b"hello world") == b'"hello world"'
    assert r.string(b'say "hi" \\o/') == b'"say \\"hi\\" \\\\o/"'
    assert r.string(b"two\r\nlines") == b"{10}\r\ntwo\r\nlines"
    assert r.string(b"nul\x00") == b"{4}\r\nnul\x00"
    assert r.string("café") == b"{5}\r\ncaf\xc3\xa9"
    assert r.string("café", utf8=True) == b'"caf\xc3\xa9"'
    assert r.string(b"\xff\xfe", utf8=True) == b"{2}\r\n\xff\xfe"  # not UTF-8
    long = b"x" * (r.MAX_QUOTED + 1)
    assert r.string(long) == b"{%d}\r\n" % len(long) + long
    assert r.nstring(None) == b"NIL"
    assert r.astring(b"INBOX") == b"INBOX"
    assert r.astring(b"foo]bar") == b"foo]bar"
    assert r.astring(b"two words") == b'"two words"'
    assert r.astring(b"") == b'""'
    assert r.astring(b"a{b") == b'"a{b"'
    assert r.literal(b"\x00\x01", binary=True) == b"~{2}\r\n\x00\x01"
    with pytest.raises(ValueError):
        r.quoted(b"a\rb")


def test_mailbox_names() -> None:
    assert r.mailbox("INBOX") == b'"INBOX"'
    assert r.mailbox("Mañana") == b'"Ma&APE-ana"'
    assert r.mailbox("Mañana", utf8=True) == b'"Ma\xc3\xb1ana"'
    assert r.mailbox('a"b') == b'"a\\"b"'


def test_data_responses() -> None:
    assert ser(r.exists(172)) == b"* 172 EXISTS\r\n"
    assert ser(r.expunge(44)) == b"* 44 EXPUNGE\r\n"
    assert ser(r.recent(1)) == b"* 1 RECENT\r\n"
    assert ser(r.flags(["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"])) == (
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
    )
    assert ser(r.capability(["IMAP4rev2", "STARTTLS", "AUTH=GSSAPI"])) == (
        b"* CAPABILITY IMAP4rev2 STARTTLS AUTH=GSSAPI\r\n"
    )
    assert ser(r.enabled(["CONDSTORE"])) == b"* ENABLED CONDSTORE\r\n"
    assert ser(r.search([2, 84, 882])) == b"* SEARCH 2 84 882\r\n"
    assert ser(r.search([])) == b"* SEARCH\r\n"
    assert ser(r.search([2, 5, 6, 7, 11, 12, 18, 19, 20, 23], modseq=917162500)) == (
        b"* SEARCH 2 5 6 7 11 12 18 19 20 23 (MODSEQ 917162500)\r\n"
    )
    assert ser(r.sort([2, 84, 882])) == b"* SORT 2 84 882\r\n"


def test_esearch() -> None:  # RFC 4731 §3.1 examples
    assert ser(r.esearch("A282", False, min=2, count=3)) == b'* ESEARCH (TAG "A282") MIN 2 COUNT 3\r\n'
    assert ser(r.esearch("A283", False, all=[2, 10, 11])) == b'* ESEARCH (TAG "A283") ALL 2,10:11\r\n'
    assert ser(r.esearch("A284", False, count=0)) == b'* ESEARCH (TAG "A284") COUNT 0\r\n'
    assert ser(r.esearch("A285", True, min=7, max=3800)) == b'* ESEARCH (TAG "A285") UID MIN 7 MAX 3800\r\n'
    assert ser(r.esearch("A286", False, all=[])) == b'* ESEARCH (TAG "A286")\r\n'
    assert ser(r.esearch("a", False, min=2, modseq=917162500)) == (
        b'* ESEARCH (TAG "a") MIN 2 MODSEQ 917162500\r\n'
    )


def test_vanished() -> None:  # RFC 7162 §3.2.10
    assert ser(r.vanished(SequenceSet.parse("41,43:116,118,120:211,214:540"), earlier=True)) == (
        b"* VANISHED (EARLIER) 41,43:116,118,120:211,214:540\r\n"
    )
    assert ser(r.vanished([405, 407, 408, 409, 410, 411])) == b"* VANISHED 405,407:411\r\n"


def test_fetch_assembly() -> None:
    resp = r.fetch(
        12,
        [
            ("FLAGS", r.flag_list(["\\Seen"])),
            ("UID", r.number(4827313)),
            ("BODY[]", r.literal(b"Hi\r\n")),
            ("BODY[HEADER.FIELDS (DATE)]", r.nstring(None)),
            ("MODSEQ", b"(624140003)"),
        ],
    )
    assert ser(resp) == (
        b"* 12 FETCH (FLAGS (\\Seen) UID 4827313 BODY[] {4}\r\nHi\r\n "
        b"BODY[HEADER.FIELDS (DATE)] NIL MODSEQ (624140003))\r\n"
    )


def test_list_status_namespace_id_thread() -> None:
    assert ser(r.list_response(["\\HasNoChildren"], "/", "INBOX")) == b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
    assert ser(r.list_response(["\\Noselect"], None, "")) == b'* LIST (\\Noselect) NIL ""\r\n'
    assert ser(
        r.list_response([], "/", "Foo", extended=[("CHILDINFO", [b"SUBSCRIBED"])])
    ) == b'* LIST () "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))\r\n'
    assert ser(r.list_response(["\\Sent"], "/", "Gesendete Objekte")) == (
        b'* LIST (\\Sent) "/" "Gesendete Objekte"\r\n'
    )
    assert ser(r.status("blurdybloop", [("MESSAGES", 231), ("UIDNEXT", 44292)])) == (
        b'* STATUS "blurdybloop" (MESSAGES 231 UIDNEXT 44292)\r\n'
    )
    assert ser(r.status("x", [("MAILBOXID", "F2212ea8")])) == b'* STATUS "x" (MAILBOXID (F2212ea8))\r\n'
    assert ser(r.namespace([("", "/")])) == b'* NAMESPACE (("" "/")) NIL NIL\r\n'
    assert ser(r.namespace([("", "/")], [("~", "/")], [("#shared/", "/"), ("#public/", "/")])) == (
        b'* NAMESPACE (("" "/")) (("~" "/")) (("#shared/" "/")("#public/" "/"))\r\n'
    )
    assert ser(r.id_response([("name", "dualmail"), ("version", None)])) == (
        b'* ID ("name" "dualmail" "version" NIL)\r\n'
    )
    assert ser(r.id_response(None)) == b"* ID NIL\r\n"
    # RFC 5256 §4 example
    tree = [
        (2, []),
        (3, [(6, [(4, [(23, [])]), (44, [(7, [(96, [])])])])]),
    ]
    assert ser(r.thread(tree)) == b"* THREAD (2)(3 6 (4 23)(44 7 96))\r\n"
    dummy = [(None, [(3, []), (5, [])])]
    assert ser(r.thread(dummy)) == b"* THREAD ((3)(5))\r\n"
    assert ser(r.thread([])) == b"* THREAD\r\n"


def test_encode_value_types() -> None:
    assert r.encode_value([1, None, b"x", r.Atom("\\Seen"), [r.Raw(b"RAW")]]) == b'(1 NIL "x" \\Seen (RAW))'
    assert r.encode_value(r.Literal(b"x")) == b"{1}\r\nx"
    assert r.encode_value(SequenceSet.parse("1:*")) == b"1:*"
    with pytest.raises(TypeError):
        r.encode_value(True)
    with pytest.raises(ValueError):
        r.number(-1)
