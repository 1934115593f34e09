"""IMAP NOTIFY (RFC 5465) over the Twisted adapter on in-memory transports: the
notifications arrive between commands (no IDLE), in IDLE, and at command ends; they come
from the store's one change stream, whoever made the change."""

from __future__ import annotations

import re
from typing import Any

from imap_util import deliver, lines
from test_imap_protocol import Conn, clock, login, make_factory  # noqa: F401  (clock: a fixture)


EVERYTHING = ("(MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange "
              "MailboxMetadataChange ServerMetadataChange)")


def connect(store: Any, clock: Any, **cfg: Any) -> Conn:
    c = Conn(make_factory(store, clock, **cfg))
    c.take()
    login(c)
    return c


def pushed(c: Conn, clock: Any) -> list[str]:
    clock.advance(0)  # the push is scheduled on the next reactor turn
    return lines(c.take())


def expect_pushes(c: Conn, other: Conn, clock: Any, steps: list[tuple[str, list[str]]]) -> None:
    """Each command of ``other`` (which must end OK) makes ``c`` hear exactly that."""
    for i, (command, expected) in enumerate(steps):
        assert f"x{i} OK" in other.send(f"x{i} {command}\r\n"), command
        assert pushed(c, clock) == expected, command


def test_status_indicator_reports_watched_mailboxes(store, account, clock) -> None:
    """RFC 5465 §3.1: with STATUS, a STATUS for each watched non-selected mailbox before
    the tagged OK: MESSAGES/UIDNEXT/UIDVALIDITY for MessageNew, MESSAGES for
    MessageExpunge, UIDVALIDITY/HIGHESTMODSEQ for FlagChange (CONDSTORE is supported)."""
    deliver(store, account, "Archive")
    c = connect(store, clock)
    out = lines(c.send("a NOTIFY SET STATUS (mailboxes Archive (MessageNew MessageExpunge))\r\n"))
    assert out[0].startswith('* STATUS "Archive" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY ')
    assert out[-1] == "a OK NOTIFY completed" and len(out) == 2
    out = lines(c.send("b NOTIFY SET STATUS (mailboxes Archive (FlagChange))\r\n"))
    assert re.fullmatch(r'\* STATUS "Archive" \(UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)', out[0]), out
    # without STATUS: nothing before the OK
    assert lines(c.send("c NOTIFY SET (personal (MessageNew MessageExpunge))\r\n")) == [
        "c OK NOTIFY completed"]


def test_new_message_elsewhere_pushed_between_commands(store, account, clock) -> None:
    """RFC 5465 §5.2: a message arriving in a watched mailbox other than the selected one
    is told as STATUS at once, with no command in progress and no IDLE (§3.1)."""
    c = connect(store, clock)
    c.send("s SELECT INBOX\r\n")
    c.send("a NOTIFY SET (selected (MessageNew MessageExpunge)) "
           "(mailboxes Archive (MessageNew MessageExpunge))\r\n")
    deliver(store, account, "Archive")
    assert pushed(c, clock) == ['* STATUS "Archive" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)']
    deliver(store, account, "Drafts")  # not watched
    assert pushed(c, clock) == []
    deliver(store, account, "INBOX")  # the selected mailbox: EXISTS at once
    assert pushed(c, clock) == ["* 1 EXISTS", "* 1 RECENT"]


def test_condstore_adds_highestmodseq_and_flag_changes(store, account, clock) -> None:
    """RFC 5465 §5.1: with CONDSTORE enabled a flag change in another mailbox is a STATUS
    with HIGHESTMODSEQ and UIDVALIDITY; §5.2/§5.3 add HIGHESTMODSEQ to MessageNew."""
    deliver(store, account, "Archive")
    c = connect(store, clock)
    c.send("e ENABLE CONDSTORE\r\n")
    c.send("a NOTIFY SET (mailboxes Archive (MessageNew MessageExpunge FlagChange))\r\n")
    other = connect(store, clock)
    other.send("s SELECT Archive\r\n")
    other.send("t STORE 1 +FLAGS (\\Seen)\r\n")
    out = pushed(c, clock)
    assert re.fullmatch(r'\* STATUS "Archive" \(UNSEEN 0 UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)',
                        out[0]) and len(out) == 1, out
    other.send("u STORE 1 +FLAGS (\\Deleted)\r\nv EXPUNGE\r\n")
    out = pushed(c, clock)
    assert len(out) == 1 and re.fullmatch(
        r'\* STATUS "Archive" \(MESSAGES 0 UIDNEXT 2 UNSEEN 0 UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)', out[0]), out


