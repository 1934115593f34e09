"""IMAP METADATA / METADATA-SERVER (RFC 5464) through the sans-I/O session: entries in
the store, limits with their response codes, all-or-nothing writes, and no JMAP-visible
or CONDSTORE-visible change from a METADATA write."""

from __future__ import annotations

from typing import Any

from imap_util import Client, lines

from dualmail.imap.config import ImapConfig
from dualmail.store import metadata as md


def snapshot(store: Any, account: int) -> tuple[Any, ...]:
    """Everything a METADATA write must leave alone, and the metadata itself."""
    with store.read(account) as v:
        boxes = tuple(sorted((int(m["id"]), int(m["hms"])) for m in v.mailboxes()))
        states = tuple(v.state(k) for k in ("Mailbox", "Email", "Thread"))
        meta = tuple((m, tuple(md.entries(v.kv, account, m))) for m, _h in ((0, 0),) + boxes)
        return v.highest_modseq, boxes, states, meta


def test_set_and_get_private_shared_and_server(client) -> None:
    """RFC 5464 §4.2, §4.3, §4.4.1; entry names are case-insensitive (§3.2)."""
    client.ok('a SETMETADATA INBOX (/private/comment "mine" /Shared/Comment {5+}\r\nours!)')
    client.ok('b SETMETADATA "" (/shared/comment "server note")')
    out = client.ok("c GETMETADATA INBOX (/shared/comment /private/comment /shared/none)")
    assert lines(out) == ['* METADATA "INBOX" (/private/comment "mine" /shared/comment "ours!")',
                          "c OK GETMETADATA completed"]
    assert lines(client.ok('d GETMETADATA "" /shared/comment'))[0] == \
        '* METADATA "" (/shared/comment "server note")'
    assert lines(client.ok("e GETMETADATA INBOX /private/nothing")) == ["e OK GETMETADATA completed"]
    client.ok("f SETMETADATA INBOX (/private/comment NIL)")  # NIL removes (§4.3)
    assert "/private/comment" not in client.ok("g GETMETADATA INBOX /private/comment")


def test_depth_and_maxsize(client) -> None:
    """§4.2.2 DEPTH 0/1/infinity; §4.2.1 MAXSIZE leaves out bigger values and reports the
    biggest one left out as OK [METADATA LONGENTRIES n]."""
    client.ok('a SETMETADATA INBOX (/private/f "top" /private/f/a "1" /private/f/a/b "22" '
              '/private/f/c "333333")')
    one = client.ok("b GETMETADATA (DEPTH 1) INBOX /private/f")
    assert lines(one)[0] == '* METADATA "INBOX" (/private/f "top" /private/f/a "1" /private/f/c "333333")'
    inf = client.ok("c GETMETADATA (DEPTH infinity MAXSIZE 3) INBOX /private/f")
    assert lines(inf) == ['* METADATA "INBOX" (/private/f "top" /private/f/a "1" /private/f/a/b "22")',
                          "c OK [METADATA LONGENTRIES 6] GETMETADATA completed"]
    assert lines(client.ok("d GETMETADATA (DEPTH infinity) INBOX /private"))[0].count("/private/f") == 4


def test_limits_refuse_and_change_nothing(store, account) -> None:
    """§4.3: NO [METADATA MAXSIZE n] for a value over the limit, NO [METADATA TOOMANY]
    past the entry count; "the server MUST NOT change the values for other annotations"."""
    c = Client(store, ImapConfig(failed_login_delay=0, metadata_max_size=10, metadata_max_entries=2))
    c.login()
    c.ok('a SETMETADATA INBOX (/shared/one "1")')
    before = snapshot(store, account)
    out = c.cmd('b SETMETADATA INBOX (/shared/two "2" /shared/big "01234567890")')
    assert lines(out) == ["b NO [METADATA MAXSIZE 10] the value of /shared/big is larger than 10 octets"]
    out = c.cmd('c SETMETADATA INBOX (/shared/two "2" /shared/three "3")')
    assert lines(out) == ["c NO [METADATA TOOMANY] at most 2 entries per mailbox"]
    assert snapshot(store, account) == before
    # replacing and removing within the limit is fine; a removal makes room
    c.ok('d SETMETADATA INBOX (/shared/one NIL /shared/two "2" /shared/three "3")')


