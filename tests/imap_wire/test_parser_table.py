"""RFC example command lines -> command values, each fed whole, byte by byte, in
chunks, and followed by another command (trailing data must survive)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from dualmail.imap.wire import commands as c
from dualmail.imap.wire.parser import NeedContinuation
from dualmail.imap.wire.sequence import SequenceSet
from wire_util import FEEDERS, commands

S = SequenceSet.parse
A = c.FetchAtt
K = c.Key
MSG = b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nSubject: afternoon meeting\r\n\r\nHello Joe\r\n"

TABLE: list[tuple[bytes, c.Command]] = [
    # RFC 9051 §6.1 / §6.2
    (b"a002 CAPABILITY", c.Capability("a002")),
    (b"a002 noop", c.Noop("a002")),
    (b"A023 LOGOUT", c.Logout("A023")),
    (b"a001 STARTTLS", c.StartTLS("a001")),
    (b"A001 LOGIN SMITH SESAME", c.Login("A001", "SMITH", "SESAME")),
    (b"A001 LOGIN fred blurdybloop", c.Login("A001", "fred", "blurdybloop")),
    (b'a LOGIN "fr\\"ed" "pass\\\\word"', c.Login("a", 'fr"ed', "pass\\word")),
    (b"A001 LOGIN {11}\r\nFRED FOOBAR {7}\r\nfat man", c.Login("A001", "FRED FOOBAR", "fat man")),
    (b"A001 LOGIN {11+}\r\nFRED FOOBAR {7+}\r\nfat man", c.Login("A001", "FRED FOOBAR", "fat man")),
    (b"A01 AUTHENTICATE PLAIN", c.Authenticate("A01", "PLAIN")),
    (b"A01 AUTHENTICATE EXTERNAL =", c.Authenticate("A01", "EXTERNAL", b"")),
    (
        b"A03 AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q=",
        c.Authenticate("A03", "PLAIN", b"test\x00test\x00test"),
    ),
    (b"a1 ENABLE CONDSTORE", c.Enable("a1", ("CONDSTORE",))),
    (b"t2 ENABLE CONDSTORE X-GOOD-IDEA", c.Enable("t2", ("CONDSTORE", "X-GOOD-IDEA"))),
    (b"a ENABLE utf8=accept", c.Enable("a", ("UTF8=ACCEPT",))),
    # RFC 2971
    (
        b'a023 ID ("name" "sodr" "version" "19.34" "vendor" "Pink Floyd Music Limited")',
        c.Id("a023", (("name", "sodr"), ("version", "19.34"), ("vendor", "Pink Floyd Music Limited"))),
    ),
    (b"a023 ID NIL", c.Id("a023", None)),
    (b'a ID ("x" NIL)', c.Id("a", (("x", None),))),
    # RFC 9051 §6.3
    (b"A142 SELECT INBOX", c.Select("A142", "INBOX")),
    (b"A142 SELECT inbox", c.Select("A142", "INBOX")),
    (b"A932 EXAMINE blurdybloop", c.Examine("A932", "blurdybloop")),
    (b"A142 SELECT INBOX (CONDSTORE)", c.Select("A142", "INBOX", condstore=True)),
    (
        b"A142 SELECT INBOX (QRESYNC (3857529045 20010715194032001 1:198))",
        c.Select("A142", "INBOX", qresync=c.QResync(3857529045, 20010715194032001, S("1:198"))),
    ),
    (
        b"A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))",
        c.Select("A02", "INBOX", qresync=c.QResync(67890007, 20050715194045000, S("41,43:211,214:541"))),
    ),
    (
        b"A03 SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541))",
        c.Select("A03", "INBOX", qresync=c.QResync(67890007, 90060115194045000, S("41:211,214:541"))),
    ),
    (
        b"B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 "
        b"(5000,7500,9000,9990:9999 15000,22500,27000,29970,29973,29976:29979)))",
        c.Select(
            "B04",
            "INBOX",
            qresync=c.QResync(
                67890007,
                90060115194045000,
                S("1:29997"),
                (S("5000,7500,9000,9990:9999"), S("15000,22500,27000,29970,29973,29976:29979")),
            ),
        ),
    ),
    (
        b"a SELECT INBOX (CONDSTORE QRESYNC (1 2 (1 5)))",
        c.Select("a", "INBOX", True, c.QResync(1, 2, None, (S("1"), S("5")))),
    ),
    (b'A004 CREATE "Sent Mail"', c.Create("A004", "Sent Mail")),
    (b"A003 CREATE owatagusiam/", c.Create("A003", "owatagusiam/")),
    (
        b"t2 CREATE MySpecial (USE (\\Drafts \\Sent))",
        c.Create("t2", "MySpecial", ("\\Drafts", "\\Sent")),
    ),
    (b"t3 CREATE Everything (USE (\\all))", c.Create("t3", "Everything", ("\\All",))),
    (b"A683 DELETE blurdybloop", c.Delete("A683", "blurdybloop")),
    (b"A683 RENAME blurdybloop sarasoop", c.Rename("A683", "blurdybloop", "sarasoop")),
    (b"1001 RENAME X Y", c.Rename("1001", "X", "Y")),
    (b"A002 SUBSCRIBE #news.comp.mail.mime", c.Subscribe("A002", "#news.comp.mail.mime")),
    (b"A002 UNSUBSCRIBE #news.comp.mail.mime", c.Unsubscribe("A002", "#news.comp.mail.mime")),
    (b'A682 LIST "" *', c.List("A682", "", ("*",))),
    (b"A202 LIST ~/Mail/ %", c.List("A202", "~/Mail/", ("%",))),
    (b'A101 LIST "" ""', c.List("A101", "", ("",))),
    (b'A102 LIST #news.comp.mail.misc ""', c.List("A102", "#news.comp.mail.misc", ("",))),
    (b'A002 LIST "" "#Users/%"', c.List("A002", "", ("#Users/%",))),
    (
        b'A002 LIST (SPECIAL-USE) "" "*"',
        c.List("A002", "", ("*",), ("SPECIAL-USE",), extended=True),
    ),
    (
        b'A01 LIST "" % RETURN (STATUS (MESSAGES UNSEEN))',
        c.List("A01", "", ("%",), (), (), ("MESSAGES", "UNSEEN"), True),
    ),
    (
        b'A02 LIST (SUBSCRIBED RECURSIVEMATCH) "" % RETURN (STATUS (MESSAGES))',
        c.List("A02", "", ("%",), ("SUBSCRIBED", "RECURSIVEMATCH"), (), ("MESSAGES",), True),
    ),
    # RFC 5258 §5
    (b'A03 LIST () "" "%" RETURN (CHILDREN)', c.List("A03", "", ("%",), (), ("CHILDREN",), None, True)),
    (
        b'A05 LIST (REMOTE SUBSCRIBED) "" "*"',
        c.List("A05", "", ("*",), ("REMOTE", "SUBSCRIBED"), extended=True),
    ),
    (
        b'A06 LIST (REMOTE) "" "*" RETURN (SUBSCRIBED)',
        c.List("A06", "", ("*",), ("REMOTE",), ("SUBSCRIBED",), None, True),
    ),
    (
        b'BBB LIST "" ("INBOX" "Drafts" "Sent/%")',
        c.List("BBB", "", ("INBOX", "Drafts", "Sent/%"), extended=True),
    ),
    (
        b'a3 LIST (SUBSCRIBED RECURSIVEMATCH) "" foo RETURN (CHILDREN)',
        c.List("a3", "", ("foo",), ("SUBSCRIBED", "RECURSIVEMATCH"), ("CHILDREN",), None, True),
    ),
    (
        b't2 LIST "" "%" RETURN (SPECIAL-USE)',
        c.List("t2", "", ("%",), (), ("SPECIAL-USE",), None, True),
    ),
    (b'A002 LSUB "#news." "comp.mail.*"', c.Lsub("A002", "#news.", "comp.mail.*")),
    (b"A001 NAMESPACE", c.Namespace("A001")),
    (
        b"A042 STATUS blurdybloop (UIDNEXT MESSAGES HIGHESTMODSEQ)",
        c.Status("A042", "blurdybloop", ("UIDNEXT", "MESSAGES", "HIGHESTMODSEQ")),
    ),
    (
        b"a STATUS INBOX (messages size deleted recent unseen uidvalidity mailboxid appendlimit)",
        c.Status(
            "a",
            "INBOX",
            (
                "MESSAGES", "SIZE", "DELETED", "RECENT", "UNSEEN", "UIDVALIDITY",
                "MAILBOXID", "APPENDLIMIT",
            ),
        ),
    ),
    (
        b"A003 APPEND saved-messages (\\Seen) {%d}\r\n" % len(MSG) + MSG,
        c.Append("A003", "saved-messages", ("\\Seen",), None, MSG),
    ),
    (
        b"A003 APPEND saved-messages (\\Seen) {%d+}\r\n" % len(MSG) + MSG,
        c.Append("A003", "saved-messages", ("\\Seen",), None, MSG),
    ),
    (
        b'A4 APPEND Drafts () "19-Jul-2022 02:44:25 -0700" {5}\r\nhello',
        c.Append(
            "A4", "Drafts", (), datetime(2022, 7, 19, 2, 44, 25, tzinfo=timezone(-timedelta(hours=7))), b"hello"
        ),
    ),
    (
        b'A5 APPEND Drafts " 9-Jul-2022 02:44:25 +0000" {0}\r\n',
        c.Append("A5", "Drafts", (), datetime(2022, 7, 9, 2, 44, 25, tzinfo=timezone.utc), b""),
    ),
    (
        b"A6 APPEND INBOX ~{4}\r\n\x00\x01\x02\x03",
        c.Append("A6", "INBOX", (), None, b"\x00\x01\x02\x03", binary=True),
    ),
    (
        b"A7 APPEND INBOX ($Forwarded \\draft) UTF8 (~{3}\r\n\xc3\xa9!)",
        c.Append("A7", "INBOX", ("$Forwarded", "\\Draft"), None, b"\xc3\xa9!", binary=True, utf8=True),
    ),
    # RFC 9051 §6.4
    (b"FXXZ CHECK", c.Check("FXXZ")),
    (b"A341 CLOSE", c.Close("A341")),
    (b"A342 UNSELECT", c.Unselect("A342")),
    (b"A202 EXPUNGE", c.Expunge("A202")),
    (b"A003 UID EXPUNGE 3000:3002", c.Expunge("A003", True, S("3000:3002"))),
    (b"A002 IDLE", c.Idle("A002")),
    (b"A003 COPY 2:4 MEETING", c.Copy("A003", False, S("2:4"), "MEETING")),
    (b"A005 UID COPY 305:310 meeting", c.Copy("A005", True, S("305:310"), "meeting")),
    (b'E283 COPY $ "Other Messages"', c.Copy("E283", False, S("$"), "Other Messages")),
    (b"a UID MOVE 42:69 foo", c.Move("a", True, S("42:69"), "foo")),
    (b"a MOVE 4:2,* Trash", c.Move("a", False, S("4:2,*"), "Trash")),
    (
        b"A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"",
        c.Search(
            "A282", False, None,
            c.And((K("FLAGGED"), K("SINCE", (date(1994, 2, 1),)), c.Not(K("FROM", (b"Smith",))))),
        ),
    ),
    (
        b"A283 SEARCH TEXT \"string not in mailbox\"",
        c.Search("A283", False, None, K("TEXT", (b"string not in mailbox",))),
    ),
    (
        b"A284 SEARCH CHARSET UTF-8 TEXT {11}\r\n\xd0\xbd\xd0\xb5\xd1\x82 \xd1\x82\xd0\xb0",
        c.Search("A284", False, "UTF-8", K("TEXT", ("нет та".encode(),))),
    ),
    (
        b"t SEARCH OR NOT MODSEQ 720162338 LARGER 50000",
        c.Search("t", False, None, c.Or(c.Not(K("MODSEQ", (None, None, 720162338))), K("LARGER", (50000,)))),
    ),
    (
        b'a SEARCH MODSEQ "/flags/\\\\draft" all 620162338',
        c.Search("a", False, None, K("MODSEQ", (b"/flags/\\draft", "all", 620162338))),
    ),
    (
        b"a4 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994",
        c.Search(
            "a4", False, None, c.And((K("FLAGGED"), K("SINCE", (date(1994, 2, 1),)))), ("MIN", "COUNT")
        ),
    ),
    (
        b"C282 SEARCH RETURN () SINCE 12-Feb-2006",
        c.Search("C282", False, None, K("SINCE", (date(2006, 2, 12),)), ()),
    ),
    (
        b"C286 SEARCH RETURN (MAX SAVE MIN) SINCE \"12-Feb-2006\"",
        c.Search("C286", False, None, K("SINCE", (date(2006, 2, 12),)), ("MAX", "SAVE", "MIN")),
    ),
    (
        b"A301 UID SEARCH UID $ SMALLER 4096",
        c.Search("A301", True, None, c.And((K("UID", (S("$"),)), K("SMALLER", (4096,))))),
    ),
    (
        b"B283 SEARCH CHARSET KOI8-R (OR $ 1,3000:3021) TEXT {4}\r\n\xf0\xd2\xc9\xf7",
        c.Search(
            "B283", False, "KOI8-R",
            c.And((c.Or(K("SEQSET", (S("$"),)), K("SEQSET", (S("1,3000:3021"),))), K("TEXT", (b"\xf0\xd2\xc9\xf7",)))),
        ),
    ),
    (
        b"F282 SEARCH RETURN (SAVE) KEYWORD $Junk",
        c.Search("F282", False, None, K("KEYWORD", ("$Junk",)), ("SAVE",)),
    ),
    (
        b"a1 SEARCH UNSEEN YOUNGER 259200",
        c.Search("a1", False, None, c.And((K("UNSEEN"), K("YOUNGER", (259200,))))),
    ),
    (
        b"a SEARCH HEADER Message-ID <x@y> EMAILID M6d99ac3275bb4e THREADID T64b478a75b7ea9",
        c.Search(
            "a", False, None,
            c.And((
                K("HEADER", ("Message-ID", b"<x@y>")),
                K("EMAILID", ("M6d99ac3275bb4e",)),
                K("THREADID", ("T64b478a75b7ea9",)),
            )),
        ),
    ),
    (
        b"a SEARCH 1:* (DELETED (OR SEEN UNKEYWORD foo)) NEW OLD RECENT ON 3-Mar-2003",
        c.Search(
            "a", False, None,
            c.And((
                K("SEQSET", (S("1:*"),)),
                c.And((K("DELETED"), c.Or(K("SEEN"), K("UNKEYWORD", ("foo",))))),
                K("NEW"), K("OLD"), K("RECENT"), K("ON", (date(2003, 3, 3),)),
            )),
        ),
    ),
    # RFC 5256
    (
        b"A283 SORT (SUBJECT REVERSE DATE) UTF-8 ALL",
        c.Sort("A283", False, (c.SortCriterion("SUBJECT"), c.SortCriterion("DATE", True)), "UTF-8", K("ALL")),
    ),
    (
        b'A284 SORT (SUBJECT) US-ASCII TEXT "not in mailbox"',
        c.Sort("A284", False, (c.SortCriterion("SUBJECT"),), "US-ASCII", K("TEXT", (b"not in mailbox",))),
    ),
    (
        b"a SORT RETURN (ALL) (DATE) UTF-8 MODSEQ 1234",
        c.Sort("a", False, (c.SortCriterion("DATE"),), "UTF-8", K("MODSEQ", (None, None, 1234)), ("ALL",)),
    ),
    (
        b"E01 UID SORT RETURN () (REVERSE DATE DISPLAYFROM) UTF-8 UNDELETED",
        c.Sort(
            "E01", True, (c.SortCriterion("DATE", True), c.SortCriterion("DISPLAYFROM")), "UTF-8",
            K("UNDELETED"), (),
        ),
    ),
    (
        b'A284 THREAD ORDEREDSUBJECT US-ASCII TEXT "gewp"',
        c.Thread("A284", False, "ORDEREDSUBJECT", "US-ASCII", K("TEXT", (b"gewp",))),
    ),
    (
        b"A285 UID THREAD REFERENCES UTF-8 SINCE 5-MAR-2000",
        c.Thread("A285", True, "REFERENCES", "UTF-8", K("SINCE", (date(2000, 3, 5),))),
    ),
    # FETCH
    (
        b"A003 FETCH 4 ALL",
        c.Fetch("A003", False, S("4"), (A("FLAGS"), A("INTERNALDATE"), A("RFC822.SIZE"), A("ENVELOPE"))),
    ),
    (b"a FETCH 1 fast", c.Fetch("a", False, S("1"), (A("FLAGS"), A("INTERNALDATE"), A("RFC822.SIZE")))),
    (
        b"a FETCH 1 FULL",
        c.Fetch("a", False, S("1"), (A("FLAGS"), A("INTERNALDATE"), A("RFC822.SIZE"), A("ENVELOPE"), A("BODY"))),
    ),
    (
        b"A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])",
        c.Fetch(
            "A654", False, S("2:4"),
            (A("FLAGS"), A("BODY", c.Section((), "HEADER.FIELDS", ("DATE", "FROM"))))
        ),
    ),
    (b"a FETCH 1:3 (MODSEQ)", c.Fetch("a", False, S("1:3"), (A("MODSEQ"),))),
    (
        b"s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)",
        c.Fetch("s100", True, S("1:*"), (A("FLAGS"),), c.FetchModifiers(12345)),
    ),
    (
        b"s100 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)",
        c.Fetch("s100", True, S("300:500"), (A("FLAGS"),), c.FetchModifiers(12345, True)),
    ),
    (
        b"A283 FETCH $ (UID INTERNALDATE FLAGS RFC822.HEADER)",
        c.Fetch("A283", False, S("$"), (A("UID"), A("INTERNALDATE"), A("FLAGS"), A("RFC822.HEADER"))),
    ),
    (
        b"B1 FETCH 1:4 (ENVELOPE PREVIEW (LAZY))",
        c.Fetch("B1", False, S("1:4"), (A("ENVELOPE"), A("PREVIEW", lazy=True))),
    ),
    (b"C4 UID FETCH 23 (PREVIEW)", c.Fetch("C4", True, S("23"), (A("PREVIEW"),))),
    (
        b"a FETCH 1 (BODY.PEEK[1.2.MIME] BODY[TEXT]<0.2048> BODY[] BODY[3] BODYSTRUCTURE BODY "
        b"RFC822 RFC822.TEXT RFC822.SIZE UID EMAILID THREADID)",
        c.Fetch(
            "a", False, S("1"),
            (
                A("BODY", c.Section((1, 2), "MIME"), peek=True),
                A("BODY", c.Section((), "TEXT"), (0, 2048)),
                A("BODY", c.Section()),
                A("BODY", c.Section((3,))),
                A("BODYSTRUCTURE"), A("BODY"), A("RFC822"), A("RFC822.TEXT"), A("RFC822.SIZE"),
                A("UID"), A("EMAILID"), A("THREADID"),
            ),
        ),
    ),
    (
        b"a FETCH 1 (BODY[4.2.HEADER.FIELDS.NOT (Received \"X-Odd\")] BODY.PEEK[2.HEADER])",
        c.Fetch(
            "a", False, S("1"),
            (
                A("BODY", c.Section((4, 2), "HEADER.FIELDS.NOT", ("Received", "X-Odd"))),
                A("BODY", c.Section((2,), "HEADER"), peek=True),
            ),
        ),
    ),
    (
        b"a UID FETCH 7 (BINARY[1.2]<100.200> BINARY.PEEK[] BINARY.SIZE[3])",
        c.Fetch(
            "a", True, S("7"),
            (
                A("BINARY", c.Section((1, 2)), (100, 200)),
                A("BINARY", c.Section(), peek=True),
                A("BINARY.SIZE", c.Section((3,))),
            ),
        ),
    ),
    (b"a fetch 1 body[]", c.Fetch("a", False, S("1"), (A("BODY", c.Section()),))),
    # STORE
    (
        b"A003 STORE 2:4 +FLAGS (\\Deleted)",
        c.Store("A003", False, S("2:4"), "add", False, ("\\Deleted",)),
    ),
    (
        b"A150 STORE 1:2 (UNCHANGEDSINCE 96) +FLAGS.SILENT \\Seen",
        c.Store("A150", False, S("1:2"), "add", True, ("\\Seen",), 96),
    ),
    (
        b"B001 STORE 1:7 (UNCHANGEDSINCE 320172338) +FLAGS (\\SEEN)",
        c.Store("B001", False, S("1:7"), "add", False, ("\\Seen",), 320172338),
    ),
    (
        b"a102 STORE 12 (UNCHANGEDSINCE 0) +FLAGS.SILENT $NoJunk",
        c.Store("a102", False, S("12"), "add", True, ("$NoJunk",), 0),
    ),
    (
        b"A330 STORE 7 -FLAGS.SILENT (\\Answered \\Seen)",
        c.Store("A330", False, S("7"), "remove", True, ("\\Answered", "\\Seen")),
    ),
    (
        b"a103 UID STORE 6,4,8 (UNCHANGEDSINCE 12121230045) FLAGS.SILENT ()",
        c.Store("a103", True, S("6,4,8"), "set", True, (), 12121230045),
    ),
    (
        b"F284 STORE $ +FLAGS.Silent (\\Deleted)",
        c.Store("F284", False, S("$"), "add", True, ("\\Deleted",)),
    ),
    (
        b"a STORE 1 FLAGS \\Seen $Label1 \\X-Ext",
        c.Store("a", False, S("1"), "set", False, ("\\Seen", "$Label1", "\\X-Ext")),
    ),
    # odd but legal tags and astrings
    (b"a.b-c] NOOP", c.Noop("a.b-c]")),
    (b"x SELECT \"\"", c.Select("x", "")),
    (b"x SELECT foo]bar", c.Select("x", "foo]bar")),
    (b"x SELECT \"Ma\xc3\xb1ana\"", c.Select("x", "Mañana")),
    (b"x SELECT {7}\r\nMa&AM4-", c.Select("x", "Ma&AM4-")),
]

IDS = [line.split(b"\r\n")[0][:60].decode("latin-1") for line, _ in TABLE]


@pytest.mark.parametrize("feeder", FEEDERS.values(), ids=FEEDERS.keys())
@pytest.mark.parametrize(("line", "expected"), TABLE, ids=IDS)
def test_table(line: bytes, expected: c.Command, feeder) -> None:
    events = feeder(line + b"\r\n")
    assert commands(events) == [expected]
    sync = line.count(b"}\r\n") - line.count(b"+}\r\n")
    assert sum(isinstance(e, NeedContinuation) for e in events) == sync


@pytest.mark.parametrize("feeder", FEEDERS.values(), ids=FEEDERS.keys())
@pytest.mark.parametrize(("line", "expected"), TABLE, ids=IDS)
def test_table_with_trailing_data(line: bytes, expected: c.Command, feeder) -> None:
    events = feeder(line + b"\r\nzz1 NOOP\r\nzz2 LOGOUT\r\n")
    assert commands(events) == [expected, c.Noop("zz1"), c.Logout("zz2")]


@pytest.mark.parametrize(("line", "expected"), TABLE, ids=IDS)
def test_table_prefix_is_incomplete(line: bytes, expected: c.Command) -> None:
    """Any strict prefix yields no command (and no error): the parser waits."""
    from dualmail.imap.wire.parser import CommandParser

    data = line + b"\r\n"
    for cut in range(len(data)):
        p = CommandParser()
        p.feed(data[:cut])
        while (ev := p.next_event()) is not None:
            assert isinstance(ev, NeedContinuation)