def test_flag_change_without_condstore_only_when_unseen_moves(store, account, clock) -> None:
    """RFC 5465 §5.1: without CONDSTORE a flag change is told only through UNSEEN."""
    deliver(store, account, "Archive")
    c = connect(store, clock)
    c.send("a NOTIFY SET (mailboxes Archive (MessageNew MessageExpunge FlagChange))\r\n")
    other = connect(store, clock)
    other.send("s SELECT Archive\r\n")
    other.send("t STORE 1 +FLAGS (\\Flagged)\r\n")
    assert pushed(c, clock) == []
    other.send("t STORE 1 +FLAGS (\\Seen)\r\n")
    assert pushed(c, clock) == ['* STATUS "Archive" (UNSEEN 0)']


def test_mailbox_name_and_subscription_events(store, account, clock) -> None:
    """RFC 5465 §5.4 (LIST for CREATE, RENAME with OLDNAME, DELETE with \\NonExistent)
    and §5.5 (LIST with \\Subscribed iff subscribed), for another session's changes."""
    c = connect(store, clock)
    c.send("a NOTIFY SET (personal (MailboxName SubscriptionChange))\r\n")
    expect_pushes(c, connect(store, clock), clock, [
        ("CREATE Projects", ['* LIST (\\HasNoChildren) "/" "Projects"']),
        ("RENAME Projects Plans", ['* LIST (\\HasNoChildren) "/" "Plans" ("OLDNAME" ("Projects"))']),
        ("SUBSCRIBE Plans", ['* LIST (\\HasNoChildren \\Subscribed) "/" "Plans"']),
        ("UNSUBSCRIBE Plans", ['* LIST (\\HasNoChildren) "/" "Plans"']),
        ("DELETE Plans", ['* LIST (\\NonExistent) "/" "Plans"']),
        # a name that is no mailbox (RFC 9051 §6.3.7)
        ("SUBSCRIBE Nowhere", ['* LIST (\\NonExistent \\Subscribed) "/" "Nowhere"']),
    ])

def test_own_changes_are_not_told_back(store, account, clock) -> None:
    """RFC 5465 §5: the server SHOULD NOT notify the client of what it did itself."""
    c = connect(store, clock)
    c.send("a NOTIFY SET (personal " + EVERYTHING + ")\r\n")
    out = lines(c.send("b CREATE Mine\r\nc SETMETADATA Mine (/private/comment \"x\")\r\n"))
    assert [ln for ln in out if ln.startswith("*")] == [], out
    assert pushed(c, clock) == []


def test_metadata_change_by_other_session(store, account, clock) -> None:
    """RFC 5465 §5.6/§5.7: ``* METADATA name entry`` (names only, RFC 5464 §4.4.2)."""
    c = connect(store, clock)
    c.send("a NOTIFY SET (mailboxes INBOX (MailboxMetadataChange ServerMetadataChange))\r\n")
    expect_pushes(c, connect(store, clock), clock, [
        ('SETMETADATA INBOX (/shared/comment "hi" /private/comment "me")',
         ['* METADATA "INBOX" /shared/comment /private/comment']),
        ('SETMETADATA "" (/shared/comment "server")', ['* METADATA "" /shared/comment']),
        ('SETMETADATA Archive (/shared/comment "not watched")', []),
    ])

def test_selected_delayed_holds_expunges_until_a_command(store, account, clock) -> None:
    """RFC 5465 §6.1.2: SELECTED-DELAYED holds MessageExpunge until a command that may
    report it (NOOP, IDLE); SELECTED sends it at once (§6.1.1)."""
    deliver(store, account, "INBOX")
    deliver(store, account, "INBOX")
    c = connect(store, clock)
    c.send("s SELECT INBOX\r\n")
    c.send("a NOTIFY SET (selected-delayed (MessageNew MessageExpunge))\r\n")
    other = connect(store, clock)
    other.send("s SELECT INBOX\r\nt STORE 1 +FLAGS (\\Deleted)\r\nu EXPUNGE\r\n")
    assert pushed(c, clock) == []
    assert lines(c.send("n NOOP\r\n")) == ["* 1 EXPUNGE", "n OK NOOP completed"]
    c.send("b NOTIFY SET (selected (MessageNew MessageExpunge))\r\n")
    other.send("v STORE 1 +FLAGS (\\Deleted)\r\nw EXPUNGE\r\n")
    assert pushed(c, clock) == ["* 1 EXPUNGE"]


def test_message_new_fetch_atts(store, account, clock) -> None:
    """RFC 5465 §5.2: EXISTS, then a FETCH with the attributes MessageNew asked for."""
    c = connect(store, clock)
    c.send("e ENABLE IMAP4rev2\r\ns SELECT INBOX\r\n")
    c.send("a NOTIFY SET (selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (Subject)]) "
           "MessageExpunge))\r\n")
    deliver(store, account, "INBOX")
    out = pushed(c, clock)
    assert out[0] == "* 1 EXISTS"
    assert out[1] == "* 1 FETCH (UID 1 BODY[HEADER.FIELDS (Subject)] {18}"
    assert out[2:] == ["Subject: hello", ")"]