def test_bad_entry_names_are_bad_and_change_nothing(client, store, account) -> None:
    """§3.2: invalid entry names "result in a BAD response"; §5 grammar."""
    before = snapshot(store, account)
    for line in ('a SETMETADATA INBOX (/private/a* "x")', 'a SETMETADATA INBOX (/other/a "x")',
                 'a SETMETADATA INBOX (/private//a "x")', 'a SETMETADATA INBOX (/private/a/ "x")',
                 'a SETMETADATA INBOX (/shared "x")', 'a SETMETADATA INBOX (/shared/\x01 "x")',
                 'a SETMETADATA INBOX ()', 'a GETMETADATA (DEPTH 2) INBOX /shared/a',
                 'a GETMETADATA (FOO 1) INBOX /shared/a', 'a GETMETADATA INBOX /private/%'):
        out = client.cmd(line)
        assert lines(out)[-1].startswith("a BAD "), (line, out)
    assert snapshot(store, account) == before


def test_missing_mailbox_and_read_only_admin(client, store, account) -> None:
    """§3.3: a mailbox the user cannot LIST is NO; §3.2.1.1 /shared/admin is read-only."""
    before = snapshot(store, account)
    assert client.cmd('a SETMETADATA Nope (/shared/x "1")').startswith("a NO [NONEXISTENT]")
    assert client.cmd("b GETMETADATA Nope /shared/x").startswith("b NO [NONEXISTENT]")
    assert client.cmd('c SETMETADATA "" (/shared/admin "mailto:x@y")').startswith("c NO [CANNOT]")
    assert snapshot(store, account) == before


def test_metadata_write_moves_no_modseq_and_no_jmap_state(client, store, account) -> None:
    """issue 16: a METADATA write is invisible to JMAP (no state string moves) and to
    CONDSTORE (no HIGHESTMODSEQ moves), yet it is committed and other sessions read it."""
    modseq, boxes, states, _meta = snapshot(store, account)
    client.ok('a SETMETADATA INBOX (/private/comment "x")')
    client.ok('b SETMETADATA "" (/shared/comment "y")')
    after = snapshot(store, account)
    assert after[:3] == (modseq, boxes, states)
    other = Client(store)
    other.login()
    assert '"x"' in other.ok("c GETMETADATA INBOX /private/comment")


def test_rename_carries_delete_drops_inbox_rename_copies(client, store, account) -> None:
    """§4.1: annotations follow a renamed mailbox; a deleted mailbox's go with it (a new
    mailbox of that name starts bare); renaming INBOX copies them and INBOX keeps its own."""
    client.ok("a CREATE Old")
    client.ok('b SETMETADATA Old (/shared/comment "old")')
    client.ok("c RENAME Old New")
    assert '"old"' in client.ok("d GETMETADATA New /shared/comment")
    client.ok("e DELETE New")
    client.ok("f CREATE New")
    assert lines(client.ok("g GETMETADATA New /shared/comment")) == ["g OK GETMETADATA completed"]
    client.ok('h SETMETADATA INBOX (/private/comment "inbox")')
    client.ok("i RENAME INBOX Moved")
    assert '"inbox"' in client.ok("j GETMETADATA Moved /private/comment")
    assert '"inbox"' in client.ok("k GETMETADATA INBOX /private/comment")


def test_binary_value_round_trips_as_literal8(client) -> None:
    """§5: value = nstring / literal8; a value with NUL goes back as literal8."""
    client.send("a SETMETADATA INBOX (/private/bin ~{3+}\r\na\x00b)\r\n")
    out = client.ok("b GETMETADATA INBOX /private/bin")
    assert "* METADATA \"INBOX\" (/private/bin ~{3}\r\na\x00b)" in out


def test_store_check_sees_metadata_of_deleted_mailboxes_gone(client, store, account) -> None:
    """``dualmail check``: no entry outlives its mailbox (the delete's own transaction)."""
    from dualmail.store.check import verify

    client.ok("a CREATE Gone")
    client.ok('b SETMETADATA Gone (/private/comment "x")')
    with store.read(account) as view:
        gone = int(view.mailbox_by_path(["Gone"]))
        assert list(md.entries(view.kv, account, gone)) == [("/private/comment", b"x")]
    client.ok("c DELETE Gone")
    with store.read(account) as view:
        assert verify(view) == []
        assert list(md.entries(view.kv, account, gone)) == []
