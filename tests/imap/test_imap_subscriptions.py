"""Regression tests from the imaptest `subscribe`, `listext` and `append-binary` scripts:
subscriptions of names that are no mailbox (RFC 9051 §6.3.7), LIST-EXTENDED selection
options (RFC 5258 §3, §3.5), and APPEND of NUL-bearing binary parts (RFC 3516 §4.4)."""

from __future__ import annotations

from imap_util import Client, lines


def test_create_does_not_subscribe(client: Client) -> None:
    """Dovecot does not auto-subscribe on CREATE; imaptest `subscribe` relies on it."""
    client.ok("a CREATE box/child")
    client.ok("b SUBSCRIBE box/child")
    out = client.ok('c LSUB "" box/%')
    assert lines(out)[:-1] == ['* LSUB () "/" "box/child"']
    out = client.ok('d LSUB "" %')
    assert '* LSUB (\\Noselect) "/" "box"' in out  # RFC 3501 §6.3.9: parent of a subscribed name
    client.ok("e UNSUBSCRIBE box/child")
    assert "box" not in client.ok('f LSUB "" *')


def test_subscribe_missing_name_and_nonexistent_attribute(client: Client) -> None:
    """RFC 9051 §6.3.7: SUBSCRIBE MAY name a missing mailbox, and a subscription is not
    dropped when its mailbox is deleted; LIST (SUBSCRIBED) shows it \\NonExistent."""
    client.ok("a CREATE gone")
    client.ok("b SUBSCRIBE gone")
    client.ok("c DELETE gone")
    client.ok("d SUBSCRIBE never/made")
    out = client.ok('e LIST (SUBSCRIBED) "" "*"')
    assert '* LIST (\\NonExistent \\Subscribed) "/" "gone"' in out
    assert '* LIST (\\NonExistent \\Subscribed) "/" "never/made"' in out
    assert "\\Noselect" not in out
    out = client.ok('f LSUB "" *')
    assert '* LSUB () "/" "gone"' in out and '* LSUB () "/" "never/made"' in out
    # a missing parent of a subscribed name: \NonExistent with CHILDINFO (RFC 5258 §3.5)
    out = client.ok('g LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    assert '* LIST (\\NonExistent) "/" "never" ("CHILDINFO" ("SUBSCRIBED"))' in out
    # plain LIST does not show names that do not exist
    assert "gone" not in client.ok('h LIST "" "*"')
    # re-creating the name takes the subscription over
    client.ok("i CREATE gone")
    out = client.ok('j LIST (SUBSCRIBED) "" "gone"')
    assert lines(out)[0] == '* LIST (\\HasNoChildren \\Subscribed) "/" "gone"'
    client.ok("k UNSUBSCRIBE never/made")
    out = client.ok('l LSUB "" *')
    assert "never" not in out and '"gone"' in out


def test_recursivematch_needs_a_filtering_option(client: Client) -> None:
    """RFC 5258 §3: RECURSIVEMATCH alone or with only REMOTE is BAD."""
    for tag, opts in (("a", "RECURSIVEMATCH"), ("b", "RECURSIVEMATCH REMOTE"),
                      ("c", "REMOTE RECURSIVEMATCH")):
        out = client.cmd(f'{tag} LIST ({opts}) "" ""')
        assert out.startswith(f"{tag} BAD"), out
    client.ok('d LIST (REMOTE) "" %')
    client.ok('e LIST (SUBSCRIBED REMOTE RECURSIVEMATCH) "" %')


def test_childinfo_only_when_a_child_is_not_listed(client: Client) -> None:
    """RFC 5258 §3.5 / example 9: no (redundant) CHILDINFO when every matching child is
    listed itself; CHILDINFO also on a listed mailbox with an unlisted subscribed child."""
    for name in ("p/c", "q/c", "q/c/d"):
        client.ok(f"a CREATE {name}")
    client.ok("b SUBSCRIBE p/c")
    client.ok("c SUBSCRIBE q/c")
    client.ok("c SUBSCRIBE q/c/d")
    out = client.ok('d LIST (SUBSCRIBED RECURSIVEMATCH) "" (p p/c)')
    assert lines(out)[:-1] == ['* LIST (\\HasNoChildren \\Subscribed) "/" "p/c"']
    out = client.ok('e LIST (SUBSCRIBED RECURSIVEMATCH) "" p')
    assert lines(out)[:-1] == ['* LIST (\\HasChildren) "/" "p" ("CHILDINFO" ("SUBSCRIBED"))']
    out = client.ok('f LIST (SUBSCRIBED RECURSIVEMATCH) "" q/%')
    assert lines(out)[:-1] == ['* LIST (\\HasChildren \\Subscribed) "/" "q/c" ("CHILDINFO" ("SUBSCRIBED"))']


def test_append_binary_nul_part_is_stored_base64(client: Client) -> None:
    """RFC 3516 §4.4 + imaptest `append-binary`: a NUL can never go out in BODY[...]
    (a literal is CHAR8), so the part is stored base64; BINARY[] gives the octets back."""
    client.ok("a CREATE bin")
    body = b"\x00-\xe4\r\n\r\n"
    msg = (b"From: user@domain.org\r\nDate: Sat, 24 Mar 2007 23:00:00 +0200\r\n"
           b"Mime-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: binary\r\n\r\n" + body)
    client.send(b"b APPEND bin ~{%d+}\r\n" % len(msg) + msg + b"\r\n")
    assert b"b OK" in client.log[-1]
    client.ok("c SELECT bin")
    client.ok("d FETCH 1 (BODY.PEEK[1] BINARY.SIZE[1] BINARY.PEEK[1])")
    out = client.log[-1]
    assert b'BODY[1] "AC3kDQoNCg=="' in out
    assert b"BINARY.SIZE[1] 7" in out
    assert b"BINARY[1] ~{7}\r\n" + body in out
    assert b"\x00" not in client.ok("e FETCH 1 BODY.PEEK[]").encode()
