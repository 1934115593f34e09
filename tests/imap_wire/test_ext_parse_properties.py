"""Hypothesis properties of the NOTIFY (RFC 5465 §8) and METADATA (RFC 5464 §5) parsers:
what a client may send parses back to what it meant, and anything else is a BAD
(``ParseError``) for that command alone, never an exception or a lost next command."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r
from dualmail.imap.wire.parser import ParseError
from wire_util import commands, feed_whole

_COMPONENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-_", min_size=1, max_size=8)
ENTRY = st.builds(lambda scope, parts: "/" + scope + "/" + "/".join(parts),
                  st.sampled_from(["private", "shared"]), st.lists(_COMPONENT, min_size=1, max_size=4))
VALUE = st.one_of(st.none(), st.binary(max_size=60))
MAILBOX = st.sampled_from(["INBOX", "Archive", "a b", "Lists/x", "\u00e9t\u00e9"])
NAMED = st.sampled_from(["SUBTREE", "MAILBOXES"])
OTHER = st.sampled_from(["INBOXES", "PERSONAL", "SUBSCRIBED"])
EVENTS = st.lists(st.sampled_from(["MessageNew", "MessageExpunge", "FlagChange", "MailboxName",
                                   "SubscriptionChange", "MailboxMetadataChange",
                                   "ServerMetadataChange"]), min_size=1, max_size=7, unique=True)


def _value(v: bytes | None) -> bytes:
    if v is None:
        return b"NIL"
    return b"~{%d}\r\n" % len(v) + v if b"\x00" in v else r.literal(v)


@given(st.lists(st.tuples(ENTRY, VALUE), min_size=1, max_size=5), MAILBOX)
def test_setmetadata_roundtrip(pairs, mailbox) -> None:
    line = b"t SETMETADATA " + r.astring(mailbox, utf8=True) + b" (" + \
        b" ".join(r.astring(e) + b" " + _value(v) for e, v in pairs) + b")\r\n"
    [cmd] = commands(feed_whole(line))
    assert cmd == c.SetMetadata("t", mailbox, tuple(pairs))


@given(st.lists(ENTRY, min_size=1, max_size=5), st.one_of(st.none(), st.integers(0, 10**9)),
       st.sampled_from([0, 1, None]), st.booleans())
def test_getmetadata_roundtrip(entries, maxsize, depth, parens) -> None:
    opts = []
    if maxsize is not None:
        opts.append(b"MAXSIZE %d" % maxsize)
    if depth != 0 or not opts:
        opts.append(b"DEPTH " + (b"infinity" if depth is None else str(depth).encode()))
    names = b" ".join(e.upper().encode() for e in entries)
    line = b"t GETMETADATA (" + b" ".join(opts) + b') "" ' + (b"(" + names + b")" if parens else names)
    [cmd] = commands(feed_whole(line + b"\r\n"))
    assert cmd == c.GetMetadata("t", "", tuple(entries), maxsize, depth)


@given(st.lists(st.tuples(st.one_of(OTHER.map(lambda f: (f, ())),
                                    st.tuples(NAMED, st.lists(MAILBOX, min_size=1, max_size=3,
                                                              unique=True).map(tuple))),
                          st.one_of(st.just(()), EVENTS.map(tuple))), min_size=1, max_size=4),
       st.booleans(), st.booleans())
def test_notify_roundtrip(groups, status, selected) -> None:
    parts = []
    want = []
    if selected:
        parts.append(b"(SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange))")
        want.append(c.NotifyGroup("SELECTED", (), ("MessageNew", "MessageExpunge", "FlagChange"),
                                  (c.FetchAtt("UID"), c.FetchAtt("FLAGS"))))
    for (filt, boxes), events in groups:
        spec = filt.encode()
        if boxes:
            spec += b" (" + b" ".join(r.astring(b, utf8=True) for b in boxes) + b")"
        ev = b"(" + " ".join(e.lower() for e in events).encode() + b")" if events else b"NONE"
        parts.append(b"(" + spec + b" " + ev + b")")
        want.append(c.NotifyGroup(filt, boxes, events))
    line = b"t NOTIFY SET " + (b"STATUS " if status else b"") + b" ".join(parts) + b"\r\n"
    [cmd] = commands(feed_whole(line))
    assert cmd == c.Notify("t", tuple(want), status)


@given(st.binary(max_size=80))
def test_junk_is_bad_for_that_command_only(junk) -> None:
    """Any bytes after the command name: a command or a BAD, then NOOP still parses."""
    junk = junk.replace(b"\r", b"").replace(b"\n", b"").replace(b"{", b"")
    for name in (b"NOTIFY", b"GETMETADATA", b"SETMETADATA"):
        events = commands(feed_whole(b"t " + name + b" " + junk + b"\r\nn NOOP\r\n"))
        assert isinstance(events[0], (ParseError, c.Notify, c.GetMetadata, c.SetMetadata)), events
        assert events[-1] == c.Noop("n"), events
