"""IMAP keywords keep their spelling; JMAP sees them lowercase; matching ignores case.

RFC 9051 §2.3.2 keywords are case-insensitive, but clients (Thunderbird tags, Apple Mail's
$MailFlagBit0, $NotJunk/NonJunk) compare flags by spelling, so IMAP answers with the
spelling the account first set a keyword with (the IANA registered spelling for the
registered ones), while JMAP gets the lowercase form RFC 8621 §4.1.1 requires
(CONTRACT §2: flags and keywords map 1:1, case-insensitively).
"""

from __future__ import annotations

import re

from dualmail.model.keywords import REGISTERED, Spellings, new_spellings
from imap_util import Client, deliver, message


def _flags(out: str, seq: int) -> set[str]:
    m = re.search(rf"\* {seq} FETCH \(.*?FLAGS \(([^)]*)\)", out)
    assert m, out
    return set(m.group(1).split())


def test_first_spelling_is_kept_and_matching_ignores_case(store, account, client) -> None:
    for i in range(3):
        deliver(store, account, raw=message(f"m{i}"))
    client.ok("s SELECT INBOX")
    out = client.ok("a STORE 1 +FLAGS ($Custom NonJunk)")
    assert _flags(out, 1) == {"$Custom", "NonJunk", "\\Recent"}
    assert "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Custom NonJunk)" in out
    out = client.ok("b STORE 2 +FLAGS ($CUSTOM)")  # a later spelling does not win
    assert _flags(out, 2) == {"$Custom", "\\Recent"}
    assert client.ok("c SEARCH KEYWORD $custom").splitlines()[0] == "* SEARCH 1 2"
    assert client.ok("d SEARCH UNKEYWORD nonjunk").splitlines()[0] == "* SEARCH 2 3"
    out = client.ok("e STORE 1 -FLAGS ($cUSTOM)")
    assert _flags(out, 1) == {"NonJunk", "\\Recent"}
    # JMAP's view: lowercase (RFC 8621 §4.1.1)
    with store.read(account) as view:
        assert sorted(view.email(view.email_at(client.session.selected.mailbox, 2))["kw"]) == ["$custom"]
        assert view.keyword_spellings() == {"$custom": "$Custom", "nonjunk": "NonJunk"}


def test_registered_keywords_have_their_registered_spelling(store, account, client) -> None:
    deliver(store, account, raw=message("m"))
    client.ok("s SELECT INBOX")
    out = client.ok("a STORE 1 +FLAGS ($forwarded $JUNK $notjunk $mdnsent)")
    assert _flags(out, 1) == {"$Forwarded", "$Junk", "$NotJunk", "$MDNSent", "\\Recent"}
    assert set(REGISTERED.values()) >= {"$Phishing", "$Important", "$Submitted"}


def test_another_session_sees_the_spelling(store, account, client) -> None:
    deliver(store, account, raw=message("m"))
    other = Client(store)
    other.login()
    other.ok("s SELECT INBOX")
    client.ok("s SELECT INBOX")
    client.ok("a STORE 1 +FLAGS ($MailFlagBit0)")
    out = other.ok("b FETCH 1 FLAGS")
    assert "$MailFlagBit0" in _flags(out, 1)


def test_append_flags_spelling_and_the_spelling_commits_with_the_change(store, account, client) -> None:
    raw = message("appended")
    client.send(f"a APPEND INBOX (Work $Label1) {{{len(raw)}}}\r\n")
    client.send(raw + b"\r\n")
    with store.read(account) as view:
        spell = view.keyword_spellings()
        modseq = view.account()["modseq"]
    assert spell == {"work": "Work", "$label1": "$Label1"}
    # STORE of a keyword the message already has changes nothing: no new spelling is kept
    client.ok("s SELECT INBOX")
    client.ok("b STORE 1 +FLAGS (WORK)")
    with store.read(account) as view:
        assert view.keyword_spellings() == spell and view.account()["modseq"] == modseq


def test_spellings_unit() -> None:
    assert new_spellings(["\\Seen", "Foo", "FOO", "$junk", "bad(", "Bar"], {"bar": "bar"}) == {"foo": "Foo"}
    loads = []

    def load() -> dict[str, str]:
        loads.append(1)
        return {"foo": "Foo"} if len(loads) > 1 else {}
    s = Spellings(load)
    assert s.flag("$seen") == "\\Seen" and s.flag("$junk") == "$Junk"
    assert loads == []  # system and registered keywords need no table: it is read when first needed
    assert s.flag("foo") == "Foo" and len(loads) == 2  # a miss re-reads once
    assert s.flag("zap") == "zap" and s.flag("zap") == "zap" and len(loads) == 3
