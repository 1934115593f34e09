"""The MULTIAPPEND / CATENATE / REPLACE / URLAUTH grammar (RFC 3502 §6, RFC 4469 §5,
RFC 8508 §5, RFC 4467 §9) and the IMAP URL parser (RFC 5092 §11), fed whole, byte by
byte and in chunks; hypothesis round-trips both."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings, strategies as st

from dualmail.imap.wire import commands as c
from dualmail.imap.wire import urls
from dualmail.imap.wire.parser import CommandParser, LiteralTooLarge, NeedContinuation, ParseError
from wire_util import FEEDERS


def commands(events: list) -> list:
    return [e for e in events if not isinstance(e, NeedContinuation)]


@pytest.mark.parametrize("feed", FEEDERS.values(), ids=list(FEEDERS))
def test_multiappend_and_catenate(feed) -> None:
    data = (b'a APPEND INBOX (\\Seen) {3}\r\nabc "01-Jan-2020 10:00:00 +0000" ~{2}\r\nde '
            b'CATENATE (TEXT {1+}\r\nf URL "/INBOX/;uid=1" TEXT ~{1}\r\ng)\r\n')
    [cmd] = commands(feed(data))
    assert isinstance(cmd, c.Append)
    msgs = cmd.messages()
    assert [m.message for m in msgs] == [b"abc", b"de", b""]
    assert msgs[0].flags == ("\\Seen",) and msgs[1].binary and msgs[1].date_time is not None
    assert msgs[2].catenate == (c.CatPart(text=b"f"), c.CatPart(url="/INBOX/;uid=1"), c.CatPart(text=b"g"))


@pytest.mark.parametrize("line", [
    b"a APPEND INBOX {3+}\r\nabc {",  # a broken second message
    b'a APPEND INBOX CATENATE ()',  # RFC 4469 §5: 1*cat-part
    b'a APPEND INBOX CATENATE (FOO "x")',
    b'a APPEND INBOX CATENATE (URL "x" )',
    b"a REPLACE 0 INBOX {1+}\r\nx",
    b"a GENURLAUTH \"imap://u@h/INBOX/;uid=1;urlauth=anonymous\"",
    b"a URLFETCH (\"imap://u@h/x\" BODY BINARY)",
    b"a URLFETCH (\"imap://u@h/x\" FOO)",
])
def test_syntax_errors(line: bytes) -> None:
    events = FEEDERS["whole"](line + b"\r\nb NOOP\r\n")
    assert any(isinstance(e, ParseError) for e in events), events
    assert isinstance(events[-1], c.Noop)  # the parser is back at the next command


def test_other_commands() -> None:
    [r, g, k, k2, f, u] = commands(FEEDERS["whole"](
        b"a UID REPLACE 7 Drafts CATENATE (URL \"/Drafts/;uid=7\")\r\n"
        b'b GENURLAUTH "x1" INTERNAL "x2" internal\r\nc RESETKEY\r\nd RESETKEY INBOX INTERNAL\r\n'
        b'e URLFETCH "x1" ("x2" BINARY BODYPARTSTRUCTURE)\r\nf UNAUTHENTICATE\r\n'))
    assert r == c.Replace("a", True, 7, "Drafts", c.AppendMessage((), None, b"", catenate=(c.CatPart(url="/Drafts/;uid=7"),)))
    assert g == c.GenUrlAuth("b", (("x1", "INTERNAL"), ("x2", "INTERNAL")))
    assert k == c.ResetKey("c") and k2 == c.ResetKey("d", "INBOX", ("INTERNAL",))
    assert f == c.UrlFetch("e", (("x1", None), ("x2", ("BINARY", "BODYPARTSTRUCTURE"))))
    assert u == c.Unauthenticate("f")


def test_literals_bounded_per_message_and_per_command() -> None:
    """RFC 7889 with RFC 3502: each message literal is bounded by APPENDLIMIT, the
    command's literals together by max_command_literals (only APPEND/REPLACE)."""
    p = CommandParser(max_literal=10, max_command_literals=25)
    p.feed(b"a APPEND INBOX {10+}\r\n0123456789 {10+}\r\n0123456789\r\n")
    assert isinstance(p.next_event(), c.Append)
    p.feed(b"b APPEND INBOX {10+}\r\n0123456789 {10+}\r\n0123456789 {10}\r\n")
    ev = p.next_event()
    assert isinstance(ev, LiteralTooLarge) and ev.sync
    p.feed(b"c SEARCH TEXT {10+}\r\n0123456789 TEXT {10}\r\n")
    assert isinstance(p.next_event(), LiteralTooLarge)  # not APPEND: max_literal in all


# -- URLs --------------------------------------------------------------------------------


def test_url_examples() -> None:
    """RFC 4467 §8 / RFC 5092 §9 style examples."""
    u = urls.parse("imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred:internal:"
                   "91354a473744909de610943775f92038")
    assert (u.user, u.host, u.mailbox, u.uid, u.section, u.access, u.mechanism) == (
        "joe", "example.com", "INBOX", 20, c.Section((1, 2)), "submit+fred", "INTERNAL")
    assert u.rump == "imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred"
    r = urls.parse("/a%20b;UIDVALIDITY=5/;UID=3/;SECTION=HEADER.FIELDS%20(SUBJECT)/;PARTIAL=4.10")
    assert (r.mailbox, r.uidvalidity, r.uid, r.section, r.partial, r.absolute) == (
        "a b", 5, 3, c.Section((), "HEADER.FIELDS", ("SUBJECT",)), (4, 10), False)