def test_without_selected_group_idle_hears_nothing_of_the_selected(store, account, clock) -> None:
    """RFC 5465 §3.1/§4: no SELECTED group means no message events for the selected
    mailbox, in IDLE too; the command end still reports them (RFC 9051 §7)."""
    c = connect(store, clock)
    c.send("s SELECT INBOX\r\na NOTIFY SET (mailboxes Archive (MessageNew MessageExpunge))\r\n")
    c.send("i IDLE\r\n")
    deliver(store, account, "INBOX")
    assert pushed(c, clock) == []
    deliver(store, account, "Archive")
    assert pushed(c, clock) == ['* STATUS "Archive" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)']
    assert lines(c.send("DONE\r\n")) == ["i OK IDLE terminated"]
    assert lines(c.send("n NOOP\r\n"))[:1] == ["* 1 EXISTS"]


def test_notify_none_and_bad_input_change_nothing(store, account, clock) -> None:
    """RFC 5465 §3.1: an unsupported event is NO [BADEVENT] listing the supported ones;
    bad syntax (§8; MessageNew without MessageExpunge for SELECTED, §5) is BAD; neither
    replaces the registration.  NOTIFY NONE ends it."""
    c = connect(store, clock)
    c.send("a NOTIFY SET (mailboxes Archive (MessageNew MessageExpunge))\r\n")
    assert c.send("b NOTIFY SET (personal (AnnotationChange))\r\n") == (
        "b NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange "
        "MailboxMetadataChange ServerMetadataChange)] Unsupported event AnnotationChange\r\n")
    assert c.send("c NOTIFY SET (selected (MessageNew))\r\n").startswith("c BAD ")
    assert c.send("d NOTIFY SET (selected (MailboxName))\r\n").startswith("d BAD ")
    assert c.send("e NOTIFY SET (personal (MessageNew (UID) MessageExpunge))\r\n").startswith("e BAD ")
    assert c.send("f NOTIFY SET (selected NONE) (selected-delayed NONE)\r\n").startswith("f BAD ")
    assert c.send("g NOTIFY\r\n").startswith("g BAD ")
    deliver(store, account, "Archive")  # the first registration still holds
    assert pushed(c, clock) == ['* STATUS "Archive" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)']
    assert c.send("h NOTIFY NONE\r\n") == "h OK NOTIFY completed\r\n"
    deliver(store, account, "Archive")
    assert pushed(c, clock) == []


def test_overflow_when_client_does_not_read(store, account, clock) -> None:
    """RFC 5465 §5.8: changes piling up for a client whose transport is full end in
    ``* OK [NOTIFICATIONOVERFLOW]`` and NOTIFY NONE."""
    c = connect(store, clock, notify_max_pending=3)
    c.send("a NOTIFY SET (personal (MessageNew MessageExpunge))\r\n")
    c.proto.pauseProducing()  # the transport's buffer is full
    for _ in range(4):
        deliver(store, account, "Archive")
    assert pushed(c, clock) == []
    c.proto.resumeProducing()
    out = pushed(c, clock)
    assert out == ["* OK [NOTIFICATIONOVERFLOW] Too many changes to tell; NOTIFY is off now (NOTIFY NONE)"]
    deliver(store, account, "Archive")
    assert pushed(c, clock) == []
    assert c.proto.session.notify is None


def test_filters_subtree_inboxes_subscribed(store, account, clock) -> None:
    """RFC 5465 §6.3 INBOXES (here: INBOX, where mail is delivered), §6.4 SUBSCRIBED (the
    subscriptions of the moment: "the server MUST reevaluate the list"), §6.5 SUBTREE (the
    mailbox and everything below it), §6.6 MAILBOXES (no wildcard expansion)."""
    c = connect(store, clock)
    for name in ("Lists", "Lists/a", "Listsx", "Other", "Sub"):
        c.send(f"m CREATE {name}\r\n")
    c.send("n SUBSCRIBE Sub\r\n")
    assert "a OK" in c.send("a NOTIFY SET (subtree Lists (MessageNew MessageExpunge)) (inboxes (MessageNew MessageExpunge)) "
           "(subscribed (MessageNew MessageExpunge)) (mailboxes \"Oth%\" (MessageNew MessageExpunge))\r\n")
    told = {}
    for name in ("Lists", "Lists/a", "Listsx", "INBOX", "Other", "Sub"):
        deliver(store, account, name)
        told[name] = pushed(c, clock)
    assert {n: bool(v) for n, v in told.items()} == {
        "Lists": True, "Lists/a": True, "Listsx": False, "INBOX": True, "Other": False,
        "Sub": True}
    other = connect(store, clock)
    other.send("s SUBSCRIBE Other\r\n")
    deliver(store, account, "Other")
    assert pushed(c, clock) == ['* STATUS "Other" (MESSAGES 2 UIDNEXT 3 UNSEEN 2)']
