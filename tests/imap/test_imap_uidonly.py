"""UIDONLY (RFC 9586) over the sans-I/O session.

§3: once ENABLEd, the client may not use message sequence numbers (tagged BAD with
UIDREQUIRED) and the server never sends them: UIDFETCH (§3.3) instead of FETCH, VANISHED
instead of EXPUNGE (§3.4, also without QRESYNC), no ``[UNSEEN n]`` in SELECT.  §3.5: the
``sequence-set`` search key is refused in UID SEARCH too; §3.7: so is QRESYNC's message
sequence match data.  RFC 8437 §4.1: UNAUTHENTICATE turns it off again.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from imap_util import Client, deliver, lines, message


def _uidonly(store: Any, account: int, n: int = 4, *, enable: str = "UIDONLY") -> Client:
    """n messages in INBOX whose UIDs are not their sequence numbers (UID 1 is gone)."""
    for i in range(1, n + 2):
        deliver(store, account, raw=message(f"s{i}", body=f"body {i}\r\n"))
    setup = Client(store)
    setup.login()
    setup.ok("s SELECT INBOX")
    setup.ok("d UID STORE 1 +FLAGS.SILENT (\\Deleted)")
    setup.ok("x UID EXPUNGE 1")
    setup.ok("l LOGOUT")
    cl = Client(store)
    cl.login()
    out = cl.ok(f"e ENABLE {enable}")
    assert "* ENABLED UIDONLY" in out
    return cl


def _state(store: Any, account: int) -> tuple[Any, ...]:
    """What a refused command must leave as it was: the account's modseq and INBOX."""
    with store.read(account) as v:
        m = v.mailbox_by_path(["INBOX"])
        rec = v.require_mailbox(m)
        return v.highest_modseq, rec["hms"], rec["uidnext"], dict(rec["counts"]), list(v.uids(m))


def test_advertised_and_enabled_once(client: Client) -> None:
    assert " UIDONLY" in client.ok("c CAPABILITY")
    assert "* ENABLED UIDONLY\r\n" in client.ok("e1 ENABLE UIDONLY")
    out = client.ok("e2 ENABLE UIDONLY")  # RFC 5161 §3.1: only what this command enabled
    assert "* ENABLED\r\n" in out


@pytest.mark.parametrize("line", [
    "FETCH 1 (FLAGS)", "FETCH 1:* (UID)", "STORE 1 +FLAGS (\\Flagged)", "SEARCH ALL",
    "COPY 1 INBOX", "MOVE 1 INBOX", "SORT (DATE) UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL",
    # §3.5: a sequence set as a search key, at any depth
    "UID SEARCH 1:2", "UID SEARCH NOT 1", "UID SEARCH OR UID 2 (1)", "UID SORT (DATE) UTF-8 2",
    "UID THREAD REFERENCES UTF-8 1:*",
])
def test_sequence_numbers_refused_with_uidrequired(store: Any, account: int, line: str) -> None:
    cl = _uidonly(store, account)
    cl.ok("s SELECT INBOX")
    before = _state(store, account)
    out = cl.cmd(f"t {line}")
    assert lines(out)[-1].startswith("t BAD [UIDREQUIRED] "), out
    assert len(lines(out)) == 1, out  # nothing untagged either
    assert _state(store, account) == before
    assert cl.cmd("u UID SEARCH UID 1:*").startswith("* SEARCH 2 3 4 5\r\nu OK")


def test_uidfetch_keyed_by_uid_and_uid_item_only_when_asked(store: Any, account: int) -> None:
    cl = _uidonly(store, account)
    out = cl.ok("s SELECT INBOX")
    assert "[UNSEEN" not in out  # §3: the first unseen message's number is a sequence number
    assert "* 4 EXISTS" in out
    out = cl.ok("f1 UID FETCH 2:3 (FLAGS RFC822.SIZE)")  # the listing fast path
    got = [ln for ln in lines(out) if ln.startswith("* ")]
    assert [ln.split(" (")[0] for ln in got] == ["* 2 UIDFETCH", "* 3 UIDFETCH"], out
    assert "UID " not in out.split("f1 OK")[0], out  # §3.3: the number is the UID
    out = cl.ok("f2 UID FETCH 5 (UID FLAGS)")
    assert re.search(r"^\* 5 UIDFETCH \(UID 5 FLAGS \(.*\)\)\r$", out, re.M), out
    out = cl.ok("f3 UID FETCH 4 (BODY.PEEK[TEXT])")  # the general path
    assert "* 4 UIDFETCH (BODY[TEXT] {8}\r\nbody 4\r\n)" in out, out
    out = cl.ok("f4 UID FETCH 3 (UID)")
    assert "* 3 UIDFETCH (UID 3)" in out


def test_stored_header_fields_answer_uidfetch(store: Any, account: int) -> None:
    """The header-fields fast path (what Thunderbird asks) answers UIDFETCH too (§3.3),
    with the same field bytes a client without UIDONLY gets."""
    cl = _uidonly(store, account)
    cl.ok("s SELECT INBOX")
    ask = "(BODY.PEEK[HEADER.FIELDS (From Subject)])"
    out = cl.ok(f"h1 UID FETCH 2:5 {ask}")
    got = [ln for ln in lines(out) if ln.startswith("* ")]
    assert [ln.split(" (")[0] for ln in got] == [f"* {u} UIDFETCH" for u in (2, 3, 4, 5)], out
    assert "UID " not in out.split("h1 OK")[0], out
    plain = Client(store)
    plain.login()
    plain.ok("s SELECT INBOX")
    ref = plain.ok(f"h UID FETCH 3 {ask}")
    fields = ref[ref.index("BODY[HEADER.FIELDS"):ref.index(")\r\nh OK")]
    assert f"* 3 UIDFETCH ({fields})\r\n" in out, (out, ref)
    out = cl.ok(f"h2 UID FETCH 3 (UID {ask[1:]}")
    assert f"* 3 UIDFETCH (UID 3 {fields})\r\n" in out, out