@pytest.mark.parametrize("text", [
    "", "INBOX/;uid=1", "//host/INBOX/;uid=1", "imap://h", "imap://h/INBOX", "/INBOX/;uid=0",
    "/INBOX;uid=1", "/INBOX/;section=1/;uid=1", "/INBOX/;uid=1/;section=9.X", "/IN BOX/;uid=1",
    "/INBOX/;uid=1;urlauth=nobody", "/INBOX/;uid=1;expire=2020-01-01T00:00:00Z",
    "/INBOX/;uid=1;urlauth=anonymous:INTERNAL:abc", "/%FF/;uid=1", "/INBOX/;uid=1/;partial=x",
    "/INBOX/;uid=99999999999", "imap://h/INBOX?SUBJECT%20x", "/INBOX/;uid=1/;partial=1.0",
])
def test_url_refused(text: str) -> None:
    with pytest.raises(urls.UrlError):
        urls.parse(text)


_names = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF, blacklist_characters=";"),
                 min_size=1, max_size=20)


@settings(max_examples=300, deadline=None)
@given(mailbox=_names, uid=st.integers(1, 2**32 - 1), uidvalidity=st.none() | st.integers(1, 2**32 - 1),
       part=st.lists(st.integers(1, 50), max_size=3), text=st.sampled_from([None, "HEADER", "TEXT"]),
       partial=st.none() | st.tuples(st.integers(0, 10**6), st.none() | st.integers(1, 10**6)),
       access=st.none() | st.sampled_from(["authuser", "anonymous", "user+bob@example.org"]),
       absolute=st.booleans())
def test_url_round_trip(mailbox, uid, uidvalidity, part, text, partial, access, absolute) -> None:
    url = ("imap://fred@example.org/" if absolute else "/") + quote(mailbox, safe="")
    if uidvalidity is not None:
        url += f";UIDVALIDITY={uidvalidity}"
    url += f"/;UID={uid}"
    section = ".".join([str(p) for p in part] + ([text] if text and not (text == "MIME") else []))
    if section:
        url += f"/;SECTION={section}"
    if partial is not None:
        url += f"/;PARTIAL={partial[0]}" + (f".{partial[1]}" if partial[1] else "")
    if access is not None:
        url += f";URLAUTH={access}"
    u = urls.parse(url)
    assert (u.mailbox, u.uid, u.uidvalidity, u.partial, u.access, u.absolute) == (
        mailbox, uid, uidvalidity, partial, access, absolute)
    assert u.section == (c.Section(tuple(part), text) if section else None)
    assert u.rump == (url if access else "")
    signed = urls.parse(url + ":INTERNAL:" + "ab" * 32) if access else None
    assert signed is None or (signed.token, signed.rump) == ("ab" * 32, url)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"(imap://[a-z@]*)?/[A-Za-z;=/.%0-9:+]*", fullmatch=True))
def test_url_parser_never_crashes(text: str) -> None:
    try:
        urls.parse(text)
    except urls.UrlError:
        pass


_part = st.one_of(st.binary(min_size=0, max_size=12).map(lambda b: c.CatPart(text=b)),
                  st.from_regex(r"/[A-Za-z]{1,8}/;uid=[1-9][0-9]{0,3}", fullmatch=True).map(lambda u: c.CatPart(url=u)))
_message = st.one_of(st.binary(min_size=1, max_size=20).map(lambda b: c.AppendMessage((), None, b)),
                     st.lists(_part, min_size=1, max_size=4).map(
                         lambda ps: c.AppendMessage(("\\Seen",), None, b"", catenate=tuple(ps))))


def _wire(m: c.AppendMessage) -> bytes:
    out = b" (\\Seen)" if m.flags else b""
    if m.catenate is None:
        return out + b" {%d+}\r\n" % len(m.message) + m.message
    parts = [b"TEXT ~{%d+}\r\n" % len(p.text) + p.text if p.text is not None else b'URL "' + p.url.encode() + b'"'
             for p in m.catenate]
    return out + b" CATENATE (" + b" ".join(parts) + b")"


@settings(max_examples=200, deadline=None)
@given(st.lists(_message, min_size=1, max_size=5), st.sampled_from(list(FEEDERS)))
def test_append_round_trip(msgs, feeder) -> None:
    data = b"a APPEND INBOX" + b"".join(_wire(m) for m in msgs) + b"\r\nb NOOP\r\n"
    [cmd, noop] = commands(FEEDERS[feeder](data))
    assert isinstance(noop, c.Noop)
    got = [(m.flags, m.message, m.catenate) for m in cmd.messages()]
    want = [(m.flags, m.message, tuple(c.CatPart(p.text, p.url) for p in m.catenate) if m.catenate else None)
            for m in msgs]
    assert got == want