def test_store_and_implicit_seen_answer_uidfetch(store: Any, account: int) -> None:
    cl = _uidonly(store, account, enable="UIDONLY CONDSTORE")
    cl.ok("s SELECT INBOX")
    out = cl.ok("t UID STORE 3 +FLAGS (\\Flagged)")
    assert re.search(r"^\* 3 UIDFETCH \(FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)\r$", out, re.M), out
    out = cl.ok("b UID FETCH 2 (BODY[TEXT])")  # sets \Seen (RFC 9051 §6.4.5)
    assert "* 2 UIDFETCH (BODY[TEXT] {8}\r\nbody 2\r\n FLAGS (\\Seen) MODSEQ (" in out, out
    assert not re.search(r"^\* \d+ FETCH", out, re.M), out


def test_changes_from_elsewhere_are_uidfetch_and_vanished(store: Any, account: int) -> None:
    cl = _uidonly(store, account)
    cl.ok("s SELECT INBOX")
    other = Client(store)
    other.login()
    other.ok("o SELECT INBOX")
    other.ok("f UID STORE 4 +FLAGS (\\Answered)")
    other.ok("d UID STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.ok("x UID EXPUNGE 2")  # other sees EXPUNGE, this session VANISHED (§3.4)
    deliver(store, account, raw=message("new"))
    out = cl.ok("n NOOP")
    assert "* VANISHED 2\r\n" in out, out
    assert "* 4 EXISTS\r\n" in out  # EXISTS is a count, not a number of a message
    assert re.search(r"^\* 4 UIDFETCH \(FLAGS \(\\Answered\)\)\r$", out, re.M), out
    assert not re.search(r"^\* \d+ (FETCH|EXPUNGE)", out, re.M), out


def test_own_expunge_and_move_are_vanished(store: Any, account: int) -> None:
    cl = _uidonly(store, account)
    cl.ok("c CREATE Stash")
    cl.ok("s SELECT INBOX")
    out = cl.ok("m UID MOVE 3 Stash")
    assert "* VANISHED 3\r\n" in out and "EXPUNGE" not in out.replace("EXPUNGE completed", "")
    cl.ok("d UID STORE 4:5 +FLAGS.SILENT (\\Deleted)")
    out = cl.ok("x EXPUNGE")  # EXPUNGE takes no numbers: allowed
    assert "* VANISHED 4:5\r\n" in out, out


def test_qresync_sequence_match_data_refused(store: Any, account: int) -> None:
    cl = _uidonly(store, account, enable="UIDONLY QRESYNC")
    with store.read(account) as v:
        rec = v.require_mailbox(v.mailbox_by_path(["INBOX"]))
    validity = rec["uidvalidity"]
    out = cl.cmd(f"q SELECT INBOX (QRESYNC ({validity} 1 2:5 (1:2 2:3)))")
    assert lines(out) == [lines(out)[-1]] and out.startswith("q BAD [UIDREQUIRED] "), out
    out = cl.ok(f"r SELECT INBOX (QRESYNC ({validity} 1 2:5))")
    assert not re.search(r"^\* \d+ FETCH", out, re.M), out


def test_replace_by_number_refused_before_the_literal(store: Any, account: int) -> None:
    cl = _uidonly(store, account)
    cl.ok("s SELECT INBOX")
    before = _state(store, account)
    raw = message("replacement")
    out = cl.send(f"r REPLACE 1 INBOX {{{len(raw)}}}\r\n".encode())
    assert out.startswith("r BAD [UIDREQUIRED] ") and "+ " not in out, out
    assert _state(store, account) == before
    out = cl.send(f"u UID REPLACE 2 INBOX {{{len(raw)}}}\r\n".encode())
    assert out.startswith("+ ")
    out = cl.send(raw + b"\r\n")
    assert "* OK [APPENDUID" in out and "u OK" in out and "* VANISHED 2\r\n" in out, out


def test_unauthenticate_turns_it_off(store: Any, account: int) -> None:
    cl = _uidonly(store, account)
    cl.ok("z UNAUTHENTICATE")  # RFC 8437 §4.1: ENABLEd extensions are per login
    cl.login()
    cl.ok("s SELECT INBOX")
    out = cl.ok("f FETCH 1 (UID)")
    assert "* 1 FETCH (UID 2)" in out


def test_notify_message_new_is_uidfetch(store: Any, account: int) -> None:
    cl = _uidonly(store, account)
    cl.ok("s SELECT INBOX")
    cl.ok("n NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange))")
    deliver(store, account, raw=message("pushed"))
    out = cl.push()
    assert "* 5 EXISTS\r\n" in out
    assert re.search(r"^\* 6 UIDFETCH \(UID 6 FLAGS \(.*\)\)\r$", out, re.M), out
